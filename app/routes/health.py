"""Liveness (/health), readiness (/ready) and metrics (/metrics)."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from app.observability import metrics_payload
from app.schema import schema_problem
from app.schemas import ReadyOut

router = APIRouter(tags=["ops"])
#: /metrics, included only when METRICS_ENABLED (app.main).
metrics_router = APIRouter(tags=["ops"])
log = logging.getLogger("app.ready")


@router.get("/health")
async def health() -> dict[str, str]:
    """Liveness: touches no dependency, so a DB outage never makes the platform restart healthy tasks."""
    return {"status": "ok"}


# Probes that timed out and are still unwinding (cancelling a query on a hung server can itself take
# seconds: asyncpg sends a cancel request to the same dead server). Held here so they are not
# garbage-collected, and capped so a long outage cannot pile up connections, one per probe.
_abandoned: set[asyncio.Task[object]] = set()
_MAX_ABANDONED = 4
# userinfo in any URL an exception message might quote (redis-py and asyncpg quote host:port, not URLs,
# but a driver that did would put the password in the log)
_URL_CREDENTIALS = re.compile(r"(?<=://)[^/@\s]+@")


def _redact(detail: str) -> str:
    return _URL_CREDENTIALS.sub("***@", detail)


async def _check(name: str, probe: Callable[[], Awaitable[object]], limit_s: float) -> tuple[str, str | None]:
    if sum(1 for t in _abandoned if t.get_name() == name) >= _MAX_ABANDONED:
        return name, "previous checks still hung"
    task: asyncio.Task[object] = asyncio.ensure_future(probe())
    task.set_name(name)
    # Not asyncio.wait_for: it waits for the cancelled probe to finish unwinding, which on a SIGSTOPped
    # PostgreSQL took 2.5 s in our test - the probe must answer in READY_CHECK_TIMEOUT regardless.
    done, _ = await asyncio.wait({task}, timeout=limit_s)
    if not done:
        task.cancel()
        _abandoned.add(task)
        task.add_done_callback(_abandoned.discard)
        return name, f"timed out after {limit_s}s"
    exc = task.exception()
    if exc is not None:
        return name, _redact(f"{type(exc).__name__}: {str(exc)[:200]}")
    return name, None


@router.get("/ready", responses={200: {"model": ReadyOut}, 503: {"model": ReadyOut}})
async def ready(request: Request) -> JSONResponse:
    """Readiness: PostgreSQL and Redis answer (concurrently, each under READY_CHECK_TIMEOUT), and the
    database schema is one this release can serve (:mod:`app.schema`). Also shows this worker's circuit
    breaker per dependency (``"breaker": {"postgres": "open", ...}``).

    The answer is public (the platform probes it, but so can anyone who reaches the port): it names the
    failed dependency and nothing else. Why it failed (exception text with host and port, the timeout,
    the revision) goes to the log line ``not ready``.

    A hung dependency (SIGSTOPped server, black-holed packets) must not hang the probe: the platform's own
    probe timeout would then mark the task unhealthy for the wrong reason and without saying which
    dependency failed.
    """
    from sqlalchemy import text  # on first use, like the engine below (app.db)

    res = request.app.state.resources
    timeout = request.app.state.settings.ready_check_timeout
    db_versions: list[list[str] | None] = []
    # The first use creates the engine (app.main.Resources: imports the asyncpg dialect), outside the timed
    # probes for the same reason as the Redis client below.
    engine = res.engine

    async def pg() -> None:
        async with engine.connect() as conn:
            present = (await conn.execute(text("SELECT to_regclass('alembic_version') IS NOT NULL"))).scalar()
            rows = None
            if present:
                rows = list((await conn.execute(text("SELECT version_num FROM alembic_version"))).scalars())
            db_versions.append(rows)

    try:
        # The first use imports redis-py and builds the client (app.main.LazyRedis): ~0.1 s of CPU that
        # must not count against the probe's timeout.
        client, client_error = res.redis, None
    except ValueError as exc:  # a REDIS_URL option redis-py refuses (never echoes the URL)
        client, client_error = None, f"ValueError: {str(exc)[:200]}"

    async def redis() -> None:
        if client is None:
            raise RuntimeError(client_error)
        await client.ping()

    start = time.perf_counter()
    results = await asyncio.gather(_check("postgres", pg, timeout), _check("redis", redis, timeout))
    reasons = {name: err for name, err in results if err is not None}
    if db_versions:  # PostgreSQL answered: is its schema one this code can serve?
        problem = schema_problem(db_versions[0])
        if problem:
            reasons["schema"] = problem
    names = [name for name, _ in results] + (["schema"] if db_versions else [])
    failed = [name for name in names if name in reasons]
    body = {
        "status": "ok" if not failed else "unavailable",
        "checks": {name: ("failed" if name in reasons else "ok") for name in names},
        "failed": failed,
        # This worker's circuit breakers (app.breaker): "closed", "half_open" or "open". Informational: the
        # checks above probe the dependencies themselves, whatever the breakers say.
        "breaker": {name: state.name for name, state in res.breaker_states().items()},
        "duration_ms": round((time.perf_counter() - start) * 1000, 1),
    }
    if failed:
        log.warning("not ready", extra={"failed": failed, "reasons": reasons})
        return JSONResponse(body, status_code=503)
    return JSONResponse(body)


@metrics_router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    # For in-network scrapers only. The ALB, Caddy and Google's front end all add X-Forwarded-For, so a
    # request that came through any of them gets a 404 here even if the edge rule that blocks /metrics
    # missed it (a percent-encoded path, a listener added later). Scrapers reach the app directly.
    if "x-forwarded-for" in request.headers or "forwarded" in request.headers:
        return JSONResponse({"detail": "Not Found"}, status_code=404)
    from app.runtime_metrics import sample_now

    sample_now(request.app.state.resources.engine_if_created)  # this worker's figures, fresh
    payload, content_type = metrics_payload()
    return Response(payload, media_type=content_type)
