"""app/gunicorn_conf.py reads the deployer's numbers and nothing from the host."""

from __future__ import annotations

import ast
import gc
import os
import runpy
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.app.conftest import ROOT

CONF = str(ROOT / "app" / "gunicorn_conf.py")
VARS = (
    "PORT",
    "WEB_CONCURRENCY",
    "GUNICORN_KEEPALIVE",
    "GUNICORN_TIMEOUT",
    "GUNICORN_GRACEFUL_TIMEOUT",
    "GUNICORN_MAX_REQUESTS",
    "GUNICORN_MAX_REQUESTS_JITTER",
    "PROMETHEUS_MULTIPROC_DIR",
    "FORWARDED_ALLOW_IPS",
    "FORWARDED_TRUSTED_HOPS",
    "GUNICORN_PRELOAD_APP",
    "GC_FREEZE",
    "GC_THRESHOLD",
)


def _load(monkeypatch: pytest.MonkeyPatch, **env: str) -> dict[str, Any]:
    for v in VARS:
        # set-then-delete: monkeypatch then restores the variable's original state (gunicorn_conf writes
        # PROMETHEUS_MULTIPROC_DIR straight into os.environ; leaking it breaks /metrics in later tests).
        monkeypatch.setenv(v, "placeholder")
        monkeypatch.delenv(v)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    conf = runpy.run_path(CONF)
    made = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if made and conf.get("_metrics_dir_created"):
        shutil.rmtree(made, ignore_errors=True)
    return conf


def test_defaults_ignore_the_hosts_cpu_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: 64)  # what a 1-vCPU Fargate task sees of its host
    conf = _load(monkeypatch)
    assert conf["workers"] == 1
    assert conf["bind"] == ["0.0.0.0:8000"]
    assert conf["worker_class"] == "app.workers.DrainingUvicornWorker"
    assert (conf["keepalive"], conf["timeout"], conf["graceful_timeout"]) == (75, 30, 20)
    assert (conf["max_requests"], conf["max_requests_jitter"]) == (1000, 100)
    assert conf["keepalive"] > 60  # above the ALB idle timeout
    assert conf["worker_tmp_dir"] == ("/dev/shm" if os.path.isdir("/dev/shm") else None)
    assert conf["forwarded_allow_ips"] == "127.0.0.1,::1"
    assert conf["preload_app"] is True  # replacements fork from the imported app (tests/app/test_preload.py)
    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ  # one worker: the in-process registry is exact


def test_a_hop_count_turns_uvicorns_proxy_header_rewriting_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cloud Run (FORWARDED_TRUSTED_HOPS): the app takes the address by hop count (app/forwarded.py), so
    uvicorn trusts no peer — even if FORWARDED_ALLOW_IPS=* is still around, under which it would put the
    client-written leftmost entry in the peer's place before the app sees the request."""
    assert (
        _load(monkeypatch, FORWARDED_TRUSTED_HOPS="2", FORWARDED_ALLOW_IPS="*")["forwarded_allow_ips"] == ""
    )
    assert _load(monkeypatch, FORWARDED_TRUSTED_HOPS="1")["forwarded_allow_ips"] == ""
    assert (
        _load(monkeypatch, FORWARDED_TRUSTED_HOPS="0", FORWARDED_ALLOW_IPS="10.0.0.0/8")[
            "forwarded_allow_ips"
        ]
        == "10.0.0.0/8"
    )
    from gunicorn.config import validate_string_to_addr_list

    assert validate_string_to_addr_list("") == []  # what uvicorn's worker then gets: nobody trusted
    with pytest.raises(SystemExit, match="FORWARDED_TRUSTED_HOPS"):
        _load(monkeypatch, FORWARDED_TRUSTED_HOPS="two")


def test_values_come_from_the_deployers_env(monkeypatch: pytest.MonkeyPatch) -> None:
    conf = _load(
        monkeypatch,
        PORT="8080",
        WEB_CONCURRENCY="3",
        GUNICORN_KEEPALIVE="65",
        GUNICORN_TIMEOUT="45",
        GUNICORN_GRACEFUL_TIMEOUT="8",
        GUNICORN_MAX_REQUESTS="500",
        GUNICORN_MAX_REQUESTS_JITTER="50",
        FORWARDED_ALLOW_IPS="*",
    )
    assert conf["bind"] == ["0.0.0.0:8080"]
    assert conf["workers"] == 3
    assert (conf["keepalive"], conf["timeout"], conf["graceful_timeout"]) == (65, 45, 8)
    assert (conf["max_requests"], conf["max_requests_jitter"]) == (500, 50)
    assert conf["forwarded_allow_ips"] == "*"
    metrics_dir = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    assert conf["_metrics_dir_created"] is True
    assert str(metrics_dir).startswith("/dev/shm/prometheus-") or not os.path.isdir("/dev/shm")


def test_stale_metric_files_are_wiped(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "counter_123.db").write_bytes(b"old")
    _load(monkeypatch, WEB_CONCURRENCY="2", PROMETHEUS_MULTIPROC_DIR=str(tmp_path))
    assert not list(tmp_path.glob("*.db"))


def test_bad_number_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SystemExit, match="WEB_CONCURRENCY='four' is not an integer"):
        _load(monkeypatch, WEB_CONCURRENCY="four")


def test_source_never_asks_the_host_for_cores() -> None:
    tree = ast.parse(Path(CONF).read_text())
    names = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    names |= {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom) for a in n.names}
    assert not {"cpu_count", "sched_getaffinity", "process_cpu_count"} & (names | imported)
    assert "multiprocessing" not in imported


def test_preload_can_be_switched_off(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _load(monkeypatch, GUNICORN_PRELOAD_APP="false")["preload_app"] is False
    with pytest.raises(SystemExit, match="GUNICORN_PRELOAD_APP='maybe' is not a boolean"):
        _load(monkeypatch, GUNICORN_PRELOAD_APP="maybe")


class _Log:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, msg: str, *args: Any, **kw: Any) -> None:
        self.lines.append(msg % args if args else msg)

    error = info


class _Server:
    def __init__(self) -> None:
        self.log = _Log()


@pytest.fixture
def gc_state() -> Any:
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


def test_gc_hooks_apply_the_deployers_settings(monkeypatch: pytest.MonkeyPatch, gc_state: None) -> None:
    conf = _load(monkeypatch, GC_FREEZE="true", GC_THRESHOLD="7000,10,10")
    server = _Server()
    conf["on_starting"](server)  # validates, nothing else without MIGRATE_ON_START
    conf["when_ready"](server)  # master, before the first fork
    assert gc.get_freeze_count() > 1000  # everything imported so far is in the permanent generation
    assert any("gc frozen" in line for line in server.log.lines)
    conf["post_fork"](server, object())  # worker
    assert gc.get_threshold() == (7000, 10, 10)


def test_gc_hooks_change_nothing_without_the_env(monkeypatch: pytest.MonkeyPatch, gc_state: None) -> None:
    conf = _load(monkeypatch)
    gc.set_threshold(700, 10, 10)
    conf["when_ready"](_Server())
    conf["post_fork"](_Server(), object())
    conf["post_worker_init"](object())
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == (700, 10, 10)


def test_bad_gc_threshold_stops_the_master(monkeypatch: pytest.MonkeyPatch) -> None:
    conf = _load(monkeypatch, GC_THRESHOLD="7000,10")
    server = _Server()
    with pytest.raises(SystemExit):
        conf["on_starting"](server)
    assert any("GC_THRESHOLD='7000,10'" in line for line in server.log.lines)
