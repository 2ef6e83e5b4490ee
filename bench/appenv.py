"""The service under test: throwaway PostgreSQL + Redis, migrations, seed data, production-like env.

The app runs with APP_ENV=production (strict settings, JSON logs) and the pool settings the deployer
would inject; every number a benchmark overrides (workers, max_requests...) is passed explicitly.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import harness as h
from devenv import services

# The service's gunicorn config file and app factory (contract: app/main.py create_app()).
GUNICORN_CONF = "app/gunicorn_conf.py"
APP_FACTORY = "app.main:create_app()"
UVICORN_FACTORY = "app.main:create_app"
DB_PATH = "/api/items?limit=20"
N_ITEMS = 200


@dataclass
class Deps:
    """Running dependencies and the env that points the app at them."""

    pg: services.PostgresInstance
    redis: services.RedisInstance
    env: dict[str, str]


async def _seed(dsn: str) -> None:
    import asyncpg  # runtime dependency of the service

    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("TRUNCATE reviews, items, categories RESTART IDENTITY CASCADE")
        await conn.executemany(
            "INSERT INTO categories (name) VALUES ($1)", [(f"cat-{i}",) for i in range(10)]
        )
        await conn.executemany(
            "INSERT INTO items (name, description, price_cents, category_id) VALUES ($1, $2, $3, $4)",
            [(f"item-{i}", f"description of item {i}", 100 + i, 1 + i % 10) for i in range(N_ITEMS)],
        )
        await conn.executemany(
            "INSERT INTO reviews (item_id, rating, body) VALUES ($1, $2, $3)",
            [(1 + i % N_ITEMS, 1 + i % 5, f"review {i}") for i in range(3 * N_ITEMS)],
        )
    finally:
        await conn.close()


def app_env(pg_url: str, redis_url: str, **overrides: Any) -> dict[str, str]:
    env = {
        "APP_ENV": "production",
        "DATABASE_URL": pg_url,
        "REDIS_URL": redis_url,
        "JWT_SECRET_KEY": secrets.token_urlsafe(48),
        "CORS_ORIGINS": "https://app.example.com",
        "LOG_LEVEL": "info",
        "WEB_CONCURRENCY": "2",
        "DB_POOL_SIZE": "5",
        "DB_MAX_OVERFLOW": "2",
        "DB_POOL_TIMEOUT": "5",
        "DB_CONNECT_TIMEOUT": "3",
        "READY_CHECK_TIMEOUT": "0.5",
        "GUNICORN_GRACEFUL_TIMEOUT": "20",
        "GUNICORN_TIMEOUT": "30",
        "GUNICORN_KEEPALIVE": "75",
        # keep recycling out of the throughput runs unless a benchmark asks for it
        "GUNICORN_MAX_REQUESTS": "0",
        "GUNICORN_MAX_REQUESTS_JITTER": "0",
    }
    env.update({k: str(v) for k, v in overrides.items()})
    return env


@contextlib.contextmanager
def deps() -> Iterator[Deps]:
    """PostgreSQL (migrated, seeded) + Redis for the duration of a benchmark."""
    with services.postgres() as pg, services.redis() as rd:
        env = {**os.environ, "DATABASE_URL": pg.url, "PYTHONPATH": str(h.REPO)}
        subprocess.run(
            [str(h.VENV_BIN / "alembic"), "-c", "app/alembic.ini", "upgrade", "head"],
            cwd=h.REPO,
            env=env,
            check=True,
            capture_output=True,
            timeout=120,
        )
        asyncio.run(_seed(pg.dsn))
        yield Deps(pg, rd, app_env(pg.url, rd.url))


def gunicorn_server(
    env: Mapping[str, str], workers: int, cgroup: Path | None = None, **overrides: Any
) -> h.Server:
    port = h.free_port()
    return h.Server(
        h.gunicorn_cmd(APP_FACTORY, port, GUNICORN_CONF),
        port,
        env={
            **env,
            "WEB_CONCURRENCY": str(workers),
            "PORT": str(port),
            **{k: str(v) for k, v in overrides.items()},
        },
        ready_path="/health",
        cgroup=cgroup,
    )


def uvicorn_server(env: Mapping[str, str]) -> h.Server:
    port = h.free_port()
    return h.Server(
        h.uvicorn_cmd(UVICORN_FACTORY, port, factory=True),
        port,
        env={**env, "PORT": str(port)},
        ready_path="/health",
    )
