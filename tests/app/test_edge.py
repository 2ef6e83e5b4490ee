"""app.edge.EdgeMiddleware answers exactly as the four layers it replaced.

The reference is the layered stack the service ran before: a request-id layer outermost, Starlette's
CORSMiddleware, app.bodylimit.BodyLimitMiddleware, then app.edge.DatabaseUnavailableMiddleware innermost.
Both sit in a FastAPI app the same way (``add_middleware``: between Starlette's ServerErrorMiddleware and
its ExceptionMiddleware), and every request of the table must get the same status, headers (in order) and
body from both - with and without CORS configured, with and without a body or an ``Origin``, for database
outages, an open circuit breaker, bodies over the limit (declared and chunked) and unrelated errors.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.middleware.cors import CORSMiddleware

from app.bodylimit import BodyLimitMiddleware
from app.breaker import CircuitOpenError
from app.edge import DatabaseUnavailableMiddleware, EdgeMiddleware
from app.observability import Message, Receive, Scope, Send

LIMIT = 1024
CORS: dict[str, Any] = dict(
    allow_origins=["https://app.example.com"],
    allow_headers=["Authorization", "Content-Type"],
    allow_methods=["GET", "POST", "OPTIONS"],
    expose_headers=["X-Request-ID", "Retry-After"],
)
RID = {"X-Request-ID": "edge-test-1"}
GOOD = {**RID, "Origin": "https://app.example.com"}
EVIL = {**RID, "Origin": "https://evil.example.net"}


class _RequestIdLayer:
    """The old RequestContextMiddleware's effect on the answer: the request id appended to the headers."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = dict(scope["headers"]).get(b"x-request-id", b"")

        async def wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", rid)]
            await send(message)

        await self.app(scope, receive, wrapper)


def _app(edge: bool, cors: dict[str, Any] | None) -> FastAPI:
    app = FastAPI()

    @app.get("/plain")
    async def plain() -> dict[str, str]:
        return {"ok": "1"}

    @app.get("/varied")
    async def varied() -> JSONResponse:
        r = JSONResponse({"ok": "1"})
        r.raw_headers += [(b"vary", b"Accept"), (b"x-a", b"1"), (b"vary", b"Cookie")]
        return r

    @app.get("/db-down")
    async def db_down() -> None:
        raise ConnectionRefusedError("connect to 10.0.0.5:5432 refused")

    @app.get("/circuit")
    async def circuit() -> None:
        raise CircuitOpenError("postgres", 3)

    @app.get("/boom")
    async def boom() -> None:
        raise ValueError("unrelated")

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        return {"received": len(await request.body())}

    if edge:
        app.add_middleware(EdgeMiddleware, max_body_bytes=LIMIT, cors=cors, metrics=False)
    else:
        app.add_middleware(DatabaseUnavailableMiddleware)
        app.add_middleware(BodyLimitMiddleware, max_bytes=LIMIT)
        if cors is not None:
            app.add_middleware(CORSMiddleware, **cors)
        app.add_middleware(_RequestIdLayer)
    return app


async def _chunks(n: int) -> AsyncIterator[bytes]:
    for _ in range(n):
        yield b"x" * 512


REQUESTS: list[tuple[str, str, dict[str, str], Any]] = [
    ("GET", "/plain", RID, None),
    ("GET", "/plain", GOOD, None),
    ("GET", "/plain", EVIL, None),
    ("GET", "/varied", RID, None),
    ("GET", "/varied", GOOD, None),
    ("GET", "/nowhere", RID, None),
    ("GET", "/nowhere", GOOD, None),
    ("OPTIONS", "/plain", {**GOOD, "Access-Control-Request-Method": "GET"}, None),
    ("OPTIONS", "/plain", {**EVIL, "Access-Control-Request-Method": "GET"}, None),
    ("OPTIONS", "/plain", {**GOOD, "Access-Control-Request-Method": "DELETE"}, None),
    ("OPTIONS", "/plain", RID, None),
    ("GET", "/db-down", RID, None),
    ("GET", "/db-down", GOOD, None),
    ("GET", "/circuit", RID, None),
    ("GET", "/circuit", GOOD, None),
    ("GET", "/boom", RID, None),
    ("GET", "/boom", GOOD, None),
    ("POST", "/echo", RID, b"x" * 100),
    ("POST", "/echo", GOOD, b"x" * 100),
    ("POST", "/echo", RID, b""),
    ("POST", "/echo", RID, b"x" * (LIMIT + 1)),
    ("POST", "/echo", GOOD, b"x" * (LIMIT + 1)),
    ("POST", "/echo", RID, "chunked-under"),
    ("POST", "/echo", RID, "chunked-over"),
    ("POST", "/echo", GOOD, "chunked-over"),
]


async def _answer(app: FastAPI, method: str, path: str, headers: dict[str, str], body: Any) -> Any:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    content = {"chunked-under": _chunks(1), "chunked-over": _chunks(3)}.get(body, body)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        r = await c.request(method, path, headers=headers, content=content)
    return r.status_code, r.headers.multi_items(), r.content


@pytest.mark.parametrize("cors", [CORS, None], ids=["cors", "no-cors"])
@pytest.mark.parametrize(("method", "path", "headers", "body"), REQUESTS)
async def test_edge_answers_exactly_as_the_layered_stack(
    cors: dict[str, Any] | None, method: str, path: str, headers: dict[str, str], body: Any
) -> None:
    layered = await _answer(_app(False, cors), method, path, headers, body)
    edge = await _answer(_app(True, cors), method, path, headers, body)
    assert edge == layered
    if edge[0] != 500:  # an unrelated error reaches Starlette's ServerErrorMiddleware: its own plain 500
        assert ("x-request-id", "edge-test-1") in edge[1]


async def test_the_answers_differ_where_the_table_expects_them_to() -> None:
    """The comparison above can fail: CORS headers, the 503, the 413 and Vary are really in the answers."""
    status, headers, _ = await _answer(_app(True, CORS), "GET", "/db-down", GOOD, None)
    assert status == 503
    assert ("access-control-allow-origin", "https://app.example.com") in headers
    assert ("retry-after", "5") in headers
    status, headers, body = await _answer(_app(True, CORS), "POST", "/echo", RID, "chunked-over")
    assert (status, body) == (413, b'{"detail": "request body exceeds 1024 bytes"}')
    assert ("vary", "Origin") in headers
    status, headers, _ = await _answer(_app(True, None), "GET", "/plain", RID, None)
    assert status == 200
    assert not any(k == "vary" for k, _ in headers)
    status, _, _ = await _answer(_app(True, CORS), "GET", "/circuit", RID, None)
    assert status == 503
