"""Cold start baseline for the DB route: a minimal FastAPI + Mangum + SQLAlchemy (asyncpg) Lambda app
serving `GET /api/items` with the same query and the same JSON as the service.

Same ORM query (items JOIN category, reviews in one `IN (...)` query), same response models, same
`limit`/`offset` validation, NullPool (one connection per invocation, as the deployer configures Lambda);
no settings object, middleware, logging, metrics, auth or other routes. DATABASE_URL comes straight from
the environment. bench/bench_coldstart.py compares the service's DB route with this, in the same run.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated

from fastapi import Depends, FastAPI, Query
from mangum import Mangum
from pydantic import BaseModel, ConfigDict
from sqlalchemy import ForeignKey, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, joinedload, mapped_column, relationship, selectinload
from sqlalchemy.pool import NullPool


class Base(DeclarativeBase):
    pass


class Category(Base):
    __tablename__ = "categories"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str]


class Item(Base):
    __tablename__ = "items"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str]
    description: Mapped[str]
    price_cents: Mapped[int]
    category_id: Mapped[int] = mapped_column(ForeignKey("categories.id"))
    created_at: Mapped[datetime]
    category: Mapped[Category] = relationship()
    reviews: Mapped[list[Review]] = relationship(order_by="Review.id")


class Review(Base):
    __tablename__ = "reviews"
    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"))
    rating: Mapped[int]
    body: Mapped[str]


class CategoryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    name: str


class ReviewOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    rating: int
    body: str


class ItemOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    name: str
    description: str
    price_cents: int
    created_at: datetime
    category: CategoryOut
    reviews: list[ReviewOut]


engine = create_async_engine(os.environ["DATABASE_URL"], poolclass=NullPool)
sessionmaker = async_sessionmaker(engine, expire_on_commit=False)


async def get_session() -> AsyncIterator[AsyncSession]:
    async with sessionmaker() as session:
        yield session


app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/api/items", response_model=list[ItemOut])
async def list_items(
    session: Annotated[AsyncSession, Depends(get_session)],
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[Item]:
    q = (
        select(Item)
        .options(joinedload(Item.category), selectinload(Item.reviews))
        .order_by(Item.id)
        .limit(limit)
        .offset(offset)
    )
    return list((await session.scalars(q)).unique().all())


handler = Mangum(app, lifespan="off")
