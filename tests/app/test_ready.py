"""Liveness never touches dependencies; readiness fails fast (< 1 s) naming the dependency, and recovers."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from app.main import create_app
from devenv.services import PostgresInstance, RedisInstance, postgres
from tests.app.conftest import make_settings, run_alembic


@pytest.fixture(scope="module")
def fault_pg() -> Iterator[PostgresInstance]:
    """A PostgreSQL of our own: these tests pause and stop it."""
    with postgres() as inst:
        run_alembic(inst.url, "upgrade", "head")
        yield inst


@pytest.fixture
async def fclient(
    fault_pg: PostgresInstance, redis_server: RedisInstance
) -> AsyncIterator[httpx.AsyncClient]:
    if redis_server.proc is None:
        redis_server.start()
    # Read cache off: these tests need /api/items to reach the database (a cached list, even one another
    # test's database left in the shared Redis, would answer 200 during the outage).
    app = create_app(
        make_settings(
            fault_pg.url, redis_server.url, db_pool_timeout=1.0, db_connect_timeout=1.0, cache_ttl_seconds=0
        )
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t", timeout=10
    ) as c:
        yield c
    await app.state.resources.close()


def _reasons(caplog: pytest.LogCaptureFixture) -> dict[str, str]:
    """The `reasons` of the last "not ready" log line: where /ready's details go instead of the response."""
    records = [r for r in caplog.records if r.getMessage() == "not ready"]
    assert records, "no 'not ready' log line"
    return dict(records[-1].reasons)  # type: ignore[attr-defined]


def _assert_names_only(body: dict[str, object], failed: list[str]) -> None:
    """The public answer says which dependency failed and nothing else (no exception text, host, port)."""
    assert body["failed"] == failed
    checks = body["checks"]
    assert isinstance(checks, dict)
    assert set(checks.values()) <= {"ok", "failed"}, checks
    assert [k for k, v in checks.items() if v == "failed"] == failed


async def _timed_get(client: httpx.AsyncClient, path: str) -> tuple[httpx.Response, float]:
    start = time.perf_counter()
    r = await client.get(path)
    return r, time.perf_counter() - start


async def test_ready_ok_when_dependencies_up(fclient: httpx.AsyncClient) -> None:
    r = await fclient.get("/ready")
    assert r.status_code == 200, r.text
    assert r.json()["checks"] == {"postgres": "ok", "redis": "ok", "schema": "ok"}


async def test_health_needs_no_dependency() -> None:
    """Liveness answers even when neither database nor Redis exists: an outage must not restart tasks."""
    app = create_app(make_settings("postgresql+asyncpg://u:p@127.0.0.1:9/x", "redis://127.0.0.1:9/0"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        assert (await c.get("/health")).status_code == 200
        assert (await c.get("/ready")).status_code == 503
    await app.state.resources.close()


def _freeze_backends(postmaster: int) -> list[int]:
    """SIGSTOP the postmaster's children too (pause() stops only the postmaster, so already-open
    connections would keep answering)."""
    children = subprocess.run(["ps", "-o", "pid=", "--ppid", str(postmaster)], capture_output=True, text=True)
    pids = [int(p) for p in children.stdout.split()]
    for p in pids:
        os.kill(p, signal.SIGSTOP)
    return pids


@pytest.mark.parametrize("open_connection", [False, True], ids=["new-connection", "pooled-connection"])
async def test_ready_503_within_1s_when_postgres_hangs_then_recovers(
    fclient: httpx.AsyncClient,
    fault_pg: PostgresInstance,
    open_connection: bool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert (await fclient.get("/ready")).status_code == 200
    engine = fclient._transport.app.state.resources.engine  # type: ignore[attr-defined]
    if not open_connection:
        await engine.dispose()  # the check must open a connection to a postmaster that never answers
    pid = fault_pg.pause()  # SIGSTOP: the kernel still accepts TCP connections, nothing answers
    frozen = _freeze_backends(pid) if open_connection else []
    try:
        for _ in range(2):  # twice: a hung check must not poison the next probe
            r, elapsed = await _timed_get(fclient, "/ready")
            assert r.status_code == 503, r.text
            assert elapsed < 1.0, elapsed
            body = r.json()
            _assert_names_only(body, ["postgres"])
            assert body["checks"]["redis"] == "ok"
            assert "timed out" in _reasons(caplog)["postgres"]
        # Liveness is unaffected by the hang.
        r, elapsed = await _timed_get(fclient, "/health")
        assert r.status_code == 200
        assert elapsed < 0.5
    finally:
        for p in frozen:
            os.kill(p, signal.SIGCONT)
        fault_pg.resume(pid)
    deadline = time.monotonic() + 10
    while (r := await fclient.get("/ready")).status_code != 200:
        assert time.monotonic() < deadline, f"did not recover without restart: {r.text}"
        await _sleep(0.2)
    assert (await fclient.get("/api/items")).status_code == 200


async def test_ready_503_when_postgres_stopped_then_recovers(
    fclient: httpx.AsyncClient, fault_pg: PostgresInstance, caplog: pytest.LogCaptureFixture
) -> None:
    assert (await fclient.get("/ready")).status_code == 200
    fault_pg.stop()
    try:
        r, elapsed = await _timed_get(fclient, "/ready")
        assert r.status_code == 503
        assert elapsed < 1.0
        _assert_names_only(r.json(), ["postgres"])
        # The refused connection's text (host and port) is for the operator's log, not the public probe.
        port = str(fault_pg.port)
        assert port not in r.text
        assert port in _reasons(caplog)["postgres"]
        # Requests needing the DB fail cleanly with 503 (not a 500 traceback) while it is down.
        items = await fclient.get("/api/items")
        assert items.status_code == 503
        assert items.json() == {"detail": "database unavailable"}
    finally:
        fault_pg.start()
    deadline = time.monotonic() + 10
    while (r := await fclient.get("/ready")).status_code != 200:
        assert time.monotonic() < deadline, f"did not recover without restart: {r.text}"
        await _sleep(0.2)


async def test_ready_names_redis_when_it_is_down(
    fclient: httpx.AsyncClient, redis_server: RedisInstance, caplog: pytest.LogCaptureFixture
) -> None:
    redis_server.stop()
    try:
        r, elapsed = await _timed_get(fclient, "/ready")
        assert r.status_code == 503
        assert elapsed < 1.0
        _assert_names_only(r.json(), ["redis"])
        assert str(redis_server.port) not in r.text
        assert str(redis_server.port) in _reasons(caplog)["redis"]
    finally:
        redis_server.start()
    assert (await fclient.get("/ready")).status_code == 200


async def _sleep(s: float) -> None:
    import asyncio

    await asyncio.sleep(s)


async def test_exhausted_pool_fails_fast_with_503(pg: PostgresInstance, redis_server: RedisInstance) -> None:
    """With every pooled connection busy a request waits DB_POOL_TIMEOUT, then gets a clean 503."""
    if redis_server.proc is None:
        redis_server.start()
    s = make_settings(
        pg.url, redis_server.url, db_pool_size=1, db_max_overflow=0, db_pool_timeout=0.3, cache_ttl_seconds=0
    )
    app = create_app(s)
    engine = app.state.resources.engine
    try:
        async with (
            engine.connect() as held,
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c,
        ):
            await held.exec_driver_sql("SELECT 1")
            r, elapsed = await _timed_get(c, "/api/items")
            assert r.status_code == 503
            assert r.json() == {"detail": "database unavailable"}
            assert 0.3 <= elapsed < 1.5
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            assert (await c.get("/api/items")).status_code == 200  # connection returned: serving again
    finally:
        await app.state.resources.close()


# ------------------------------------------------------------------------------------------- schema
async def _set_versions(pg: PostgresInstance, *versions: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(pg.dsn)
    try:
        await conn.execute("DELETE FROM alembic_version")
        for v in versions:
            await conn.execute("INSERT INTO alembic_version (version_num) VALUES ($1)", v)
    finally:
        await conn.close()


async def test_ready_refuses_a_database_this_release_has_not_migrated(
    fclient: httpx.AsyncClient,
    fault_pg: PostgresInstance,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from app import schema

    # This release's code knows 0001 and a newer 0002; the database is still at 0001 (migration forgotten).
    newer = schema.Revisions(known=frozenset({"0001", "0002"}), heads=frozenset({"0002"}))
    monkeypatch.setattr(schema, "code_revisions", lambda: newer)
    r = await fclient.get("/ready")
    assert r.status_code == 503
    body = r.json()
    _assert_names_only(body, ["schema"])
    assert body["checks"]["postgres"] == "ok"
    assert _reasons(caplog)["schema"] == (
        "schema behind this release: database at 0001; this release needs 0002: run migrations"
    )


async def test_ready_accepts_a_database_a_newer_release_migrated_ahead(
    fclient: httpx.AsyncClient, fault_pg: PostgresInstance
) -> None:
    # Expand/contract: during a rollout the old release keeps serving on the new schema.
    await _set_versions(fault_pg, "0002_added_by_the_next_release")
    try:
        r = await fclient.get("/ready")
        assert r.status_code == 200, r.text
        assert r.json()["checks"]["schema"] == "ok"
    finally:
        await _set_versions(fault_pg, "0001")


async def test_ready_refuses_a_database_that_was_never_migrated(
    redis_server: RedisInstance, caplog: pytest.LogCaptureFixture
) -> None:
    if redis_server.proc is None:
        redis_server.start()
    with postgres() as empty:  # no Alembic run: no alembic_version table
        app = create_app(make_settings(empty.url, redis_server.url))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            r = await c.get("/ready")
        await app.state.resources.close()
    assert r.status_code == 503
    _assert_names_only(r.json(), ["schema"])
    assert _reasons(caplog)["schema"].startswith("database not migrated (no alembic_version table)")
