"""Real PostgreSQL and Redis for the service tests (throwaway instances from devenv.services)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis as redis_sync

from app.main import create_app
from app.manage import create_user
from app.settings import Settings, load_settings
from devenv.services import PostgresInstance, RedisInstance, postgres, redis

ROOT = Path(__file__).resolve().parents[2]
ALEMBIC_INI = ROOT / "app" / "alembic.ini"
USER_PASSWORD = "correct horse battery staple"


def run_alembic(db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the Alembic CLI exactly as an operator would."""
    return subprocess.run(
        [sys.executable, "-m", "alembic", "-c", str(ALEMBIC_INI), *args],
        env={**os.environ, "DATABASE_URL": db_url},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


@pytest.fixture(scope="session")
def pg() -> Iterator[PostgresInstance]:
    with postgres() as inst:
        run_alembic(inst.url, "upgrade", "head")
        yield inst


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisInstance]:
    with redis() as inst:
        yield inst


@pytest.fixture(scope="session")
def users(pg: PostgresInstance) -> list[str]:
    """Users alice, bob, carol ... all with USER_PASSWORD."""
    names = ["alice", "bob", "carol", "dave", "erin"]
    for n in names:
        asyncio.run(create_user(pg.url, n, USER_PASSWORD))
    return names


def make_settings(pg_url: str, redis_url: str, **overrides: Any) -> Settings:
    return load_settings(database_url=pg_url, redis_url=redis_url, app_env="development", **overrides)


@pytest.fixture
def settings(pg: PostgresInstance, redis_server: RedisInstance) -> Settings:
    if redis_server.proc is None:
        redis_server.start()
    # Rate-limit counters are keyed by client IP: start every test with a clean slate.
    with redis_sync.Redis.from_url(redis_server.url) as r:
        r.flushdb()
    return make_settings(pg.url, redis_server.url)


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=10) as c:
        c.app = app  # type: ignore[attr-defined]
        yield c
    await app.state.resources.close()


@pytest.fixture
async def token(client: httpx.AsyncClient, users: list[str]) -> str:
    r = await client.post("/api/auth/login", json={"username": "alice", "password": USER_PASSWORD})
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])
