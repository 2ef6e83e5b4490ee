"""gunicorn with the env the deployer injects (prod-ecs): preloaded app, recycling, GC settings.

Pass/fail only, no timing (the timings are in bench/bench_deployed.py and BENCHMARKS.md).
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import re
import secrets
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devenv.run import dockerfile_cmd
from devenv.services import PostgresInstance, RedisInstance
from fastapi_deploy import tuning as T
from fastapi_deploy.config import load_stack_file
from fastapi_deploy.tuning import container_environment, for_platform
from tests.app.conftest import ROOT
from tests.app.servers import Server, fresh_get, gunicorn

# Set by the platform from secret references, or meaningless on this machine (the test migrates itself).
LOCAL = ("PORT", "MIGRATE_ON_START", "MIGRATE_TIMEOUT")


def deployed_env(stack: str) -> dict[str, str]:
    cfg = load_stack_file(ROOT / "stacks" / f"Pulumi.{stack}.yaml")
    return {k: v for k, v in container_environment(cfg, for_platform(cfg)).items() if k not in LOCAL}


def _env(pg: PostgresInstance, redis_server: RedisInstance, **overrides: str) -> dict[str, str]:
    if redis_server.proc is None:
        redis_server.start()
    return {
        **deployed_env("prod-ecs"),
        "DATABASE_URL": pg.url,
        "REDIS_URL": redis_server.url,
        "JWT_SECRET_KEY": secrets.token_urlsafe(48),
        **overrides,
    }


def _cmd(app: str | None = None) -> list[str]:
    cmd = dockerfile_cmd()
    return cmd if app is None else [*cmd[:-1], app]


def _tcp_peers(pid: int) -> list[int]:
    """Remote ports of the TCP connections process `pid` holds (from /proc/net/tcp + its fds)."""
    inodes: dict[str, int] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            f = line.split()
            if f[3] == "01":  # ESTABLISHED
                inodes[f[9]] = int(f[2].rsplit(":", 1)[1], 16)
    ports = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            link = os.readlink(fd)
        except OSError:
            continue
        if link.startswith("socket:[") and link[8:-1] in inodes:
            ports.append(inodes[link[8:-1]])
    return ports


def _workers(master: int) -> list[int]:
    kids: set[int] = set()
    for task in Path(f"/proc/{master}/task").iterdir():
        kids |= {int(x) for x in (task / "children").read_text().split()}
    return sorted(kids)


@pytest.fixture(scope="module")
def deployed(pg: PostgresInstance, redis_server: RedisInstance) -> Iterator[Server]:
    """prod-ecs as deployed: 1 worker, no recycling, preload, GC settings."""
    env = _env(pg, redis_server)
    assert env["WEB_CONCURRENCY"] == "1"
    assert env["GUNICORN_MAX_REQUESTS"] == "0"
    with gunicorn(_cmd(), env, cwd=ROOT) as srv:
        yield srv


def test_the_master_preloads_the_app_but_holds_no_connection_or_thread(
    deployed: Server, pg: PostgresInstance
) -> None:
    for _ in range(3):
        assert fresh_get(f"{deployed.url}/api/items?limit=5").status_code == 200
    assert fresh_get(f"{deployed.url}/ready").status_code == 200
    master = deployed.proc.pid
    (worker,) = _workers(master)
    assert pg.port in _tcp_peers(worker)  # the check can see a pooled connection: the worker has one
    assert pg.port not in _tcp_peers(master)  # ... and the master, which imported the app, has none
    assert len(list(Path(f"/proc/{master}/task").iterdir())) == 1  # no thread to break a fork
    frozen = [r for r in deployed.logs() if r.get("msg") == "gc frozen in master"]
    # the preloaded app's objects (tens of thousands; gunicorn alone is a few thousand) were frozen
    assert frozen, deployed.logs()[:20]
    assert frozen[0]["gc_frozen"] > 30_000, frozen


def test_access_lines_keep_their_fields_under_the_deployed_env(deployed: Server) -> None:
    assert fresh_get(f"{deployed.url}/health", headers={"X-Request-ID": "deployed-1"}).status_code == 200
    lines = [r for r in deployed.logs() if r.get("request_id") == "deployed-1"]
    assert len(lines) == 1, lines
    assert set(lines[0]) == {
        "ts", "level", "logger", "msg", "pid", "request_id",
        "method", "path", "route", "status", "duration_ms",
    }  # fmt: skip
    assert lines[0]["pid"] == _workers(deployed.proc.pid)[0]
    # uvicorn's own lines still reach the JSON log from the forked worker
    assert any("startup complete" in str(r.get("msg", "")) for r in deployed.logs())


def test_access_lines_are_complete_and_in_order_when_the_worker_stops(
    pg: PostgresInstance, redis_server: RedisInstance
) -> None:
    """The worker batches its log lines (app.observability.JsonLineHandler). 60 requests on one keep-alive
    connection, then SIGTERM right after the last answer (well inside the batch delay): every access line
    is in the log once, in request order, and every line of the log is a whole JSON object."""
    env = _env(pg, redis_server)
    with gunicorn(_cmd(), env, cwd=ROOT) as srv:
        tag = secrets.token_hex(4)
        rids = [f"stop-{tag}-{i}" for i in range(60)]
        with httpx.Client(timeout=10) as c:
            for rid in rids:
                assert c.get(f"{srv.url}/health", headers={"X-Request-ID": rid}).status_code == 200
        os.kill(srv.proc.pid, signal.SIGTERM)
        srv.proc.wait(timeout=30)
        raw = srv.log_path.read_text(errors="replace").splitlines()
    records = [json.loads(line) for line in raw if line.startswith("{")]
    assert len(records) == len([line for line in raw if line.strip()]), raw[-20:]  # nothing cut or merged
    seen = [r["request_id"] for r in records if r.get("msg") == "request" and r.get("request_id") in rids]
    assert seen == rids


def test_forced_recycles_drop_no_request(pg: PostgresInstance, redis_server: RedisInstance) -> None:
    """The deployed prod-ecs env with GUNICORN_MAX_REQUESTS FORCED to 40 (labelled: the deployer sets 0 for
    one worker): 4 clients on fresh connections (as a load balancer opening connections) keep sending
    across at least 3 recycles of the only worker; every request is answered 200."""
    env = _env(pg, redis_server, GUNICORN_MAX_REQUESTS="40", GUNICORN_MAX_REQUESTS_JITTER="0")
    with gunicorn(_cmd(), env, cwd=ROOT) as srv:
        tag = secrets.token_hex(4)

        def client(n: int) -> list[tuple[str, int]]:
            out = []
            for i in range(50):
                rid = f"rc-{tag}-{n}-{i}"
                try:
                    status = fresh_get(f"{srv.url}/health", headers={"X-Request-ID": rid}).status_code
                except httpx.HTTPError as exc:
                    status = -1
                    print(rid, repr(exc))
                out.append((rid, status))
            return out

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            results = [r for f in [pool.submit(client, n) for n in range(4)] for r in f.result(timeout=120)]
        failed = [r for r in results if r[1] != 200]
        pids = set(srv.pids_for({rid for rid, _ in results}).values())
        boots = re.findall(r"Booting worker with pid: (\d+)", srv.log_path.read_text())
    assert len(results) == 200
    assert failed == []
    assert len(pids) >= 4, pids  # 200 requests / 40 per worker: the only worker was replaced >= 3 times
    assert len(boots) >= 4


def test_gc_settings_reach_every_worker(pg: PostgresInstance, redis_server: RedisInstance) -> None:
    """The service's gunicorn config applies the deployer's GC_FREEZE/GC_THRESHOLD in each worker,
    including a replacement after a (forced) recycle."""
    env = _env(
        pg, redis_server, WEB_CONCURRENCY="2", GUNICORN_MAX_REQUESTS="5", GUNICORN_MAX_REQUESTS_JITTER="0"
    )
    assert env["GC_FREEZE"] == "true"
    with gunicorn(_cmd("tests.app.gc_probe_app:app"), env, cwd=ROOT) as srv:
        seen = {}
        for _ in range(30):
            body = fresh_get(f"{srv.url}/").json()
            seen[body["pid"]] = body
    assert len(seen) >= 3, seen  # both workers and at least one replacement
    for body in seen.values():
        assert tuple(body["threshold"]) == T.GC_THRESHOLD
        assert body["frozen"] > 0


def test_keep_alive_clients_lose_nothing_when_a_worker_recycles(
    pg: PostgresInstance, redis_server: RedisInstance
) -> None:
    """2 workers (as on prod-vps) with GUNICORN_MAX_REQUESTS FORCED to 30 (labelled; deployed: 10000):
    4 clients keep reusing their keep-alive connection (100 requests each). A stopping worker no longer
    closes connections with a request on the wire: it answers with `Connection: close` (the client
    reconnects, to the other worker or the replacement) - uvicorn's own shutdown reset them."""
    env = _env(
        pg, redis_server, WEB_CONCURRENCY="2", GUNICORN_MAX_REQUESTS="30", GUNICORN_MAX_REQUESTS_JITTER="0"
    )
    with gunicorn(_cmd(), env, cwd=ROOT) as srv:

        def client(n: int) -> tuple[list[str], int]:
            errors, closes = [], 0
            with httpx.Client(timeout=10) as c:  # keep-alive; httpx honours Connection: close
                for _ in range(100):
                    try:
                        r = c.get(f"{srv.url}/health")
                        if r.status_code != 200:
                            errors.append(str(r.status_code))
                        closes += r.headers.get("connection", "").lower() == "close"
                    except httpx.HTTPError as exc:
                        errors.append(repr(exc))
            return errors, closes

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            results = [f.result(timeout=120) for f in [pool.submit(client, n) for n in range(4)]]
        boots = re.findall(r"Booting worker with pid: (\d+)", srv.log_path.read_text())
    assert [e for errs, _ in results for e in errs] == []
    # 400 requests at 30 per worker: recycles happened (how many depends on how the kernel spread the
    # connections and on the 1-s drains overlapping the run; one is enough to prove the point)
    assert len(boots) >= 2 + 1, boots
    assert sum(c for _, c in results) >= 1  # ... and clients were told to reconnect instead of being reset
