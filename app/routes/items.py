"""Categories, items and reviews. The SQL lives in app.queries, imported on first use (see there)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, status

from app.db import SessionDep
from app.schemas import CategoryIn, CategoryOut, ItemIn, ItemOut, ReviewIn, ReviewOut
from app.security import current_username

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from app.models import Category, Item, Review

router = APIRouter(prefix="/api", tags=["items"])
Session = SessionDep
User = Annotated[str, Depends(current_username)]


@router.get("/categories", response_model=list[CategoryOut])
async def list_categories(session: Session) -> list[Category]:
    from app import queries

    return await queries.list_categories(session)


@router.post("/categories", response_model=CategoryOut, status_code=status.HTTP_201_CREATED)
async def create_category(body: CategoryIn, session: Session, _user: User) -> Category:
    from app import queries

    cat = await queries.create_category(session, body.name)
    if cat is None:
        raise HTTPException(status.HTTP_409_CONFLICT, f"category {body.name!r} already exists")
    return cat


@router.get("/items", response_model=list[ItemOut])
async def list_items(
    session: Session,
    category_id: int | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[Item]:
    from app import queries

    return await queries.list_items(session, category_id, limit, offset)


async def _get_item(session: AsyncSession, item_id: int) -> Item:
    from app import queries

    item = await queries.get_item(session, item_id)
    if item is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"item {item_id} not found")
    return item


@router.get("/items/{item_id}", response_model=ItemOut)
async def get_item(item_id: int, session: Session) -> Item:
    return await _get_item(session, item_id)


@router.post("/items", response_model=ItemOut, status_code=status.HTTP_201_CREATED)
async def create_item(body: ItemIn, session: Session, _user: User) -> Item:
    from app import queries

    if not await queries.category_exists(session, body.category_id):
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, f"category_id {body.category_id} does not exist"
        )
    return await _get_item(session, await queries.insert_item(session, body.model_dump()))


@router.post("/items/{item_id}/reviews", response_model=ReviewOut, status_code=status.HTTP_201_CREATED)
async def create_review(item_id: int, body: ReviewIn, session: Session, _user: User) -> Review:
    from app import queries

    if not await queries.item_exists(session, item_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"item {item_id} not found")
    return await queries.create_review(session, item_id, body.model_dump())
