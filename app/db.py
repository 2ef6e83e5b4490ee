"""Async SQLAlchemy engine built from the pool settings the deployer computed for this platform.

Importing this module does not import SQLAlchemy or asyncpg (~0.3 s of CPU on the benchmark VM, about as
much as FastAPI): the engine, the session factory and app.queries load them on first use, so a Lambda cold
start that serves /health never pays for them (BENCHMARKS.md §7). Servers load them at boot
(create_app(eager_db=True)).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, Request

from app.settings import Settings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
    from sqlalchemy.orm import Session

    from app.breaker import CircuitBreaker

#: Key of the request's DbUse in the ASGI scope (set by app.edge.DatabaseUnavailableMiddleware).
DB_USE_SCOPE_KEY = "app.db_use"
# Set in a session's .info once it obtained a connection (its first transaction began).
_REACHED = "app.reached_db"


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


@functools.cache
def _tracked_session_class() -> type[Session]:
    """A Session that notes in its .info when it got a connection: only such a request tells the circuit
    breaker the database works (a 401 or 422 before any query says nothing about it)."""
    from sqlalchemy import event
    from sqlalchemy.orm import Session

    class TrackedSession(Session):
        pass

    @event.listens_for(TrackedSession, "after_begin")
    def _reached(session: Session, transaction: object, connection: object) -> None:
        session.info[_REACHED] = True

    return TrackedSession


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    from sqlalchemy.ext.asyncio import async_sessionmaker

    return async_sessionmaker(engine, expire_on_commit=False, sync_session_class=_tracked_session_class())


@dataclass
class DbUse:
    """What one request did with the database, for the circuit breaker's verdict at its end."""

    breaker: CircuitBreaker | None = None
    probe: bool = False
    session: AsyncSession | None = None

    def reached(self) -> bool:
        return self.session is not None and bool(self.session.info.get(_REACHED))


def unavailable_errors() -> tuple[type[BaseException], ...]:
    """The SQLAlchemy errors that mean "database unavailable" (pool timeout, connection refused/lost).

    Empty while SQLAlchemy is not imported: then no such error can have been raised. Lets the app map them
    to a 503 without importing SQLAlchemy at start (app.edge.DatabaseUnavailableMiddleware).
    """
    if "sqlalchemy.exc" not in sys.modules:
        return ()
    from sqlalchemy import exc

    return (exc.OperationalError, exc.InterfaceError, exc.TimeoutError)


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """FastAPI dependency: one session per request, closed (connection returned to the pool) afterwards.

    Asks the database's circuit breaker first: while it is open this raises CircuitOpenError (a 503 with
    Retry-After, app.main) before any connection attempt. The request's outcome is reported to the breaker
    by app.edge.DatabaseUnavailableMiddleware.
    """
    resources = request.app.state.resources
    use: DbUse | None = request.scope.get(DB_USE_SCOPE_KEY)
    breaker: CircuitBreaker = resources.db_breaker
    probe = breaker.acquire()
    if use is not None:
        use.breaker, use.probe = breaker, probe
    else:  # no middleware to report the outcome (an app without it): never hold the probe slot
        breaker.release(probe)
    maker: async_sessionmaker[AsyncSession] = resources.sessionmaker
    async with maker() as session:
        if use is not None:
            use.session = session
        yield session


if TYPE_CHECKING:
    SessionDep = Annotated[AsyncSession, Depends(get_session)]
else:
    # FastAPI needs only the Depends() here, never the class: annotating with SQLAlchemy's AsyncSession at
    # runtime would import SQLAlchemy when a router module is imported. Type checkers see the real type.
    SessionDep = Annotated[object, Depends(get_session)]
