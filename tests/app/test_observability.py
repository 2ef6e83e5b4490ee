"""Request ids, JSON logs, CORS from settings, Sentry wiring."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
from typing import Any

import httpx
import pytest
import sentry_sdk
from sentry_sdk.types import Event

from app import observability
from app.main import create_app
from app.observability import (
    JsonFormatter,
    configure_logging,
    init_sentry,
    request_id_var,
    sentry_before_send,
)
from app.settings import Settings, load_settings

PG = "postgresql+asyncpg://u:p@127.0.0.1:9/x"
RD = "redis://127.0.0.1:9/0"


async def test_request_id_is_generated_and_propagated(client: httpx.AsyncClient) -> None:
    r = await client.get("/health")
    generated = r.headers["x-request-id"]
    assert len(generated) == 32
    r2 = await client.get("/health")
    assert r2.headers["x-request-id"] != generated
    r3 = await client.get("/health", headers={"X-Request-ID": "lb-trace-42"})
    assert r3.headers["x-request-id"] == "lb-trace-42"
    # A hostile id (log injection) is replaced, not echoed.
    r4 = await client.get("/health", headers={"X-Request-ID": 'x"\n{"level":"critical"}'})
    assert r4.headers["x-request-id"] != 'x"\n{"level":"critical"}'
    assert len(r4.headers["x-request-id"]) == 32


async def test_access_log_is_json_with_request_id(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="app")
    await client.get("/api/items/424242", headers={"X-Request-ID": "rid-404"})
    records = [r for r in caplog.records if r.getMessage() == "request"]
    assert records
    line = json.loads(JsonFormatter().format(records[-1]))  # formatted after the request ended
    assert line["request_id"] == "rid-404"
    assert line["status"] == 404
    assert line["route"] == "/api/items/{item_id}"  # the template, not the raw path: bounded cardinality
    assert line["level"] == "info"
    assert isinstance(line["pid"], int)


def test_json_formatter_includes_exceptions() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        rec = logging.getLogger("t").makeRecord(
            "t", logging.ERROR, "f", 1, "failed %s", ("x",), __import__("sys").exc_info()
        )
    out = json.loads(JsonFormatter().format(rec))
    assert out["msg"] == "failed x"
    assert "ValueError: boom" in out["exc"]


async def test_unmatched_paths_collapse_in_metrics(client: httpx.AsyncClient) -> None:
    for i in range(3):
        await client.get(f"/random-scan-{i}")
    text = (await client.get("/metrics")).text
    assert 'route="<unmatched>"' in text
    assert "random-scan" not in text


async def test_cors_uses_configured_origins(settings: Settings) -> None:
    s = settings.model_copy(update={"cors_origins": "https://app.example.com"})
    app = create_app(s)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        pre = await c.options(
            "/api/items",
            headers={"Origin": "https://app.example.com", "Access-Control-Request-Method": "GET"},
        )
        assert pre.status_code == 200
        assert pre.headers["access-control-allow-origin"] == "https://app.example.com"
        evil = await c.get("/health", headers={"Origin": "https://evil.example.net"})
        assert "access-control-allow-origin" not in evil.headers
        assert pre.headers["x-request-id"]  # preflights carry a request id too
    await app.state.resources.close()


def test_sentry_drops_info_keeps_errors() -> None:
    info: Event = {"level": "info", "message": "hi"}
    debug: Event = {"level": "debug"}
    assert sentry_before_send(info, {}) is None
    assert sentry_before_send(debug, {}) is None
    err: Event = {"level": "error", "message": "bad"}
    assert sentry_before_send(err, {}) is err


def test_sentry_events_carry_no_body_cookie_or_token() -> None:
    event: Event = {
        "level": "error",
        "request": {
            "url": "https://api.example.com/api/auth/login",
            "data": {"username": "alice", "password": "hunter2-very-secret"},
            "cookies": {"session": "abc"},
            "headers": {"Authorization": "Bearer eyJ.secret.token", "User-Agent": "curl"},
        },
    }
    out = sentry_before_send(event, {})
    assert out is not None
    text = repr(out)
    assert "hunter2-very-secret" not in text
    assert "eyJ.secret.token" not in text
    assert "abc" not in text
    assert out["request"]["headers"]["User-Agent"] == "curl"  # the rest stays useful


def test_sentry_only_with_dsn(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, object]] = []
    monkeypatch.setattr(sentry_sdk, "init", lambda **kw: calls.append(kw))
    assert init_sentry(load_settings(database_url=PG, redis_url=RD)) is False
    assert calls == []
    s = load_settings(database_url=PG, redis_url=RD, sentry_dsn="https://pub@o1.ingest.sentry.io/1")
    assert init_sentry(s) is True
    assert calls[0]["traces_sample_rate"] == 0.1  # the default
    assert calls[0]["before_send"] is sentry_before_send
    assert calls[0]["max_request_body_size"] == "never"  # the SDK never reads a body into an event
    assert calls[0]["include_local_variables"] is False  # nor a frame's locals (a parsed password)
    assert calls[0]["dsn"] == "https://pub@o1.ingest.sentry.io/1"
    s2 = load_settings(
        database_url=PG,
        redis_url=RD,
        sentry_dsn="https://pub@o1.ingest.sentry.io/1",
        sentry_traces_sample_rate=0.5,
    )
    init_sentry(s2)
    assert calls[1]["traces_sample_rate"] == 0.5


async def test_metrics_can_be_switched_off(settings: Settings) -> None:
    # Lambda and Cloud Run have no private path a scraper could use: there /metrics must not exist.
    app = create_app(settings.model_copy(update={"metrics_enabled": False}))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        await c.get("/health")
        assert (await c.get("/metrics")).status_code == 404
        assert (await c.get("/health")).status_code == 200
    await app.state.resources.close()


def test_metrics_enabled_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("METRICS_ENABLED", raising=False)
    assert load_settings(database_url=PG, redis_url=RD).metrics_enabled is True
    monkeypatch.setenv("METRICS_ENABLED", "false")
    assert load_settings(database_url=PG, redis_url=RD).metrics_enabled is False


@pytest.mark.parametrize("header", ["X-Forwarded-For", "Forwarded"])
async def test_metrics_are_not_served_through_a_proxy(client: httpx.AsyncClient, header: str) -> None:
    # The ALB, Caddy and Google's front end add X-Forwarded-For; an in-network scraper does not.
    assert (await client.get("/metrics")).status_code == 200
    value = "for=203.0.113.7" if header == "Forwarded" else "203.0.113.7"
    proxied = await client.get("/metrics", headers={header: value})
    assert proxied.status_code == 404
    assert "http_requests_total" not in proxied.text


@pytest.fixture
def json_only_root(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Root with only configure_logging()'s JSON handler (as in gunicorn), writing to a buffer."""
    configure_logging("info")
    root = logging.getLogger()
    handler = next(h for h in root.handlers if getattr(h, "_app_json", False))
    buf = io.StringIO()
    monkeypatch.setattr(handler, "stream", buf)
    monkeypatch.setattr(root, "handlers", [handler])  # pytest's capture handlers off for this test
    return buf


def _only_the_json_handler(monkeypatch: pytest.MonkeyPatch) -> None:
    """pytest adds its capture handlers to root again when the test body starts (after the fixtures):
    remove them here, or the access line takes the logging path instead of the direct one."""
    root = logging.getLogger()
    monkeypatch.setattr(
        root, "handlers", [h for h in root.handlers if isinstance(h, observability.JsonLineHandler)]
    )


def test_fast_access_line_is_what_the_formatter_writes(
    json_only_root: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The access line skips the logging machinery when only the JSON handler listens; it must be the
    same JSON object, keys in the same order, as JsonFormatter gives for log.info("request", extra=...)."""
    _only_the_json_handler(monkeypatch)
    token = request_id_var.set("rid-fast")
    try:
        observability.access_log("rid-fast", "GET", '/x"\n{y}', "<unmatched>", 404, 1.25)
        observability.log.info(
            "request",
            extra={
                "method": "GET",
                "path": '/x"\n{y}',
                "route": "<unmatched>",
                "status": 404,
                "duration_ms": 1.25,
            },
        )
    finally:
        request_id_var.reset(token)
    fast_line, slow_line = json_only_root.getvalue().splitlines()
    fast, slow = json.loads(fast_line), json.loads(slow_line)
    assert list(fast) == list(slow) == [
        "ts", "level", "logger", "msg", "pid", "request_id",
        "method", "path", "route", "status", "duration_ms",
    ]  # fmt: skip
    assert {k: v for k, v in fast.items() if k != "ts"} == {k: v for k, v in slow.items() if k != "ts"}
    assert fast["pid"] == os.getpid()
    assert abs(fast["ts"] - slow["ts"]) < 5


def test_access_log_builds_nothing_when_info_is_off(
    json_only_root: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    logging.getLogger().setLevel(logging.WARNING)
    monkeypatch.setattr(observability, "_write_access_line", lambda *a: pytest.fail("built a line"))
    observability.access_log("r", "GET", "/health", "/health", 200, 0.1)
    assert json_only_root.getvalue() == ""


async def test_requests_write_one_json_line_each(json_only_root: io.StringIO, settings: Settings) -> None:
    app = create_app(settings)
    # create_app() re-ran configure_logging: point the new handler at the buffer too
    root = logging.getLogger()
    handler = next(h for h in root.handlers if getattr(h, "_app_json", False))
    handler.stream = json_only_root  # type: ignore[attr-defined]
    root.handlers = [handler]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        for _ in range(3):
            assert (await c.get("/health", headers={"X-Request-ID": "one-line"})).status_code == 200
    await app.state.resources.close()
    handler.flush()  # batched inside the event loop (JsonLineHandler); a worker flushes at exit
    lines = [json.loads(x) for x in json_only_root.getvalue().splitlines()]
    access = [x for x in lines if x.get("msg") == "request"]
    assert len(access) == 3
    assert all(x["request_id"] == "one-line" and x["route"] == "/health" for x in access)
    assert all(x["status"] == 200 and x["method"] == "GET" and x["path"] == "/health" for x in access)


def test_fast_access_line_is_byte_for_byte_the_encoders(
    json_only_root: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The access line is assembled from pieces; it must be exactly what json encodes for the same dict
    (separators, ASCII escapes of client-sent strings), with ts in milliseconds (three decimals, truncated)
    and duration_ms with two decimals - also when the cached pieces are reused."""
    _only_the_json_handler(monkeypatch)
    monkeypatch.setattr(observability.time, "time", lambda: 1764430000.12345)
    cases = [
        ("a" * 32, "GET", "/health", "/health", 200, 0.1),
        ("rid-1", "POST", '/x"\n{y}\u2028é\x00', "<unmatched>", 404, 12.34),
        ("r", "PATCH", "/api/items/1", "/api/items/{item_id}", 503, 1e-05),
        ("b" * 32, "GET", "/health", "/health", 200, 7.005),  # the first case's cached pieces again
        ("rid-2", "POST", '/x"\n{y}\u2028é\x00', "<unmatched>", 404, 999.999),
    ]
    for rid, method, path, route, status, ms in cases:
        observability.access_log(rid, method, path, route, status, ms)
    lines = json_only_root.getvalue().splitlines(keepends=True)
    assert len(lines) == len(cases)
    for line, (rid, method, path, route, status, ms) in zip(lines, cases, strict=True):
        expected = {
            "ts": "@TS@",
            "level": "info",
            "logger": "app",
            "msg": "request",
            "pid": os.getpid(),
            "request_id": rid,
            "method": method,
            "path": path,
            "route": route,
            "status": status,
            "duration_ms": "@MS@",
        }
        want = json.dumps(expected).replace('"@TS@"', "1764430000.123").replace('"@MS@"', f"{ms:.2f}")
        assert line == want + "\n"
        assert json.loads(line)["duration_ms"] == round(ms, 2)


class _Writes(io.StringIO):
    """A stream that records each write (what reached the file descriptor in one system call)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, s: str) -> int:
        self.writes.append(s)
        return super().write(s)


def _handler() -> tuple[observability.JsonLineHandler, _Writes]:
    stream = _Writes()
    handler = observability.JsonLineHandler(stream)  # type: ignore[arg-type]
    handler.setFormatter(JsonFormatter())
    return handler, stream


def _record(msg: str, level: int = logging.INFO) -> logging.LogRecord:
    return logging.makeLogRecord({"msg": msg, "levelno": level, "levelname": logging.getLevelName(level)})


def test_log_lines_are_written_at_once_outside_an_event_loop() -> None:
    handler, stream = _handler()
    handler.emit(_record("one"))
    handler.write_line('{"msg": "two"}\n')
    assert [json.loads(w)["msg"] for w in stream.writes] == ["one", "two"]


async def test_log_lines_are_batched_in_the_loop_and_written_in_order_within_the_delay() -> None:
    handler, stream = _handler()
    for i in range(5):
        handler.write_line(json.dumps({"msg": "request", "n": i}) + "\n")
    assert stream.writes == []  # batched
    await asyncio.sleep(handler.MAX_DELAY_S * 3)  # the loop's timer wrote them (behaviour, not speed)
    assert len(stream.writes) == 1
    assert [json.loads(x)["n"] for x in stream.getvalue().splitlines()] == [0, 1, 2, 3, 4]


async def test_a_warning_writes_the_batch_and_itself_at_once_in_order() -> None:
    handler, stream = _handler()
    handler.write_line('{"msg": "request", "n": 0}\n')
    handler.emit(_record("info line"))
    assert stream.writes == []
    handler.emit(_record("database unavailable", logging.ERROR))
    msgs = [json.loads(x)["msg"] for x in stream.getvalue().splitlines()]
    assert msgs == ["request", "info line", "database unavailable"]


async def test_batches_are_whole_lines_of_at_most_pipe_buf_bytes() -> None:
    """Each write is whole lines and <= 4096 bytes (atomic on a pipe: workers sharing stderr never
    interleave); a longer single line is written alone."""
    handler, stream = _handler()
    lines = [json.dumps({"msg": "request", "n": i, "pad": "x" * (i % 300)}) + "\n" for i in range(400)]
    long_line = json.dumps({"msg": "long", "pad": "y" * 10_000}) + "\n"
    for line in lines[:200]:
        handler.write_line(line)
    handler.write_line(long_line)
    for line in lines[200:]:
        handler.write_line(line)
    handler.flush()
    assert "".join(stream.writes) == "".join([*lines[:200], long_line, *lines[200:]])
    assert all(w.endswith("\n") for w in stream.writes)
    assert all(len(w) <= handler.MAX_CHUNK for w in stream.writes if w != long_line)
    assert len(stream.writes) < len(lines) / 5  # batched, not one write per line


async def test_worker_exit_hook_writes_what_is_batched(monkeypatch: pytest.MonkeyPatch) -> None:
    """gunicorn's worker_exit (max_requests, SIGTERM) writes the lines of the last <= 0.1 s."""
    from app import gunicorn_conf

    handler, stream = _handler()
    handler.write_line('{"msg": "request", "n": 1}\n')
    assert stream.writes == []
    gunicorn_conf.worker_exit(None, None)
    assert json.loads(stream.getvalue())["n"] == 1


async def test_the_access_log_goes_through_the_batching_handler(
    json_only_root: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    _only_the_json_handler(monkeypatch)
    observability.access_log("rid-b", "GET", "/health", "/health", 200, 0.5)
    assert json_only_root.getvalue() == ""
    observability.flush_logs()
    assert json.loads(json_only_root.getvalue())["request_id"] == "rid-b"


# --- CORS (app.edge; tests/app/test_edge.py compares it with Starlette's layered CORS) ---------------


async def test_cors_headers_only_for_allowed_origins(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"cors_origins": "https://app.example.com"}))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        ok = await c.get("/health", headers={"Origin": "https://app.example.com"})
        assert ok.headers["access-control-allow-origin"] == "https://app.example.com"
        assert "x-request-id" in ok.headers["access-control-expose-headers"].lower()
        assert ok.headers["vary"] == "Origin"
        none = await c.get("/health")
        assert "access-control-allow-origin" not in none.headers
        assert none.headers["vary"] == "Origin"  # as Starlette: caches must key on Origin
        evil = await c.options(
            "/api/items",
            headers={"Origin": "https://evil.example.net", "Access-Control-Request-Method": "GET"},
        )
        assert evil.status_code == 400
        assert "access-control-allow-origin" not in evil.headers
    await app.state.resources.close()


def test_every_router_route_is_served_by_the_app(settings: Settings) -> None:
    """The routers' routes sit on the app's own router (app.main._add_routes), prefixes and tags applied."""
    from app.routes import auth, health, items

    app = create_app(settings)
    served = {(r.path, frozenset(getattr(r, "methods", ()) or ())) for r in app.routes}
    for router in (health.router, health.metrics_router, auth.router, items.router):
        for route in router.routes:
            assert (route.path, frozenset(route.methods)) in served  # type: ignore[attr-defined]
    assert "/api/items/{item_id}" in {r.path for r in app.routes}
    spec = app.openapi()  # development: the schema still lists them, with the routers' tags
    assert spec["paths"]["/api/items"]["get"]["tags"] == ["items"]
    assert "413" in spec["paths"]["/api/items"]["post"]["responses"]


def test_flushing_a_handler_whose_stream_was_closed_does_not_raise() -> None:
    """configure_logging() flushes the handler it replaces; its stream may be gone (a test's capture)."""
    handler, stream = _handler()
    stream.close()
    handler.flush()


# --- request metrics: counted per request, folded into Prometheus in bulk (observability.HttpTally) ---
def _route_lines(text: str, route: str) -> list[str]:
    return sorted(line for line in text.splitlines() if f'route="{route}"' in line and "_created" not in line)


async def test_folded_request_metrics_read_exactly_as_observe_would_have_written_them() -> None:
    import uuid

    from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest

    route = f"/tally-{uuid.uuid4().hex[:8]}"
    # on, just above and just below bucket bounds, zero, beyond the last bound (+Inf)
    values = [0.0, 0.0001, 0.005, 0.0051, 0.01, 0.3, 2.5, 10.0, 11.0, 0.024]
    ref_registry = CollectorRegistry()
    ref_count = Counter("http_requests_total", "", ["method", "route", "status"], registry=ref_registry)
    ref_latency = Histogram(
        "http_request_duration_seconds",
        "",
        ["method", "route"],
        buckets=observability._UPPER_BOUNDS,
        registry=ref_registry,
    )
    tally = observability.HttpTally()
    for i, v in enumerate(values):
        status = 200 if i % 3 else 503
        ref_count.labels("GET", route, str(status)).inc()
        ref_latency.labels("GET", route).observe(v)
        tally.record("GET", route, status, v)
    assert _route_lines(generate_latest(REGISTRY).decode(), route) == []  # not folded yet
    tally.flush()
    folded = _route_lines(generate_latest(REGISTRY).decode(), route)
    expected = _route_lines(generate_latest(ref_registry).decode(), route)
    assert folded == expected
    assert f'http_request_duration_seconds_count{{method="GET",route="{route}"}} 10.0' in folded


async def test_request_counts_reach_the_metrics_within_a_second_without_a_scrape(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Under several workers a scrape served by another worker reads this one's counts from the
    multiprocess files: they must get there by themselves, not only when this worker is scraped."""
    from prometheus_client import REGISTRY, generate_latest

    monkeypatch.setattr(observability.HttpTally, "FLUSH_EVERY_S", 0.05)
    tally = observability.HttpTally()
    tally.record("GET", "/tally-timer", 200, 0.001)
    tally.record("GET", "/tally-timer", 200, 0.002)
    assert _route_lines(generate_latest(REGISTRY).decode(), "/tally-timer") == []
    await asyncio.sleep(0.3)
    lines = _route_lines(generate_latest(REGISTRY).decode(), "/tally-timer")
    assert 'http_requests_total{method="GET",route="/tally-timer",status="200"} 2.0' in lines


async def test_a_scrape_sees_every_request_answered_before_it(client: httpx.AsyncClient) -> None:
    def count(text: str) -> float:
        for line in text.splitlines():
            if line.startswith('http_requests_total{method="GET",route="/health",status="200"}'):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    before = count((await client.get("/metrics")).text)
    for _ in range(7):
        await client.get("/health")
    assert count((await client.get("/metrics")).text) - before == 7
