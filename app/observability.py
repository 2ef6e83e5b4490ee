"""JSON logs with a request id, Prometheus metrics (multiprocess-aware) and Sentry.

The request middleware is plain ASGI: BaseHTTPMiddleware wraps every response body in an extra task and
memory stream, which costs throughput and breaks streaming/cancellation semantics.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import contextvars
import functools
import json
import logging
import os
import random
import re
import sys
import time
import weakref
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any, TextIO

from app.settings import Settings

if TYPE_CHECKING:
    from prometheus_client import Counter, Histogram
    from sentry_sdk.types import Event, Hint

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

# Accept a caller's id only if it is short and boring: it ends up in every log line of the request.
REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_STD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "request_id",
    "color_message",  # uvicorn's ANSI-coloured duplicate of msg
}


@functools.cache
def http_metrics() -> tuple[Counter, Histogram]:
    """The request counter and latency histogram, created (and prometheus-client imported) once, on first
    use: with METRICS_ENABLED=false (Lambda, Cloud Run) nothing can scrape them, so nothing records them."""
    from prometheus_client import Counter, Histogram

    requests = Counter("http_requests_total", "HTTP requests served", ["method", "route", "status"])
    latency = Histogram(
        "http_request_duration_seconds",
        "HTTP request latency",
        ["method", "route"],
        buckets=_UPPER_BOUNDS,
    )
    return requests, latency


log = logging.getLogger("app")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: what CloudWatch, Cloud Logging or Loki index without parsing."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "pid": record.process,
        }
        rid = getattr(record, "request_id", None) or request_id_var.get()
        if rid:
            out["request_id"] = rid
        for key, value in record.__dict__.items():
            if key not in _STD_ATTRS and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return _ENCODER.encode(out)


_handlers: weakref.WeakSet[JsonLineHandler] = weakref.WeakSet()


class JsonLineHandler(logging.StreamHandler):
    """configure_logging()'s handler: JSON lines to stderr, written in batches inside an event loop.

    One ``write`` + ``flush`` per line was ~6-8 % of a worker's CPU under load (BENCHMARKS.md §10). Inside
    a running event loop (the gunicorn/uvicorn worker) lines are collected and written together:

    - as soon as the batch would pass ``MAX_CHUNK`` (4096 bytes = PIPE_BUF on Linux): each write is whole
      lines of at most PIPE_BUF bytes, which a pipe writes atomically, so lines from several workers
      sharing the container's stderr never interleave (a longer single line is written alone, as before);
    - at the latest ``MAX_DELAY_S`` (0.1 s) after the first line of a batch (a timer on the loop);
    - at once, with everything before it, for a WARNING or worse record;
    - on ``flush()``: gunicorn's ``worker_exit`` hook (max_requests, SIGTERM/SIGHUP, the master's abort)
      and ``logging.shutdown()`` at interpreter exit.

    Outside a running loop (the gunicorn master, scripts, threads other than the loop's) every line is
    written at once, after whatever is batched, so the order of lines is always the order of records.
    Worst case: a worker killed without running Python's exit (SIGKILL, OOM kill, a segfault) loses the
    lines of its last <= 0.1 s, at most 4 KiB (~15 access lines); before, it lost none.
    """

    MAX_CHUNK = 4096
    MAX_DELAY_S = 0.1

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._app_json = True
        self._batch: list[str] = []
        self._size = 0
        self._timer_loop: asyncio.AbstractEventLoop | None = None
        _handlers.add(self)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + self.terminator
        except Exception:
            self.handleError(record)
            return
        self.write_line(line, urgent=record.levelno >= logging.WARNING)

    def write_line(self, line: str, *, urgent: bool = False) -> None:
        """Queue one complete line (ending in a newline); write per the rules above."""
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        with self.lock:  # type: ignore[union-attr]  # created by Handler.__init__
            if self._size + len(line) > self.MAX_CHUNK:
                self._write_batch()
            self._batch.append(line)
            self._size += len(line)
            if urgent or loop is None or self._size >= self.MAX_CHUNK:
                self._write_batch()
            elif self._timer_loop is not loop:  # no timer pending on this loop yet
                self._timer_loop = loop
                loop.call_later(self.MAX_DELAY_S, self._on_timer)

    def _on_timer(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            self._timer_loop = None
            self._write_batch()

    def _write_batch(self) -> None:
        if not self._batch:
            return
        data = "".join(self._batch)
        self._batch.clear()
        self._size = 0
        try:
            self.stream.write(data)
            self.stream.flush()
        except Exception:  # logging never raises into the caller; report like Handler.handleError
            self.handleError(logging.makeLogRecord({"msg": "log write", "name": "app"}))

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            self._write_batch()
            # a closed stream (a test's capture, an interpreter shutting down): nothing left to flush
            with contextlib.suppress(OSError, ValueError):
                super().flush()

    def _after_fork(self) -> None:
        self._timer_loop = None  # a timer of the parent's loop never fires in the child


def flush_logs() -> None:
    """Write every batched log line now (gunicorn's worker_exit hook; logging.shutdown() does it too)."""
    for handler in list(_handlers):
        handler.flush()


def flush_telemetry() -> None:
    """At a worker's exit: the batched log lines and the request counts not yet in the metrics."""
    flush_http_metrics()
    flush_logs()


def _after_fork_in_child() -> None:
    for handler in list(_handlers):
        handler._after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _stamp_request_id(factory: Callable[..., logging.LogRecord]) -> Callable[..., logging.LogRecord]:
    def make(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        record.request_id = request_id_var.get()
        return record

    make._app_stamp = True  # type: ignore[attr-defined]
    return make


def configure_logging(level: str) -> None:
    """Route the root logger (and uvicorn's/gunicorn's) to stderr as JSON."""
    handler = JsonLineHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    # Replace only our own handler (create_app may run more than once per process, e.g. in tests) and
    # leave foreign ones such as pytest's capture handler alone; what the old one batched is written first.
    for old in root.handlers:
        if getattr(old, "_app_json", False):
            old.flush()
    root.handlers[:] = [h for h in root.handlers if not getattr(h, "_app_json", False)] + [handler]
    root.setLevel(level.upper())
    # Stamp the request id when the record is created (in the request's context), not when a handler
    # formats it - a queued or buffered handler would format it later, outside that context.
    if not getattr(logging.getLogRecordFactory(), "_app_stamp", False):
        logging.setLogRecordFactory(_stamp_request_id(logging.getLogRecordFactory()))
    route_server_loggers()


def route_server_loggers() -> None:
    """uvicorn's and gunicorn's loggers propagate to root's JSON handler; uvicorn's access log is off.

    Also called by gunicorn_conf's post_worker_init: with a preloaded app the uvicorn worker re-points
    these loggers at gunicorn's handlers after create_app() ran in the master.
    """
    for name in ("uvicorn", "uvicorn.error", "gunicorn.error"):
        lg = logging.getLogger(name)
        lg.handlers[:] = []
        lg.propagate = True
    # The middleware below writes one access line per request with the request id; uvicorn's would
    # duplicate it.
    logging.getLogger("uvicorn.access").disabled = True


# json.dumps(obj, default=str) builds a new JSONEncoder on every call; one shared encoder does not.
_ENCODER = json.JSONEncoder(default=str)
_ROOT = logging.getLogger()
_getrandbits = random.getrandbits
_LOGGER_NAME = _ENCODER.encode(log.name)


def _access_handler() -> JsonLineHandler | None:
    """configure_logging()'s JSON handler when it is the only place an "app" INFO record can go, else None.

    Then the access line is written straight to its stream - the same line JsonFormatter would write -
    without a LogRecord, the record factory, Logger.handle/callHandlers and the formatter's attribute scan
    (~4x cheaper; BENCHMARKS.md "Deployed settings"). Any other handler (pytest's caplog, a handler a user
    added) or filter sends the access line through logging as before.
    """
    if log.handlers or log.filters or not log.propagate:
        return None
    handlers = _ROOT.handlers
    if len(handlers) != 1:
        return None
    handler = handlers[0]
    if not isinstance(handler, JsonLineHandler) or handler.filters or handler.level > logging.INFO:
        return None
    return handler


# The access line: the JSON object JsonFormatter writes for these keys (same keys, order, separators and
# ASCII escapes), assembled from pieces instead of encoding a dict (was ~4 us a line, now ~1.5 us):
# - the head - ts, level, logger, msg, pid - is built once per millisecond (a busy worker writes several
#   lines per millisecond), with ts in milliseconds: always three decimals, truncated, not rounded;
# - the part that depends only on the method, path, route and status once per such combination (most
#   requests repeat one: a health check, a list page);
# - duration_ms with two decimals (float repr and round() were ~1 us of the line between them).
# Strings that come from the client (method, path, request id) or the app go through the encoder's own C
# string escaper whenever their piece is built.
_quote: Callable[[str], str] = json.encoder.encode_basestring_ascii
_access_prefix = ""
#: the millisecond _head was built for, and '{"ts": <ms>, "level": ..., "request_id": '
_head_ms = -1
_head = ""
#: (method, path, route, status) -> '"method": ..., "status": 200, "duration_ms": '; only for paths that
#: are their route (no path parameters), and at most _MAX_FRAGMENTS of them (the method is the client's)
_fragments: dict[tuple[str, str, str, int], str] = {}
_MAX_FRAGMENTS = 256


def _reset_access_prefix() -> None:
    global _access_prefix, _head_ms
    _head_ms = -1
    _access_prefix = (
        f', "level": "info", "logger": {_LOGGER_NAME}, "msg": "request", "pid": {os.getpid()}, "request_id": '
    )


_reset_access_prefix()
os.register_at_fork(after_in_child=_reset_access_prefix)


def _access_fragment(method: str, path: str, route: str, status: int) -> str:
    key = (method, path, route, status)
    fragment = _fragments.get(key)
    if fragment is None:
        fragment = (
            f', "method": {_quote(method)}, "path": {_quote(path)}, "route": {_quote(route)}, '
            f'"status": {status}, "duration_ms": '
        )
        if path == route and len(_fragments) < _MAX_FRAGMENTS:
            _fragments[key] = fragment
    return fragment


def _write_access_line(handler: JsonLineHandler, line: str) -> None:
    handler.write_line(line)


def access_log(rid: str, method: str, path: str, route: str, status: int, duration_ms: float) -> None:
    """One JSON access line per request: the keys and order JsonFormatter gives `log.info("request", extra)`;
    ``duration_ms`` is written with two decimals.

    Nothing is built when INFO is disabled for the "app" logger.
    """
    if not log.isEnabledFor(logging.INFO):
        return
    handler = _access_handler()
    if handler is None:
        log.info(
            "request",
            extra={
                "method": method,
                "path": path,
                "route": route,
                "status": status,
                "duration_ms": round(duration_ms, 2),
            },
        )
        return
    global _head_ms, _head
    ms = int(time.time() * 1000)
    if ms != _head_ms:
        _head_ms = ms
        _head = f'{{"ts": {ms // 1000}.{ms % 1000:03d}{_access_prefix}'
    line = f"{_head}{_quote(rid)}{_access_fragment(method, path, route, status)}{duration_ms:.2f}}}\n"
    _write_access_line(handler, line)


def route_label(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    # Unmatched paths are collapsed so a scanner hitting random URLs cannot explode metric cardinality.
    return path if isinstance(path, str) else "<unmatched>"


class HttpTally:
    """This process's request counts and latencies, folded into the Prometheus counter and histogram in bulk.

    Recording a request is a dict lookup, a bisect and three additions (~0.5 us), where ``Counter.inc`` +
    ``Histogram.observe`` took a lock four times and walked the buckets (~3 us, ~4 % of a /health request's
    CPU; BENCHMARKS.md §10). The figures reach the Prometheus values:

    - before every ``/metrics`` answer of this process (:func:`metrics_payload`), so a scrape of a single
      worker is exact;
    - ``FLUSH_EVERY_S`` after the first request since the last fold (a timer on the event loop): under
      several gunicorn workers a scrape served by another worker reads this one's figures from the
      multiprocess files at most ~1 s behind;
    - at worker exit (gunicorn's ``worker_exit`` hook, with the log batch).

    A worker killed without running Python's exit (SIGKILL, OOM) loses at most its last ~1 s of counts.
    """

    FLUSH_EVERY_S = 1.0

    def __init__(self) -> None:
        self._pending: dict[tuple[str, str, int], list[Any]] = {}

    def record(self, method: str, route: str, status: int, elapsed_s: float) -> None:
        key = (method, route, status)
        pending = self._pending
        if not pending:  # the first request since the last fold: fold this batch in FLUSH_EVERY_S
            try:
                asyncio.get_running_loop().call_later(self.FLUSH_EVERY_S, self.flush)
            except RuntimeError:  # no event loop (not how the app runs): count it at once
                self._add(key, elapsed_s)
                self.flush()
                return
        self._add(key, elapsed_s)

    def _add(self, key: tuple[str, str, int], elapsed_s: float) -> None:
        entry = self._pending.get(key)
        if entry is None:
            entry = self._pending[key] = [0, 0.0, [0] * (len(_UPPER_BOUNDS) + 1)]
        entry[0] += 1
        entry[1] += elapsed_s
        # Histogram.observe's rule: the first bucket whose upper bound is >= the value (else +Inf)
        entry[2][_bisect_left(_UPPER_BOUNDS, elapsed_s)] += 1

    def discard(self) -> None:
        """Forget what was recorded and not folded (a forked child: the parent's requests are not its)."""
        self._pending = {}

    def flush(self) -> None:
        """Add everything recorded since the last flush to the Prometheus metrics."""
        if not self._pending:
            return
        pending, self._pending = self._pending, {}
        try:
            self._fold(pending)
        except Exception:  # a metrics problem must never fail a request or the loop's timer
            log.exception("folding request metrics failed")

    @staticmethod
    def _fold(pending: dict[tuple[str, str, int], list[Any]]) -> None:
        requests, latency = http_metrics()
        for (method, route, status), (count, total, buckets) in pending.items():
            counter, histogram = requests.labels(method, route, str(status)), latency.labels(method, route)
            counter.inc(count)
            # What Histogram.observe does per value, per bucket: prometheus-client has no bulk observe.
            # tests/app/test_observability.py checks the exposition against observe() itself.
            histogram._sum.inc(total)
            for i, n in enumerate(buckets):
                if n:
                    histogram._buckets[i].inc(n)


#: http_metrics()'s latency buckets, without +Inf (the tally's last slot)
_UPPER_BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_bisect_left = bisect.bisect_left
http_tally = HttpTally()
os.register_at_fork(after_in_child=http_tally.discard)


def record_http_metrics(method: str, route: str, status: int, elapsed_s: float) -> None:
    """Count one request and its latency (``http_requests_total``, ``http_request_duration_seconds``)."""
    http_tally.record(method, route, status, elapsed_s)


def flush_http_metrics() -> None:
    """Fold the requests recorded so far into the Prometheus metrics (see :class:`HttpTally`)."""
    http_tally.flush()


def new_request_id() -> str:
    """32 hex chars like uuid4().hex. An id, not a secret: 128 bits from the process's Mersenne Twister
    (what OpenTelemetry's trace ids use; re-seeded from os.urandom in each forked worker), which costs no
    getrandom() system call per request as os.urandom(16) did (~1 % of a worker's CPU)."""
    return f"{_getrandbits(128):032x}"


def metrics_payload() -> tuple[bytes, str]:
    """Exposition for /metrics. Under several gunicorn workers each worker writes its own mmap files in
    PROMETHEUS_MULTIPROC_DIR and the scrape aggregates them; otherwise a scrape would only see whichever
    worker happened to accept the connection (1/N of the traffic)."""
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

    http_tally.flush()

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    from prometheus_client import REGISTRY

    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


_SENSITIVE_HEADERS = frozenset({"authorization", "cookie", "set-cookie", "proxy-authorization"})


def sentry_before_send(event: Event, hint: Hint) -> Event | None:
    """Drop info/debug events (log noise that burns the Sentry quota, not errors) and anything a client
    sent that may be a credential: the request body (a login's password), cookies, bearer tokens."""
    if event.get("level") in ("info", "debug"):
        return None
    request = event.get("request")
    if isinstance(request, dict):
        request.pop("data", None)
        request.pop("cookies", None)
        headers = request.get("headers")
        if isinstance(headers, dict):
            for name in list(headers):
                if name.lower() in _SENSITIVE_HEADERS:
                    headers[name] = "[Filtered]"
    return event


def init_sentry(settings: Settings) -> bool:
    """Initialise Sentry only when SENTRY_DSN is set; returns whether it was initialised."""
    if settings.sentry_dsn is None:
        return False
    import sentry_sdk

    sentry_sdk.init(
        dsn=settings.sentry_dsn.get_secret_value(),
        environment=settings.app_env.value,
        traces_sample_rate=settings.sentry_traces_sample_rate,
        before_send=sentry_before_send,
        send_default_pii=False,
        # Never attach request bodies (a login's password, whatever a client posted) nor the local
        # variables of a failing frame (the parsed LoginIn is one) to an event.
        max_request_body_size="never",
        include_local_variables=False,
    )
    return True
