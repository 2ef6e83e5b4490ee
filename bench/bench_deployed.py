"""10. The service under the env the DEPLOYER injects (prod-ecs, prod-vps), before vs after, vs bare apps.

Nothing here is hand-picked: each variant's env is what `infra` computes for the stack's container
(`fastapi_deploy.tuning.container_environment(cfg, for_platform(cfg))`, i.e. the plan's task definition /
container env), computed by the release that runs it. Only what cannot be deployed locally is replaced, and
recorded: the secrets (DATABASE_URL, REDIS_URL, JWT_SECRET_KEY point at throwaway local services), PORT (a
free loopback port) and MIGRATE_ON_START/MIGRATE_TIMEOUT (the benchmark migrates once beforehand).

Variants, in ONE run, per endpoint all up at once, the load moving between them in 5-s slices (12 per
variant = 60 s each, the order rotated each slice; see run()):
  service-before  the release this branch started from (`git archive`d to a temp dir), its own deployer env
  service         this tree, its deployer env
  fastapi-bare    bench.apps.fastapi_bare under the same gunicorn config, env and worker count (/health)
  fastapi-sqla    bench.apps.fastapi_sqla: bare FastAPI + SQLAlchemy/asyncpg, the DB route's query (DB)
  service-uncached  this tree, its deployer env but CACHE_TTL_SECONDS=0 (labelled override, DB route only):
                  the deployed service answers the item list from its Redis read cache (§14) and would
                  not run the query the bare app runs; this variant does
All run the Dockerfile's CMD (gunicorn -c app/gunicorn_conf.py ...), bound to loopback.

`--recycle-window`: how long a recycle leaves a ONE-worker task (prod-ecs) without an accepting worker.
The deployed prod-ecs env, except GUNICORN_MAX_REQUESTS forced low (labelled) so that recycles happen every
few seconds; wrk loads /health while a probe opens a fresh connection every 1 ms and records when each
answer arrives. Per recycle: from the server's JSON log, the old worker's "Maximum request limit exceeded"
to the replacement's "Application startup complete"; and, client side, the longest gap between two
answered probes (= no worker serving, plus the probe's own queueing behind wrk's 8 connections).
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import appenv
from bench import harness as h
from bench.bench_faults import ChildWatcher
from devenv.run import dockerfile_cmd

STACKS = ("prod-ecs", "prod-vps")
SERVICE = "app.main:create_app()"
BARE = "bench.apps.fastapi_bare:app"
SQLA = "bench.apps.fastapi_sqla:app"
# Replaced locally (recorded in the results); everything else is the deployer's.
NOT_DEPLOYABLE_HERE = ("MIGRATE_ON_START", "MIGRATE_TIMEOUT")

_ENV_SNIPPET = """
import json, sys
from fastapi_deploy.config import load_stack_file
from fastapi_deploy.plan import resolve_stack
from fastapi_deploy.tuning import container_environment, for_platform
cfg = load_stack_file(resolve_stack(sys.argv[1]))
print(json.dumps(container_environment(cfg, for_platform(cfg))))
"""


def deployer_env(stack: str, tree: Path) -> dict[str, str]:
    """The container env `tree`'s deployer computes for `stack` (non-secret part; secrets are refs)."""
    out = subprocess.run(
        [h.PY, "-c", _ENV_SNIPPET, stack],
        cwd=tree,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tree), "HOME": "/tmp"},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    env: dict[str, str] = json.loads(out.stdout)
    return env


def export_tree(rev: str) -> Path:
    """`git archive` of `rev` into a temp dir (read-only use; no worktree is touched)."""
    dest = Path(tempfile.mkdtemp(prefix=f"bench-before-{rev[:10]}-"))
    archive = subprocess.run(
        ["git", "archive", "--format=tar", rev], cwd=h.REPO, capture_output=True, timeout=120, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True, timeout=120)
    return dest


#: ``--before REV``: the release the "before" variants run (default: where this branch left main).
BEFORE_REV: str | None = None


def base_rev() -> str:
    if BEFORE_REV:
        return subprocess.run(
            ["git", "rev-parse", "--verify", BEFORE_REV],
            cwd=h.REPO,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout.strip()
    out = subprocess.run(
        ["git", "merge-base", "HEAD", "main"], cwd=h.REPO, capture_output=True, text=True, timeout=30
    )
    return out.stdout.strip() or "HEAD"


def tree_cpu_seconds(master: int) -> float:
    """CPU of the master, its live workers AND the workers it already reaped (recycled ones).

    Recycled workers vanish from /proc; their CPU lands in the master's cutime/cstime once reaped.
    """
    total = h.cpu_seconds([master, *h.children(master)])
    with suppress(OSError, IndexError, ValueError):
        stat = Path(f"/proc/{master}/stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()
        total += (int(fields[13]) + int(fields[14])) / h._CLK_TCK  # cutime, cstime
    return total


@dataclass
class Variant:
    name: str
    target: str
    tree: Path
    env: dict[str, str]


#: bench/latprobe: the server-side latency probe (``--server-latency``), a sitecustomize
LATPROBE_DIR = h.REPO / "bench" / "latprobe"


def _server(v: Variant, deps_env: dict[str, str], *, probe: str | None = None, **overrides: Any) -> h.Server:
    """``probe``: a file prefix for bench/latprobe's per-worker lines (the probe is put first on
    PYTHONPATH, for every variant alike)."""
    port = h.free_port()
    cmd = dockerfile_cmd(v.tree / "Dockerfile")
    # the image's CMD; the app argument is swapped for the bare apps
    if cmd[0] != "gunicorn" or cmd[-1] != SERVICE:
        raise RuntimeError(f"unexpected Dockerfile CMD {cmd}")
    argv = [str(h.VENV_BIN / "gunicorn"), *cmd[1:-1], "--bind", f"127.0.0.1:{port}", v.target]
    env = {k: val for k, val in v.env.items() if k not in NOT_DEPLOYABLE_HERE}
    env.update(
        DATABASE_URL=deps_env["DATABASE_URL"],
        REDIS_URL=deps_env["REDIS_URL"],
        JWT_SECRET_KEY=deps_env["JWT_SECRET_KEY"],
        PORT=str(port),
        PYTHONPATH=str(v.tree),
    )
    if probe is not None:
        env.update(PYTHONPATH=f"{LATPROBE_DIR}:{v.tree}", BENCH_LATPROBE=probe)
    env.update({k: str(x) for k, x in overrides.items()})
    return h.Server(argv, port, env=env, ready_path="/health", cwd=v.tree, start_timeout=60)


def _measure(srv: h.Server, path: str, duration: float, conns: int) -> dict[str, Any]:
    """One run of `duration` s on a freshly started server (after its workers are up and a 2-s warm-up)."""
    srv.wait_workers(int(srv.env.get("WEB_CONCURRENCY", "1")))
    h.run_wrk(srv.base + path, connections=conns, duration=2.0)  # warm-up: pools, caches
    return _slice(srv, path, duration, conns)


def _probe_histogram(prefix: str, since: float) -> dict[int, int]:
    """bench/latprobe's requests written at or after `since` (unix time), as {latency us: requests}."""
    hist: dict[int, int] = {}
    for f in Path(prefix).parent.glob(Path(prefix).name + ".*"):
        for line in f.read_text().splitlines():
            ts, _, counts = line.partition(" ")
            if float(ts) < since:
                continue
            for bucket, n in json.loads(counts).items():
                us = int(bucket) * 100 + 50  # the middle of the 0.1-ms bucket
                hist[us] = hist.get(us, 0) + n
    return hist


def _slice(
    srv: h.Server,
    path: str,
    duration: float,
    conns: int,
    *,
    histogram: bool = False,
    probe: str | None = None,
) -> dict[str, Any]:
    """`duration` s of wrk against an already warm server: throughput, latency, errors, recycles, CPU.
    ``histogram``: also wrk's latency histogram under ``_histogram`` (for pooling slices; not saved).
    ``probe``: the server runs bench/latprobe with this prefix: its server-side latencies of this slice
    under ``_server_histogram`` and ``server_p99_ms``."""
    load0 = h.loadavg()[0]
    started = time.time()
    initial = set(h.children(srv.pid))
    c0, m0 = tree_cpu_seconds(srv.pid), h.cpu_seconds([srv.pid])
    with ChildWatcher(srv.pid) as watch:
        res = h.run_wrk(
            srv.base + path, connections=conns, duration=duration, timeout=10, histogram=histogram
        )
    c1, m1 = tree_cpu_seconds(srv.pid), h.cpu_seconds([srv.pid])
    socket_errors = sum(v for k, v in res.errors.items() if k != "status")
    server: dict[str, Any] = {}
    if probe is not None:
        time.sleep(0.8)  # the probe writes 0.5 s after the first request since its last line
        hist = _probe_histogram(probe, started)
        server = {"_server_histogram": hist, "server_p99_ms": h.pooled_percentile([hist], 99)}
    return {
        **res.row(),
        **({"_histogram": res.histogram} if histogram else {}),
        **server,
        "path": path,
        "seconds": duration,
        "socket_errors": socket_errors,
        "status_errors": res.errors["status"],
        "recycles": len([p for p in watch.seen if p not in initial]),
        "server_cpu_s": c1 - c0,
        "worker_cpu_s": (c1 - c0) - (m1 - m0),
        "server_cpu_ms_per_req": round((c1 - c0) * 1000 / max(res.requests, 1), 3),
        # the workers alone (live ones and those reaped during the run), without the master's own CPU
        "worker_cpu_ms_per_req": round(((c1 - c0) - (m1 - m0)) * 1000 / max(res.requests, 1), 3),
        "loadavg_1m_start": load0,
        "loadavg_1m_end": h.loadavg()[0],
    }


_ENV_KEYS = (
    "WEB_CONCURRENCY",
    "GUNICORN_MAX_REQUESTS",
    "GUNICORN_MAX_REQUESTS_JITTER",
    "GC_FREEZE",
    "GC_THRESHOLD",
    "LOG_LEVEL",
    "CACHE_TTL_SECONDS",
)
#: seconds of load per slice (run())
SLICE_S = 5.0


def _env_row(env: dict[str, str]) -> dict[str, str]:
    return {k: env.get(k, "(unset)") for k in _ENV_KEYS}


@contextmanager
def _before_tree(rev: str) -> Iterator[Path]:
    tree = export_tree(rev)
    try:
        yield tree
    finally:
        shutil.rmtree(tree, ignore_errors=True)


COLUMNS = [
    "stack",
    "path",
    "variant",
    "rps",
    "vs_bare",
    "vs_bare_pooled",
    "cpu_vs_bare",
    "p50_ms",
    "p99_ms",
    "p99_vs_bare",
    "p99_vs_bare_worst_slice",
    "server_p99_ms",
    "server_p99_vs_bare",
    "max_ms",
    "socket_errors",
    "status_errors",
    "recycles",
    "server_cpu_ms_per_req",
    "worker_cpu_ms_per_req",
    "loadavg_1m_start",
]
#: Per variant, what differs from the deployer's env (besides the locally replaced secrets and port).
OVERRIDES = {"service-uncached": {"CACHE_TTL_SECONDS": "0"}}


def run(
    quick: bool = False,
    rounds: int = 1,
    stacks: tuple[str, ...] = STACKS,
    slices: int | None = None,
    conns: int = 64,
    server_latency: bool = False,
) -> dict[str, Any]:
    """Per stack and endpoint, every variant's server runs at once and the load moves between them in
    slices (``slices`` of ``SLICE_S`` s per variant, the order rotated each slice): each variant gets
    ``slices x SLICE_S`` s of load (60 s by default, spanning the deployed env's recycles), and each slice
    of the service has a slice of the bare app next to it in time. On this shared 2-vCPU VM the same app's
    throughput drifts by +-15 % within minutes (BENCHMARKS.md §10); back-to-back 60-s runs put that drift
    into the ratio, paired slices mostly cancel it. Idle servers cost nothing measurable (no request
    reaches them; their 1-s timers are microseconds), and each slice reads CPU from the loaded server only.
    ``rounds``: the whole thing again with fresh servers (a new process layout each time). ``conns``: wrk's
    connections. ``server_latency``: every server runs bench/latprobe, and each slice also records the
    server-side latency (socket read to answer handed to the transport)."""
    n_slices = slices or (4 if quick else 12)
    slice_s = 3.0 if quick else SLICE_S
    probe_dir = Path(tempfile.mkdtemp(prefix="bench-latprobe-")) if server_latency else None
    machine = h.machine_info()
    rev = base_rev()
    raw: list[dict[str, Any]] = []
    envs: dict[str, Any] = {}
    with _before_tree(rev) as before, appenv.deps() as deps:
        for stack in stacks:
            after_env = deployer_env(stack, h.REPO)
            before_env = deployer_env(stack, before)
            envs[stack] = {"after": after_env, "before": before_env}
            variants = {
                "service-before": Variant(f"service-before ({rev[:7]})", SERVICE, before, before_env),
                "service": Variant("service", SERVICE, h.REPO, after_env),
                "fastapi-bare": Variant("fastapi-bare", BARE, h.REPO, after_env),
                "fastapi-sqla": Variant("fastapi+sqlalchemy bare", SQLA, h.REPO, after_env),
                "service-uncached": Variant(
                    "service, CACHE_TTL_SECONDS=0 (override)",
                    SERVICE,
                    h.REPO,
                    {**after_env, **OVERRIDES["service-uncached"]},
                ),
            }
            # DB route: the deployed service (read cache on) and the same service running the query
            # (uncached) against the bare app running it. service-before has the same cache (§14).
            plan = [
                ("/health", ["service-before", "fastapi-bare", "service"]),
                (appenv.DB_PATH, ["fastapi-sqla", "service-uncached", "service"]),
            ]
            for rnd in range(rounds):
                for path, names in plan:
                    with h.timed(f"{stack} round {rnd} {path}: {', '.join(names)}"), ExitStack() as up:
                        probes = {k: _probe_prefix(probe_dir, f"{stack}-{rnd}-{k}") for k in names}
                        servers = {
                            k: up.enter_context(_server(variants[k], deps.env, probe=probes[k]))
                            for k in names
                        }
                        for srv in servers.values():
                            srv.wait_workers(int(srv.env.get("WEB_CONCURRENCY", "1")))
                            h.run_wrk(srv.base + path, connections=conns, duration=2.0)  # warm-up
                        for i in range(n_slices):
                            for key in _slice_order(names, i):
                                row = _slice(
                                    servers[key], path, slice_s, conns, histogram=True, probe=probes[key]
                                )
                                v = variants[key]
                                row.update(round=rnd, slice=i, stack=stack, variant=key, label=v.name)
                                row.update(_env_row(v.env))
                                raw.append(row)
                            print(
                                f"{stack} {path} slice {i}: "
                                + ", ".join(f"{r['variant']} {r['rps']:.0f}" for r in raw[-len(names) :]),
                                flush=True,
                            )
    rows = _summarise(raw)
    print(h.table(rows, COLUMNS))
    data = {
        "machine": machine,
        "before_rev": rev,
        "connections": conns,
        "slice_s": slice_s,
        "slices": n_slices,
        "rounds": rounds,
        "deployer_env": envs,
        "replaced_locally": ["DATABASE_URL", "REDIS_URL", "JWT_SECRET_KEY", "PORT", *NOT_DEPLOYABLE_HERE],
        "overrides": OVERRIDES,
        "loadavg_at_end": h.loadavg(),
        "rows": rows,
        "raw": [{k: v for k, v in r.items() if not k.startswith("_")} for r in raw],
    }
    if probe_dir is not None:
        shutil.rmtree(probe_dir, ignore_errors=True)
    name = "deployed_" + "_".join(stacks) + ("" if conns == 64 else f"_c{conns}")
    h.save_json(name, data)
    h.save_csv(name, rows)
    return data


def _probe_prefix(probe_dir: Path | None, name: str) -> str | None:
    return str(probe_dir / name) if probe_dir is not None else None


def _slice_order(names: list[str], i: int) -> list[str]:
    """Slice `i`'s order: rotated by one each slice, so over len(names) slices every variant is loaded in
    every position and after every other variant equally often (a variant always loaded right after the
    busiest one, or always first, would carry that into its ratio)."""
    k = i % len(names)
    return names[k:] + names[:k]


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _summarise(raw: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (stack, path, variant), over all slices and rounds: pooled throughput (requests / seconds under
    load), p50/p99 over every request (pooled latency histograms), the worst max, errors and recycles
    summed, CPU per request pooled. Against the bare app of the same endpoint: the median of the paired
    per-slice throughput ratios (the headline: each slice is compared with the bare app's slice next to it
    in time), the pooled ratio, the p99 ratio and the worst slice's p99 ratio."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for r in raw:
        groups.setdefault((r["stack"], r["path"], r["variant"]), []).append(r)
    rows: dict[tuple[str, str, str], dict[str, Any]] = {}
    for key, rs in groups.items():
        seconds = sum(r["seconds"] for r in rs)
        requests = sum(r["requests"] for r in rs)
        rows[key] = {
            "stack": key[0],
            "path": key[1],
            "variant": key[2],
            "label": rs[0]["label"],
            "slices": len(rs),
            "seconds": seconds,
            "requests": requests,
            "rps": round(requests / seconds, 1),
            # over every request of every slice (wrk's latency histograms pooled)
            "p50_ms": h.pooled_percentile([r["_histogram"] for r in rs], 50),
            "p99_ms": h.pooled_percentile([r["_histogram"] for r in rs], 99),
            "p99_slice_median_ms": round(_median([r["p99_ms"] for r in rs]), 2),
            # server-side (bench/latprobe, --server-latency): socket read to answer handed to the transport
            "server_p99_ms": h.pooled_percentile([r["_server_histogram"] for r in rs], 99)
            if all("_server_histogram" in r for r in rs)
            else None,
            "max_ms": max(r["max_ms"] for r in rs),
            "socket_errors": sum(r["socket_errors"] for r in rs),
            "status_errors": sum(r["status_errors"] for r in rs),
            "recycles": sum(r["recycles"] for r in rs),
            "server_cpu_ms_per_req": round(sum(r["server_cpu_s"] for r in rs) * 1000 / max(requests, 1), 3),
            "worker_cpu_ms_per_req": round(sum(r["worker_cpu_s"] for r in rs) * 1000 / max(requests, 1), 3),
            "loadavg_1m_start": min(r["loadavg_1m_start"] for r in rs),
            **{k: rs[0][k] for k in _ENV_KEYS if k in rs[0]},
        }
    for (stack, path, variant), row in rows.items():
        bare_key = "fastapi-bare" if path == "/health" else "fastapi-sqla"
        bare = rows.get((stack, path, bare_key))
        if bare is None:
            continue
        mine = {(r["round"], r["slice"]): r for r in groups[(stack, path, variant)]}
        theirs = {(r["round"], r["slice"]): r for r in groups[(stack, path, bare_key)]}
        pairs = [(mine[k], theirs[k]) for k in sorted(mine.keys() & theirs.keys())]
        row["vs_bare"] = round(_median([a["rps"] / b["rps"] for a, b in pairs if b["rps"]]), 3)
        row["vs_bare_pooled"] = round(row["rps"] / bare["rps"], 3) if bare["rps"] else None
        row["p99_vs_bare"] = round(row["p99_ms"] / bare["p99_ms"], 2) if bare["p99_ms"] else None
        ratios = [a["p99_ms"] / b["p99_ms"] for a, b in pairs if b["p99_ms"]]
        row["p99_vs_bare_worst_slice"] = round(max(ratios), 2) if ratios else None
        row["cpu_vs_bare"] = round(bare["server_cpu_ms_per_req"] / row["server_cpu_ms_per_req"], 3)
        if row["server_p99_ms"] and bare["server_p99_ms"]:
            row["server_p99_vs_bare"] = round(row["server_p99_ms"] / bare["server_p99_ms"], 2)
    return list(rows.values())


# ------------------------------------------------------------------------------------ recycle window


def _probe(port: int, stop_at: float, out: list[tuple[float, float, bool]], interval: float = 0.001) -> None:
    """Fresh connection + GET /health every `interval` s until `stop_at` (bounded: 5 s per request,
    at most 200k probes). Records (sent, answered, ok) in monotonic seconds."""
    req = b"GET /health HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
    while time.monotonic() < stop_at and len(out) < 200_000:
        t0 = time.monotonic()
        ok = False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                s.sendall(req)
                data = b""
                while len(data) < 65536:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                ok = data.startswith(b"HTTP/1.1 200")
        except OSError:
            ok = False
        t1 = time.monotonic()
        out.append((t0, t1, ok))
        pause = interval - (time.monotonic() - t0)
        if pause > 0:
            time.sleep(pause)


def _windows(probes: list[tuple[float, float, bool]], events: list[float]) -> dict[str, Any]:
    """Per recycle event: the longest gap between consecutive successful answers within [-1 s, +3 s]."""
    done = sorted(t1 for _, t1, ok in probes if ok)
    gaps = [(b - a, a) for a, b in itertools.pairwise(done)]
    per = []
    for ev in events:
        near = [g for g, a in gaps if ev - 1.0 <= a <= ev + 3.0]
        per.append(round(max(near, default=0.0) * 1000, 1))
    quiet = sorted(g for g, a in gaps if all(abs(a - ev) > 3.0 for ev in events))
    return {
        "window_ms_per_recycle": per,
        "window_ms_max": max(per, default=None),
        "window_ms_median": sorted(per)[len(per) // 2] if per else None,
        "gap_ms_p99_without_recycle": round(quiet[int(len(quiet) * 0.99)] * 1000, 1) if quiet else None,
        "probes": len(probes),
        "probes_failed": sum(1 for *_, ok in probes if not ok),
    }


def _log_windows(log: Path) -> list[float]:
    """Per recycle, from the server's own JSON log: milliseconds from the old worker's "Maximum request
    limit ... exceeded" (it stops accepting right then) to the next worker's "Application startup
    complete" (it accepts from then on). Both releases log these uvicorn lines through the app's JSON
    handler, with pid and epoch ts (ms resolution)."""
    stops: list[float] = []
    starts: list[float] = []
    for line in log.read_text(errors="replace").splitlines():
        if not line.startswith("{"):
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        msg = str(rec.get("msg", ""))
        if msg.startswith("Maximum request limit"):
            stops.append(float(rec["ts"]))
        elif msg.startswith("Application startup complete"):
            starts.append(float(rec["ts"]))
    out = []
    for t0 in stops:
        nxt = [t for t in starts if t >= t0]
        if nxt:
            out.append(round((min(nxt) - t0) * 1000, 1))
    return out


def recycle_window(quick: bool = False, max_requests: int = 4000, rounds: int = 2) -> dict[str, Any]:
    duration = 10.0 if quick else 20.0
    machine = h.machine_info()
    rev = base_rev()
    raw: list[dict[str, Any]] = []
    with _before_tree(rev) as before, appenv.deps() as deps:
        variants = [
            Variant(f"before ({rev[:7]})", SERVICE, before, deployer_env("prod-ecs", before)),
            Variant("after (preload)", SERVICE, h.REPO, deployer_env("prod-ecs", h.REPO)),
        ]
        for rnd in range(rounds):
            for v in variants if rnd % 2 == 0 else variants[::-1]:
                forced: dict[str, Any] = {
                    "GUNICORN_MAX_REQUESTS": max_requests,
                    "GUNICORN_MAX_REQUESTS_JITTER": 0,
                }
                with h.timed(f"recycle window round {rnd} {v.name}"), _server(v, deps.env, **forced) as srv:
                    srv.wait_workers(1)
                    initial = set(h.children(srv.pid))
                    probes: list[tuple[float, float, bool]] = []
                    load0 = h.loadavg()[0]
                    with ChildWatcher(srv.pid) as watch:
                        stop_at = time.monotonic() + duration
                        t = threading.Thread(target=_probe, args=(srv.port, stop_at, probes), daemon=True)
                        t.start()
                        # 8 connections: the worker is still saturated, but a probe queues behind 8, not 64
                        res = h.run_wrk(srv.base + "/health", connections=8, duration=duration, timeout=10)
                        t.join(timeout=15)
                    log_windows = _log_windows(srv.log_path) if srv.log_path else []
                    # a recycle = the old worker exiting; the window closes when the replacement answers
                    events = sorted(watch.gone.values())
                    spawned = [p for p in watch.seen if p not in initial]
                row = {
                    "round": rnd,
                    "variant": v.name,
                    "forced_GUNICORN_MAX_REQUESTS": max_requests,
                    "WEB_CONCURRENCY": v.env.get("WEB_CONCURRENCY"),
                    "recycles": len(spawned),
                    "log_window_ms_per_recycle": log_windows,
                    "log_window_ms_median": sorted(log_windows)[len(log_windows) // 2]
                    if log_windows
                    else None,
                    "log_window_ms_max": max(log_windows, default=None),
                    **_windows(probes, events),
                    "wrk_rps": round(res.rps, 1),
                    "wrk_socket_errors": sum(x for k, x in res.errors.items() if k != "status"),
                    "wrk_p99_ms": res.p99_ms,
                    "wrk_max_ms": res.max_ms,
                    "loadavg_1m_start": load0,
                }
                raw.append(row)
                print(row, flush=True)
    cols = [
        "round",
        "variant",
        "recycles",
        "log_window_ms_median",
        "log_window_ms_max",
        "window_ms_median",
        "window_ms_max",
        "gap_ms_p99_without_recycle",
        "probes_failed",
        "wrk_socket_errors",
        "wrk_rps",
        "loadavg_1m_start",
    ]
    print(h.table(raw, cols))
    data = {
        "machine": machine,
        "before_rev": rev,
        "label": f"prod-ecs deployed env with GUNICORN_MAX_REQUESTS forced to {max_requests} (jitter 0)",
        "duration_s": duration,
        "rows": raw,
    }
    h.save_json("deployed_recycle_window", data)
    return data


def _inprocess_env(deps: appenv.Deps) -> dict[str, str]:
    """The in-process children's env: the deployer's prod-ecs env with CACHE_TTL_SECONDS=0 (override, like
    service-uncached above: the service runs the query the bare app runs instead of answering from its
    read cache; /health does not touch the cache) and the local PostgreSQL, Redis and secret."""
    import os

    env = {**os.environ, **deployer_env("prod-ecs", h.REPO), **OVERRIDES["service-uncached"]}
    env = {k: v for k, v in env.items() if k not in NOT_DEPLOYABLE_HERE}
    for k in ("DATABASE_URL", "REDIS_URL", "JWT_SECRET_KEY"):
        env[k] = deps.env[k]
    env["PYTHONPATH"] = str(h.REPO)
    return env


def inprocess(quick: bool = False, rounds: int = 3) -> dict[str, Any]:
    """CPU per request of the service vs the bare apps with no server and no socket: each in a fresh
    interpreter with the deployed prod-ecs env (GC settings applied as gunicorn's hooks do), requests
    driven straight into the ASGI app (bench_gc's driver). Takes uvicorn, wrk and the kernel out of the
    comparison, and uses CPU time, so it holds on a loaded box."""

    from bench.bench_gc import _CHILD

    counts = {"/health": 5000 if quick else 20000, appenv.DB_PATH: 300 if quick else 1500}
    # name: (module:attr or None for the service, extra env)
    apps: dict[str, tuple[str | None, dict[str, str]]] = {
        "service": (None, {}),
        "fastapi-bare": (BARE, {}),
        "fastapi-sqla": (SQLA, {}),
        # the bare app running the service's own query function (statement built once): the service's
        # cost around the same query code, without what app.queries saves over building it per request
        "fastapi-sqla-prebuilt": (SQLA, {"BENCH_SQLA_PREBUILT": "1"}),
    }
    pairs = [("/health", "service"), ("/health", "fastapi-bare")]
    pairs += [(appenv.DB_PATH, "service"), (appenv.DB_PATH, "fastapi-sqla")]
    pairs += [(appenv.DB_PATH, "fastapi-sqla-prebuilt")]
    raw: list[dict[str, Any]] = []
    machine = h.machine_info()
    with appenv.deps() as deps:
        env = _inprocess_env(deps)
        for rnd in range(rounds):
            for path, name in pairs if rnd % 2 == 0 else pairs[::-1]:
                spec, extra = apps[name]
                args = [path, str(counts[path]), *([spec] if spec else [])]
                row = {
                    "round": rnd,
                    "app": name,
                    "path": path,
                    **h.run_child_json(_CHILD, args, {**env, **extra}, timeout=600),
                }
                row["loadavg_1m"] = h.loadavg()[0]
                raw.append(row)
                print(row, flush=True)
    rows = []
    for path, name in pairs:
        pts = sorted(r["cpu_ms_per_req"] for r in raw if r["app"] == name and r["path"] == path)
        rows.append({"path": path, "app": name, "cpu_ms_per_req_median": round(pts[len(pts) // 2], 4)})
    cpu = {(r["path"], r["app"]): r["cpu_ms_per_req_median"] for r in rows}
    reference = {"/health": "fastapi-bare", appenv.DB_PATH: "fastapi-sqla"}
    for r in rows:
        r["bare_cpu_over_this"] = round(cpu[r["path"], reference[r["path"]]] / r["cpu_ms_per_req_median"], 2)
        if r["path"] == appenv.DB_PATH and r["app"] == "service":
            prebuilt = cpu[r["path"], "fastapi-sqla-prebuilt"]
            r["same_query_code_cpu_over_this"] = round(prebuilt / r["cpu_ms_per_req_median"], 2)
    cols = ["path", "app", "cpu_ms_per_req_median", "bare_cpu_over_this", "same_query_code_cpu_over_this"]
    print(h.table(rows, cols))
    data = {
        "machine": machine,
        "rounds": rounds,
        "overrides": OVERRIDES["service-uncached"],
        "rows": rows,
        "raw": raw,
        "loadavg_at_end": h.loadavg(),
    }
    h.save_json("deployed_inprocess", data)
    return data


_SAME_CODE_CHILD = r"""
import json, os, statistics, sys, time
os.environ["BENCH_SQLA_PREBUILT"] = "1"
import uvloop
from app import gctune
from app.main import create_app
import bench.apps.fastapi_sqla as sqla
from bench.asgi_drive import get, get_scope
svc, bare = create_app(), sqla.app
scope = get_scope(sys.argv[2])
async def one(app):
    status = await get(app, scope)
    assert status == 200, status
async def main():
    async with svc.router.lifespan_context(svc):
        for app in (svc, bare):
            for _ in range(50):
                await one(app)
        gctune.apply()
        cpu = {"service": [], "bare": []}
        for rnd in range(int(sys.argv[1])):
            for name in (("service", "bare") if rnd % 2 == 0 else ("bare", "service")):
                app = svc if name == "service" else bare
                c0 = time.process_time()
                for _ in range(60):
                    await one(app)
                cpu[name].append((time.process_time() - c0) / 60 * 1000)
    await sqla.engine.dispose()
    ratios = [b / s for b, s in zip(cpu["bare"], cpu["service"])]
    print(json.dumps({"rounds": len(ratios),
        "service_cpu_ms_median": statistics.median(cpu["service"]),
        "bare_cpu_ms_median": statistics.median(cpu["bare"]),
        "bare_over_service_paired_median": statistics.median(ratios),
        "bare_over_service_min": min(ratios), "bare_over_service_max": max(ratios)}))
uvloop.run(main())
"""


def same_query_code(rounds: int = 30) -> dict[str, Any]:
    """The DB page's CPU in ONE interpreter: the service (deployer prod-ecs env, CACHE_TTL_SECONDS=0) and
    the bare FastAPI + SQLAlchemy app running the service's own query function (BENCH_SQLA_PREBUILT=1),
    both driven straight into ASGI, alternating every 60 requests: what the service costs around the same
    query code, without the drift between fresh interpreters that `inprocess()` has on this box."""

    machine = h.machine_info()
    with appenv.deps() as deps:
        row = h.run_child_json(
            _SAME_CODE_CHILD, [str(rounds), appenv.DB_PATH], _inprocess_env(deps), timeout=1800
        )
    print(row)
    data = {"machine": machine, "overrides": OVERRIDES["service-uncached"], **row}
    data["loadavg_at_end"] = h.loadavg()
    h.save_json("deployed_same_query_code", data)
    return data


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="10-s runs, written to bench/results/quick/")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--slices", type=int, help=f"slices of {SLICE_S:g} s per variant (default 12; quick 4)")
    ap.add_argument("--stack", action="append", choices=STACKS, help="default: both")
    ap.add_argument("--connections", type=int, default=64, help="wrk's connections (default 64)")
    ap.add_argument(
        "--server-latency",
        action="store_true",
        help="every server runs bench/latprobe: also the server-side latency per request",
    )
    ap.add_argument("--recycle-window", action="store_true", help="only the forced-recycle probe run")
    ap.add_argument("--max-requests", type=int, default=4000, help="forced value for --recycle-window")
    ap.add_argument("--inprocess", action="store_true", help="only the in-process CPU/request comparison")
    ap.add_argument(
        "--same-query-code",
        action="store_true",
        help="only the DB page in one interpreter: service vs the bare app running app.queries",
    )
    ap.add_argument("--before", help="git revision of the 'before' variants (default: merge-base HEAD main)")
    a = ap.parse_args()
    global BEFORE_REV
    BEFORE_REV = a.before
    h.set_quick(a.quick)
    if a.inprocess:
        inprocess(a.quick, max(1, a.rounds))
    elif a.same_query_code:
        same_query_code(10 if a.quick else 30)
    elif a.recycle_window:
        recycle_window(a.quick, a.max_requests, max(1, a.rounds))
    else:
        run(a.quick, a.rounds, tuple(a.stack or STACKS), a.slices, a.connections, a.server_latency)


if __name__ == "__main__":
    main()
