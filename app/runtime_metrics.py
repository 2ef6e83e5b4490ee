"""The metrics that predict failure: DB pool use, memory per worker, worker restarts.

* ``db_pool_connections_in_use`` / ``db_pool_connections_capacity`` / ``db_pool_usage_ratio``: from the
  SQLAlchemy QueuePool, updated on its checkout/checkin events (each worker writes its own values, so a
  scrape answered by any worker sees all of them). Capacity is ``pool_size + max_overflow``; a ratio >= 0.9
  is the danger line (requests start waiting DB_POOL_TIMEOUT for a connection, then get 503s).
* ``process_resident_memory_bytes_worker``: RSS from /proc/self/statm, sampled when a worker starts, every
  ``SAMPLE_S`` seconds by a background task, and when the worker answers /metrics.
* ``gunicorn_worker_restarts_total{reason}``: counted by the gunicorn MASTER in child_exit
  (app/gunicorn_conf.py), which writes its own counter file in PROMETHEUS_MULTIPROC_DIR.

Multiprocess modes (only meaningful under gunicorn with PROMETHEUS_MULTIPROC_DIR): the in-use and capacity
gauges and RSS are ``liveall`` - one series per live worker, labelled ``pid`` (``sum()`` in PromQL for the
task); the usage ratio is ``livemax`` - the worst live worker, which is what the 90 % alert wants. Dead
workers' series are dropped by child_exit's mark_process_dead.

Nothing here is imported unless METRICS_ENABLED (prometheus-client stays unimported on Lambda).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prometheus_client import Counter, Gauge
    from sqlalchemy.ext.asyncio import AsyncEngine
    from sqlalchemy.pool import Pool

log = logging.getLogger("app.metrics")

#: Seconds between two RSS samples of the background task.
SAMPLE_S = 15.0
#: The domain's danger line for db_pool_usage_ratio.
POOL_DANGER_RATIO = 0.9

RESTART_REASONS = ("crash", "graceful", "timeout")

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_bytes() -> int:
    """Current resident set size of this process (not the peak that getrusage reports)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        import resource

        # Peak RSS in KiB on Linux: the best figure left where /proc is missing.
        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


@dataclass(frozen=True)
class PoolFigures:
    in_use: int
    capacity: int

    @property
    def ratio(self) -> float:
        return self.in_use / self.capacity if self.capacity > 0 else 0.0


def pool_figures(pool: Pool, *, returning: bool = False) -> PoolFigures | None:
    """In-use and capacity of a QueuePool (None for a NullPool: nothing is pooled). ``returning``: called
    from a checkin event, which SQLAlchemy fires before the connection is counted as returned."""
    checkedout = getattr(pool, "checkedout", None)
    size = getattr(pool, "size", None)
    if checkedout is None or size is None:
        return None
    overflow = max(0, int(getattr(pool, "_max_overflow", 0)))
    in_use = max(0, int(checkedout()) - (1 if returning else 0))
    return PoolFigures(in_use, int(size()) + overflow)


@functools.cache
def _gauges() -> tuple[Gauge, Gauge, Gauge, Gauge]:
    from prometheus_client import Gauge

    in_use = Gauge(
        "db_pool_connections_in_use",
        "Connections checked out of this worker's SQLAlchemy pool",
        multiprocess_mode="liveall",
    )
    capacity = Gauge(
        "db_pool_connections_capacity",
        "Connections this worker's pool may hold (pool_size + max_overflow)",
        multiprocess_mode="liveall",
    )
    ratio = Gauge(
        "db_pool_usage_ratio",
        "in_use / capacity of the worst live worker (>= 0.9: requests are about to wait for a connection)",
        multiprocess_mode="livemax",
    )
    rss = Gauge(
        "process_resident_memory_bytes_worker",
        "Resident set size of each worker process (/proc/self/statm)",
        multiprocess_mode="liveall",
    )
    return in_use, capacity, ratio, rss


def publish_pool(figures: PoolFigures | None) -> None:
    if figures is None:
        return
    in_use, capacity, ratio, _ = _gauges()
    in_use.set(figures.in_use)
    capacity.set(figures.capacity)
    ratio.set(figures.ratio)


def instrument_pool(engine: AsyncEngine) -> None:
    """Keep the pool gauges current on checkout/checkin. Writes nothing now: the engine may be created in
    the gunicorn master (preload), whose values would be a series no worker owns; the workers publish
    their first values from the lifespan (start_sampling)."""
    from sqlalchemy import event

    pool = engine.sync_engine.pool
    if pool_figures(pool) is None:
        return

    def on_checkout(*_: Any) -> None:
        _safe(publish_pool, pool_figures(engine.sync_engine.pool))

    def on_checkin(*_: Any) -> None:
        _safe(publish_pool, pool_figures(engine.sync_engine.pool, returning=True))

    # Listeners on the pool are carried over when engine.dispose() recreates it.
    event.listen(pool, "checkout", on_checkout)
    event.listen(pool, "checkin", on_checkin)


def _safe(fn: Any, *args: Any) -> None:
    try:
        fn(*args)
    except Exception:  # a metrics problem must never fail a request
        log.exception("metric update failed")


def sample_process() -> None:
    _gauges()[3].set(rss_bytes())


def sample_now(engine: AsyncEngine | None) -> None:
    """This worker's figures, now (on start and when it answers a scrape)."""
    _safe(sample_process)
    if engine is not None:
        _safe(publish_pool, pool_figures(engine.sync_engine.pool))


async def _sample_loop(interval_s: float) -> None:
    while True:
        await asyncio.sleep(interval_s)
        _safe(sample_process)


@contextlib.asynccontextmanager
async def sampling(engine: AsyncEngine | None, interval_s: float = SAMPLE_S) -> Any:
    """Lifespan helper: publish this worker's figures, then keep RSS fresh until shutdown."""
    sample_now(engine)
    task = asyncio.create_task(_sample_loop(interval_s), name="runtime-metrics")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


# ------------------------------------------------------------------------------ gunicorn master side
@functools.cache
def restart_counter() -> Counter:
    from prometheus_client import Counter

    return Counter(
        "gunicorn_worker_restarts",
        "Workers the gunicorn master reaped and replaced, by reason: timeout (killed by the master after "
        "GUNICORN_TIMEOUT), graceful (the worker shut down itself: max_requests recycling, SIGTERM/HUP), "
        "crash (neither: SIGKILL - often the OOM killer -, a segfault, os._exit)",
        ["reason"],
    )


def _exit_marker(master: int, pid: int) -> str:
    d = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or tempfile.gettempdir()
    return os.path.join(d, f"gunicorn-{master}-worker-exit-{pid}")


def note_graceful_exit() -> None:
    """Worker side (gunicorn worker_exit hook): leave a marker that it shut down itself."""
    with contextlib.suppress(OSError), open(_exit_marker(os.getppid(), os.getpid()), "w"):
        pass


def classify_exit(worker: Any) -> str:
    """Master side (child_exit): why ``worker`` ended (consumes its graceful-exit marker)."""
    path = _exit_marker(os.getpid(), worker.pid)
    graceful = os.path.exists(path)
    with contextlib.suppress(OSError):
        os.unlink(path)
    # The master sets .aborted before SIGABRT on a timeout; the worker's worker_exit hook still runs then.
    return "timeout" if getattr(worker, "aborted", False) else "graceful" if graceful else "crash"


def count_restart(worker: Any, *, prometheus: bool, emf: bool) -> str:
    """Master side (child_exit): classify the exit of ``worker`` and count it in the restart counter
    (its file in PROMETHEUS_MULTIPROC_DIR) and/or as an EMF line; returns the reason."""
    reason = classify_exit(worker)
    if prometheus:
        restart_counter().labels(reason=reason).inc()
    if emf:
        namespace, dims = emf_target()
        write_emf(
            emf_document(
                {"worker_restarts": (1, "Count")},
                dims,
                namespace=namespace,
                extra={"reason": reason, "worker_pid": worker.pid},
            )
        )
    return reason


def init_restart_counter() -> None:
    """Master (when_ready): every reason at 0, so the series exist before the first restart."""
    counter = restart_counter()
    for reason in RESTART_REASONS:
        counter.labels(reason=reason)


# ------------------------------------------------------------------ CloudWatch Embedded Metric Format
# Where nothing scrapes /metrics (ECS without a Prometheus, Lambda), the same figures go to the log stream
# as EMF documents: CloudWatch Logs extracts the metrics from the `_aws` directive
# (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html).
# Every worker writes its own line; CloudWatch aggregates lines with the same dimensions into one series
# (statistics Maximum/Average/Sum over the workers and tasks). The pid is a plain member, not a dimension
# (a dimension per pid would be a new custom metric - billed - per worker start); Logs Insights can still
# filter on it.
# Namespace, metric names and the single dimension Service are what the deployer's ECS alarms read
# (fastapi_deploy/ecs/component.py on main: FastAPIDeploy, db_pool_usage_ratio Maximum, worker_restarts Sum,
# dimension Service=<name>-<stack>); METRICS_EMF_NAMESPACE / METRICS_EMF_SERVICE override the defaults.
EMF_NAMESPACE = "FastAPIDeploy"
EMF_SERVICE = "fastapi-deploy"
#: Seconds between two EMF lines per worker (ECS) or per execution environment (Lambda).
EMF_INTERVAL_S = 60.0


def emf_target(env: Any = None) -> tuple[str, dict[str, str]]:
    """(namespace, dimensions) from METRICS_EMF_NAMESPACE / METRICS_EMF_SERVICE (or the defaults)."""
    env = os.environ if env is None else env
    namespace = env.get("METRICS_EMF_NAMESPACE") or EMF_NAMESPACE
    return namespace, {"Service": env.get("METRICS_EMF_SERVICE") or EMF_SERVICE}


def emf_document(
    metrics: dict[str, tuple[float, str]],
    dimensions: dict[str, str],
    *,
    namespace: str = EMF_NAMESPACE,
    extra: dict[str, Any] | None = None,
    now_ms: int | None = None,
) -> dict[str, Any]:
    """One EMF root object: the metadata under ``_aws`` (Timestamp in ms since the epoch, one
    MetricDirective with one dimension set), then every dimension (string) and metric (number) as a
    top-level member, as the directive's references require."""
    doc: dict[str, Any] = {
        "_aws": {
            "Timestamp": now_ms if now_ms is not None else int(time.time() * 1000),
            "CloudWatchMetrics": [
                {
                    "Namespace": namespace,
                    "Dimensions": [list(dimensions)],
                    "Metrics": [{"Name": name, "Unit": unit} for name, (_, unit) in metrics.items()],
                }
            ],
        },
    }
    doc.update(extra or {})
    doc.update(dimensions)
    doc.update({name: value for name, (value, _) in metrics.items()})
    return doc


def worker_figures(engine: AsyncEngine | None) -> dict[str, tuple[float, str]]:
    """This process's figures for an EMF line: RSS always, the pool where there is one (not NullPool)."""
    figures: dict[str, tuple[float, str]] = {"worker_rss_bytes": (rss_bytes(), "Bytes")}
    pool = pool_figures(engine.sync_engine.pool) if engine is not None else None
    if pool is not None:
        figures["db_pool_connections_in_use"] = (pool.in_use, "Count")
        figures["db_pool_connections_capacity"] = (pool.capacity, "Count")
        figures["db_pool_usage_ratio"] = (round(pool.ratio, 4), "None")
    return figures


def write_emf(doc: dict[str, Any]) -> None:
    """One line on stderr (where the JSON logs go: awslogs and Lambda ship it to CloudWatch Logs).
    Not through logging: JsonFormatter drops members starting with "_", and `_aws` must be top level."""
    try:
        sys.stderr.write(json.dumps(doc, separators=(",", ":")) + "\n")
        sys.stderr.flush()
    except Exception:  # metrics never fail the caller
        log.exception("EMF line failed")


def emit_worker_emf(engine: AsyncEngine | None, app_env: str) -> None:
    try:
        namespace, dims = emf_target()
        doc = emf_document(
            worker_figures(engine),
            dims,
            namespace=namespace,
            extra={"environment": app_env, "pid": os.getpid()},
        )
    except Exception:
        log.exception("EMF figures failed")
        return
    write_emf(doc)


async def _emf_loop(engine: AsyncEngine | None, app_env: str, interval_s: float) -> None:
    while True:
        emit_worker_emf(engine, app_env)
        await asyncio.sleep(interval_s)


@contextlib.asynccontextmanager
async def emf_lines(engine: AsyncEngine | None, app_env: str, interval_s: float = EMF_INTERVAL_S) -> Any:
    """Lifespan helper (ECS): an EMF line now and every ``interval_s`` until shutdown. A small write to
    stderr once a minute; never on a request's path."""
    task = asyncio.create_task(_emf_loop(engine, app_env, interval_s), name="emf-metrics")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class EmfEvery:
    """Lambda (no lifespan, frozen between invocations): an EMF line after an invocation when
    ``interval_s`` has passed since the last one - the first invocation of an environment always."""

    def __init__(self, app_env: str, interval_s: float = EMF_INTERVAL_S) -> None:
        self.app_env = app_env
        self.interval_s = interval_s
        self._last: float | None = None

    def after_invocation(self, engine: AsyncEngine | None) -> bool:
        now = time.monotonic()
        if self._last is not None and now - self._last < self.interval_s:
            return False
        self._last = now
        emit_worker_emf(engine, self.app_env)
        return True
