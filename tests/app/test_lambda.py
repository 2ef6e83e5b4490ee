"""The same app on Lambda via Mangum: every event kind, and secret references resolved from (moto) AWS."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import boto3
import pytest
import redis as redis_sync
from fastapi import FastAPI
from moto import mock_aws

import app.lambda_handler as lh
from app.secret_refs import SecretReferenceError, resolve_env
from devenv.services import PostgresInstance, RedisInstance
from tests.app.conftest import USER_PASSWORD
from tests.app.lambda_events import KINDS

REGION = "eu-west-1"
JWT = "lambda-jwt-key-" + "x" * 40
ROOT = Path(__file__).resolve().parents[2]
CONTEXT = SimpleNamespace(
    function_name="app",
    aws_request_id="0f5d2c1e-1111-2222-3333-444455556666",
    get_remaining_time_in_millis=lambda: 29000,
)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for k, v in {
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }.items():
        monkeypatch.setenv(k, v)
    with mock_aws():
        yield


def test_references_resolved_from_ssm_and_secrets_manager(aws: None) -> None:
    boto3.client("ssm").put_parameter(
        Name="/myapp/prod/db-url", Value="postgresql+asyncpg://u:p@db/x", Type="SecureString"
    )
    sm = boto3.client("secretsmanager")
    sm.create_secret(Name="myapp/prod/jwt", SecretString="s3cr3t-" * 6)
    sm.create_secret(Name="myapp/prod/redis", SecretString=json.dumps({"url": "redis://cache:6379/0"}))
    env = {
        "DATABASE_URL": "ssm:/myapp/prod/db-url",
        "JWT_SECRET_KEY": "secretsmanager:myapp/prod/jwt",
        "REDIS_URL": "secretsmanager:myapp/prod/redis:url",
        "LOG_LEVEL": "info",
    }
    assert sorted(resolve_env(env)) == ["DATABASE_URL", "JWT_SECRET_KEY", "REDIS_URL"]
    assert env == {
        "DATABASE_URL": "postgresql+asyncpg://u:p@db/x",
        "JWT_SECRET_KEY": "s3cr3t-" * 6,
        "REDIS_URL": "redis://cache:6379/0",
        "LOG_LEVEL": "info",
    }


def test_unresolvable_reference_names_variable_and_reference(aws: None) -> None:
    boto3.client("secretsmanager").create_secret(Name="myapp/plain", SecretString="not-json")
    env = {"DATABASE_URL": "ssm:/myapp/missing", "REDIS_URL": "secretsmanager:myapp/plain:url"}
    with pytest.raises(SecretReferenceError) as ei:
        resolve_env(env)
    msg = str(ei.value)
    assert "DATABASE_URL: cannot resolve 'ssm:/myapp/missing': ParameterNotFound" in msg
    assert "REDIS_URL: cannot resolve 'secretsmanager:myapp/plain:url'" in msg
    assert "not-json" not in msg  # never the secret value


def test_server_modes_do_not_import_boto3() -> None:
    code = "import sys, app.main, app.gunicorn_conf; print('boto3' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "False"


def test_a_cold_start_serving_health_imports_neither_redis_nor_the_auth_libraries() -> None:
    # redis-py, pwdlib/argon2 and PyJWT are imported on first use (login, /ready, a bearer token): a cold
    # start serving anything else does not pay for them (BENCHMARKS.md, cold start).
    code = """
import json, sys
from types import SimpleNamespace
from tests.app.lambda_events import http_api_v2
import app.lambda_handler as lh
ctx = SimpleNamespace(function_name="f", aws_request_id="r", get_remaining_time_in_millis=lambda: 10000)
resp = lh.handler(http_api_v2("GET", "/health"), ctx)
heavy = ("redis", "pwdlib", "argon2", "jwt", "boto3", "sentry_sdk")
print(json.dumps({"status": resp["statusCode"], "loaded": [m for m in heavy if m in sys.modules]}))
"""
    env = {
        "PATH": "/usr/bin:/bin",
        "APP_ENV": "production",
        "DATABASE_URL": "postgresql+asyncpg://u:p@127.0.0.1:9/x",  # never connected for /health
        "REDIS_URL": "redis://127.0.0.1:9/0",
        "JWT_SECRET_KEY": "s3cr3t-" * 6,
        "PYTHONPATH": str(ROOT),
    }
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env, cwd=ROOT
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"status": 200, "loaded": []}


@pytest.fixture
def lambda_handler(
    aws: None,
    monkeypatch: pytest.MonkeyPatch,
    pg: PostgresInstance,
    redis_server: RedisInstance,
    users: list[str],
) -> Iterator[Callable[[dict[str, Any]], dict[str, Any]]]:
    """A cold start whose DATABASE_URL and JWT key are references to (moto) SSM / Secrets Manager."""
    if redis_server.proc is None:
        redis_server.start()
    with redis_sync.Redis.from_url(redis_server.url) as r:
        r.flushdb()
    boto3.client("ssm").put_parameter(Name="/app/prod/db", Value=pg.url, Type="SecureString")
    boto3.client("secretsmanager").create_secret(Name="app/prod/jwt", SecretString=JWT)
    for k, v in {
        "APP_ENV": "production",
        "DATABASE_URL": "ssm:/app/prod/db",
        "JWT_SECRET_KEY": "secretsmanager:app/prod/jwt",
        "REDIS_URL": redis_server.url,
    }.items():
        monkeypatch.setenv(k, v)
    # build() defaults DB_POOL_CLASS in os.environ; set-then-delete makes monkeypatch remove it afterwards.
    monkeypatch.setenv("DB_POOL_CLASS", "unset")
    monkeypatch.delenv("DB_POOL_CLASS")
    monkeypatch.setattr(lh, "_adapter", None)
    yield lambda event: lh.handler(event, CONTEXT)
    adapter = lh._adapter
    if adapter is not None:
        import asyncio

        asyncio.get_event_loop().run_until_complete(cast(FastAPI, adapter.app).state.resources.close())


def _body(resp: dict[str, Any]) -> Any:
    raw = resp["body"]
    if resp.get("isBase64Encoded"):
        import base64

        raw = base64.b64decode(raw).decode()
    return json.loads(raw)


def _header(resp: dict[str, Any], name: str) -> str | None:
    for key in ("headers", "multiValueHeaders"):
        for k, v in (resp.get(key) or {}).items():
            if k.lower() == name:
                return v[0] if isinstance(v, list) else v
    return None


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_event_kind_is_served(
    kind: str, lambda_handler: Callable[[dict[str, Any]], dict[str, Any]]
) -> None:
    make = KINDS[kind]
    health = lambda_handler(make("GET", "/health"))
    assert health["statusCode"] == 200
    assert _body(health) == {"status": "ok"}
    assert _header(health, "x-request-id")

    items = lambda_handler(make("GET", "/api/items", "limit=3"))
    assert items["statusCode"] == 200, items
    assert isinstance(_body(items), list)

    bad = lambda_handler(make("GET", "/api/items", "limit=0"))
    assert bad["statusCode"] == 422  # the query string reached FastAPI

    login = lambda_handler(
        make("POST", "/api/auth/login", body=json.dumps({"username": "alice", "password": USER_PASSWORD}))
    )
    assert login["statusCode"] == 200, login
    token = _body(login)["access_token"]
    import jwt

    assert jwt.decode(token, JWT, algorithms=["HS256"])["sub"] == "alice"  # the key came from Secrets Manager

    # Cold start happened once, with the references resolved and no pool kept between invocations.
    adapter = lh._adapter
    assert adapter is not None
    state = cast(FastAPI, adapter.app).state
    settings = state.settings
    assert settings.db_pool_class == "null"
    assert type(state.resources.engine.sync_engine.pool).__name__ == "NullPool"


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_an_oversized_body_gets_the_413_on_lambda_too(
    kind: str, lambda_handler: Callable[[dict[str, Any]], dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The event carries the whole body (up to the 6 MB payload); the app's limit still answers, in its shape.
    monkeypatch.setenv("MAX_REQUEST_BODY_BYTES", "2048")
    big = json.dumps({"username": "alice", "password": "x" * 4000})
    resp = lambda_handler(KINDS[kind]("POST", "/api/auth/login", body=big))
    assert resp["statusCode"] == 413, resp
    assert _body(resp) == {"detail": "request body exceeds 2048 bytes"}
