"""The metrics that predict failure (app/runtime_metrics.py): DB pool use, RSS per worker, worker restarts."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from prometheus_client import REGISTRY

from app import runtime_metrics
from app.main import create_app
from app.settings import Settings
from devenv.services import PostgresInstance, RedisInstance
from tests.app.conftest import ROOT


def _value(name: str) -> float | None:
    return REGISTRY.get_sample_value(name)


async def test_pool_gauges_follow_checked_out_connections(settings: Settings) -> None:
    s = settings.model_copy(update={"db_pool_size": 3, "db_max_overflow": 1})
    app = create_app(s)
    engine = app.state.resources.engine
    try:
        async with app.router.lifespan_context(app):  # the worker's first sample
            assert _value("db_pool_connections_capacity") == 4
            assert _value("db_pool_connections_in_use") == 0
            async with engine.connect(), engine.connect(), engine.connect():
                assert _value("db_pool_connections_in_use") == 3
                assert _value("db_pool_usage_ratio") == pytest.approx(0.75)
                async with engine.connect():  # the overflow connection: at capacity
                    assert _value("db_pool_usage_ratio") == 1.0
            assert _value("db_pool_connections_in_use") == 0
            assert _value("db_pool_usage_ratio") == 0.0
            assert (_value("process_resident_memory_bytes_worker") or 0) > 10 * 2**20
    finally:
        await app.state.resources.close()


async def test_scrape_lists_pool_rss_cache_and_breaker(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/items")).status_code == 200
    text = (await client.get("/metrics")).text
    for name in (
        "db_pool_connections_in_use",
        "db_pool_connections_capacity",
        "db_pool_usage_ratio",
        "process_resident_memory_bytes_worker",
        "cache_requests_total",
        "circuit_breaker_state",
        "http_requests_total",
    ):
        assert re.search(rf"^{name}(\{{| )", text, re.M), name


def test_restart_reasons(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    monkeypatch.setattr(runtime_metrics, "restart_counter", lambda: _FakeCounter())
    assert runtime_metrics.count_restart(SimpleNamespace(pid=999_999_1)) == "crash"
    monkeypatch.setattr(os, "getpid", lambda: 999_999_2)
    runtime_metrics.note_graceful_exit()
    assert runtime_metrics.count_restart(SimpleNamespace(pid=999_999_2)) == "graceful"
    assert not list(tmp_path.iterdir())  # the marker is consumed
    assert runtime_metrics.count_restart(SimpleNamespace(pid=999_999_2, aborted=True)) == "timeout"


class _FakeCounter:
    def labels(self, **_: str) -> _FakeCounter:
        return self

    def inc(self) -> None:
        pass


# --------------------------------------------------------------------------- under real gunicorn
def _children(master: int) -> set[int]:
    raw = Path(f"/proc/{master}/task/{master}/children").read_text()
    return {int(p) for p in raw.split()}


def _series(text: str, name: str) -> dict[str, float]:
    """{pid (or labels) -> value} for one metric in an exposition."""
    out = {}
    for m in re.finditer(rf"^{name}(?:\{{([^}}]*)\}})? (\S+)$", text, re.M):
        out[m.group(1) or ""] = float(m.group(2))
    return out


def _pids(text: str, name: str) -> set[int]:
    return {int(m) for m in re.findall(rf'^{name}\{{pid="(\d+)"\}}', text, re.M)}


def test_gunicorn_two_workers_pool_rss_and_restart_counter(
    pg: PostgresInstance, redis_server: RedisInstance
) -> None:
    from devenv.run import dockerfile_cmd
    from tests.app.servers import fresh_get, gunicorn

    if redis_server.proc is None:
        redis_server.start()
    env = {
        "DATABASE_URL": pg.url,
        "REDIS_URL": redis_server.url,
        "WEB_CONCURRENCY": "2",
        "APP_ENV": "development",
        "GUNICORN_GRACEFUL_TIMEOUT": "5",
        "DB_POOL_SIZE": "3",
        "DB_MAX_OVERFLOW": "2",
    }

    def scrape(url: str) -> str:
        r = fresh_get(f"{url}/metrics")
        assert r.status_code == 200
        return r.text

    def wait_for(cond: object, what: str, limit_s: float = 20.0) -> str:
        deadline = time.monotonic() + limit_s
        while True:
            text = scrape(srv.url)
            if cond(text):  # type: ignore[operator]
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} not seen in {limit_s}s:\n{text}")
            time.sleep(0.3)

    with gunicorn(dockerfile_cmd(), env, cwd=ROOT) as srv:
        master = srv.proc.pid
        workers = _children(master)
        assert len(workers) == 2
        text = wait_for(
            lambda t: _pids(t, "process_resident_memory_bytes_worker") == workers, "RSS per worker"
        )
        assert all(v > 10 * 2**20 for v in _series(text, "process_resident_memory_bytes_worker").values())
        assert _pids(text, "db_pool_connections_capacity") == workers
        assert set(_series(text, "db_pool_connections_capacity").values()) == {5.0}
        assert _series(text, "db_pool_usage_ratio") == {"": 0.0}  # livemax: one series, the worst worker
        assert _series(text, "gunicorn_worker_restarts_total") == {
            'reason="crash"': 0.0,
            'reason="graceful"': 0.0,
            'reason="timeout"': 0.0,
        }
        for _ in range(4):
            assert fresh_get(f"{srv.url}/api/items").status_code == 200
        text = scrape(srv.url)
        assert set(_series(text, "db_pool_connections_in_use").values()) == {0.0}  # all returned
        assert "cache_requests_total" in text
        assert "circuit_breaker_state" in text

        victim = min(workers)
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while True:
            now = _children(master)
            if len(now) == 2 and victim not in now:
                break
            assert time.monotonic() < deadline, f"no replacement worker: {now}"
            time.sleep(0.2)
        text = wait_for(
            lambda t: _pids(t, "process_resident_memory_bytes_worker") == now, "the replacement's RSS"
        )
        assert _series(text, "gunicorn_worker_restarts_total")['reason="crash"'] == 1.0
        assert victim not in _pids(text, "db_pool_connections_capacity")  # liveall: dead worker dropped
