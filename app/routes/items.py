"""Categories, items and reviews. The SQL lives in app.queries, imported on first use (see there).

The item list and detail are served through the read cache (app.cache) when CACHE_TTL_SECONDS > 0: the
body is rendered exactly as FastAPI renders the response model, stored as bytes, and every write
invalidates the "items" namespace after its commit, before it answers.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response, status
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import TypeAdapter

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

    from app.cache import ReadCache
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

#: The cache namespace of every item read; every write bumps it.
ITEMS = "items"


@functools.cache
def _adapter(many: bool) -> TypeAdapter[Any]:
    return TypeAdapter(list[ItemOut] if many else ItemOut)


def _render(obj: object, *, many: bool) -> bytes:
    """The body FastAPI sends for ``obj`` under response_model ItemOut (or list[ItemOut]): validated from
    attributes, dumped in JSON mode, encoded by JSONResponse (compact, UTF-8)."""
    adapter = _adapter(many)
    data = adapter.dump_python(adapter.validate_python(obj, from_attributes=True), mode="json")
    return bytes(JSONResponse(jsonable_encoder(data)).body)


def _cache(request: Request) -> ReadCache:
    cache: ReadCache = request.app.state.resources.cache
    return cache


async def _invalidate(request: Request) -> None:
    """After a committed write, before its response: no later read may see the old value."""
    await _cache(request).invalidate(ITEMS)


async def _cached(
    request: Request, query: str, compute: Callable[[], Awaitable[bytes | None]]
) -> Response | None:
    body = await _cache(request).get_or_compute(ITEMS, query, compute)
    return None if body is None else Response(body, media_type="application/json")


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
async def create_category(body: CategoryIn, request: Request, session: Session, _user: User) -> Category:
    from app import queries

    cat = await queries.create_category(session, body.name)
    if cat is None:
        raise HTTPException(status.HTTP_409_CONFLICT, "a category with this name already exists")
    await _invalidate(request)  # items embed their category: every write bumps, whatever it changed
    return cat


@router.get("/items", response_model=list[ItemOut])
async def list_items(
    request: Request,
    session: Session,
    category_id: Annotated[int | None, Query(ge=1, le=INT32_MAX)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=INT32_MAX)] = 0,
) -> Response | list[Item]:
    from app import queries

    if not _cache(request).enabled:
        return await queries.list_items(session, category_id, limit, offset)

    async def compute() -> bytes:
        return _render(await queries.list_items(session, category_id, limit, offset), many=True)

    # The key is built from the validated parameters: defaults spelled out or not, one entry.
    query = f"list?category_id={'' if category_id is None else category_id}&limit={limit}&offset={offset}"
    response = await _cached(request, query, compute)
    assert response is not None  # a list is never None
    return response


async def _get_item(session: AsyncSession, item_id: int) -> Item:
    from app import queries

    item = await queries.get_item(session, item_id)
    if item is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"item {item_id} not found")
    return item


@router.get("/items/{item_id}", response_model=ItemOut, responses=NOT_FOUND)
async def get_item(item_id: ItemId, request: Request, session: Session) -> Response | Item:
    from app import queries

    if not _cache(request).enabled:
        return await _get_item(session, item_id)

    async def compute() -> bytes | None:  # None: not found, which is not cached
        item = await queries.get_item(session, item_id)
        return None if item is None else _render(item, many=False)

    response = await _cached(request, f"detail/{item_id}", compute)
    if response is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"item {item_id} not found")
    return response


@router.post("/items", response_model=ItemOut, status_code=status.HTTP_201_CREATED, responses=UNAUTHORIZED)
async def create_item(body: ItemIn, request: Request, session: Session, _user: User) -> Item:
    from app import queries

    if not await queries.category_exists(session, body.category_id):
        # The same shape as every other 422 (app.main's validation handler), so clients parse one format.
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            [{"loc": ["body", "category_id"], "msg": "category does not exist", "type": "not_found"}],
        )
    item_id = await queries.insert_item(session, body.model_dump())
    await _invalidate(request)
    return await _get_item(session, item_id)


@router.post(
    "/items/{item_id}/reviews",
    response_model=ReviewOut,
    status_code=status.HTTP_201_CREATED,
    responses={**UNAUTHORIZED, **NOT_FOUND},
)
async def create_review(
    item_id: ItemId, body: ReviewIn, request: Request, session: Session, _user: User
) -> Review:
    from app import queries

    if not await queries.item_exists(session, item_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"item {item_id} not found")
    review = await queries.create_review(session, item_id, body.model_dump())
    await _invalidate(request)
    return review
