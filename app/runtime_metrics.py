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
import logging
import os
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


def _exit_marker(pid: int) -> str | None:
    d = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    return os.path.join(d, f"worker-exit-{pid}") if d else None


def note_graceful_exit() -> None:
    """Worker side (gunicorn worker_exit hook): leave a marker that it shut down itself."""
    path = _exit_marker(os.getpid())
    if path:
        with contextlib.suppress(OSError), open(path, "w"):
            pass


def count_restart(worker: Any) -> str:
    """Master side (child_exit): classify and count the exit of ``worker``; returns the reason."""
    path = _exit_marker(worker.pid)
    graceful = False
    if path:
        graceful = os.path.exists(path)
        with contextlib.suppress(OSError):
            os.unlink(path)
    # The master sets .aborted before SIGABRT on a timeout; the worker's worker_exit hook still runs then.
    reason = "timeout" if getattr(worker, "aborted", False) else "graceful" if graceful else "crash"
    restart_counter().labels(reason=reason).inc()
    return reason


def init_restart_counter() -> None:
    """Master (when_ready): every reason at 0, so the series exist before the first restart."""
    counter = restart_counter()
    for reason in RESTART_REASONS:
        counter.labels(reason=reason)
