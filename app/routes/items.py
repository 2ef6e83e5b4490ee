"""Categories, items and reviews. The SQL lives in app.queries, imported on first use (see there)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, status

from app.db import SessionDep
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

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from app.models import Category, Item, Review

router = APIRouter(
    prefix="/api",
    tags=["items"],
    responses={**UNREADABLE_BODY, **BODY_TOO_LARGE, **INVALID, **DB_UNAVAILABLE},
)
Session = SessionDep
User = Annotated[str, Depends(current_username)]
# Bounded to the INTEGER columns they are compared with: a larger number is a 422, not an asyncpg error.
ItemId = Annotated[int, Path(ge=1, le=INT32_MAX)]


@router.get("/categories", response_model=list[CategoryOut])
async def list_categories(session: Session) -> list[Category]:
    from app import queries

    return await queries.list_categories(session)


@router.post(
    "/categories",
    response_model=CategoryOut,
    status_code=status.HTTP_201_CREATED,
    responses={**UNAUTHORIZED, **CONFLICT},
)
async def create_category(body: CategoryIn, session: Session, _user: User) -> Category:
    from app import queries

    cat = await queries.create_category(session, body.name)
    if cat is None:
        raise HTTPException(status.HTTP_409_CONFLICT, "a category with this name already exists")
    return cat


@router.get("/items", response_model=list[ItemOut])
async def list_items(
    session: Session,
    category_id: Annotated[int | None, Query(ge=1, le=INT32_MAX)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=INT32_MAX)] = 0,
) -> list[Item]:
    from app import queries

    return await queries.list_items(session, category_id, limit, offset)


async def _get_item(session: AsyncSession, item_id: int) -> Item:
    from app import queries

    item = await queries.get_item(session, item_id)
    if item is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"item {item_id} not found")
    return item


@router.get("/items/{item_id}", response_model=ItemOut, responses=NOT_FOUND)
async def get_item(item_id: ItemId, session: Session) -> Item:
    return await _get_item(session, item_id)


@router.post("/items", response_model=ItemOut, status_code=status.HTTP_201_CREATED, responses=UNAUTHORIZED)
async def create_item(body: ItemIn, session: Session, _user: User) -> Item:
    from app import queries

    if not await queries.category_exists(session, body.category_id):
        # The same shape as every other 422 (app.main's validation handler), so clients parse one format.
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            [{"loc": ["body", "category_id"], "msg": "category does not exist", "type": "not_found"}],
        )
    return await _get_item(session, await queries.insert_item(session, body.model_dump()))


@router.post(
    "/items/{item_id}/reviews",
    response_model=ReviewOut,
    status_code=status.HTTP_201_CREATED,
    responses={**UNAUTHORIZED, **NOT_FOUND},
)
async def create_review(item_id: ItemId, body: ReviewIn, session: Session, _user: User) -> Review:
    from app import queries

    if not await queries.item_exists(session, item_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"item {item_id} not found")
    return await queries.create_review(session, item_id, body.model_dump())
