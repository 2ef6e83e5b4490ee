"""The service's edge: one ASGI layer for what every request gets.

Per HTTP request: the request id (a caller's ``X-Request-ID`` if it is short and boring, else a new one) on
the response and in every log line, one JSON access line, the Prometheus counter and histogram, CORS
(``Vary: Origin`` on every answer; Starlette's CORS for requests that carry an ``Origin``), the request body
limit (app.bodylimit) and database outages answered with a 503 (:class:`DatabaseUnavailableMiddleware`).

These were four middleware layers, each with its own ``send`` wrapper: a response passed through four
coroutines on its way out, and the layers were a third of the service's extra CPU over a bare FastAPI app
on /health (BENCHMARKS.md §10). Here the common request - no body, no ``Origin`` - runs all of it in one
layer with one ``send`` wrapper. A request with a body goes through :class:`~app.bodylimit.
BodyLimitMiddleware` (which counts the body as it streams in), one with an ``Origin`` through Starlette's
CORS as well; the answers are the same either way (tests/app/test_edge.py compares them with the layered
stack this replaced).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.middleware.cors import CORSMiddleware

from app.bodylimit import BodyLimitMiddleware
from app.breaker import CircuitOpenError
from app.db import DB_USE_SCOPE_KEY, DbUse, unavailable_errors
from app.observability import (
    REQUEST_ID_RE,
    ASGIApp,
    Message,
    Receive,
    Scope,
    Send,
    access_log,
    new_request_id,
    record_http_metrics,
    request_id_var,
    route_label,
)

log = logging.getLogger("app")

_perf_counter = time.perf_counter
_request_id_ok = REQUEST_ID_RE.match
#: the request headers EdgeMiddleware acts on
_WATCHED = frozenset({b"x-request-id", b"origin", b"content-length", b"transfer-encoding"})
_VARY_ORIGIN = (b"vary", b"Origin")


async def _db_unavailable(request: Request, exc: Exception) -> JSONResponse:
    # Pool exhausted / DB unreachable: a clean 503 the LB and clients understand, not a 500 with a traceback.
    if isinstance(exc, CircuitOpenError):
        # Refused without trying (breaker open): no log line per request - the breaker logs opening/closing.
        retry_after = exc.retry_after
    else:
        log.error("database unavailable", extra={"error": type(exc).__name__, "detail": str(exc)[:200]})
        retry_after = 5
    return JSONResponse(
        {"detail": "database unavailable"}, status_code=503, headers={"Retry-After": str(retry_after)}
    )


def _outcome_of(exc: Exception) -> bool | None:
    """For an exception out of the app: False = the database failed, None = the breaker refused without
    trying (CircuitOpenError). Anything else is not ours to answer: re-raised."""
    if isinstance(exc, CircuitOpenError):
        return None
    if isinstance(exc, (OSError, TimeoutError, *unavailable_errors())):
        return False
    raise exc


def _report(use: DbUse, outcome: bool | None) -> None:
    if use.breaker is not None:
        if outcome is True:
            use.breaker.success()
        elif outcome is False:
            use.breaker.failure()
        else:
            use.breaker.release(use.probe)


class DatabaseUnavailableMiddleware:
    """Answers 503 (via `_db_unavailable`) for the errors that mean the database is unreachable: SQLAlchemy's
    OperationalError / InterfaceError / pool TimeoutError, ConnectionError / TimeoutError / OSError, and
    CircuitOpenError (the breaker refused the request at once; Retry-After = until its next probe).

    It also reports each request that took a session (app.db.get_session, which acquired the database's
    circuit breaker) to the breaker: an unavailable error is a failure; a request that reached the database
    (a transaction began) and ended without one is a success; anything else (no query made, cancelled, an
    unrelated error) only frees the half-open probe slot.

    Sits where Starlette's exception middleware sits (inside CORS and the body limit), but without needing
    SQLAlchemy's classes at start: a Lambda cold start serving /health never imports SQLAlchemy.
    :class:`EdgeMiddleware` does the same inline for a request without a body or ``Origin``.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def sender(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        use = scope[DB_USE_SCOPE_KEY] = DbUse()
        outcome: bool | None = None  # True: the database answered; False: it failed
        try:
            await self.app(scope, receive, sender)
            outcome = True if use.reached() else None
        except Exception as exc:
            outcome = _outcome_of(exc)
            if started:
                raise
            response = await _db_unavailable(Request(scope), exc)
            await response(scope, receive, send)
        finally:
            _report(use, outcome)


def add_vary_origin(headers: list[tuple[bytes, bytes]]) -> None:
    """What Starlette's CORS does for a request without Origin: ``headers["Vary"] = ", ".join([*getlist(
    "Vary"), "Origin"])`` - the existing Vary values joined into the first one, any others dropped."""
    for name, _ in headers:
        if name == b"vary":
            break
    else:  # the common case: no Vary yet (a plain scan, no list built)
        headers.append(_VARY_ORIGIN)
        return
    found = [i for i, (name, _) in enumerate(headers) if name == b"vary"]
    value = b", ".join([*(headers[i][1] for i in found), b"Origin"])
    headers[found[0]] = (b"vary", value)
    for i in reversed(found[1:]):
        del headers[i]


class EdgeMiddleware:
    """Request id, access line, metrics, CORS, body limit and database outages in one layer (see the module).

    ``cors``: CORSMiddleware's keyword arguments (allow_origins, ...), or None for no CORS at all (then no
    ``Vary: Origin`` either). ``metrics=False``: no Prometheus metrics, and prometheus-client is never
    imported.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        cors: Mapping[str, Any] | None = None,
        metrics: bool = True,
    ) -> None:
        self.app = app
        self._metrics = metrics
        #: requests with a body: counted while it streams in, then as below
        self._bodied = BodyLimitMiddleware(DatabaseUnavailableMiddleware(app), max_bytes=max_body_bytes)
        #: requests with an Origin (when CORS is on): Starlette's CORS around the above
        self._cors = CORSMiddleware(self._bodied, **cors) if cors is not None else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid: str | None = None
        seen_rid = origin = bodied = False
        for name, value in scope["headers"]:
            if name not in _WATCHED:  # most headers: one hash lookup
                continue
            if name == b"x-request-id":
                if not seen_rid:  # the first one only
                    seen_rid = True
                    candidate = value.decode("latin-1")
                    if _request_id_ok(candidate):
                        rid = candidate
            elif name == b"origin":
                origin = True
            elif name == b"content-length":
                bodied = bodied or value != b"0"
            else:  # transfer-encoding
                bodied = True
        if rid is None:
            rid = new_request_id()
        rid_header = (b"x-request-id", rid.encode())
        vary = self._cors is not None and not origin
        token = request_id_var.set(rid)
        status = 500
        started = False
        start = _perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status = message["status"]
                started = True
                headers = list(message.get("headers", ()))
                if vary:
                    add_vary_origin(headers)
                headers.append(rid_header)
                message["headers"] = headers
            await send(message)

        try:
            if origin and self._cors is not None:
                await self._cors(scope, receive, send_wrapper)
            elif bodied:
                await self._bodied(scope, receive, send_wrapper)
            else:
                # No body, no Origin: DatabaseUnavailableMiddleware's work, inline.
                use = scope[DB_USE_SCOPE_KEY] = DbUse()
                outcome: bool | None = None
                try:
                    await self.app(scope, receive, send_wrapper)
                    outcome = True if use.reached() else None
                except Exception as exc:
                    outcome = _outcome_of(exc)
                    if started:
                        raise
                    response = await _db_unavailable(Request(scope), exc)
                    await response(scope, receive, send_wrapper)
                finally:
                    _report(use, outcome)
        finally:
            elapsed = _perf_counter() - start
            route = route_label(scope)
            method = scope["method"]
            if self._metrics:
                record_http_metrics(method, route, status, elapsed)
            access_log(rid, method, scope["path"], route, status, elapsed * 1000)
            request_id_var.reset(token)
