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


#: What a Lambda cold start serving /health must not import (BENCHMARKS.md, cold start): the database stack
#: (~0.5 s of CPU there), redis-py, the auth libraries, the AWS SDK (no secret reference to resolve), Sentry
#: (no DSN) and prometheus-client (METRICS_ENABLED=false on Lambda).
DEFERRED = (
    "sqlalchemy",
    "asyncpg",
    "greenlet",
    "app.models",
    "app.queries",
    "redis",
    "pwdlib",
    "argon2",
    "jwt",
    "boto3",
    "botocore",
    "sentry_sdk",
    "prometheus_client",
    "alembic",
)

# A fresh interpreter runs the handler (or, with APP_EAGER=1, the same app built as the servers build it:
# create_app() with everything loaded at start) over a list of requests and prints the responses, and after
# the first request, which of DEFERRED are loaded.
_DRIVER = """
import json, os, sys
from types import SimpleNamespace
from tests.app.lambda_events import http_api_v2

if os.environ.get("APP_EAGER"):
    from mangum import Mangum
    from app.main import create_app
    adapter = Mangum(create_app(), lifespan="off")
    handler = lambda event, ctx: adapter(event, ctx)
else:
    from app.lambda_handler import handler
ctx = SimpleNamespace(function_name="f", aws_request_id="r", get_remaining_time_in_millis=lambda: 10000)
out, loaded, token = [], None, None
requests, deferred = json.loads(sys.argv[1]), json.loads(sys.argv[2])
for method, path, query, body, auth in requests:
    event = http_api_v2(method, path, query, body)
    if auth and token:
        event["headers"]["authorization"] = "Bearer " + token
    resp = handler(event, ctx)
    payload = json.loads(resp["body"]) if resp.get("body") else None
    if path == "/api/auth/login" and resp["statusCode"] == 200:
        token, payload = payload.pop("access_token"), {**payload, "access_token": "<token>"}
    if path == "/ready":
        payload.pop("duration_ms")
    headers = {k.lower(): v for k, v in (resp.get("headers") or {}).items()}
    out.append([resp["statusCode"], payload, headers.get("retry-after")])
    if loaded is None:
        loaded = [m for m in deferred if m in sys.modules]
print(json.dumps({"responses": out, "loaded_after_first": loaded}))
"""


def _lambda_env(database_url: str, redis_url: str) -> dict[str, str]:
    """The variables the deployer sets on the prod-lambda function that matter here (infra plan), with
    the secret references already resolved."""
    return {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(ROOT),
        "APP_ENV": "production",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "JWT_SECRET_KEY": JWT,
        "METRICS_ENABLED": "false",
        "METRICS_EMF": "true",
        "DB_POOL_CLASS": "null",
        "CORS_ORIGINS": "https://app.example.com",
        "LOG_LEVEL": "info",
    }


def _drive(env: dict[str, str], requests: list[list[Any]]) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", _DRIVER, json.dumps(requests), json.dumps(DEFERRED)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    result["stderr"] = out.stderr
    return result


def test_a_cold_start_serving_health_loads_none_of_the_deferred_modules() -> None:
    # The database is never contacted for /health: a closed port proves it.
    env = _lambda_env("postgresql+asyncpg://u:p@127.0.0.1:9/x", "redis://127.0.0.1:9/0")
    result = _drive(env, [["GET", "/health", "", None, False]])
    assert result["responses"] == [[200, {"status": "ok"}, None]]
    assert result["loaded_after_first"] == []
    # METRICS_EMF (set by the deployer on Lambda): one CloudWatch EMF line after the first invocation,
    # RSS only (no pool on Lambda), and it loaded nothing deferred either.
    emf = [d for d in map(_json_or_none, result["stderr"].splitlines()) if d and "_aws" in d]
    assert len(emf) == 1
    assert emf[0]["worker_rss_bytes"] > 0
    assert "db_pool_usage_ratio" not in emf[0]


def _json_or_none(line: str) -> Any:
    try:
        return json.loads(line)
    except ValueError:
        return None


def test_servers_load_the_database_stack_at_boot_not_on_a_users_request() -> None:
    # create_app() (gunicorn, uvicorn) pays SQLAlchemy, the ORM, the models and the engine at start.
    code = (
        "import sys; from app.main import create_app; app = create_app(); "
        "print(all(m in sys.modules for m in ('sqlalchemy.orm', 'asyncpg', 'app.models', 'app.queries')), "
        "app.state.resources._engine is not None)"
    )
    env = _lambda_env("postgresql+asyncpg://u:p@127.0.0.1:9/x", "redis://127.0.0.1:9/0")
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env, cwd=ROOT
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["True", "True"]


def test_provisioned_concurrency_builds_everything_during_init() -> None:
    # INIT runs before any request there: the database stack and the engine are loaded at import, so the
    # first request pays nothing. On demand they wait for the first request that needs them.
    code = (
        "import sys, app.lambda_handler as lh; a = lh._adapter; "
        "print(a is not None, a is not None and a.app.state.resources._engine is not None, "
        "all(m in sys.modules for m in ('sqlalchemy.orm', 'asyncpg', 'app.models', 'app.queries')))"
    )
    env = _lambda_env("postgresql+asyncpg://u:p@127.0.0.1:9/x", "redis://127.0.0.1:9/0")
    seen = {}
    for init in ("provisioned-concurrency", "on-demand"):
        env["AWS_LAMBDA_INITIALIZATION_TYPE"] = init
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env, cwd=ROOT
        )
        assert out.returncode == 0, out.stderr[-2000:]
        seen[init] = out.stdout.split()
    assert seen == {
        "provisioned-concurrency": ["True", "True", "True"],
        "on-demand": ["False", "False", "False"],
    }


def test_lazy_lambda_cold_start_serves_exactly_what_the_eagerly_built_app_serves(
    pg: PostgresInstance, redis_server: RedisInstance, users: list[str]
) -> None:
    """After a cold /health (nothing deferred loaded), the DB routes, auth and validation behave exactly as
    in an app built with everything loaded at start (what the servers run)."""
    if redis_server.proc is None:
        redis_server.start()
    login = json.dumps({"username": "bob", "password": USER_PASSWORD})
    requests = [
        ["GET", "/health", "", None, False],
        ["GET", "/api/items", "limit=3", None, False],
        ["GET", "/api/items", "limit=0", None, False],  # 422 from the query validation
        ["GET", "/api/categories", "", None, False],
        ["GET", "/api/items/987654", "", None, False],  # 404
        ["GET", "/api/auth/me", "", None, False],  # 401 without a token
        ["POST", "/api/auth/login", "", json.dumps({"username": "bob", "password": "wrong"}), False],  # 401
        ["POST", "/api/auth/login", "", login, False],
        ["GET", "/api/auth/me", "", None, True],
        ["POST", "/api/categories", "", json.dumps({"name": "cat-1"}), False],  # 401 without a token
        ["GET", "/ready", "", None, False],
    ]
    results = {}
    for mode in ("lambda", "eager"):
        with redis_sync.Redis.from_url(redis_server.url) as r:
            r.flushdb()  # a fresh rate-limit window for each run
        env = _lambda_env(pg.url, redis_server.url)
        if mode == "eager":
            env["APP_EAGER"] = "1"
        results[mode] = _drive(env, requests)
    lazy, eager = results["lambda"], results["eager"]
    assert lazy["loaded_after_first"] == []
    assert "sqlalchemy" in eager["loaded_after_first"]  # the comparison is against the eager load
    assert lazy["responses"] == eager["responses"]
    statuses = [r[0] for r in lazy["responses"]]
    assert statuses == [200, 200, 422, 200, 404, 401, 401, 200, 200, 401, 200], lazy["responses"]
    assert lazy["responses"][8][1] == {"username": "bob"}


def test_database_unavailable_is_a_503_on_a_lazy_cold_start() -> None:
    """The 503 mapping does not need SQLAlchemy loaded at start: the first DB request loads it, fails to
    connect, and still answers 503 + Retry-After, not a 500."""
    env = _lambda_env("postgresql+asyncpg://u:p@127.0.0.1:9/x", "redis://127.0.0.1:9/0")
    env["DB_CONNECT_TIMEOUT"] = "1"
    result = _drive(env, [["GET", "/api/items", "", None, False], ["GET", "/health", "", None, False]])
    assert result["responses"] == [
        [503, {"detail": "database unavailable"}, "5"],
        [200, {"status": "ok"}, None],
    ]


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


def test_each_invocation_writes_its_log_lines_before_it_returns(
    lambda_handler: Callable[[dict[str, Any]], dict[str, Any]],
) -> None:
    """Lines logged inside Mangum's event loop are batched (app.observability.JsonLineHandler); the
    environment can be frozen once the handler returns, so the handler writes them first."""
    import io
    import logging

    from app.observability import JsonLineHandler

    make = KINDS[sorted(KINDS)[0]]
    assert lambda_handler(make("GET", "/health"))["statusCode"] == 200  # cold start: builds the app
    handler = next(h for h in logging.getLogger().handlers if isinstance(h, JsonLineHandler))
    buf = io.StringIO()
    handler.stream = buf
    resp = lambda_handler(make("GET", "/health"))
    rid = _header(resp, "x-request-id")
    lines = [json.loads(x) for x in buf.getvalue().splitlines()]
    assert [x["request_id"] for x in lines if x.get("msg") == "request"] == [rid]
