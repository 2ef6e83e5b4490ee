"""The metrics that predict failure (app/runtime_metrics.py): DB pool use, RSS per worker, worker restarts."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

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
    assert (
        runtime_metrics.count_restart(SimpleNamespace(pid=999_999_1), prometheus=True, emf=False) == "crash"
    )
    # the worker (child of this "master") marks its own graceful exit
    master = os.getpid()
    monkeypatch.setattr(os, "getppid", lambda: master)
    monkeypatch.setattr(os, "getpid", lambda: 999_999_2)
    runtime_metrics.note_graceful_exit()
    monkeypatch.setattr(os, "getpid", lambda: master)
    assert runtime_metrics.classify_exit(SimpleNamespace(pid=999_999_2)) == "graceful"
    assert not list(tmp_path.iterdir())  # the marker is consumed
    assert runtime_metrics.classify_exit(SimpleNamespace(pid=999_999_2, aborted=True)) == "timeout"


def test_a_shutdown_is_not_counted_as_restarts() -> None:
    import subprocess
    import sys

    # gunicorn_conf reads the environment at import: in a child, so this process's stays as it is.
    code = (
        "from types import SimpleNamespace as N; import app.gunicorn_conf as g, app.runtime_metrics as r\n"
        "seen = []\n"
        "r.count_restart = lambda w, **kw: seen.append(w.pid) or 'crash'\n"
        "log = N(info=lambda *a, **k: None, exception=lambda *a, **k: None)\n"
        "g.child_exit(N(LISTENERS=[], log=log), N(pid=1))\n"  # Arbiter.stop() empties LISTENERS
        "g.child_exit(N(LISTENERS=['sock'], log=log), N(pid=2))\n"
        "print(seen)"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PROMETHEUS_MULTIPROC_DIR", "WEB_CONCURRENCY")}
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=ROOT,
        check=True,
    )
    assert out.stdout.split() == ["[2]"]


# ---------------------------------------------------------------------------------------------- EMF
_UNITS = {
    "Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes", "Gigabytes", "Terabytes",
    "Bits", "Kilobits", "Megabits", "Gigabits", "Terabits", "Percent", "Count", "Bytes/Second",
    "Kilobytes/Second", "Megabytes/Second", "Gigabytes/Second", "Terabytes/Second", "Bits/Second",
    "Kilobits/Second", "Megabits/Second", "Gigabits/Second", "Terabits/Second", "Count/Second", "None",
}  # fmt: skip


def assert_emf(doc: dict[str, Any]) -> None:
    """The structure the EMF specification requires of a root node (CloudWatch_Embedded_Metric_Format_
    Specification): `_aws` with a ms Timestamp and a CloudWatchMetrics array of MetricDirectives
    (Namespace, Dimensions: arrays of <= 30 dimension names, Metrics: MetricDefinitions with a Name and an
    optional Unit); each referenced dimension a string member, each metric a number member of the root."""
    meta = doc["_aws"]
    assert set(meta) <= {"Timestamp", "CloudWatchMetrics", "LogGroupName"}
    ts = meta["Timestamp"]
    assert isinstance(ts, int)
    assert abs(ts - time.time() * 1000) < 60_000
    assert isinstance(meta["CloudWatchMetrics"], list)
    assert meta["CloudWatchMetrics"]
    for directive in meta["CloudWatchMetrics"]:
        assert set(directive) == {"Namespace", "Dimensions", "Metrics"}
        assert isinstance(directive["Namespace"], str)
        assert 1 <= len(directive["Namespace"]) <= 1024
        assert isinstance(directive["Dimensions"], list)
        for dimension_set in directive["Dimensions"]:
            assert isinstance(dimension_set, list)
            assert len(dimension_set) <= 30
            for name in dimension_set:
                assert isinstance(name, str)
                assert isinstance(doc[name], str)
        assert 1 <= len(directive["Metrics"]) <= 100
        for metric in directive["Metrics"]:
            assert set(metric) <= {"Name", "Unit", "StorageResolution"}
            assert isinstance(doc[metric["Name"]], (int, float))
            assert not isinstance(doc[metric["Name"]], bool)
            assert metric.get("Unit", "None") in _UNITS


def test_emf_document_follows_the_specification() -> None:
    namespace, dims = runtime_metrics.emf_target({"METRICS_EMF_SERVICE": "api-prod"})
    doc = runtime_metrics.emf_document(
        {"db_pool_usage_ratio": (0.5, "None"), "worker_rss_bytes": (1.5e8, "Bytes")},
        dims,
        namespace=namespace,
        extra={"pid": 42},
    )
    assert_emf(doc)
    assert json.loads(json.dumps(doc)) == doc
    # what the deployer's ECS alarms read: namespace FastAPIDeploy, dimension Service only
    assert doc["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "FastAPIDeploy"
    assert doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["Service"]]
    assert doc["Service"] == "api-prod"
    assert doc["db_pool_usage_ratio"] == 0.5
    assert doc["worker_rss_bytes"] == 1.5e8
    assert doc["pid"] == 42


async def test_emf_lines_from_the_lifespan(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    app = create_app(
        settings.model_copy(update={"metrics_emf": True, "db_pool_size": 2, "db_max_overflow": 0})
    )
    engine = app.state.resources.engine
    try:
        async with app.router.lifespan_context(app), engine.connect():
            await asyncio.sleep(0.05)  # the task writes its first line at once
    finally:
        await app.state.resources.close()
    lines = [json.loads(x) for x in capsys.readouterr().err.splitlines() if x.startswith('{"_aws"')]
    assert len(lines) == 1
    assert_emf(lines[0])
    names = {m["Name"] for m in lines[0]["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert names == {
        "worker_rss_bytes",
        "db_pool_connections_in_use",
        "db_pool_connections_capacity",
        "db_pool_usage_ratio",
    }
    assert lines[0]["db_pool_connections_capacity"] == 2
    assert lines[0]["pid"] == os.getpid()


def test_lambda_emits_at_most_once_per_interval(capsys: pytest.CaptureFixture[str]) -> None:
    every = runtime_metrics.EmfEvery("production", interval_s=3600)
    assert every.after_invocation(None) is True  # the first invocation of an environment
    assert every.after_invocation(None) is False
    (line,) = capsys.readouterr().err.splitlines()
    doc = json.loads(line)
    assert_emf(doc)
    assert set(doc) >= {"worker_rss_bytes", "Service", "environment"}


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
        "METRICS_EMF": "true",  # as on ECS: the restart is also an EMF line from the master
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
        exited = [r for r in srv.logs() if r.get("msg") == "worker exited"]
        assert [(r["worker_pid"], r["reason"]) for r in exited] == [(victim, "crash")]
        emf = [r for r in srv.logs() if "_aws" in r]
        restarts = [r for r in emf if "worker_restarts" in r]
        assert [(r["reason"], r["worker_pid"], r["worker_restarts"]) for r in restarts] == [
            ("crash", victim, 1)
        ]
        for r in emf:
            assert_emf(r)
        assert {r["pid"] for r in emf if "worker_rss_bytes" in r} >= workers | now  # every worker's own line
