"""Categories, items and reviews. Reads load relations eagerly: a fixed number of queries per request."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, status
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload, selectinload
from sqlalchemy.sql import Select

from app.db import get_session
from app.models import Category, Item, Review
from app.schemas import (
    BODY_TOO_LARGE,
    CONFLICT,
    DB_UNAVAILABLE,
    INT32_MAX,
    INVALID,
    NOT_FOUND,
    UNAUTHORIZED,
    UNREADABLE_BODY,
    CategoryIn,
    CategoryOut,
    ItemIn,
    ItemOut,
    ReviewIn,
    ReviewOut,
)
from app.security import current_username

router = APIRouter(
    prefix="/api",
    tags=["items"],
    responses={**UNREADABLE_BODY, **BODY_TOO_LARGE, **INVALID, **DB_UNAVAILABLE},
)
Session = Annotated[AsyncSession, Depends(get_session)]
User = Annotated[str, Depends(current_username)]
# Bounded to the INTEGER columns they are compared with: a larger number is a 422, not an asyncpg error.
ItemId = Annotated[int, Path(ge=1, le=INT32_MAX)]


def _items_query() -> Select[Item]:
    # many-to-one category: JOIN in the same query; one-to-many reviews: one extra `IN (...)` query for the
    # whole page. Lazy loading would issue 1 + 2N queries for N items (and fails outright under asyncio).
    return select(Item).options(joinedload(Item.category), selectinload(Item.reviews))


@router.get("/categories", response_model=list[CategoryOut])
async def list_categories(session: Session) -> list[Category]:
    return list((await session.scalars(select(Category).order_by(Category.id))).all())


@router.post(
    "/categories",
    response_model=CategoryOut,
    status_code=status.HTTP_201_CREATED,
    responses={**UNAUTHORIZED, **CONFLICT},
)
async def create_category(body: CategoryIn, session: Session, _user: User) -> Category:
    cat = Category(name=body.name)
    session.add(cat)
    try:
        await session.commit()
    except IntegrityError:
        raise HTTPException(status.HTTP_409_CONFLICT, "a category with this name already exists") from None
    return cat


@router.get("/items", response_model=list[ItemOut])
async def list_items(
    session: Session,
    category_id: Annotated[int | None, Query(ge=1, le=INT32_MAX)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=INT32_MAX)] = 0,
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


@router.get("/items/{item_id}", response_model=ItemOut, responses=NOT_FOUND)
async def get_item(item_id: ItemId, session: Session) -> Item:
    return await _get_item(session, item_id)


@router.post("/items", response_model=ItemOut, status_code=status.HTTP_201_CREATED, responses=UNAUTHORIZED)
async def create_item(body: ItemIn, session: Session, _user: User) -> Item:
    if await session.get(Category, body.category_id) is None:
        # The same shape as every other 422 (app.main's validation handler), so clients parse one format.
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            [{"loc": ["body", "category_id"], "msg": "category does not exist", "type": "not_found"}],
        )
    item = Item(**body.model_dump())
    session.add(item)
    await session.commit()
    session.expunge(item)
    return await _get_item(session, item.id)


@router.post(
    "/items/{item_id}/reviews",
    response_model=ReviewOut,
    status_code=status.HTTP_201_CREATED,
    responses={**UNAUTHORIZED, **NOT_FOUND},
)
async def create_review(item_id: ItemId, body: ReviewIn, session: Session, _user: User) -> Review:
    if await session.get(Item, item_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"item {item_id} not found")
    review = Review(item_id=item_id, **body.model_dump())
    session.add(review)
    await session.commit()
    return review
