"""The service's database queries: every SQLAlchemy statement the routes run.

This module imports SQLAlchemy's ORM and the models (app.models); the route modules do not - they import
this module on first use (``from app import queries`` inside the endpoint). So a Lambda cold start serving
/health never loads the ORM, and the first DB request loads it once (BENCHMARKS.md, cold start). Servers
import it at boot (``create_app(eager_db=True)``), so no user request pays for it there.

Reads load relations eagerly: a fixed number of queries per request.

The item reads are built once, with their values as bound parameters: building ``_items_query()`` with its
loader options, ORDER BY and LIMIT/OFFSET and computing its cache key (which SQLAlchemy does to find the
compiled form) was ~140 us of CPU per request, ~8 % of an uncached item page (BENCHMARKS.md §10). A
statement is immutable and memoizes its cache key, so one object serves every request and the SQL sent is
the same.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Integer, bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload, selectinload
from sqlalchemy.sql import Select

from app.models import Category, Item, Review, User


def _items_query() -> Select[Item]:
    # many-to-one category: JOIN in the same query; one-to-many reviews: one extra `IN (...)` query for the
    # whole page. Lazy loading would issue 1 + 2N queries for N items (and fails outright under asyncio).
    return select(Item).options(joinedload(Item.category), selectinload(Item.reviews))


#: A page of items, and a page of one category's items (parameters: limit, offset[, category_id]).
_ITEM_PAGE = (
    _items_query()
    .order_by(Item.id)
    .limit(bindparam("limit", type_=Integer))
    .offset(bindparam("offset", type_=Integer))
)
_ITEM_PAGE_IN_CATEGORY = _ITEM_PAGE.where(Item.category_id == bindparam("category_id", type_=Integer))
#: One item (parameter: item_id).
_ITEM_BY_ID = _items_query().where(Item.id == bindparam("item_id", type_=Integer))


async def list_categories(session: AsyncSession) -> list[Category]:
    return list((await session.scalars(select(Category).order_by(Category.id))).all())


async def create_category(session: AsyncSession, name: str) -> Category | None:
    """The new category, or None when the name is taken."""
    cat = Category(name=name)
    session.add(cat)
    try:
        await session.commit()
    except IntegrityError:
        return None
    return cat


async def list_items(session: AsyncSession, category_id: int | None, limit: int, offset: int) -> list[Item]:
    if category_id is None:
        rows = await session.scalars(_ITEM_PAGE, {"limit": limit, "offset": offset})
    else:
        params = {"limit": limit, "offset": offset, "category_id": category_id}
        rows = await session.scalars(_ITEM_PAGE_IN_CATEGORY, params)
    return list(rows.unique().all())


async def get_item(session: AsyncSession, item_id: int) -> Item | None:
    return (await session.scalars(_ITEM_BY_ID, {"item_id": item_id})).unique().one_or_none()


async def category_exists(session: AsyncSession, category_id: int) -> bool:
    return await session.get(Category, category_id) is not None


async def item_exists(session: AsyncSession, item_id: int) -> bool:
    return await session.get(Item, item_id) is not None


async def insert_item(session: AsyncSession, fields: dict[str, Any]) -> int:
    """Insert an item; its id. Detached, so `get_item` reloads it with its category and reviews."""
    item = Item(**fields)
    session.add(item)
    await session.commit()
    session.expunge(item)
    return item.id


async def create_review(session: AsyncSession, item_id: int, fields: dict[str, Any]) -> Review:
    review = Review(item_id=item_id, **fields)
    session.add(review)
    await session.commit()
    return review


async def find_user(session: AsyncSession, username: str) -> User | None:
    return (await session.scalars(select(User).where(User.username == username))).one_or_none()
