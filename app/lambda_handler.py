"""AWS Lambda entry point: the same FastAPI app through Mangum.

Image command override: `python -m awslambdaric app.lambda_handler.handler`. Mangum picks the adapter from
the event shape: API Gateway HTTP API (v2), REST API (v1), ALB, and Function URLs (v2 payload).
"""

from __future__ import annotations

import gc
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
