"""The Lambda migrate event (``app.database.migrate: release``) against a real throwaway PostgreSQL.

Exactly ``{"fastapi_deploy": "migrate"}`` (a direct Invoke, what the deploy sends) runs ``python -m
app.migrate``'s code and returns its JSON result; a failure raises (Lambda reports a function error, so the
deploy's invocation fails). An HTTP request carrying the same JSON as its body, through any front, never
migrates: it is a request to the app.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import asyncpg
import boto3
import pytest
from moto import mock_aws

import app.lambda_handler as lh
from devenv.services import PostgresInstance, RedisInstance, postgres
from tests.app.lambda_events import KINDS
from tests.app.test_lambda import ROOT, _lambda_env

CONTEXT = SimpleNamespace(
    function_name="app",
    aws_request_id="0f5d2c1e-1111-2222-3333-444455556666",
    get_remaining_time_in_millis=lambda: 60_000,
)
EVENT = {"fastapi_deploy": "migrate"}


@pytest.fixture
def empty_pg() -> Iterator[PostgresInstance]:
    """A throwaway database with no schema (the session `pg` fixture is already migrated)."""
    with postgres() as inst:
        yield inst


def _tables(dsn: str) -> set[str]:
    async def fetch() -> set[str]:
        conn = await asyncpg.connect(dsn)
        try:
            rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            return {r["tablename"] for r in rows}
        finally:
            await conn.close()

    return asyncio.run(fetch())


def test_migrate_event_migrates_and_returns_the_result(
    empty_pg: PostgresInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", empty_pg.url)
    monkeypatch.delenv("MIGRATE_TIMEOUT", raising=False)
    assert _tables(empty_pg.dsn) == set()
    first = lh.handler(dict(EVENT), CONTEXT)
    assert first["fastapi_deploy"] == "migrate"
    assert first["ok"] is True
    assert first["msg"] == "migrations applied"
    assert (first["from"], first["to"]) == (None, "0001")
    json.dumps(first)  # the Invocation's `result` is this, as JSON
    assert {"items", "users", "alembic_version"} <= _tables(empty_pg.dsn)
    again = lh.handler(dict(EVENT), CONTEXT)
    assert again["msg"] == "schema already at head"


def test_migrate_event_resolves_the_database_reference_first(
    empty_pg: PostgresInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    for k, v in {
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_ACCESS_KEY_ID": "t",
        "AWS_SECRET_ACCESS_KEY": "t",
    }.items():
        monkeypatch.setenv(k, v)
    with mock_aws():
        boto3.client("ssm").put_parameter(Name="/api/prod/db", Value=empty_pg.url, Type="SecureString")
        monkeypatch.setenv("DATABASE_URL", "ssm:/api/prod/db")  # what the deployer puts in the function env
        result = lh.handler(dict(EVENT), CONTEXT)
    assert result["ok"] is True
    assert "users" in _tables(empty_pg.dsn)


def test_failed_migration_raises_with_the_json_result_and_no_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://app:hunter2-pw@127.0.0.1:9/x")
    with pytest.raises(lh.MigrationFailedError) as ei:
        lh.handler(dict(EVENT), CONTEXT)
    result = json.loads(str(ei.value))
    assert result["fastapi_deploy"] == "migrate"
    assert result["ok"] is False
    assert result["error"]
    assert "hunter2-pw" not in str(ei.value)


def test_migration_is_bounded_by_the_invocations_remaining_time(monkeypatch: pytest.MonkeyPatch) -> None:
    # A server that accepts TCP and never answers (a hung PostgreSQL): bound = remaining 6 s - 5 s = 1 s,
    # below the 5 s connect timeout, so the invocation reports before Lambda would kill it.
    import socket
    import time

    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen(8)
        monkeypatch.setenv("DATABASE_URL", f"postgresql+asyncpg://app:pw@127.0.0.1:{hung.getsockname()[1]}/x")
        ctx = SimpleNamespace(get_remaining_time_in_millis=lambda: 6_000)
        start = time.monotonic()
        with pytest.raises(lh.MigrationFailedError, match="timed out after 1s"):
            lh.handler(dict(EVENT), ctx)
        assert time.monotonic() - start < 4


@pytest.mark.parametrize(
    "event",
    [
        {"fastapi_deploy": "migrate", "extra": 1},
        {"fastapi_deploy": "Migrate"},
        {"body": json.dumps(EVENT)},
        [EVENT],
        json.dumps(EVENT),
    ],
)
def test_only_the_exact_event_is_the_migrate_event(event: Any) -> None:
    assert lh.is_migrate_event(dict(EVENT)) is True
    assert lh.is_migrate_event(event) is False


# A fresh interpreter runs the handler over every HTTP front's event carrying the migrate JSON as its body.
_DRIVER = """
import json, sys
from types import SimpleNamespace
from tests.app.lambda_events import KINDS
from app.lambda_handler import handler
ctx = SimpleNamespace(function_name="f", aws_request_id="r", get_remaining_time_in_millis=lambda: 10000)
out = {}
for kind, make in KINDS.items():
    for method, path in (("POST", "/"), ("POST", "/migrate"), ("GET", "/")):
        resp = handler(make(method, path, "", json.dumps({"fastapi_deploy": "migrate"})), ctx)
        out[f"{kind} {method} {path}"] = resp.get("statusCode")
print(json.dumps(out))
"""


def test_http_events_with_the_migrate_body_never_migrate(
    empty_pg: PostgresInstance, redis_server: RedisInstance
) -> None:
    env = _lambda_env(empty_pg.url, redis_server.url)
    proc = subprocess.run(
        [sys.executable, "-c", _DRIVER], capture_output=True, text=True, timeout=120, env=env, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    statuses = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(statuses) == 3 * len(KINDS)
    assert all(s in (404, 405) for s in statuses.values()), statuses  # the app answered; no such route
    assert _tables(empty_pg.dsn) == set()  # and nothing was migrated
    assert "app.migrate" not in proc.stderr
