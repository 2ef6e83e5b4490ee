"""Bare FastAPI + SQLAlchemy (asyncpg): the service's DB route without the service around it.

Same query (the service's `_items_query()`: items JOIN category, reviews in one `IN` query, ORDER BY id,
LIMIT 20), same ORM models and response model (`list[ItemOut]`), same pool size from the env the deployer
sets. No middleware, no request id, no access log, no metrics, no settings object. The engine opens no
connection until the first request (safe to import in a preloading gunicorn master).

Like a typical FastAPI + SQLAlchemy app it builds the statement in each request; the service builds it once
with bound parameters (app.queries: same SQL, ~140 us of CPU less per request). BENCHMARKS.md §10 (fifth
pass) gives the ratio with that and the service's own per-request cost without it.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI, Query
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from app import queries
from app.models import Item
from app.schemas import ItemOut

engine = create_async_engine(
    os.environ["DATABASE_URL"],
    pool_size=int(os.environ.get("DB_POOL_SIZE", "5")),
    max_overflow=int(os.environ.get("DB_MAX_OVERFLOW", "2")),
    pool_timeout=float(os.environ.get("DB_POOL_TIMEOUT", "5")),
    pool_pre_ping=os.environ.get("DB_POOL_PRE_PING", "true") == "true",
)
maker = async_sessionmaker(engine, expire_on_commit=False)
#: BENCH_SQLA_PREBUILT=1: the service's own query function (the statement built once) instead - then the
#: comparison with the service shows only what the service does around the same query code.
PREBUILT = os.environ.get("BENCH_SQLA_PREBUILT") == "1"


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    await engine.dispose()


app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None, lifespan=lifespan)


async def session() -> AsyncIterator[AsyncSession]:
    async with maker() as s:
        yield s


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/api/items", response_model=list[ItemOut])
async def list_items(
    s: Annotated[AsyncSession, Depends(session)],
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[Item]:
    if PREBUILT:
        return await queries.list_items(s, None, limit, offset)
    q = queries._items_query().order_by(Item.id).limit(limit).offset(offset)
    return list((await s.scalars(q)).unique().all())
