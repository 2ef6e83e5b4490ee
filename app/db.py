"""Async SQLAlchemy engine built from the pool settings the deployer computed for this platform.

Importing this module does not import SQLAlchemy or asyncpg (~0.3 s of CPU on the benchmark VM, about as
much as FastAPI): the engine, the session factory and app.queries load them on first use, so a Lambda cold
start that serves /health never pays for them (BENCHMARKS.md §7). Servers load them at boot
(create_app(eager_db=True)).
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, Request

from app.settings import Settings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker


def engine_kwargs(settings: Settings) -> dict[str, Any]:
    """The keyword arguments for `create_async_engine` (split out so tests can assert them)."""
    from sqlalchemy.pool import AsyncAdaptedQueuePool, NullPool

    connect_args: dict[str, Any] = {
        # asyncpg's connect timeout: with a dead/black-holed DB a new connection fails after 3 s instead of
        # the OS TCP timeout (~2 min), so requests fail fast rather than pile up behind it.
        "timeout": settings.db_connect_timeout,
        # Per-statement client-side timeout: a stuck query frees the worker long before gunicorn kills it.
        "command_timeout": settings.db_command_timeout,
        "server_settings": {"application_name": "fastapi-deploy"},
    }
    kw: dict[str, Any] = {
        "connect_args": connect_args,
        "pool_pre_ping": settings.db_pool_pre_ping,
        # SQLAlchemy puts the statement's parameters (a username, an item's text...) into the message of
        # every DBAPI error, which the 503 handler logs and Sentry records: keep values out of both.
        "hide_parameters": True,
    }
    if settings.db_pool_class == "null":
        # Lambda: one request per execution environment and a frozen process between invocations; a
        # pooled connection would sit idle (or be cut by the server) while counting against max_connections.
        kw["poolclass"] = NullPool
    else:
        kw.update(
            poolclass=AsyncAdaptedQueuePool,
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
            # Waiting 30 s (SQLAlchemy's default) for a pooled connection during a DB brown-out turns one slow
            # dependency into a queue of hung requests; 5 s fails them with a 503 instead.
            pool_timeout=settings.db_pool_timeout,
            pool_recycle=settings.db_pool_recycle,
        )
    return kw


def create_engine(settings: Settings) -> AsyncEngine:
    """Create the engine (no connection is opened until first use)."""
    from sqlalchemy.ext.asyncio import create_async_engine

    return create_async_engine(settings.database_url.get_secret_value(), **engine_kwargs(settings))


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    from sqlalchemy.ext.asyncio import async_sessionmaker

    return async_sessionmaker(engine, expire_on_commit=False)


def unavailable_errors() -> tuple[type[BaseException], ...]:
    """The SQLAlchemy errors that mean "database unavailable" (pool timeout, connection refused/lost).

    Empty while SQLAlchemy is not imported: then no such error can have been raised. Lets the app map them
    to a 503 without importing SQLAlchemy at start (app.main.DatabaseUnavailableMiddleware).
    """
    if "sqlalchemy.exc" not in sys.modules:
        return ()
    from sqlalchemy import exc

    return (exc.OperationalError, exc.InterfaceError, exc.TimeoutError)


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """FastAPI dependency: one session per request, closed (connection returned to the pool) afterwards."""
    maker: async_sessionmaker[AsyncSession] = request.app.state.resources.sessionmaker
    async with maker() as session:
        yield session


if TYPE_CHECKING:
    SessionDep = Annotated[AsyncSession, Depends(get_session)]
else:
    # FastAPI needs only the Depends() here, never the class: annotating with SQLAlchemy's AsyncSession at
    # runtime would import SQLAlchemy when a router module is imported. Type checkers see the real type.
    SessionDep = Annotated[object, Depends(get_session)]
