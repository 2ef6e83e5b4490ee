"""FastAPI application factory: `create_app()` is what gunicorn, the tests and the Lambda handler run."""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import logging
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from app.breaker import CircuitBreaker, State, prometheus_reporter
from app.cache import ReadCache
from app.db import create_engine, create_sessionmaker
from app.edge import EdgeMiddleware
from app.observability import configure_logging, init_sentry
from app.ratelimit import LoginLimiter, Rate
from app.routes import auth, health, items
from app.settings import Settings, load_settings

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

log = logging.getLogger("app")


class LazyRedis:
    """The Redis client, created - and redis-py imported - on first use.

    Only login (rate limit), the item reads (app.cache) and /ready touch Redis. Importing redis-py costs
    ~0.1-0.2 s of CPU, which a Lambda cold start serving anything else should not pay (BENCHMARKS.md, cold
    start).
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._client: Redis | None = None

    def __call__(self) -> Redis:
        if self._client is None:
            from redis.asyncio import Redis
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff

            self._client = Redis.from_url(
                self._settings.redis_url.get_secret_value(),
                socket_timeout=self._settings.redis_socket_timeout,
                socket_connect_timeout=self._settings.redis_socket_timeout,
                # redis-py's default retries 3x with backoff: a dead Redis would add ~1 s to every login.
                # One immediate retry (connection errors only, not timeouts) replaces a connection the
                # server or a frozen Lambda environment dropped while idle.
                retry=Retry(NoBackoff(), 1),
            )
        return self._client

    @property
    def created(self) -> bool:
        return self._client is not None

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()


@dataclass
class Resources:
    """Per-process clients. Creating them opens no connection, so this is cheap at import/cold start.

    The engine and session factory are created on first use, like the Redis client: building the engine
    imports SQLAlchemy's asyncpg dialect and asyncpg, which a Lambda cold start serving /health should not
    pay. Servers build it at boot (create_app(eager_db=True)).
    """

    settings: Settings = field(repr=False)
    login_limiter: LoginLimiter
    lazy_redis: LazyRedis = field(repr=False)
    #: Per-process circuit breakers (app.breaker): get_session acquires db_breaker, the login limiter
    #: redis_breaker.
    db_breaker: CircuitBreaker
    redis_breaker: CircuitBreaker
    cache: ReadCache = field(repr=False)
    _engine: AsyncEngine | None = field(default=None, repr=False)
    _sessionmaker: async_sessionmaker[AsyncSession] | None = field(default=None, repr=False)

    @property
    def engine(self) -> AsyncEngine:
        if self._engine is None:
            self._engine = create_engine(self.settings)
            if self.settings.metrics_enabled:
                from app.runtime_metrics import instrument_pool

                instrument_pool(self._engine)
        return self._engine

    @property
    def engine_if_created(self) -> AsyncEngine | None:
        """The engine, without creating it (metrics must not import SQLAlchemy on a Lambda cold start)."""
        return self._engine

    @property
    def sessionmaker(self) -> async_sessionmaker[AsyncSession]:
        if self._sessionmaker is None:
            self._sessionmaker = create_sessionmaker(self.engine)
        return self._sessionmaker

    @property
    def redis(self) -> Redis:
        return self.lazy_redis()

    @classmethod
    def build(cls, settings: Settings) -> Resources:
        redis = LazyRedis(settings)
        # The gauge only where something can scrape it (prometheus-client stays unimported on Lambda).
        report = prometheus_reporter() if settings.metrics_enabled else None
        db_breaker, redis_breaker = (
            CircuitBreaker(
                name, settings.breaker_failure_threshold, settings.breaker_open_seconds, on_change=report
            )
            for name in ("postgres", "redis")
        )
        pair, address, user = (Rate(n, s) for n, s in settings.login_rates)
        limiter = LoginLimiter(
            redis, per_address_user=pair, per_address=address, per_user_failures=user, breaker=redis_breaker
        )
        cache = ReadCache(redis, settings.cache_ttl_seconds, metrics=settings.metrics_enabled)
        return cls(settings, limiter, redis, db_breaker=db_breaker, redis_breaker=redis_breaker, cache=cache)

    def breaker_states(self) -> dict[str, State]:
        return {b.name: b.state for b in (self.db_breaker, self.redis_breaker)}

    async def close(self) -> None:
        if self._engine is not None:
            await self._engine.dispose()
        await self.cache.aclose()
        await self.lazy_redis.aclose()


async def _invalid_request(request: Request, exc: Exception) -> JSONResponse:
    # FastAPI's default 422 carries each error's `input` (the value sent: a password from a form-encoded
    # login, a whole body when it was not JSON) and `ctx` (the JSON decoder's message). Locations, messages
    # and types are enough to fix a request; the values stay with the client - and out of the logs.
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
        for e in exc.errors()
    ]
    return JSONResponse({"detail": errors}, status_code=422)


#: FastAPI's own test for "no provider configured": the OpenTelemetry API's stand-ins for a provider that
#: is set later (fastapi.telemetry._api._DEFERRED_PROVIDERS)
_UNSET_PROVIDERS = frozenset(
    {
        ("opentelemetry.trace", "ProxyTracerProvider"),
        ("opentelemetry.metrics._internal", "_ProxyMeterProvider"),
        ("opentelemetry._logs._internal", "ProxyLoggerProvider"),
    }
)
#: FastAPI(telemetry=...) with every signal off
TELEMETRY_OFF = {"tracing": False, "metrics": False, "logs": False}


def _opentelemetry_configured(environ: Mapping[str, str]) -> bool:
    """Whether this process has somewhere to send OpenTelemetry data: an ``OTEL_*`` variable (what
    opentelemetry-instrument and the SDK's own configuration read), FastAPI's OTLP auto-configuration, or
    a global provider that is not the API's stand-in."""
    if any(name.startswith("OTEL_") for name in environ):
        return True
    if environ.get("FASTAPI_OTEL_AUTO_CONFIGURE", "").lower() == "true":
        return True
    from opentelemetry import _logs, metrics, trace  # imported by FastAPI itself already

    for provider in (trace.get_tracer_provider(), metrics.get_meter_provider(), _logs.get_logger_provider()):
        cls = type(provider)
        if (cls.__module__, cls.__name__) not in _UNSET_PROVIDERS:
            return True
    return False


def fastapi_telemetry(settings: Settings, environ: Mapping[str, str] | None = None) -> dict[str, Any] | None:
    """The ``telemetry`` argument for ``FastAPI()`` per ``FASTAPI_TELEMETRY`` (see app.settings): None keeps
    FastAPI's default (native OpenTelemetry on); :data:`TELEMETRY_OFF` turns it off. None too on a FastAPI
    without native telemetry (older than 0.165), which takes no such argument."""
    if importlib.util.find_spec("fastapi.telemetry") is None:
        return None
    mode = settings.fastapi_telemetry
    env = os.environ if environ is None else environ
    if mode == "on" or (mode == "auto" and _opentelemetry_configured(env)):
        return None
    return dict(TELEMETRY_OFF)


def _add_routes(app: FastAPI, router: APIRouter) -> None:
    """Put `router`'s routes on the app's own router, where `app.include_router(router)` would keep the
    router behind FastAPI's `_IncludedRouter` and match through it on every request (FastAPI 0.165: ~6 % of
    a /health request's CPU in the worker, BENCHMARKS.md §10).

    Equivalent for our routers because APIRouter applies its prefix, tags, responses and dependencies to
    each route when the route is declared; include-time options (a prefix or dependencies given to
    include_router) are therefore not available here - declare them on the APIRouter.
    """
    app.router.routes.extend(router.routes)


def create_app(settings: Settings | None = None, *, eager_db: bool = True) -> FastAPI:
    """Build the app from `settings` (default: the environment; raises SettingsError naming bad variables).

    ``eager_db=False`` (the Lambda handler) leaves SQLAlchemy, asyncpg and the engine to the first request
    that needs the database; servers keep the default and pay it at boot, not on a user's request.
    """
    settings = settings or load_settings()
    configure_logging(settings.log_level)
    init_sentry(settings)
    resources = Resources.build(settings)
    if eager_db:
        # SQLAlchemy's ORM and the models, which the routes load on first use (app.queries), and the engine.
        importlib.import_module("app.queries")
        _ = resources.sessionmaker

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            if settings.metrics_enabled:
                # In the worker, not at create_app (the gunicorn master with preload): pool and RSS gauges.
                from app.runtime_metrics import sampling

                await stack.enter_async_context(sampling(resources.engine_if_created))
            if settings.metrics_emf:  # ECS: CloudWatch EMF lines, nothing scrapes /metrics there
                from app.runtime_metrics import emf_lines

                await stack.enter_async_context(
                    emf_lines(resources.engine_if_created, settings.app_env.value)
                )
            yield
        await resources.close()

    is_dev = settings.app_env.value == "development"
    telemetry = fastapi_telemetry(settings)
    extra: dict[str, Any] = {} if telemetry is None else {"telemetry": telemetry}
    app = FastAPI(
        **extra,
        title="fastapi-deploy sample service",
        lifespan=lifespan,
        docs_url="/docs" if is_dev else None,
        redoc_url=None,
        openapi_url="/openapi.json" if is_dev else None,
    )
    app.state.settings = settings
    app.state.resources = resources
    _add_routes(app, health.router)
    if settings.metrics_enabled:
        _add_routes(app, health.metrics_router)
    _add_routes(app, auth.router)
    _add_routes(app, items.router)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    # Request id, access line, metrics, CORS, the body limit and DB outages -> 503, in one layer
    # (app/edge.py): the outermost but for the forwarded-address one below.
    app.add_middleware(
        EdgeMiddleware,
        max_body_bytes=settings.max_request_body_bytes,
        cors=dict(
            allow_origins=settings.cors_origin_list,
            allow_headers=settings.cors_header_list,
            allow_methods=["GET", "POST", "OPTIONS"],
            expose_headers=["X-Request-ID", "Retry-After"],
        )
        if settings.cors_origin_list
        else None,
        metrics=settings.metrics_enabled,
    )
    if settings.forwarded_trusted_hops:
        # Outermost of all: the access log, the request id and the login limiter see the client address
        # taken by hop count from X-Forwarded-For (Cloud Run; app/forwarded.py), never the client-written one.
        from app.forwarded import TrustedHopsMiddleware

        app.add_middleware(TrustedHopsMiddleware, hops=settings.forwarded_trusted_hops)
    return app
