"""AWS Lambda entry point: the same FastAPI app through Mangum.

Image command override: `python -m awslambdaric app.lambda_handler.handler`. Mangum picks the adapter from
the event shape: API Gateway HTTP API (v2), REST API (v1), ALB, and Function URLs (v2 payload).

One more event, for the deployer only: exactly ``{"fastapi_deploy": "migrate"}`` runs the same code as
``python -m app.migrate`` (``app.database.migrate: release``: the deploy invokes the NEW version with it
before the alias moves). Only a direct ``lambda:InvokeFunction`` (IAM-authenticated) can send that event:
API Gateway and Function URLs always wrap a request in their own envelope (``requestContext``,
``headers``, the request ``body`` as a string), so no HTTP request, whatever its body, equals it.
"""

from __future__ import annotations

import gc
import json
import logging
import os
from typing import Any

from mangum import Mangum

from app.main import create_app
from app.observability import flush_logs
from app.secret_refs import resolve_env
from app.settings import load_settings

log = logging.getLogger("app.lambda")
_adapter: Mangum | None = None
#: METRICS_EMF: a CloudWatch EMF line (RSS; pool figures when pooled) at most once a minute per execution
#: environment, after an invocation (app/runtime_metrics.py). Lambda has no lifespan to run a timer in.
_emf: Any = None
_resources: Any = None
#: Provisioned concurrency (and SnapStart) run INIT - importing this module - before any request arrives
#: (AWS_LAMBDA_INITIALIZATION_TYPE is set by Lambda). Then nobody waits for it: build everything there,
#: database stack included, so no request pays for it. On demand, INIT and the first request are both in
#: the caller's latency, and only what that request needs is loaded.
_AHEAD_OF_TIME = os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE") in {"provisioned-concurrency", "snap-start"}
#: The deployer's migrate event (fastapi_deploy/awslambda/migrate.py sends exactly this, nothing else).
MIGRATE_EVENT: dict[str, str] = {"fastapi_deploy": "migrate"}
#: Seconds of the invocation kept for resolving secrets, reporting and returning after a timed-out migration.
MIGRATE_RESERVE_S = 5.0


class MigrationFailedError(Exception):
    """Raised (so Lambda reports a function error and the deploy's invocation fails) with the JSON result."""


def is_migrate_event(event: Any) -> bool:
    """True only for the exact deployer event (a dict with that one key and value; HTTP events never are)."""
    return type(event) is dict and event == MIGRATE_EVENT


def migrate(context: Any) -> dict[str, Any]:
    """Run ``python -m app.migrate``'s code once; return its JSON result, raise if it failed.

    Bounded by the invocation's remaining time minus MIGRATE_RESERVE_S (or MIGRATE_TIMEOUT if smaller), so
    the migration gives up with a readable error before Lambda kills the invocation mid-DDL. Raising makes
    Lambda report a function error: the deploy's invocation then fails and is not recorded, so the next
    ``pulumi up`` retries it.
    """
    from app.migrate import run, timeout_from_env

    result: dict[str, Any]
    try:
        resolve_env()  # DATABASE_URL is an ssm:/secretsmanager: reference until resolved
        timeout = timeout_from_env()
        remaining_ms = getattr(context, "get_remaining_time_in_millis", None)
        if remaining_ms is not None:
            timeout = min(timeout, max(1.0, remaining_ms() / 1000 - MIGRATE_RESERVE_S))
        result = run(timeout)
    except Exception as exc:  # secret resolution or a bad MIGRATE_TIMEOUT: same one-line failure
        result = {"ok": False, "msg": "migration failed", "error": f"{type(exc).__name__}: {exc}"}
        log.error("migration failed", extra={"error": result["error"]})
    out = {"fastapi_deploy": "migrate", **result}
    if not result.get("ok"):
        raise MigrationFailedError(json.dumps(out, default=str))
    return out


def build() -> Mangum:
    """Cold start: resolve secret references, load settings, build the app once per execution environment."""
    resolved = resolve_env()
    # One request at a time per execution environment, frozen between invocations: a pool would hold
    # connections that can't be used concurrently and get cut while frozen. Default to no pool here.
    os.environ.setdefault("DB_POOL_CLASS", "null")
    settings = load_settings()
    # On demand, SQLAlchemy, asyncpg, the ORM models and the engine are loaded by the first request that
    # needs the database, not here: a cold start serving /health (or anything without the DB) does not pay
    # for them (~0.3 s of CPU on the benchmark VM, BENCHMARKS.md §7).
    app = create_app(settings, eager_db=_AHEAD_OF_TIME)
    global _emf, _resources
    _resources = app.state.resources
    if settings.metrics_emf:
        from app.runtime_metrics import EmfEvery

        _emf = EmfEvery(settings.app_env.value)
    log.info("cold start", extra={"resolved_secret_refs": resolved})
    # lifespan "off": Mangum would otherwise run startup+shutdown around EVERY invocation; our clients are
    # created in create_app and need no startup hook.
    return Mangum(app, lifespan="off")


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The Lambda handler."""
    global _adapter
    if is_migrate_event(event):
        return migrate(context)
    try:
        if _adapter is None:
            return _cold_start(event, context)
        return _adapter(event, context)
    finally:
        if _emf is not None:
            _emf.after_invocation(_resources.engine_if_created)
        # Log lines written inside Mangum's event loop are batched (JsonLineHandler); the environment may
        # be frozen or destroyed once the handler returns, so every invocation writes its lines before.
        flush_logs()


def _cold_start(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Build the app and serve the first event without garbage collection, then freeze what that allocated.

    Building the app and the first request's lazy imports (the database stack) allocate ~10^5 long-lived
    objects; the collector would scan them in gen-2 passes that find next to nothing to free (measured
    ~0.05 s of CPU on a cold DB request, BENCHMARKS.md §7). gc.freeze() moves them out of the collector's
    view for good, so warm invocations' collections do not rescan them either.
    """
    global _adapter
    enabled = gc.isenabled()
    gc.disable()
    try:
        _adapter = build()
        return _adapter(event, context)
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


if _AHEAD_OF_TIME:
    _adapter = build()
    gc.freeze()
