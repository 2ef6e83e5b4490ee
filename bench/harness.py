"""Shared machinery for the benchmarks: start a server, drive `wrk`, read memory from /proc.

Everything here is bounded in time: a server that does not answer within `start_timeout` is killed,
`wrk` runs for a fixed duration with a per-request timeout, and `stop()` escalates to SIGKILL.
Traffic is loopback only.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"


def set_quick(quick: bool) -> None:
    """Smoke runs write to bench/results/quick/ so they never overwrite the figures BENCHMARKS.md quotes."""
    global RESULTS
    if quick:
        RESULTS = REPO / "bench" / "results" / "quick"


VENV_BIN = Path(sys.executable).parent
PY = sys.executable

# wrk prints a human summary; this Lua `done()` hook prints the numbers we need as one JSON line,
# so nothing depends on parsing "1.23ms" / "4.56k" strings.
_WRK_LUA = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,"err_connect":%d,"err_read":%d,' ..
    '"err_write":%d,"err_status":%d,"err_timeout":%d,"lat_mean_us":%.1f,"lat_max_us":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p95_us":%d,"p99_us":%d,"p999_us":%d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency.mean, latency.max, latency:percentile(50), latency:percentile(90),
    latency:percentile(95), latency:percentile(99), latency:percentile(99.9)))
  if WRK_HISTOGRAM then
    -- every distinct latency (us) and how many requests took it: lets runs be pooled exactly
    local parts = {}
    for i = 1, #latency do
      local v, c = latency(i)
      parts[#parts + 1] = string.format("%d:%d", v, c)
    end
    io.write("WRKHIST " .. table.concat(parts, ",") .. "\n")
  end
end
"""


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (racy by nature, good enough for a benchmark)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def loadavg() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def machine_info() -> dict[str, Any]:
    """What a reader needs to interpret the numbers: CPU, memory, load at start, versions."""
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kib = 0
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    versions: dict[str, str] = {}
    from importlib import metadata

    for dist in (
        "fastapi",
        "starlette",
        "uvicorn",
        "gunicorn",
        "uvloop",
        "httptools",
        "sqlalchemy",
        "asyncpg",
        "mangum",
        "pydantic",
    ):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[dist] = metadata.version(dist)
    wrk = shutil.which("wrk")
    wrk_version = ""
    if wrk:
        out = subprocess.run([wrk, "--version"], capture_output=True, text=True, timeout=5)
        wrk_version = (out.stdout + out.stderr).splitlines()[0] if (out.stdout + out.stderr) else ""
    return {
        "cpu_model": cpu,
        "nproc": os.cpu_count(),
        "mem_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "loadavg_at_start": loadavg(),
        "wrk": wrk_version,
        "versions": versions,
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


# --------------------------------------------------------------------------------------------- /proc


def children(pid: int) -> list[int]:
    """Direct children of `pid` (gunicorn workers of a master)."""
    kids: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                kids.extend(int(x) for x in (task / "children").read_text().split())
    return sorted(set(kids))


def descendants(pid: int) -> list[int]:
    out: list[int] = []
    stack = [pid]
    while stack:
        for kid in children(stack.pop()):
            out.append(kid)
            stack.append(kid)
    return out


def mem_kib(pid: int) -> dict[str, int]:
    """RSS, PSS and USS (private) of one process in KiB.

    RSS double-counts pages shared between forked workers; PSS splits them, so the sum of PSS over
    master+workers is what a container's memory cgroup is charged (the number to size a task by).
    """
    out = {"rss": 0, "pss": 0, "uss": 0}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            parts = line.split()
            if not parts:
                continue
            key, val = parts[0], parts[1] if len(parts) > 1 else "0"
            if key == "Rss:":
                out["rss"] = int(val)
            elif key == "Pss:":
                out["pss"] = int(val)
            elif key in ("Private_Clean:", "Private_Dirty:"):
                out["uss"] += int(val)
    return out


# --------------------------------------------------------------------------------------------- server


@dataclass
class Server:
    """A server process on a loopback port, started as its own process group so stop() reaches all."""

    cmd: Sequence[str]
    port: int
    env: Mapping[str, str] = field(default_factory=dict)
    ready_path: str = "/health"
    start_timeout: float = 30.0
    log_path: Path | None = None
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    boot_seconds: float = 0.0
    # cgroup (v1 cpu controller) directory to start the server in: models a container's CPU quota
    cgroup: Path | None = None
    # working directory (default: the repo); bench_deployed runs an older release from an exported tree
    cwd: Path | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> Server:
        env = {**os.environ, **self.env}
        env.setdefault("PYTHONPATH", str(REPO))
        if self.log_path is None:
            fd, name = tempfile.mkstemp(prefix="bench-server-", suffix=".log")
            os.close(fd)
            self.log_path = Path(name)
        log = self.log_path.open("wb")
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(
            list(self.cmd),
            cwd=self.cwd or REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        if self.cgroup is not None:
            # before the interpreter has even imported gunicorn, so every forked worker inherits the quota
            (self.cgroup / "cgroup.procs").write_text(str(self.proc.pid))
        log.close()
        deadline = self.started_at + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.tail_log()}")
            try:
                with urllib.request.urlopen(self.base + self.ready_path, timeout=1) as r:
                    if r.status < 500:
                        self.boot_seconds = time.monotonic() - self.started_at
                        return self
            except (urllib.error.URLError, OSError, TimeoutError):
                pass
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(
            f"server not answering {self.ready_path} after {self.start_timeout}s: {self.tail_log()}"
        )

    def wait_workers(self, n: int, timeout: float = 30.0) -> list[int]:
        """Wait until the master has `n` children that answer (gunicorn boots workers asynchronously)."""
        deadline = time.monotonic() + timeout
        kids: list[int] = []
        while time.monotonic() < deadline:
            kids = children(self.pid)
            if len(kids) >= n:
                # warm every worker: enough requests that the kernel spreads them over all accept queues
                for _ in range(4 * n):
                    with contextlib.suppress(OSError, urllib.error.URLError):
                        urllib.request.urlopen(self.base + self.ready_path, timeout=2).close()
                return kids
            time.sleep(0.1)
        raise TimeoutError(f"expected {n} workers, have {len(kids)}: {self.tail_log()}")

    def memory(self) -> dict[str, Any]:
        """Memory of master and each worker (KiB); the pids are the master's children."""
        master = mem_kib(self.pid)
        workers = [mem_kib(p) for p in children(self.pid)]
        return {
            "master": master,
            "workers": workers,
            "worker_rss_mean_mib": round(sum(w["rss"] for w in workers) / max(len(workers), 1) / 1024, 1),
            "worker_pss_mean_mib": round(sum(w["pss"] for w in workers) / max(len(workers), 1) / 1024, 1),
            "total_pss_mib": round((master["pss"] + sum(w["pss"] for w in workers)) / 1024, 1),
            "total_rss_mib": round((master["rss"] + sum(w["rss"] for w in workers)) / 1024, 1),
        }

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, sig)

    def stop(self, timeout: float = 30.0) -> float:
        """SIGTERM, wait up to `timeout`, then SIGKILL the whole group. Returns seconds to exit."""
        if self.proc is None:
            return 0.0
        t0 = time.monotonic()
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=timeout)
        # leftovers (workers orphaned by a killed master) share the process group
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        return time.monotonic() - t0

    def tail_log(self, n: int = 2000) -> str:
        if self.log_path and self.log_path.exists():
            return self.log_path.read_bytes()[-n:].decode(errors="replace")
        return ""

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop(timeout=10)


def offline_plan(stack: str) -> dict[str, Any]:
    """``infra plan --stack STACK --format json``: the deployer's machine-readable plan (never hand-picked
    values; benchmarks take the environment they run under from it)."""
    out = subprocess.run(
        [str(VENV_BIN / "infra"), "plan", "--stack", stack, "--format", "json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    plan: dict[str, Any] = json.loads(out.stdout)
    return plan


def uvicorn_cmd(app: str, port: int, *, factory: bool = False, workers: int = 1) -> list[str]:
    """Single-process uvicorn (uvloop + httptools, access log off as in production)."""
    cmd = [
        PY,
        "-m",
        "uvicorn",
        app,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
        "--log-level",
        "warning",
        "--loop",
        "uvloop",
        "--http",
        "httptools",
    ]
    if factory:
        cmd.append("--factory")
    # explicit, because uvicorn's --workers defaults to $WEB_CONCURRENCY (which the service env sets)
    cmd += ["--workers", str(workers)]
    return cmd


def gunicorn_cmd(app: str, port: int, conf: str = "app/gunicorn_conf.py") -> list[str]:
    """gunicorn with the service's own config file; the bind is forced to a loopback port."""
    return [str(VENV_BIN / "gunicorn"), "-c", conf, "--bind", f"127.0.0.1:{port}", app]


# --------------------------------------------------------------------------------------------- wrk


@dataclass
class WrkResult:
    """One `wrk` run: throughput, latency percentiles (ms) and error counts."""

    url: str
    connections: int
    duration_s: float
    requests: int
    rps: float
    p50_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    mean_ms: float
    errors: dict[str, int]
    #: latency (us) -> requests, when run_wrk(histogram=True)
    histogram: dict[int, int] | None = None

    @property
    def failed(self) -> int:
        return sum(self.errors.values())

    def row(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "connections": self.connections,
            "requests": self.requests,
            "rps": round(self.rps, 1),
            "p50_ms": self.p50_ms,
            "p95_ms": self.p95_ms,
            "p99_ms": self.p99_ms,
            "p999_ms": self.p999_ms,
            "max_ms": self.max_ms,
            "errors": self.errors,
        }


def run_wrk(
    url: str,
    *,
    connections: int = 64,
    threads: int = 1,
    duration: float = 5.0,
    timeout: float = 5.0,
    headers: Mapping[str, str] | None = None,
    histogram: bool = False,
) -> WrkResult:
    """Closed-loop load with `wrk`: `connections` keep-alive connections, fixed duration.

    One wrk thread by default: on a 2-core box every core wrk uses is taken from the server under test.
    Non-2xx/3xx responses count as `status` errors; `timeout` are requests slower than `timeout`.
    ``histogram``: also the whole latency distribution (:func:`pooled_percentile` pools several runs).
    """
    wrk = shutil.which("wrk")
    if not wrk:
        raise RuntimeError("wrk not found: apt-get install wrk")
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(("WRK_HISTOGRAM = true\n" if histogram else "") + _WRK_LUA)
        script = f.name
    cmd = [
        wrk,
        "-t",
        str(threads),
        "-c",
        str(connections),
        "-d",
        f"{duration:g}s",
        "--timeout",
        f"{timeout:g}s",
        "-s",
        script,
    ]
    for k, v in (headers or {}).items():
        cmd += ["-H", f"{k}: {v}"]
    cmd.append(url)
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + timeout + 30)
    finally:
        os.unlink(script)
    m = re.search(r"WRKJSON (\{.*\})", out.stdout)
    if not m:
        raise RuntimeError(f"wrk produced no summary: {out.stdout[-500:]} {out.stderr[-500:]}")
    d = json.loads(m.group(1))
    hist: dict[int, int] | None = None
    if histogram:
        hm = re.search(r"WRKHIST ([0-9:,]*)", out.stdout)
        hist = {}
        for part in hm.group(1).split(",") if hm and hm.group(1) else ():
            v, c = part.split(":")
            hist[int(v)] = hist.get(int(v), 0) + int(c)
    secs = d["duration_us"] / 1e6
    ms = 1000.0
    return WrkResult(
        url=url,
        connections=connections,
        duration_s=round(secs, 2),
        requests=d["requests"],
        rps=d["requests"] / secs if secs else 0.0,
        p50_ms=round(d["p50_us"] / ms, 2),
        p90_ms=round(d["p90_us"] / ms, 2),
        p95_ms=round(d["p95_us"] / ms, 2),
        p99_ms=round(d["p99_us"] / ms, 2),
        p999_ms=round(d["p999_us"] / ms, 2),
        max_ms=round(d["lat_max_us"] / ms, 2),
        mean_ms=round(d["lat_mean_us"] / ms, 2),
        errors={
            "connect": d["err_connect"],
            "read": d["err_read"],
            "write": d["err_write"],
            "status": d["err_status"],
            "timeout": d["err_timeout"],
        },
        histogram=hist,
    )


def pooled_percentile(histograms: Sequence[Mapping[int, int]], pct: float) -> float | None:
    """The `pct` percentile (ms) of the requests of several runs together, from run_wrk(histogram=True)."""
    merged: dict[int, int] = {}
    for hist in histograms:
        for v, c in hist.items():
            merged[v] = merged.get(v, 0) + c
    total = sum(merged.values())
    if not total:
        return None
    rank = pct / 100 * total
    seen = 0
    for v in sorted(merged):
        seen += merged[v]
        if seen >= rank:
            return round(v / 1000, 2)
    return round(max(merged) / 1000, 2)


# --------------------------------------------------------------------------------------------- output


def save_json(name: str, data: Any) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    return path


def save_csv(name: str, rows: list[dict[str, Any]]) -> Path:
    import csv

    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.csv"
    if not rows:
        path.write_text("")
        return path
    keys: list[str] = []
    for r in rows:
        keys.extend(k for k in r if k not in keys)
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        for r in rows:
            w.writerow({k: (json.dumps(v) if isinstance(v, dict | list) else v) for k, v in r.items()})
    return path


def run_child_json(code: str, args: Sequence[str], env: Mapping[str, str], timeout: float) -> dict[str, Any]:
    """Run ``code`` in a fresh interpreter (this one's executable, the repository as working directory and
    so first on sys.path) with ``args``; the JSON object its last line of stdout prints."""
    out = subprocess.run(
        [PY, "-c", code, *args],
        cwd=REPO,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def table(rows: list[dict[str, Any]], cols: list[str]) -> str:
    """A Markdown table (printed by each script, pasted into BENCHMARKS.md)."""
    out = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for r in rows:
        out.append("| " + " | ".join(str(r.get(c, "")) for c in cols) + " |")
    return "\n".join(out)


@contextlib.contextmanager
def timed(label: str) -> Iterator[None]:
    t0 = time.monotonic()
    print(f"--> {label}", flush=True)
    try:
        yield
    finally:
        print(f"<-- {label}: {time.monotonic() - t0:.1f}s", flush=True)


def wrk_background(url: str, **kwargs: Any) -> concurrent.futures.Future[WrkResult]:
    """Start `run_wrk` in a thread (so a probe client can measure meanwhile); `.result()` joins it."""
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    fut = pool.submit(run_wrk, url, **kwargs)
    pool.shutdown(wait=False)
    return fut


def established_by_pid(port: int, pids: Sequence[int]) -> dict[int, int]:
    """How many ESTABLISHED TCP connections on local `port` each process holds (from /proc/net/tcp)."""
    inodes: set[str] = set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            f = line.split()
            local_port = int(f[1].split(":")[1], 16)
            if local_port == port and f[3] == "01":
                inodes.add(f[9])
    out: dict[int, int] = {}
    for pid in pids:
        n = 0
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    link = os.readlink(fd)
                    if link.startswith("socket:[") and link[8:-1] in inodes:
                        n += 1
        out[pid] = n
    return out


_CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: Sequence[int]) -> float:
    """user+system CPU seconds consumed so far by `pids` (from /proc/<pid>/stat)."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = Path(f"/proc/{pid}/stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15 of stat)
    return total / _CLK_TCK


def wrk_with_cpu(srv: Server, path: str, **kwargs: Any) -> tuple[WrkResult, float]:
    """run_wrk plus the server's CPU milliseconds per request (master + workers).

    CPU per request barely moves when other tenants load the machine, unlike requests/s; capacity
    on N dedicated cores is then roughly N x 1000 / cpu_ms_per_request.
    """
    pids = [srv.pid, *children(srv.pid)]
    c0 = cpu_seconds(pids)
    res = run_wrk(srv.base + path, **kwargs)
    c1 = cpu_seconds(pids)
    return res, round((c1 - c0) * 1000 / max(res.requests, 1), 3)


CGROUP_CPU = Path("/sys/fs/cgroup/cpu")


@contextlib.contextmanager
def cpu_quota(vcpu: float) -> Iterator[Path]:
    """A cgroup-v1 CPU quota of `vcpu` CPUs, like a Fargate task's or Cloud Run instance's CPU limit.

    Processes moved into it are throttled by CFS bandwidth control exactly as in a container. Needs
    root and the v1 cpu controller mounted at /sys/fs/cgroup/cpu; removed again on exit.
    """
    if not (CGROUP_CPU / "cpu.cfs_quota_us").exists():
        raise RuntimeError(f"no cgroup-v1 cpu controller at {CGROUP_CPU}: cannot model a CPU quota here")
    path = CGROUP_CPU / f"bench-quota-{os.getpid()}"
    path.mkdir(exist_ok=True)
    try:
        (path / "cpu.cfs_period_us").write_text("100000")
        (path / "cpu.cfs_quota_us").write_text(str(int(vcpu * 100000)))
        yield path
    finally:
        with contextlib.suppress(OSError):
            for pid in (path / "cgroup.procs").read_text().split():
                with contextlib.suppress(OSError):
                    (CGROUP_CPU / "cgroup.procs").write_text(pid)
        with contextlib.suppress(OSError):
            path.rmdir()


def throttling(cgroup: Path | None) -> dict[str, int]:
    """CFS throttling counters of a quota cgroup (periods throttled, total throttled ns)."""
    out = {"nr_periods": 0, "nr_throttled": 0, "throttled_time": 0}
    if cgroup is None:
        return out
    with contextlib.suppress(OSError):
        for line in (cgroup / "cpu.stat").read_text().splitlines():
            k, _, v = line.partition(" ")
            if k in out:
                out[k] = int(v)
    return out


def main(run: Callable[[bool], Any], description: str | None) -> None:
    """The command line every single benchmark script shares: `python -m bench.bench_X [--quick]`."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--quick", action="store_true", help="short smoke run, written to bench/results/quick/")
    quick = ap.parse_args().quick
    set_quick(quick)
    run(quick)
