"""Migrate-on-start: `python -m app.migrate` and the gunicorn master hook, against real PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest

from devenv.run import dockerfile_cmd
from devenv.services import PostgresInstance, RedisInstance, free_port, postgres
from tests.app.conftest import ROOT
from tests.app.servers import VENV_BIN, fresh_get, gunicorn


@pytest.fixture
def empty_pg() -> Iterator[PostgresInstance]:
    """A throwaway database with no schema (the session `pg` fixture is already migrated)."""
    with postgres() as inst:
        yield inst


def _migrate(url: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "app.migrate"],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": url, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


async def _tables(dsn: str) -> set[str]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {r["tablename"] for r in rows}
    finally:
        await conn.close()


async def _versions(dsn: str) -> list[str]:
    conn = await asyncpg.connect(dsn)
    try:
        return [r["version_num"] for r in await conn.fetch("SELECT version_num FROM alembic_version")]
    finally:
        await conn.close()


async def test_migrate_creates_the_schema_on_an_empty_database(empty_pg: PostgresInstance) -> None:
    assert await _tables(empty_pg.dsn) == set()
    p = _migrate(empty_pg.url)
    _out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    assert {"items", "users", "categories", "reviews", "alembic_version"} <= await _tables(empty_pg.dsn)
    assert await _versions(empty_pg.dsn) == ["0001"]
    [line] = _json_lines(err)
    assert line["msg"] == "migrations applied"
    assert line["from"] is None
    assert line["to"] == "0001"


async def test_concurrent_migrators_migrate_exactly_once(empty_pg: PostgresInstance) -> None:
    procs = [_migrate(empty_pg.url) for _ in range(3)]
    results = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [e for _, e in results]
    lines = [_json_lines(err)[-1] for _, err in results]
    assert sorted(line["msg"] for line in lines) == [
        "migrations applied",
        "schema already at head",
        "schema already at head",
    ]
    assert await _versions(empty_pg.dsn) == ["0001"]


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+asyncpg://app:s3cr3t-Pa55word@127.0.0.1:{port}/app",  # nothing listens there
        "postgresql://app:s3cr3t-Pa55word@127.0.0.1:{port}/app",  # wrong driver
        "postgresql+asyncpg://app:s3cr3t-Pa55word@127.0.0.1:notaport/app",  # unparsable
    ],
)
def test_unreachable_or_bad_database_exits_non_zero_without_the_password(url: str) -> None:
    url = url.format(port=free_port())
    t0 = time.monotonic()
    p = _migrate(url, MIGRATE_TIMEOUT="10")
    out, err = p.communicate(timeout=30)
    assert p.returncode == 1
    assert time.monotonic() - t0 < 15
    assert "s3cr3t-Pa55word" not in out + err
    [line] = _json_lines(err)
    assert line["level"] == "error"
    assert line["msg"] == "migration failed"
    assert line["error"]


def test_lock_wait_is_bounded_by_migrate_timeout(empty_pg: PostgresInstance) -> None:
    """A migrator stuck behind another's lock gives up at MIGRATE_TIMEOUT instead of hanging the release."""
    import asyncio

    async def hold_lock_and_run() -> tuple[int, str, float]:
        from app.migrate import LOCK_KEY

        conn = await asyncpg.connect(empty_pg.dsn)
        try:
            await conn.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
            t0 = time.monotonic()
            p = _migrate(empty_pg.url, MIGRATE_TIMEOUT="2")
            _, err = await asyncio.to_thread(p.communicate, timeout=30)
            return p.returncode, err, time.monotonic() - t0
        finally:
            await conn.close()

    rc, err, elapsed = asyncio.run(hold_lock_and_run())
    assert rc == 1
    assert elapsed < 10
    assert "timed out after 2s" in _json_lines(err)[-1]["error"]


def _server_env(pg: PostgresInstance, redis_server: RedisInstance, **extra: str) -> dict[str, str]:
    return {
        "DATABASE_URL": pg.url,
        "REDIS_URL": redis_server.url,
        "WEB_CONCURRENCY": "2",
        "APP_ENV": "development",
        "GUNICORN_GRACEFUL_TIMEOUT": "2",
        **extra,
    }


async def test_gunicorn_with_migrate_on_start_serves_from_an_empty_database(
    empty_pg: PostgresInstance, redis_server: RedisInstance
) -> None:
    env = _server_env(empty_pg, redis_server, MIGRATE_ON_START="true")
    with gunicorn(dockerfile_cmd(), env, cwd=ROOT) as srv:  # the image's own command
        r = fresh_get(f"{srv.url}/api/items")
        assert r.status_code == 200, r.text
    assert await _versions(empty_pg.dsn) == ["0001"]


async def test_without_migrate_on_start_nothing_is_migrated(
    empty_pg: PostgresInstance, redis_server: RedisInstance
) -> None:
    with gunicorn(dockerfile_cmd(), _server_env(empty_pg, redis_server), cwd=ROOT) as srv:
        assert fresh_get(f"{srv.url}/health").status_code == 200
        assert not any("migrat" in str(rec.get("msg", "")) for rec in srv.logs())
    assert await _tables(empty_pg.dsn) == set()


def test_gunicorn_exits_non_zero_when_migration_fails(redis_server: RedisInstance) -> None:
    """The release gate: no workers, no /health, a non-zero exit the platform sees."""
    env = {
        "PATH": f"{VENV_BIN}:{os.environ['PATH']}",  # the image's CMD is a bare `gunicorn`
        "PORT": str(free_port()),
        "DATABASE_URL": f"postgresql+asyncpg://app:s3cr3t-Pa55word@127.0.0.1:{free_port()}/app",
        "REDIS_URL": redis_server.url,
        "APP_ENV": "development",
        "MIGRATE_ON_START": "true",
        "MIGRATE_TIMEOUT": "5",
    }
    p = subprocess.run(dockerfile_cmd(), cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode != 0
    assert "migration failed" in p.stderr
    assert "s3cr3t-Pa55word" not in p.stdout + p.stderr
