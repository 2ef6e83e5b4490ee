"""Hostile input: every bad request gets a 4xx JSON error, writes nothing, leaks nothing, and the worker
keeps serving. In-process against real PostgreSQL and Redis; the body limit also through real gunicorn."""

from __future__ import annotations

import json
import logging
import select
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import httpx
import pytest

from app.settings import DEFAULT_MAX_REQUEST_BODY_BYTES, Settings
from devenv.services import PostgresInstance, RedisInstance
from tests.app.conftest import USER_PASSWORD
from tests.app.servers import ROOT, gunicorn

LIMIT = DEFAULT_MAX_REQUEST_BODY_BYTES
TOO_LARGE = {"detail": f"request body exceeds {LIMIT} bytes"}
CHUNK = 64 * 1024
SECRET = "hunter2-Password-not-for-logs"


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class Upload:
    """A request body produced lazily in 64 KiB chunks; counts what the server actually pulled."""

    def __init__(self, total: int, prefix: bytes = b'{"name": "') -> None:
        self.total = total
        self.prefix = prefix
        self.pulled = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        sent = 0
        while sent < self.total:
            head = self.prefix if sent == 0 else b""
            chunk = head + b"a" * (min(CHUNK, self.total - sent) - len(head))
            self.pulled += len(chunk)
            sent += len(chunk)
            yield chunk


async def _count(pg: PostgresInstance, table: str) -> int:
    conn = await asyncpg.connect(pg.dsn)
    try:
        return int(await conn.fetchval(f"SELECT count(*) FROM {table}"))  # noqa: S608 - fixed names
    finally:
        await conn.close()


def _no_errors_logged(caplog: pytest.LogCaptureFixture) -> None:
    bad = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not bad, [r.getMessage() for r in bad]


def _assert_error_shape(r: httpx.Response) -> list[dict[str, Any]]:
    """A 422 lists where and why, and nothing else: no `input` (the value sent), no `ctx`."""
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/json"
    detail = r.json()["detail"]
    assert detail
    for err in detail:
        assert set(err) == {"loc", "msg", "type"}, err
    return list(detail)


# ------------------------------------------------------------------------------------------ body limit
async def test_a_declared_oversized_body_is_refused_before_a_byte_is_read(
    client: httpx.AsyncClient, token: str, pg: PostgresInstance, caplog: pytest.LogCaptureFixture
) -> None:
    body = Upload(LIMIT + 3 * 1024 * 1024)
    before = await _count(pg, "items")
    r = await client.post(
        "/api/items",
        content=body,
        headers={**_auth(token), "Content-Type": "application/json", "Content-Length": str(body.total)},
    )
    assert r.status_code == 413
    assert r.json() == TOO_LARGE
    assert r.headers["x-request-id"]  # inside the request middleware: logged and traceable like any request
    assert body.pulled == 0  # answered from the header alone
    assert await _count(pg, "items") == before
    _no_errors_logged(caplog)


@pytest.mark.parametrize("path", ["/api/items", "/api/auth/login", "/api/categories"])
async def test_a_chunked_oversized_body_is_cut_off_at_the_limit(
    client: httpx.AsyncClient, token: str, pg: PostgresInstance, caplog: pytest.LogCaptureFixture, path: str
) -> None:
    """No Content-Length: the app (FastAPI's body reader) is already consuming the stream when the limit is
    crossed. The client still gets the clean 413, not FastAPI's "error parsing the body" 400 or a 500."""
    body = Upload(LIMIT + 3 * 1024 * 1024)
    before = (await _count(pg, "items"), await _count(pg, "categories"))
    r = await client.post(path, content=body, headers={**_auth(token), "Content-Type": "application/json"})
    assert r.status_code == 413, r.text
    assert r.json() == TOO_LARGE
    assert body.pulled <= LIMIT + CHUNK  # stopped reading at the limit: never held the 4 MiB
    assert (await _count(pg, "items"), await _count(pg, "categories")) == before
    _no_errors_logged(caplog)
    # and the app goes on serving
    assert (await client.get("/api/items", params={"limit": 1})).status_code == 200


async def test_a_body_at_the_limit_is_accepted(client: httpx.AsyncClient, token: str) -> None:
    # Exactly LIMIT bytes of valid JSON reach the handler (the 422 is about the field, not the size).
    pad = LIMIT - len(b'{"name": ""}')
    r = await client.post(
        "/api/categories",
        content=b'{"name": "' + b"x" * pad + b'"}',
        headers={**_auth(token), "Content-Type": "application/json"},
    )
    assert len(r.request.content) == LIMIT
    assert [e["loc"] for e in _assert_error_shape(r)] == [["body", "name"]]


async def test_the_limit_comes_from_max_request_body_bytes(settings: Settings) -> None:
    from app.main import create_app

    app = create_app(settings.model_copy(update={"max_request_body_bytes": 2048}))
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            small = await c.post("/api/auth/login", json={"username": "a", "password": "x" * 1000})
            big = await c.post("/api/auth/login", json={"username": "a", "password": "x" * 3000})
        assert small.status_code == 401
        assert big.status_code == 413
        assert big.json() == {"detail": "request body exceeds 2048 bytes"}
    finally:
        await app.state.resources.close()


# ------------------------------------------------------------------------------ errors never echo input
async def test_a_form_encoded_login_is_refused_without_echoing_the_password(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    r = await client.post("/api/auth/login", data={"username": "alice", "password": SECRET})
    _assert_error_shape(r)
    assert SECRET not in r.text
    assert SECRET not in caplog.text


async def test_invalid_json_is_refused_without_echoing_the_body(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    r = await client.post(
        "/api/auth/login",
        content=f'{{"username": "alice", "password": "{SECRET}'.encode(),
        headers={"Content-Type": "application/json"},
    )
    (err,) = _assert_error_shape(r)
    assert err["type"] == "json_invalid"
    assert SECRET not in r.text
    assert SECRET not in caplog.text


async def test_a_wrong_typed_login_does_not_echo_the_values(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/auth/login", json={"username": ["alice"], "password": {"p": SECRET}})
    locs = [e["loc"] for e in _assert_error_shape(r)]
    assert locs == [["body", "username"], ["body", "password"]]
    assert SECRET not in r.text


# -------------------------------------------------------------------------------- integer bounds
@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/api/items/99999999999", {}),
        ("/api/items/2147483648", {}),
        ("/api/items/0", {}),
        ("/api/items", {"category_id": 2**31}),
        ("/api/items", {"offset": 2**31}),
        ("/api/items", {"offset": 10**30}),
    ],
)
async def test_numbers_beyond_the_integer_columns_are_a_422(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture, path: str, params: dict[str, int]
) -> None:
    r = await client.get(path, params=params)
    _assert_error_shape(r)
    _no_errors_logged(caplog)


async def test_the_largest_integer_still_works(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/items/2147483647")).status_code == 404
    r = await client.get("/api/items", params={"category_id": 2**31 - 1, "offset": 2**31 - 1})
    assert r.status_code == 200
    assert r.json() == []


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x", "price_cents": 2**31, "category_id": 1},
        {"name": "x", "price_cents": 1, "category_id": 2**31},
        {"name": "x", "price_cents": 1, "category_id": 10**40},
    ],
)
async def test_body_integers_beyond_int32_are_a_422(
    client: httpx.AsyncClient, token: str, pg: PostgresInstance, body: dict[str, Any]
) -> None:
    before = await _count(pg, "items")
    _assert_error_shape(await client.post("/api/items", json=body, headers=_auth(token)))
    assert await _count(pg, "items") == before


async def test_reviewing_an_item_id_beyond_int32_is_a_422(client: httpx.AsyncClient, token: str) -> None:
    r = await client.post("/api/items/2147483648/reviews", json={"rating": 3}, headers=_auth(token))
    assert [e["loc"] for e in _assert_error_shape(r)] == [["path", "item_id"]]


# -------------------------------------------------------------------------- strings PostgreSQL refuses
# JSON text as sent on the wire: "\u0000" is a NUL, "\ud800" a lone surrogate (valid JSON, no UTF-8 form).
NUL = "\\u0000"
SURROGATE = "\\ud800"


def _raw_json(template: str, bad: str) -> bytes:
    return template.replace("BAD", bad).encode()


@pytest.mark.parametrize("bad", [NUL, SURROGATE], ids=["nul", "lone-surrogate"])
@pytest.mark.parametrize("field", ["username", "password"])
async def test_login_refuses_unstorable_strings(
    client: httpx.AsyncClient,
    users: list[str],
    redis_server: RedisInstance,
    caplog: pytest.LogCaptureFixture,
    bad: str,
    field: str,
) -> None:
    creds = {"username": "alice", "password": USER_PASSWORD}
    template = json.dumps({**creds, field: f"{creds[field]}BAD"})
    r = await client.post(
        "/api/auth/login", content=_raw_json(template, bad), headers={"Content-Type": "application/json"}
    )
    assert [e["loc"] for e in _assert_error_shape(r)] == [["body", field]]
    _no_errors_logged(caplog)
    # Refused before the rate limiter: Redis is not marked down (a surrogate key would make redis-py fail)
    assert not [rec for rec in caplog.records if "degraded" in rec.getMessage()]
    ok = await client.post("/api/auth/login", json=creds)
    assert ok.status_code == 200


@pytest.fixture
async def existing(client: httpx.AsyncClient, token: str) -> tuple[int, int]:
    import uuid

    cat = await client.post("/api/categories", json={"name": f"c-{uuid.uuid4().hex}"}, headers=_auth(token))
    assert cat.status_code == 201, cat.text
    item = await client.post(
        "/api/items",
        json={"name": "i", "price_cents": 1, "category_id": cat.json()["id"]},
        headers=_auth(token),
    )
    assert item.status_code == 201, item.text
    return int(cat.json()["id"]), int(item.json()["id"])


@pytest.mark.parametrize("bad", [NUL, SURROGATE], ids=["nul", "lone-surrogate"])
@pytest.mark.parametrize(
    ("path", "template"),
    [
        ("/api/categories", '{"name": "catBAD"}'),
        ("/api/items", '{"name": "kettleBAD", "price_cents": 1, "category_id": CAT}'),
        ("/api/items", '{"name": "kettle", "description": "BAD", "price_cents": 1, "category_id": CAT}'),
        ("/api/items/ITEM/reviews", '{"rating": 3, "body": "greatBAD"}'),
    ],
)
async def test_item_fields_refuse_unstorable_strings(
    client: httpx.AsyncClient,
    token: str,
    pg: PostgresInstance,
    caplog: pytest.LogCaptureFixture,
    bad: str,
    path: str,
    template: str,
    existing: tuple[int, int],
) -> None:
    # Into an existing category / item, so nothing but the string itself can be the reason for the 4xx.
    cat, item = existing
    path = path.replace("ITEM", str(item))
    template = template.replace("CAT", str(cat))
    tables = ("items", "categories", "reviews")
    before = [await _count(pg, t) for t in tables]
    r = await client.post(
        path, content=_raw_json(template, bad), headers={**_auth(token), "Content-Type": "application/json"}
    )
    (err,) = _assert_error_shape(r)
    assert err["loc"][0] == "body"
    assert [await _count(pg, t) for t in tables] == before
    _no_errors_logged(caplog)
    # the same request without the bad character is stored
    good = await client.post(
        path, content=_raw_json(template, ""), headers={**_auth(token), "Content-Type": "application/json"}
    )
    assert good.status_code in (201, 409), good.text  # 409: the category name exists from another case


# ------------------------------------------------------------------ through real gunicorn (sockets)
@pytest.fixture(scope="module")
def served(pg: PostgresInstance, redis_server: RedisInstance) -> Iterator[Any]:
    if redis_server.proc is None:
        redis_server.start()
    env = {
        "APP_ENV": "production",
        "DATABASE_URL": pg.url,
        "REDIS_URL": redis_server.url,
        "JWT_SECRET_KEY": "k" * 48,
        "WEB_CONCURRENCY": "1",
        "MAX_REQUEST_BODY_BYTES": str(LIMIT),
    }
    cmd = [
        str(ROOT / ".venv" / "bin" / "gunicorn"),
        "--config",
        "app/gunicorn_conf.py",
        "app.main:create_app()",
    ]
    with gunicorn(cmd, env, ROOT) as server:
        yield server


def _raw_request(url: str, head: bytes, body_chunks: Iterator[bytes], timeout: float = 20) -> bytes:
    """Send a request over a plain socket, keep sending until the server answers or closes; return what
    it answered. (A client library would stop at the first error; a real uploader just keeps pushing.)"""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        s.sendall(head)
        answer = b""
        for chunk in body_chunks:
            try:
                s.sendall(chunk)  # blocking: never a partial frame (that would corrupt the chunked framing)
            except (BrokenPipeError, ConnectionResetError):
                break
            if select.select([s], [], [], 0)[0]:  # an answer is waiting (recv on a socket with a timeout
                answer += s.recv(65536)  # would wait for one, even with MSG_DONTWAIT)
            if b"\r\n\r\n" in answer:
                break
        s.settimeout(timeout)
        while b"\r\n\r\n" not in answer or not answer.endswith(b"}"):
            data = s.recv(65536)
            if not data:
                break
            answer += data
        return answer


def _chunks(total: int, chunked: bool) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        n = min(CHUNK, total - sent)
        sent += n
        yield (f"{n:x}\r\n".encode() + b"a" * n + b"\r\n") if chunked else b"a" * n
    if chunked:
        yield b"0\r\n\r\n"


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_gunicorn_answers_413_to_a_large_upload_and_keeps_serving(served: Any, chunked: bool) -> None:
    total = LIMIT + 4 * 1024 * 1024
    framing = b"Transfer-Encoding: chunked" if chunked else f"Content-Length: {total}".encode()
    head = (
        b"POST /api/auth/login HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        + framing
        + b"\r\n\r\n"
    )
    answer = _raw_request(served.url, head, _chunks(total, chunked))
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.startswith(b"HTTP/1.1 413 "), answer[:300]
    assert json.loads(rest.partition(b"\r\n\r\n")[2]) == TOO_LARGE
    assert httpx.get(f"{served.url}/health", timeout=5).status_code == 200  # the worker is alive
    logs = served.logs()
    assert not [r for r in logs if r.get("level") in ("error", "critical") or "exc" in r], logs[-5:]
    assert [r["status"] for r in logs if r.get("msg") == "request" and r.get("path") == "/api/auth/login"][
        -1
    ] == 413


# ------------------------------------------------------------- the middleware around code that misbehaves
async def _swallowing_app(scope: Any, receive: Any, send: Any) -> None:
    """Reads the body, catches the limit's exception and answers something else (as FastAPI does for
    other body-read errors, with a 400)."""
    try:
        while (await receive()).get("more_body"):
            pass
    except Exception:  # deliberately careless code
        await send({"type": "http.response.start", "status": 400, "headers": []})
        await send({"type": "http.response.body", "body": b"bad"})


async def _wrapping_app(scope: Any, receive: Any, send: Any) -> None:
    """Reads the body and lets the limit's exception escape wrapped in another one."""
    try:
        while (await receive()).get("more_body"):
            pass
    except Exception as exc:
        raise RuntimeError("while reading the body") from exc


@pytest.mark.parametrize("inner", [_swallowing_app, _wrapping_app], ids=["swallows", "wraps"])
async def test_whatever_the_app_does_with_the_limit_the_client_gets_the_413(inner: Any) -> None:
    from app.bodylimit import BodyLimitMiddleware

    app = BodyLimitMiddleware(inner, max_bytes=4096)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        r = await c.post("/", content=Upload(100_000))
    assert r.status_code == 413
    assert r.json() == {"detail": "request body exceeds 4096 bytes"}
