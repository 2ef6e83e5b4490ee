"""10. Request body limit: six concurrent 100 MB uploads must not grow a worker's memory.

The service runs as the ECS container would: the image's gunicorn CMD (bound to a loopback port) with
the container environment the deployer renders for prod-ecs - taken from the task definition in
`infra plan --stack prod-ecs --format json`, not hand-picked - and only the secrets (DATABASE_URL,
REDIS_URL, JWT_SECRET_KEY) pointing at throwaway local PostgreSQL/Redis. prod-ecs runs one worker per
task (1 vCPU), so all six uploads land on the same process.

Each upload is a raw socket that pushes its whole 100 MB whatever the server answers (a hostile client
does not stop at an early 413), once with `Transfer-Encoding: chunked` and once with `Content-Length`.
Worker RSS is sampled every 20 ms from /proc during the uploads: before, peak, after.

"no limit" repeats the same with MAX_REQUEST_BODY_BYTES at its maximum (1 GiB), i.e. the app as it was
before the limit existed (FastAPI reads the whole body into memory before validating it).

    uv run python -m bench.bench_body_limit [--quick]
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench import appenv
from bench import harness as h

MIB = 1024 * 1024
UPLOAD_BYTES = 100 * 1000 * 1000  # "100 MB"
CONCURRENT = 6
CHUNK = 64 * 1024
PATH = "/api/auth/login"  # public: what an anonymous attacker can reach
UPLOAD_TIMEOUT_S = 120.0
SECRETS = ("DATABASE_URL", "REDIS_URL", "JWT_SECRET_KEY", "SENTRY_DSN")


def prod_ecs_environment() -> dict[str, str]:
    """The container environment of prod-ecs, from the deployer's machine-readable plan."""
    plan = h.offline_plan("prod-ecs")
    (task,) = [r for r in plan["resources"] if r["type"] == "aws:ecs/taskDefinition:TaskDefinition"]
    (container,) = json.loads(task["inputs"]["containerDefinitions"])
    env = {e["name"]: e["value"] for e in container["environment"]}
    assert not set(env) & set(SECRETS), "secrets must not be plain environment values"
    return env


def _upload(port: int, chunked: bool, total: int) -> dict[str, Any]:
    """Push `total` bytes of body; return the status the server answered and when."""
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {total}"
    head = (
        f"POST {PATH} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n{framing}\r\n\r\n"
    ).encode()

    def frame(n: int) -> bytes:
        return f"{n:x}\r\n".encode() + b"a" * n + b"\r\n" if chunked else b"a" * n

    full = frame(CHUNK)
    t0 = time.monotonic()
    answer = b""
    sent = 0
    closed_early = False
    with socket.create_connection(("127.0.0.1", port), timeout=UPLOAD_TIMEOUT_S) as s:
        s.sendall(head)
        while sent < total and time.monotonic() - t0 < UPLOAD_TIMEOUT_S:
            try:
                n = min(CHUNK, total - sent)
                s.sendall(full if n == CHUNK else frame(n))  # blocking: never a partial chunked frame
                sent += n
            except (BrokenPipeError, ConnectionResetError):
                closed_early = True
                break
            if select.select([s], [], [], 0)[0]:  # an early answer (413) is read, then ignored
                answer += s.recv(4096)
        if chunked and not closed_early:
            try:
                s.sendall(b"0\r\n\r\n")
            except OSError:
                closed_early = True
        s.settimeout(30)
        try:
            while b"\r\n\r\n" not in answer:
                data = s.recv(4096)
                if not data:
                    break
                answer += data
        except OSError:
            pass
    status = answer.split(b" ", 2)[1].decode() if answer.startswith(b"HTTP/1.1 ") else "none"
    return {
        "status": status,
        "sent_mb": round(sent / 1e6, 1),
        "seconds": round(time.monotonic() - t0, 2),
        "server_closed_early": closed_early,
    }


def _sample(srv: h.Server, stop: threading.Event, peaks: dict[int, int]) -> None:
    while not stop.is_set():
        for pid in h.children(srv.pid):
            rss = h.mem_kib(pid)["rss"]
            peaks[pid] = max(peaks.get(pid, 0), rss)
        time.sleep(0.02)


def _round(srv: h.Server, chunked: bool, total: int) -> dict[str, Any]:
    workers = h.children(srv.pid)
    before = {pid: h.mem_kib(pid)["rss"] for pid in workers}
    peaks: dict[int, int] = dict(before)
    stop = threading.Event()
    sampler = threading.Thread(target=_sample, args=(srv, stop, peaks), daemon=True)
    sampler.start()
    t0 = time.monotonic()
    with ThreadPoolExecutor(CONCURRENT) as pool:
        results = list(pool.map(lambda _: _upload(srv.port, chunked, total), range(CONCURRENT)))
    wall = time.monotonic() - t0
    time.sleep(0.5)
    stop.set()
    sampler.join(timeout=5)
    after = {pid: h.mem_kib(pid)["rss"] for pid in workers}
    alive = h.children(srv.pid) == workers
    growth = max((peaks[p] - before[p]) / 1024 for p in workers)
    return {
        "framing": "chunked" if chunked else "content-length",
        "uploads": CONCURRENT,
        "upload_mb": total / 1e6,
        "statuses": sorted({r["status"] for r in results}),
        "server_closed_early": sum(r["server_closed_early"] for r in results),
        "sent_mb_total": round(sum(r["sent_mb"] for r in results), 1),
        "wall_s": round(wall, 1),
        "rss_before_mib": round(max(before.values()) / 1024, 1),
        "rss_peak_mib": round(max(peaks[p] for p in workers) / 1024, 1),
        "rss_after_mib": round(max(after.values()) / 1024, 1),
        "max_growth_mib": round(growth, 1),
        "same_workers_alive": alive,
    }


def run(quick: bool = False) -> dict[str, Any]:
    total = 10 * 1000 * 1000 if quick else UPLOAD_BYTES
    env = prod_ecs_environment()
    rows: list[dict[str, Any]] = []
    with appenv.deps() as deps:
        base = {
            **env,
            "DATABASE_URL": deps.env["DATABASE_URL"],
            "REDIS_URL": deps.env["REDIS_URL"],
            "JWT_SECRET_KEY": deps.env["JWT_SECRET_KEY"],
        }
        configs: tuple[tuple[str, dict[str, str]], ...] = (
            ("limit (prod-ecs)", {}),
            ("no limit (1 GiB)", {"MAX_REQUEST_BODY_BYTES": "1073741824"}),
        )
        for label, overrides in configs:
            for chunked in (True, False):
                # a fresh server per row: freed memory is rarely returned to the OS, so a second round on
                # the same worker would start from the first one's peak
                port = h.free_port()
                srv = h.Server(
                    h.gunicorn_cmd(appenv.APP_FACTORY, port, appenv.GUNICORN_CONF),
                    port,
                    env={**base, **overrides, "PORT": str(port)},
                    start_timeout=60,
                )
                with h.timed(f"{label}, {'chunked' if chunked else 'content-length'}"), srv:
                    srv.wait_workers(int(env["WEB_CONCURRENCY"]))
                    row = {"config": label, "limit_bytes": (overrides or env)["MAX_REQUEST_BODY_BYTES"]}
                    row.update(_round(srv, chunked, total))
                    print(row, flush=True)
                    rows.append(row)
    cols = [
        "config", "framing", "uploads", "upload_mb", "sent_mb_total", "statuses", "wall_s",
        "rss_before_mib", "rss_peak_mib", "rss_after_mib", "max_growth_mib", "same_workers_alive",
    ]  # fmt: skip
    print(h.table(rows, cols))
    data = {
        "machine": h.machine_info(),
        "env_source": "infra plan --stack prod-ecs --format json (task definition environment)",
        "web_concurrency": env["WEB_CONCURRENCY"],
        "rows": rows,
    }
    h.save_json("body_limit", data)
    h.save_csv("body_limit", rows)
    return data


if __name__ == "__main__":
    h.main(run, __doc__)
