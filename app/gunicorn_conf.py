"""Gunicorn configuration: every number comes from the environment the deployer computed (contract sec. 1).

Nothing is derived from os.cpu_count(): inside a container it reports the HOST's cores (e.g. 64 on a
Fargate/Cloud Run host for a 1-vCPU task), which would fork dozens of workers into a 2 GiB task and OOM it.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SystemExit(
            f"gunicorn_conf: {name}={raw!r} is not an integer (unset it or give a number)"
        ) from None
    if value < 0:
        raise SystemExit(f"gunicorn_conf: {name}={raw!r} must be >= 0")
    return value


_port = _int("PORT", 8000)
bind = [f"0.0.0.0:{_port}"]
workers = max(1, _int("WEB_CONCURRENCY", 1))
# uvicorn's worker, draining its open connections before it closes them (app/workers.py).
worker_class = "app.workers.DrainingUvicornWorker"

# Must exceed the load balancer's idle timeout (ALB: 60 s). Gunicorn's default of 2 s makes the ALB reuse
# a connection the server already closed -> sporadic 502s.
keepalive = _int("GUNICORN_KEEPALIVE", 75)
timeout = _int("GUNICORN_TIMEOUT", 30)
# Below the platform's stop grace (ECS stopTimeout 30 s, Cloud Run 10 s) so in-flight requests finish
# before SIGKILL.
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 20)
# Recycle workers to cap slow leaks; jitter so 4 workers don't all restart at the same request count.
# (The deployer sets 0 for a single worker: a recycle would leave the task without a worker.)
max_requests = _int("GUNICORN_MAX_REQUESTS", 1000)
max_requests_jitter = _int("GUNICORN_MAX_REQUESTS_JITTER", 100)


def _bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off"}:
        return False
    raise SystemExit(f"gunicorn_conf: {name}={raw!r} is not a boolean (true/false)")


# Import the app once in the master; workers are forked from it. A replacement worker (max_requests,
# crash) is then serving within milliseconds instead of re-importing the app (~1 s of CPU; with one
# worker the task had NO accepting worker for that long). Safe because create_app() opens nothing: the
# engine connects on first use, Redis is created on first use, Sentry starts its thread on first event,
# and PROMETHEUS_MULTIPROC_DIR is set below before prometheus_client is imported (tests/app/test_preload.py).
preload_app = _bool("GUNICORN_PRELOAD_APP", True)

# The worker heartbeat file is touched every second; on a disk-backed /tmp (Docker overlay, EBS) that
# can block for seconds under I/O pressure and get healthy workers killed. /dev/shm is RAM.
_SHM = "/dev/shm"  # noqa: S108 - RAM-backed, per-container; files created with mkdtemp (0700)
worker_tmp_dir = _SHM if os.path.isdir(_SHM) and os.access(_SHM, os.W_OK) else None

# X-Forwarded-For/-Proto are trusted only from these peers (uvicorn's worker reads this setting). The
# deployer sets FORWARDED_ALLOW_IPS where only the proxy reaches the container: the private ranges behind
# the ALB (ECS) and Caddy (VPS) — not `*`, which makes uvicorn take the LEFTMOST, client-written entry the
# ALB appends to. The local default trusts only loopback, so a direct client cannot forge its address to
# dodge the login limit.
# On Cloud Run the proxies have no listable addresses: the deployer sets FORWARDED_TRUSTED_HOPS instead and
# the app takes the address by hop count (app/forwarded.py). uvicorn must then trust NO peer: under `*` it
# would already have replaced the peer with the leftmost (client-written) entry before the app sees it.
_forwarded_trusted_hops = _int("FORWARDED_TRUSTED_HOPS", 0)
forwarded_allow_ips = (
    "" if _forwarded_trusted_hops else os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
)

# Gunicorn >= 25's control socket lives in $HOME (the image user has none: "Permission denied") and
# lets anything in the container change the worker count behind the deployer's back. Not wanted.
control_socket_disable = True

# The app writes one JSON access line per request itself (with the request id).
accesslog = None
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
capture_output = False
# The master's own lines (boot, worker timeouts/kills) as JSON too, so one log parser handles everything.
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "app.observability.JsonFormatter"}},
    "handlers": {
        "stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    },
    # Workers attach their own JSON handler to root in create_app(); one here would duplicate every line.
    "root": {"handlers": [], "level": "WARNING"},
    "loggers": {
        "gunicorn.error": {"handlers": ["stderr"], "level": loglevel.upper(), "propagate": False},
        "gunicorn.access": {"handlers": [], "propagate": False},
    },
}

# Prometheus multiprocess mode: must be set before any worker imports prometheus_client, i.e. here in
# the master before fork. Each worker writes mmap files; /metrics aggregates them.
_metrics_dir_created = False
if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    _base = _SHM if worker_tmp_dir else None
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="prometheus-", dir=_base)
    _metrics_dir_created = True
elif os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    _d = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    _d.mkdir(parents=True, exist_ok=True)
    for _stale in _d.glob("*.db"):  # counters from a previous run would otherwise be added to ours
        _stale.unlink()


def child_exit(server: Any, worker: Any) -> None:
    """Master, a worker was reaped: its live gauges must stop counting; its counters stay (they are
    history). Counts the restart (app/runtime_metrics.py) in gunicorn_worker_restarts_total{reason} - the
    master writes its own counter file in PROMETHEUS_MULTIPROC_DIR, summed into every scrape - and, with
    METRICS_EMF, as a CloudWatch EMF line."""
    multiproc = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
    if multiproc:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
    if not getattr(server, "LISTENERS", True):
        # Arbiter.stop() closed the listeners: the server is shutting down, the workers are not restarted.
        return
    from app import runtime_metrics

    try:
        reason = runtime_metrics.count_restart(worker, prometheus=multiproc, emf=_bool("METRICS_EMF", False))
    except Exception:  # a metric must never take the master down
        server.log.exception("counting the worker restart failed")
    else:
        server.log.info("worker exited", extra={"worker_pid": worker.pid, "reason": reason})


def worker_exit(server: Any, worker: Any) -> None:
    """Worker, shutting down by itself (max_requests, SIGTERM/HUP, or the master's timeout abort): mark
    it so child_exit can tell this from a crash or SIGKILL, after which this hook never runs. Also writes
    the log lines the worker still holds in its batch (app.observability.JsonLineHandler) and folds its
    last request counts into the metrics (app.observability.HttpTally)."""
    from app import runtime_metrics

    runtime_metrics.note_graceful_exit()
    if "app.observability" in sys.modules:
        sys.modules["app.observability"].flush_telemetry()


def on_exit(server: Any) -> None:
    if _metrics_dir_created:
        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)


def when_ready(server: Any) -> None:
    """Master, after the (preloaded) app is imported and before the first fork: GC_FREEZE moves the
    import-time objects into the permanent generation, so no worker's full collection walks them again
    and the collector never writes to the pages the workers share with the master (app/gctune.py)."""
    from app import gctune

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from app import runtime_metrics

        runtime_metrics.init_restart_counter()  # reasons at 0 before any restart
    if preload_app:
        _import_what_workers_import()
    if gctune.freeze(collect=True):
        server.log.info("gc frozen in master", extra={"gc_frozen": gc_freeze_count()})


def _import_what_workers_import() -> None:
    """uvicorn imports its HTTP/WebSocket protocol and lifespan modules in each worker when it loads its
    config (~0.1-0.2 s per worker boot here); done once in the master, a forked worker has them."""
    from uvicorn.config import Config

    from app.workers import DrainingUvicornWorker

    async def _noop(scope: Any, receive: Any, send: Any) -> None:  # pragma: no cover - never served
        return None

    Config(app=_noop, log_config=None, lifespan="on", **DrainingUvicornWorker.CONFIG_KWARGS).load()


def post_fork(server: Any, worker: Any) -> None:
    """Worker, right after fork: GC_THRESHOLD (the master keeps Python's default)."""
    from app import gctune

    gctune.apply_threshold()


def post_worker_init(worker: Any) -> None:
    """Worker, app loaded: freeze what loading added (everything, without preload), and route uvicorn's
    loggers to the app's JSON handler. The uvicorn worker re-points them at gunicorn's handlers when it is
    constructed, which with a preloaded app happens after create_app() configured logging."""
    from app import gctune

    gctune.freeze()
    if "app.observability" in sys.modules:
        sys.modules["app.observability"].route_server_loggers()


def gc_freeze_count() -> int:
    import gc

    return gc.get_freeze_count()


def on_starting(server: Any) -> None:
    """MIGRATE_ON_START=true: `alembic upgrade head` once, in the master, before any worker forks.

    In a child process (`python -m app.migrate`), so the master holds no event loop or DB connection
    that forked workers would inherit, and a hung migration can be killed at a hard deadline. Failure
    exits the master non-zero: the container never becomes healthy and the platform stops the release.
    """
    from app import gctune

    try:  # fail at start, in the master, naming the variable (not in every worker after fork)
        gctune.threshold_from_env()
    except gctune.GcConfigError as exc:
        server.log.error("%s", exc)
        raise SystemExit(1) from None
    if os.environ.get("MIGRATE_ON_START", "").strip().lower() not in {"1", "true", "yes"}:
        return
    import subprocess

    from app.migrate import DEFAULT_TIMEOUT_S

    try:
        budget = float(os.environ.get("MIGRATE_TIMEOUT", "") or DEFAULT_TIMEOUT_S)
    except ValueError:
        budget = DEFAULT_TIMEOUT_S  # app.migrate itself reports the bad value and exits 1
    try:
        # app.migrate enforces MIGRATE_TIMEOUT itself; +10 s is the backstop if it cannot even do that.
        rc = subprocess.run(
            [sys.executable, "-m", "app.migrate"], timeout=budget + 10, check=False
        ).returncode
    except subprocess.TimeoutExpired:
        rc = -1
    if rc != 0:
        server.log.error("migrate on start failed (exit %s); not starting workers", rc)
        raise SystemExit(1)
