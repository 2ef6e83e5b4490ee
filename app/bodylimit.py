"""Request body limit, enforced while the body streams in (pure ASGI, like the request middleware).

A declared ``Content-Length`` over the limit is refused before the app runs, without reading a byte of
the body. A chunked (or under-declared) body is counted as ``receive()`` hands it over and the read stops
at the limit, so no more than limit + one chunk (uvicorn passes at most ~64 KiB at a time) is ever held.
Either way the client gets ``413 {"detail": "request body exceeds N bytes"}``, whatever the app was doing
with the body: FastAPI turns an unknown exception raised while it reads a body into a 400, so this
middleware raises an ``HTTPException`` (which FastAPI re-raises) *and* replaces any response the app tries
to send after the limit was crossed with its own 413. No traceback is logged: the exception never
leaves this middleware.

Starlette/FastAPI ship a ``max_body_size`` option too; it answers a plain-text 413 and still runs the
app for an over-declared ``Content-Length`` until the app reads, so it is not used here.

What happens to the rest of the upload: uvicorn discards body bytes that arrive after the response is
complete (it does not buffer them), and the connection stays usable for the next request.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from starlette.exceptions import HTTPException

from app.observability import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("app.bodylimit")


class BodyTooLarge(HTTPException):
    """Raised from ``receive()`` once the body passes the limit (an HTTPException so FastAPI's body
    reader re-raises it instead of turning it into a 400)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, detail=too_large_detail(limit))


def too_large_detail(limit: int) -> str:
    return f"request body exceeds {limit} bytes"


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the HTTP server refuses a malformed length before we get here
    return None


class BodyLimitMiddleware:
    """Refuse request bodies larger than ``max_bytes`` with a 413 JSON error, before holding them."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self._response = json.dumps({"detail": too_large_detail(max_bytes)}).encode()

    async def _send_413(self, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(self._response)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": self._response})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            log.info("request body too large", extra={"declared_bytes": declared, "limit_bytes": limit})
            await self._send_413(send)
            return

        received = 0
        exceeded = False
        started = False  # a response start reached the client
        replaced = False  # our 413 was sent in place of the app's response

        async def limited_receive() -> Message:
            nonlocal received, exceeded
            if exceeded:
                raise BodyTooLarge(limit)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    log.info(
                        "request body too large", extra={"received_bytes": received, "limit_bytes": limit}
                    )
                    raise BodyTooLarge(limit)
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started, replaced
            if exceeded and not started:
                # Whatever the app answers once the limit is crossed (FastAPI's 413 from the exception
                # above, or a 400/500 from code that swallowed it), the client gets the same 413.
                if not replaced:
                    replaced = True
                    await self._send_413(send)
                return
            if replaced:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception as exc:
            # Once the body ran over, whatever the app raised (our exception, or another one wrapping it
            # in code that caught it) is the consequence of the client's mistake: a 413, not a 500 with a
            # traceback. A response already under way cannot be replaced; then the error propagates.
            if not exceeded or (started and not _is_body_too_large(exc)):
                raise
            if not started and not replaced:
                replaced = True
                await self._send_413(send)
            # started: the response was already on its way before the body ran over (not something this
            # app does); nothing better to do than end it - never a traceback for the client's mistake.
        if exceeded and not started and not replaced:
            await self._send_413(send)


def _is_body_too_large(exc: BaseException) -> bool:
    if isinstance(exc, BodyTooLarge):
        return True
    inner: Any = getattr(exc, "exceptions", None)  # an ExceptionGroup from a task group
    return bool(inner) and all(_is_body_too_large(e) for e in inner)
