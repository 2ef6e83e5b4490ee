"""Request ids, JSON logs, CORS from settings, Sentry wiring."""

from __future__ import annotations

import json
import logging

import httpx
import pytest
import sentry_sdk
from sentry_sdk.types import Event

from app.main import create_app
from app.observability import JsonFormatter, init_sentry, sentry_before_send
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
