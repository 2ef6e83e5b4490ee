"""Schemathesis against the real service: gunicorn running the image's CMD with APP_ENV=production, on
real PostgreSQL and Redis. Every operation of the OpenAPI document, without and with a bearer token (from
the login route, for a seeded user), valid and invalid input, a fixed number of examples each and a fixed
seed (derandomized), so a failure reproduces.

Checked for every response: no 5xx, the status code is one the document declares for the operation, and
the body matches the declared schema and content type (so the 413/422/429/503 error shapes in the
document are the ones served)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.main import create_app
from devenv.services import PostgresInstance, RedisInstance
from tests.app.conftest import USER_PASSWORD, make_settings
from tests.app.servers import ROOT, Server, gunicorn

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# Per operation, per mode, per auth state (Hypothesis stops early when an operation has fewer distinct
# inputs): 710 requests in 29 s on this 2-core machine (load ~5), ~45 s for the test with its server.
EXAMPLES = 25
BUDGET_S = 120  # a hard stop well above the ~30-60 s this takes on the 2-core CI machine


@pytest.fixture(scope="module")
def served(pg: PostgresInstance, redis_server: RedisInstance, users: list[str]) -> Iterator[Server]:
    if redis_server.proc is None:
        redis_server.start()
    env = {
        "APP_ENV": "production",
        "DATABASE_URL": pg.url,
        "REDIS_URL": redis_server.url,
        "JWT_SECRET_KEY": "fuzz-" + "k" * 48,
        "WEB_CONCURRENCY": "1",
    }
    cmd = [
        str(ROOT / ".venv" / "bin" / "gunicorn"),
        "--config",
        "app/gunicorn_conf.py",
        "app.main:create_app()",
    ]
    with gunicorn(cmd, env, ROOT) as server:
        yield server


@pytest.fixture(scope="module")
def openapi(pg: PostgresInstance, redis_server: RedisInstance) -> dict[str, Any]:
    # Production serves no /openapi.json: take the document from the same code (building the app opens no
    # connection).
    return create_app(make_settings(pg.url, redis_server.url)).openapi()


def _fuzz(operation: Any, mode: GenerationMode, base_url: str, headers: dict[str, str]) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: bounded time, the failing case is printed
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        case.call_and_validate(base_url=base_url, headers=headers, checks=CHECKS, timeout=15)

    run()


def test_no_request_gets_a_5xx_and_every_response_matches_the_document(
    served: Server, openapi: dict[str, Any]
) -> None:
    login = httpx.post(
        f"{served.url}/api/auth/login", json={"username": "bob", "password": USER_PASSWORD}, timeout=15
    )
    assert login.status_code == 200, login.text
    token = login.json()["access_token"]

    schema = schemathesis.openapi.from_dict(openapi)
    operations = [result.ok() for result in schema.get_all_operations()]
    labels = {f"{op.method.upper()} {op.path}" for op in operations}
    assert {"POST /api/auth/login", "POST /api/items", "GET /api/items/{item_id}", "GET /ready"} <= labels

    # Operations that take no input at all have no invalid input to generate.
    no_input = {
        f"{method.upper()} {path}"
        for path, item in openapi["paths"].items()
        for method, op in item.items()
        if not op.get("parameters") and "requestBody" not in op
    }
    start = time.monotonic()
    failures: list[str] = []
    unsatisfiable: set[str] = set()
    for auth in ({}, {"Authorization": f"Bearer {token}"}):
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            for op in operations:
                assert time.monotonic() - start < BUDGET_S, "fuzzing ran over its time budget"
                label = f"{op.method.upper()} {op.path}"
                try:
                    _fuzz(op, mode, served.url, auth)
                except Unsatisfiable:
                    unsatisfiable.add(label)
                except (Exception, BaseExceptionGroup) as exc:  # collect all: one run shows every failure
                    who = "token" if auth else "anonymous"
                    failures.append(f"{label} [{mode.value}, {who}]: {exc}"[:3000])
    assert not failures, "\n\n".join(failures)
    assert unsatisfiable <= no_input, unsatisfiable - no_input
    # The worker survived everything and logged no traceback.
    assert httpx.get(f"{served.url}/health", timeout=5).status_code == 200
    logs = served.logs()
    served_ops = {f"{r['method']} {r['route']}" for r in logs if r.get("msg") == "request"}
    assert labels <= served_ops, labels - served_ops  # every operation was really called
    requests = sum(1 for r in logs if r.get("msg") == "request")
    print(f"schemathesis: {requests} requests in {time.monotonic() - start:.1f} s")
    assert not [r for r in logs if r.get("level") in ("error", "critical") or "exc" in r], [
        r for r in logs if r.get("level") in ("error", "critical") or "exc" in r
    ][:3]
