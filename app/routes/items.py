"""Categories, items and reviews. Reads load relations eagerly: a fixed number of queries per request."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, status
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload, selectinload
from sqlalchemy.sql import Select

from app.db import get_session
from app.models import Category, Item, Review
from app.schemas import CategoryIn, CategoryOut, ItemIn, ItemOut, ReviewIn, ReviewOut
from app.security import current_username

router = APIRouter(prefix="/api", tags=["items"])
Session = Annotated[AsyncSession, Depends(get_session)]
User = Annotated[str, Depends(current_username)]


def _items_query() -> Select[Item]:
    # many-to-one category: JOIN in the same query; one-to-many reviews: one extra `IN (...)` query for the
    # whole page. Lazy loading would issue 1 + 2N queries for N items (and fails outright under asyncio).
    return select(Item).options(joinedload(Item.category), selectinload(Item.reviews))


@router.get("/categories", response_model=list[CategoryOut])
async def list_categories(session: Session) -> list[Category]:
    return list((await session.scalars(select(Category).order_by(Category.id))).all())


@router.post("/categories", response_model=CategoryOut, status_code=status.HTTP_201_CREATED)
async def create_category(body: CategoryIn, session: Session, _user: User) -> Category:
    cat = Category(name=body.name)
    session.add(cat)
    try:
        await session.commit()
    except IntegrityError:
        raise HTTPException(status.HTTP_409_CONFLICT, f"category {body.name!r} already exists") from None
    return cat


@router.get("/items", response_model=list[ItemOut])
async def list_items(
    session: Session,
    category_id: int | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[Item]:
    q = _items_query().order_by(Item.id).limit(limit).offset(offset)
    if category_id is not None:
        q = q.where(Item.category_id == category_id)
    return list((await session.scalars(q)).unique().all())


async def _get_item(session: AsyncSession, item_id: int) -> Item:
    item = (await session.scalars(_items_query().where(Item.id == item_id))).unique().one_or_none()
    if item is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"item {item_id} not found")
    return item


@router.get("/items/{item_id}", response_model=ItemOut)
async def get_item(item_id: int, session: Session) -> Item:
    return await _get_item(session, item_id)


@router.post("/items", response_model=ItemOut, status_code=status.HTTP_201_CREATED)
async def create_item(body: ItemIn, session: Session, _user: User) -> Item:
    if await session.get(Category, body.category_id) is None:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, f"category_id {body.category_id} does not exist"
        )
    item = Item(**body.model_dump())
    session.add(item)
    await session.commit()
    session.expunge(item)
    return await _get_item(session, item.id)


@router.post("/items/{item_id}/reviews", response_model=ReviewOut, status_code=status.HTTP_201_CREATED)
async def create_review(item_id: int, body: ReviewIn, session: Session, _user: User) -> Review:
    if await session.get(Item, item_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"item {item_id} not found")
    review = Review(item_id=item_id, **body.model_dump())
    session.add(review)
    await session.commit()
    return review
