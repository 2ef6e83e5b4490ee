"""Circuit breakers (app.breaker): the state machine, then real PostgreSQL / Redis outages.

Timing asserts are generous bounds against the configured timeouts (a refused request must not wait for
one), never performance thresholds.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.breaker import CircuitBreaker, CircuitOpenError, State
from app.main import create_app
from devenv.services import PostgresInstance, RedisInstance, postgres
from tests.app.conftest import USER_PASSWORD, make_settings, run_alembic


# ------------------------------------------------------------------------------------- state machine
class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _breaker(threshold: int = 3, open_s: float = 2.0) -> tuple[CircuitBreaker, _Clock, list[State]]:
    clock, seen = _Clock(), []
    b = CircuitBreaker("postgres", threshold, open_s, clock=clock, on_change=lambda _n, s: seen.append(s))
    return b, clock, seen


def test_opens_after_threshold_consecutive_failures_only() -> None:
    b, _, seen = _breaker(threshold=3)
    for _ in range(2):
        assert b.acquire() is False
        b.failure()
    b.acquire()
    b.success()  # a success in between resets the count
    for _ in range(2):
        b.acquire()
        b.failure()
    assert b.state is State.closed
    b.acquire()
    b.failure()
    assert b.state is State.open
    with pytest.raises(CircuitOpenError) as err:
        b.acquire()
    assert err.value.retry_after == 2
    assert seen == [State.closed, State.open]


def test_half_open_lets_one_probe_through_and_its_outcome_decides() -> None:
    b, clock, seen = _breaker(threshold=1, open_s=2.0)
    b.acquire()
    b.failure()
    clock.now += 1.2
    with pytest.raises(CircuitOpenError) as err:
        b.acquire()
    assert err.value.retry_after == 1  # ceil(0.8)
    clock.now += 1.0
    assert b.state is State.half_open
    assert b.acquire() is True  # the probe
    for _ in range(3):  # everyone else is still refused while it is out
        with pytest.raises(CircuitOpenError):
            b.acquire()
    b.failure()  # probe failed: open for another interval
    assert b.state is State.open
    with pytest.raises(CircuitOpenError):
        b.acquire()
    clock.now += 2.0
    probe = b.acquire()
    b.release(probe)  # no verdict (cancelled): the next caller probes
    assert b.acquire() is True
    b.success()
    assert b.state is State.closed
    assert b.acquire() is False
    assert seen == [State.closed, State.open, State.half_open, State.open, State.half_open, State.closed]


def test_a_broken_metric_never_fails_the_caller() -> None:
    def boom(_name: str, _state: State) -> None:
        raise RuntimeError("registry gone")

    b = CircuitBreaker("redis", 1, 1.0, on_change=boom)
    b.acquire()
    b.failure()
    assert b.state is State.open


def test_settings_validate_the_breaker() -> None:
    from app.settings import SettingsError

    s = make_settings("postgresql+asyncpg://u:p@127.0.0.1:5/x", "redis://127.0.0.1:6/0")
    assert (s.breaker_failure_threshold, s.breaker_open_seconds) == (5, 2.0)
    for bad in ({"breaker_failure_threshold": 0}, {"breaker_open_seconds": 0}, {"breaker_open_seconds": 600}):
        with pytest.raises(SettingsError) as err:
            make_settings("postgresql+asyncpg://u:p@127.0.0.1:5/x", "redis://127.0.0.1:6/0", **bad)
        assert next(iter(bad)).upper() in str(err.value)


def test_importing_the_breaker_loads_no_driver() -> None:
    """Lambda cold start: the limiter and main import app.breaker; it must not pull SQLAlchemy in."""
    import sys

    code = "import sys, app.breaker, app.ratelimit; print(sorted(m for m in sys.modules if m.split('.')[0] in ('sqlalchemy', 'asyncpg', 'redis', 'prometheus_client')))"  # noqa: E501
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


# ------------------------------------------------------------------------------------ real PostgreSQL
@pytest.fixture(scope="module")
def fault_pg() -> Iterator[PostgresInstance]:
    """A PostgreSQL of our own: these tests freeze and stop it."""
    with postgres() as inst:
        run_alembic(inst.url, "upgrade", "head")
        yield inst


@pytest.fixture
async def bapp(fault_pg: PostgresInstance, redis_server: RedisInstance) -> AsyncIterator[FastAPI]:
    if redis_server.proc is None:
        redis_server.start()
    app = create_app(
        make_settings(
            fault_pg.url,
            redis_server.url,
            db_connect_timeout=2.0,
            db_command_timeout=2.0,
            db_pool_timeout=5.0,
            breaker_failure_threshold=2,
            breaker_open_seconds=1.0,
            cache_ttl_seconds=0,  # the breaker is what answers, not a cached list
        )
    )
    yield app
    await app.state.resources.close()


def _client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t", timeout=15)


async def _timed(c: httpx.AsyncClient, path: str) -> tuple[httpx.Response, float]:
    start = time.perf_counter()
    r = await c.get(path)
    return r, time.perf_counter() - start


def _freeze(postmaster: int) -> list[int]:
    children = subprocess.run(["ps", "-o", "pid=", "--ppid", str(postmaster)], capture_output=True, text=True)
    pids = [int(p) for p in children.stdout.split()]
    for p in pids:
        os.kill(p, signal.SIGSTOP)
    return pids


def _unavailable_logs(caplog: pytest.LogCaptureFixture) -> int:
    """Requests that tried the database and failed (the breaker's own refusals log nothing)."""
    return sum(1 for r in caplog.records if r.getMessage() == "database unavailable")


async def _wait_state(app: FastAPI, state: State, limit_s: float = 10.0) -> None:
    deadline = time.monotonic() + limit_s
    while app.state.resources.db_breaker.state is not state:
        assert time.monotonic() < deadline, app.state.resources.db_breaker.state
        await asyncio.sleep(0.05)


async def test_frozen_postgres_opens_the_breaker_then_one_probe_then_recovery(
    bapp: FastAPI, fault_pg: PostgresInstance, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with _client(bapp) as c:
        assert (await c.get("/api/items")).status_code == 200
        await bapp.state.resources.engine.dispose()  # new connections to a postmaster that never answers
        pid = fault_pg.pause()
        frozen = _freeze(pid)
        try:
            # N=2 requests pay the 2 s connect timeout, each a 503 ...
            first = await asyncio.gather(_timed(c, "/api/items"), _timed(c, "/api/categories"))
            assert [r.status_code for r, _ in first] == [503, 503]
            assert all(elapsed >= 1.5 for _, elapsed in first), first
            assert bapp.state.resources.db_breaker.state is State.open
            # ... then the breaker answers at once, far below the 2 s connect / 5 s pool timeouts.
            before = _unavailable_logs(caplog)
            r, elapsed = await _timed(c, "/api/items")
            assert r.status_code == 503
            assert elapsed < 1.0, elapsed
            assert r.json() == {"detail": "database unavailable"}
            assert r.headers["Retry-After"] == "1"
            assert _unavailable_logs(caplog) == before  # refused without trying the database
            # /ready still checks within its budget, and shows the breaker (names only).
            ready, elapsed = await _timed(c, "/ready")
            assert ready.status_code == 503
            assert elapsed < 1.5
            assert ready.json()["checks"]["postgres"] == "failed"
            assert ready.json()["breaker"] == {"postgres": "open", "redis": "closed"}
            metrics = (await c.get("/metrics")).text
            assert 'circuit_breaker_state{dependency="postgres"} 2.0' in metrics

            # Half-open: exactly one of 4 concurrent requests probes (and waits the connect timeout).
            await _wait_state(bapp, State.half_open)
            before = _unavailable_logs(caplog)
            results = await asyncio.gather(*(_timed(c, "/api/items") for _ in range(4)))
            assert [r.status_code for r, _ in results] == [503] * 4
            slow = [elapsed for _, elapsed in results if elapsed >= 1.5]
            assert len(slow) == 1, results
            assert _unavailable_logs(caplog) == before + 1  # one request reached for the database
            assert bapp.state.resources.db_breaker.state is State.open  # the failed probe reopened it
        finally:
            for p in frozen:
                os.kill(p, signal.SIGCONT)
            fault_pg.resume(pid)
        # PostgreSQL is back: the next probe (after at most the 1 s open interval) closes the breaker.
        await _wait_state(bapp, State.half_open)
        r = await c.get("/api/items")
        assert r.status_code == 200, r.text
        assert bapp.state.resources.db_breaker.state is State.closed
        statuses = [(await c.get("/api/items")).status_code for _ in range(3)]
        assert statuses == [200] * 3
        ready = await c.get("/ready")
        assert ready.status_code == 200
        assert ready.json()["breaker"]["postgres"] == "closed"


async def test_stopped_postgres_opens_the_breaker_and_recovers(
    bapp: FastAPI, fault_pg: PostgresInstance
) -> None:
    async with _client(bapp) as c:
        assert (await c.get("/api/items")).status_code == 200
        fault_pg.stop()
        try:
            for _ in range(2):  # connection refused: fast, but each one still tries the database
                assert (await c.get("/api/items")).status_code == 503
            assert bapp.state.resources.db_breaker.state is State.open
            r, elapsed = await _timed(c, "/api/items")
            assert r.status_code == 503
            assert elapsed < 1.0
            assert int(r.headers["Retry-After"]) >= 1
            # A request that never queries (no token: 401) neither probes nor closes the breaker.
            r = await c.post("/api/categories", json={"name": "x"})
            assert r.status_code in (401, 503)
            assert bapp.state.resources.db_breaker.state is not State.closed
        finally:
            fault_pg.start()
        deadline = time.monotonic() + 10
        while (r := await c.get("/api/items")).status_code != 200:
            assert r.status_code == 503, r.text
            assert time.monotonic() < deadline, "did not recover"
            await asyncio.sleep(0.1)
        assert bapp.state.resources.db_breaker.state is State.closed


# ------------------------------------------------------------------------------------------ Redis
async def test_frozen_redis_login_stops_paying_the_socket_timeout_once_open(
    pg: PostgresInstance, redis_server: RedisInstance, users: list[str]
) -> None:
    if redis_server.proc is None:
        redis_server.start()
    settings = make_settings(
        pg.url,
        redis_server.url,
        redis_socket_timeout=1.0,
        breaker_failure_threshold=2,
        breaker_open_seconds=30,
        login_rate_limit="50/minute",
        login_address_rate_limit="100/minute",
    )
    app = create_app(settings)
    body: dict[str, Any] = {"username": "dave", "password": USER_PASSWORD}
    try:
        async with _client(app) as c:
            assert (await c.post("/api/auth/login", json=body)).status_code == 200  # Redis client connected
            assert redis_server.proc is not None
            os.kill(redis_server.proc.pid, signal.SIGSTOP)  # connections accepted, nothing answers
            try:
                breaker = app.state.resources.redis_breaker
                for _ in range(3):  # bounded: check + settle are two Redis calls per login
                    start = time.perf_counter()
                    r = await c.post("/api/auth/login", json=body)
                    assert r.status_code == 200  # the limiter degrades, login keeps working
                    assert time.perf_counter() - start >= 0.9  # paid the socket timeout
                    if breaker.state is State.open:
                        break
                assert breaker.state is State.open
                for _ in range(3):  # open: no Redis round trip, no timeout
                    start = time.perf_counter()
                    r = await c.post("/api/auth/login", json=body)
                    assert r.status_code == 200
                    assert time.perf_counter() - start < 0.9
                ready, elapsed = await _timed(c, "/ready")
                assert ready.status_code == 503
                assert elapsed < 1.5
                assert ready.json()["checks"]["redis"] == "failed"
                assert ready.json()["breaker"]["redis"] == "open"
                assert "SIGSTOP" not in ready.text
            finally:
                os.kill(redis_server.proc.pid, signal.SIGCONT)
    finally:
        await app.state.resources.close()


def test_gauge_spans_gunicorn_workers(fault_pg: PostgresInstance, redis_server: RedisInstance) -> None:
    """Under gunicorn (2 workers, PROMETHEUS_MULTIPROC_DIR) the scrape shows the worst worker's breaker
    (``livemax``), whichever worker answers /metrics."""
    from devenv.run import dockerfile_cmd
    from tests.app.conftest import ROOT
    from tests.app.servers import fresh_get, gunicorn

    if redis_server.proc is None:
        redis_server.start()
    env = {
        "DATABASE_URL": fault_pg.url,
        "REDIS_URL": redis_server.url,
        "WEB_CONCURRENCY": "2",
        "APP_ENV": "development",
        "GUNICORN_GRACEFUL_TIMEOUT": "5",
        "BREAKER_FAILURE_THRESHOLD": "2",
        "BREAKER_OPEN_SECONDS": "30",
        "CACHE_TTL_SECONDS": "0",  # the breaker is what answers, not a cached list
    }

    def gauge(url: str) -> dict[str, str]:
        lines = fresh_get(f"{url}/metrics").text.splitlines()
        found = (re.match(r'circuit_breaker_state\{dependency="(\w+)"\} (\S+)', line) for line in lines)
        return {m.group(1): m.group(2) for m in found if m}

    with gunicorn(dockerfile_cmd(), env, cwd=ROOT) as srv:
        assert gauge(srv.url) == {"postgres": "0.0", "redis": "0.0"}
        fault_pg.stop()
        try:
            with httpx.Client(timeout=10) as one_worker:  # one keep-alive connection: one worker
                statuses = [one_worker.get(f"{srv.url}/api/items").status_code for _ in range(3)]
                assert statuses == [503] * 3
                assert one_worker.get(f"{srv.url}/ready").json()["breaker"]["postgres"] == "open"
            for _ in range(3):  # fresh connections: any worker answers, all see the open breaker
                assert gauge(srv.url)["postgres"] == "2.0"
        finally:
            fault_pg.start()
