"""JSON logs with a request id, Prometheus metrics (multiprocess-aware) and Sentry.

The request middleware is plain ASGI: BaseHTTPMiddleware wraps every response body in an extra task and
memory stream, which costs throughput and breaks streaming/cancellation semantics.
"""

from __future__ import annotations

import contextvars
import functools
import json
import logging
import os
import re
import sys
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

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
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
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
        buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
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


def _stamp_request_id(factory: Callable[..., logging.LogRecord]) -> Callable[..., logging.LogRecord]:
    def make(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        record.request_id = request_id_var.get()
        return record

    make._app_stamp = True  # type: ignore[attr-defined]
    return make


def configure_logging(level: str) -> None:
    """Route the root logger (and uvicorn's/gunicorn's) to stderr as JSON."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler._app_json = True  # type: ignore[attr-defined]
    root = logging.getLogger()
    # Replace only our own handler (create_app may run more than once per process, e.g. in tests) and
    # leave foreign ones such as pytest's capture handler alone.
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
_pid = os.getpid()


def _reset_pid() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_reset_pid)


def _access_handler() -> logging.Handler | None:
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
    if not getattr(handler, "_app_json", False) or handler.filters or handler.level > logging.INFO:
        return None
    return handler


def _write_access_line(handler: logging.Handler, fields: dict[str, Any]) -> None:
    line = _ENCODER.encode(fields) + "\n"
    stream = handler.stream  # type: ignore[attr-defined]  # a StreamHandler (configure_logging)
    handler.acquire()
    try:
        stream.write(line)
        stream.flush()
    except Exception:  # logging never raises into the request; report like Handler.handleError
        handler.handleError(logging.makeLogRecord({"msg": "request", "name": log.name}))
    finally:
        handler.release()


def access_log(rid: str, method: str, path: str, route: str, status: int, duration_ms: float) -> None:
    """One JSON access line per request: the keys and order JsonFormatter gives `log.info("request", extra)`.

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
                "duration_ms": duration_ms,
            },
        )
        return
    _write_access_line(
        handler,
        {
            "ts": round(time.time(), 3),
            "level": "info",
            "logger": log.name,
            "msg": "request",
            "pid": _pid,
            "request_id": rid,
            "method": method,
            "path": path,
            "route": route,
            "status": status,
            "duration_ms": duration_ms,
        },
    )


# Metric children per label set: .labels() takes a lock and validates/str()s the labels on every call.
# Bounded (methods come from clients); past the cap, labels() is called as before.
_MAX_CACHED_CHILDREN = 1024
_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}


def _metric_children(method: str, route: str, status: int) -> tuple[Any, Any]:
    key = (method, route, status)
    pair = _children.get(key)
    if pair is None:
        requests, latency = http_metrics()
        pair = (requests.labels(method, route, str(status)), latency.labels(method, route))
        if len(_children) < _MAX_CACHED_CHILDREN:
            _children[key] = pair
    return pair


def _route_label(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    # Unmatched paths are collapsed so a scanner hitting random URLs cannot explode metric cardinality.
    return path if isinstance(path, str) else "<unmatched>"


class RequestContextMiddleware:
    """Assigns/propagates X-Request-ID, logs one JSON access line and records metrics per HTTP request
    (``metrics=False``: no metrics, and prometheus-client is never imported)."""

    def __init__(self, app: ASGIApp, metrics: bool = True) -> None:
        self.app = app
        self._metrics = http_metrics() if metrics else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = None
        for name, value in scope.get("headers", ()):
            if name == b"x-request-id":
                candidate = value.decode("latin-1")
                if _REQUEST_ID_RE.match(candidate):
                    rid = candidate
                break
        rid = rid or os.urandom(16).hex()  # 32 hex chars like uuid4().hex, without building a UUID
        token = request_id_var.set(rid)
        status = 500
        start = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - start
            route = _route_label(scope)
            method = scope.get("method", "")
            if self._metrics is not None:
                counter, histogram = _metric_children(method, route, status)
                counter.inc()
                histogram.observe(elapsed)
            access_log(rid, method, scope.get("path", ""), route, status, round(elapsed * 1000, 2))
            request_id_var.reset(token)


def metrics_payload() -> tuple[bytes, str]:
    """Exposition for /metrics. Under several gunicorn workers each worker writes its own mmap files in
    PROMETHEUS_MULTIPROC_DIR and the scrape aggregates them; otherwise a scrape would only see whichever
    worker happened to accept the connection (1/N of the traffic)."""
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

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
