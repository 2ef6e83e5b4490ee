"""4-6. Faults under load: graceful shutdown, max_requests recycling, a killed worker, a database outage.

Load comes from bench.loadgen (one record per request), so every failure is classified:
  lost     a request that was WRITTEN to a connection and never answered (reset / eof / timeout);
  refused  a connection the kernel refused because nothing listens any more (after shutdown the
           load balancer routes new connections elsewhere; not a lost request);
  http     an answered error status (>= 400), with its latency (fast fail vs hung);
  timeout  no answer within the client's per-request timeout: a HUNG request.
The service runs under gunicorn with its own config (app/gunicorn_conf.py), APP_ENV=production.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench import appenv
from bench import harness as h
from bench import loadgen as lg

LOST = ("reset", "eof", "timeout")


class ChildWatcher:
    """Polls the master's children every 20 ms in a thread: when workers die and are replaced."""

    def __init__(self, master: int) -> None:
        self.master = master
        self.seen: dict[int, float] = {}
        self.gone: dict[int, float] = {}
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        prev: set[int] = set()
        deadline = time.monotonic() + 300
        while not self._stop.is_set() and time.monotonic() < deadline:
            now = time.monotonic()
            cur = set(h.children(self.master))
            for p in cur - prev:
                self.seen.setdefault(p, now)
            for p in prev - cur:
                self.gone.setdefault(p, now)
            prev = cur
            time.sleep(0.02)

    def __enter__(self) -> ChildWatcher:
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join(timeout=5)


def _lost_before(res: lg.RunResult, stream: str, t: float) -> dict[str, int]:
    """Requests sent before `t` that never got an answer (the number that must be zero)."""
    out: dict[str, int] = {}
    for r in res.records[stream]:
        if r.t < t and r.kind in LOST:
            out[r.kind] = out.get(r.kind, 0) + 1
    return out


def _first_request_ts(log: Path, pid: int) -> float | None:
    """Epoch of the first request a worker logged (the service logs JSON lines with pid and ts)."""
    with contextlib.suppress(OSError):
        for line in log.read_text(errors="replace").splitlines():
            if f'"pid": {pid}' in line and '"msg": "request"' in line:
                with contextlib.suppress(ValueError, KeyError):
                    return float(json.loads(line)["ts"])
    return None


def _recovery(
    res: lg.RunResult,
    stream: str,
    t_event: float,
    before: tuple[float, float],
    bucket: float = 0.25,
    frac: float = 0.8,
) -> dict[str, Any]:
    """Throughput dip after `t_event` and the time until it is back to `frac` of the level in `before`."""
    tl = res.timeline(stream, bucket)
    base = [b["ok"] for b in tl if before[0] <= b["t"] < before[1]]
    level = sum(base) / max(len(base), 1)
    after = [b for b in tl if b["t"] >= t_event and b["t"] + bucket <= res.duration]
    back = None
    for i, b in enumerate(after):
        window = after[i : i + 4]
        if len(window) == 4 and all(w["ok"] >= frac * level for w in window):
            back = round(b["t"] - t_event, 2)
            break
    worst = min((b["ok"] for b in after[:12]), default=0)
    return {
        "ok_per_bucket_before": round(level, 1),
        "bucket_s": bucket,
        "worst_bucket_after": worst,
        "worst_vs_before": round(worst / level, 2) if level else None,
        "seconds_to_recover": back,
    }


# --------------------------------------------------------------------------------------------- 4a


def graceful(deps: appenv.Deps, quick: bool) -> dict[str, Any]:
    """SIGTERM to the master mid-load. Two runs: the service itself, and slow (3 s) requests in flight."""
    out: dict[str, Any] = {}
    at = 2.0 if quick else 3.0
    for label, target, streams, ready in (
        (
            "service",
            appenv.APP_FACTORY,
            [lg.Stream("health", "/health", 8), lg.Stream("db", appenv.DB_PATH, 4)],
            "/health",
        ),
        (
            "slow-requests",
            "bench.apps.blocking:app",
            [lg.Stream("slow3s", "/sleep?ms=3000", 4, timeout=30), lg.Stream("ping", "/ping", 4)],
            "/ping",
        ),
    ):
        port = h.free_port()
        srv = h.Server(
            h.gunicorn_cmd(target, port, appenv.GUNICORN_CONF),
            port,
            env={**deps.env, "PORT": str(port), "WEB_CONCURRENCY": "2"},
            ready_path=ready,
        )
        with srv:
            srv.wait_workers(2)
            box: dict[str, float] = {}

            def term(srv: h.Server = srv, box: dict[str, float] = box) -> float:
                t0 = time.monotonic()
                srv.signal(signal.SIGTERM)
                assert srv.proc is not None
                srv.proc.wait(timeout=60)
                box["drain"] = time.monotonic() - t0
                return box["drain"]

            res = lg.run(
                port,
                streams,
                duration=at + (8.0 if label == "slow-requests" else 4.0),
                actions=[(at, "sigterm", term)],
            )
        t_term = res.events["sigterm:begin"]
        per: dict[str, Any] = {}
        for s in streams:
            before = [r for r in res.records[s.name] if r.t < t_term]
            inflight = [r for r in before if r.t + r.lat > t_term]
            per[s.name] = {
                "sent_before_sigterm": len(before),
                "in_flight_at_sigterm": len(inflight),
                "in_flight_completed_ok": sum(1 for r in inflight if r.kind == "ok"),
                "lost_before_sigterm": _lost_before(res, s.name, t_term),
                "after_sigterm": res.summary(s.name, t_term)["kinds"],
            }
        out[label] = {
            "drain_seconds": round(box.get("drain", -1), 2),
            "graceful_timeout_s": 20,
            "sigterm_at_s": t_term,
            "streams": per,
        }
        print(label, out[label], flush=True)
    return out


# --------------------------------------------------------------------------------------------- 4b


def recycling(deps: appenv.Deps, quick: bool) -> dict[str, Any]:
    """max_requests set so each worker recycles every ~3 s during sustained load.

    First the same load without recycling (same run) gives the rate per worker; max_requests is then
    rate x 3 s, so the run sees several recycles per worker while a replacement has time to boot
    (a value below rate x boot time would keep every worker permanently rebooting).
    """
    duration = 6.0 if quick else 12.0
    streams = [lg.Stream("health", "/health", 8), lg.Stream("db", appenv.DB_PATH, 2)]
    base = appenv.gunicorn_server(deps.env, 2)
    with base:
        base.wait_workers(2)
        res0 = lg.run(base.port, streams, duration)
    rps0 = sum(len(v) for v in res0.records.values()) / duration
    max_req = max(100, int(rps0 / 2 * 3.0))
    jitter = max(1, max_req // 10)
    srv = appenv.gunicorn_server(
        deps.env, 2, GUNICORN_MAX_REQUESTS=max_req, GUNICORN_MAX_REQUESTS_JITTER=jitter
    )
    with srv:
        srv.wait_workers(2)
        initial = set(h.children(srv.pid))
        with ChildWatcher(srv.pid) as w:
            res = lg.run(srv.port, streams, duration)
    spawned = [p for p in w.seen if p not in initial]
    failed = res.summary("health")["failed"] + res.summary("db")["failed"]
    data = {
        "max_requests": max_req,
        "jitter": jitter,
        "duration_s": duration,
        "workers_recycled": len(spawned),
        "health": res.summary("health"),
        "db": res.summary("db"),
        "failed_total": failed,
        "failed_per_recycle": round(failed / len(spawned), 1) if spawned else None,
        "baseline_health": res0.summary("health"),
        "baseline_db": res0.summary("db"),
        "rps_with_recycling": round(sum(len(v) for v in res.records.values()) / duration, 1),
        "rps_without_recycling": round(rps0, 1),
    }
    print("recycling", data, flush=True)
    return data


# --------------------------------------------------------------------------------------------- 5


def _startup_ts(log: Path, pid: int) -> float | None:
    """Epoch at which a worker logged "Application startup complete." (it accepts from then on)."""
    with contextlib.suppress(OSError):
        for line in log.read_text(errors="replace").splitlines():
            if f'"pid": {pid}' in line and "startup complete" in line:
                with contextlib.suppress(ValueError, KeyError):
                    return float(json.loads(line)["ts"])
    return None


def crash(deps: appenv.Deps, quick: bool) -> dict[str, Any]:
    """kill -9 the busiest worker under load: requests lost, and when the replacement accepts again."""
    at = 2.0 if quick else 3.0
    duration = at + (5.0 if quick else 7.0)
    srv = appenv.gunicorn_server(deps.env, 2)
    with srv:
        srv.wait_workers(2)
        box: dict[str, Any] = {}

        def kill() -> None:
            held = h.established_by_pid(srv.port, h.children(srv.pid))
            victim = max(held, key=lambda p: held[p])
            box.update(victim=victim, held=held, epoch=time.time(), mono=time.monotonic())
            os.kill(victim, signal.SIGKILL)

        with ChildWatcher(srv.pid) as w:
            res = lg.run(
                srv.port,
                [lg.Stream("health", "/health", 12), lg.Stream("db", appenv.DB_PATH, 4)],
                duration,
                actions=[(at, "kill9", kill)],
            )
        log = srv.log_path
    t_kill = res.events["kill9:begin"]
    new = [p for p, t in w.seen.items() if t >= box["mono"]]
    replacement = min(new, key=lambda p: w.seen[p]) if new else None
    ready_ts = _startup_ts(log, replacement) if (replacement and log) else None
    first_ts = _first_request_ts(log, replacement) if (replacement and log) else None
    data = {
        "killed_pid": box["victim"],
        "connections_held_per_worker": {str(k): v for k, v in box["held"].items()},
        "killed_at_s": t_kill,
        "replacement_forked_after_s": round(w.seen[replacement] - box["mono"], 3) if replacement else None,
        "replacement_accepting_after_s": round(ready_ts - box["epoch"], 3) if ready_ts else None,
        "replacement_first_request_after_s": round(first_ts - box["epoch"], 3) if first_ts else None,
        "lost": {s: _lost_before(res, s, duration + 1) for s in ("health", "db")},
        "health": res.summary("health"),
        "db": res.summary("db"),
        "throughput_recovery_health": _recovery(res, "health", t_kill, (0.5, t_kill)),
        "timeline_health": res.timeline("health"),
    }
    print("crash", {k: v for k, v in data.items() if k != "timeline_health"}, flush=True)
    return data


# --------------------------------------------------------------------------------------------- 6


def _pg_tree(pg: Any) -> list[int]:
    pid = int((pg.datadir / "data" / "postmaster.pid").read_text().split()[0])
    return [pid, *h.descendants(pid)]


def _breaker_events(log: Path | None, msg: str) -> dict[int, float]:
    """pid -> epoch of the first "circuit breaker <msg>" line for postgres each worker logged."""
    out: dict[int, float] = {}
    if log is None:
        return out
    with contextlib.suppress(OSError):
        for line in log.read_text(errors="replace").splitlines():
            if f"circuit breaker {msg}" not in line:
                continue
            with contextlib.suppress(ValueError, KeyError, TypeError):
                rec = json.loads(line)
                if rec.get("dependency") == "postgres":
                    out.setdefault(int(rec["pid"]), float(rec["ts"]))
    return out


def _pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, round(p / 100 * (len(v) - 1)))]


def _breaker_figures(
    res: lg.RunResult, log: Path | None, down_epoch: float, t_down: float, t_up: float
) -> dict[str, Any]:
    """The circuit breaker's effect on the DB route (app.breaker): from the moment every worker has
    opened its breaker until PostgreSQL returns, how fast are the 503s (the breaker's refusals plus the
    occasional half-open probe, which waits for a timeout)."""
    opened = _breaker_events(log, "opened")
    if not opened:
        return {"opened_workers": 0}
    t_open_all = t_down + (max(opened.values()) - down_epoch)
    t_open_first = t_down + (min(opened.values()) - down_epoch)
    once_open = [r for r in res.records["db"] if t_open_all <= r.t and r.t + r.lat < t_up]
    fails = [r.lat for r in once_open if r.kind != "ok"]
    return {
        "opened_workers": len(opened),
        "first_worker_open_after_down_s": round(t_open_first - t_down, 2),
        "all_workers_open_after_down_s": round(t_open_all - t_down, 2),
        "db_requests_once_open": len(once_open),
        "db_503_once_open": sum(1 for r in once_open if r.status == 503),
        "db_non_503_once_open": dict(Counter(f"{r.kind}:{r.status}" for r in once_open if r.status != 503)),
        "db_fail_p50_once_open_ms": round((_pct(fails, 50) or 0) * 1000, 1),
        "db_fail_p99_once_open_ms": round((_pct(fails, 99) or 0) * 1000, 1),
        "db_fail_max_once_open_ms": round(max(fails, default=0) * 1000, 1),
        "db_fail_over_1s_once_open": sum(1 for x in fails if x >= 1.0),
        "closed_workers_after_up": len(_breaker_events(log, "closed")),
    }


def db_outage(
    deps: appenv.Deps,
    quick: bool,
    mode: str,
    env: dict[str, str] | None = None,
    env_label: str = "bench env (bench/appenv.py)",
) -> dict[str, Any]:
    """PostgreSQL down for `outage` seconds under load.

    mode "stop": pg_ctl stop -m fast (connections refused: the common restart/failover case).
    mode "hang": SIGSTOP postmaster and every backend (packets accepted, nothing answers: a network
    partition / frozen instance), the case that piles up hung requests without timeouts.
    ``env``: the service's environment (default: the bench env); its WEB_CONCURRENCY sets the workers.
    """
    at = 2.0 if quick else 3.0
    outage = 5.0 if quick else 10.0
    tail = 5.0 if quick else 9.0
    client_timeout = 20.0
    pg = deps.pg
    env = env or deps.env
    workers = int(env.get("WEB_CONCURRENCY") or 2)
    srv = appenv.gunicorn_server(env, workers)
    stopped: list[int] = []
    box: dict[str, float] = {}

    def down() -> None:
        box["down_epoch"] = time.time()
        if mode == "stop":
            pg.stop("fast")
        else:
            pids = _pg_tree(pg)
            for p in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p, signal.SIGSTOP)
            stopped.extend(pids)

    def up() -> None:
        if mode == "stop":
            pg.start()
        else:
            for p in stopped:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p, signal.SIGCONT)
            stopped.clear()

    # The DB stream is many connections with think time (~100 req/s offered) rather than a few in a
    # tight loop: with 8 closed-loop connections a hang simply stops the client sending, and the pile-up a
    # load balancer would cause (new requests keep arriving while old ones hang) would be invisible.
    streams = [
        lg.Stream("health", "/health", 2, timeout=client_timeout, think=0.02),
        lg.Stream("ready", "/ready", 2, timeout=client_timeout, think=0.1),
        lg.Stream("db", appenv.DB_PATH, 24, timeout=client_timeout, think=0.2),
    ]
    try:
        with srv:
            srv.wait_workers(workers)
            res = lg.run(
                srv.port,
                streams,
                at + outage + tail,
                actions=[(at, "db_down", down), (at + outage, "db_up", up)],
            )
    finally:
        if stopped:
            up()
    t_down, t_up = res.events["db_down"], res.events["db_up"]
    phases = {"before": (0.0, t_down), "during": (t_down, res.events["db_up:begin"]), "after": (t_up, 1e9)}
    per: dict[str, Any] = {}
    for s in streams:
        per[s.name] = {ph: res.summary(s.name, a, b) for ph, (a, b) in phases.items()}
    # every DB request that was in flight at any moment of the outage (sent before it and still waiting
    # counts too: those are the ones that hang when nothing times out)
    during_db = [r for r in res.records["db"] if r.t < t_up and r.t + r.lat > t_down]
    failed_during = [r for r in during_db if r.kind != "ok"]
    ok_after = sorted(r.t + r.lat for r in res.records["db"] if r.kind == "ok" and r.t >= t_up)
    bad_after = [r.t + r.lat for r in res.records["db"] if r.kind != "ok" and r.t + r.lat >= t_up]
    ready_during = [r for r in res.records["ready"] if phases["during"][0] <= r.t < phases["during"][1]]
    ready_ok_after = sorted(r.t + r.lat for r in res.records["ready"] if r.kind == "ok" and r.t >= t_up)
    data = {
        "mode": mode,
        "env": env_label,
        "workers": workers,
        "breaker_env": {
            k: env.get(k, "(default)") for k in ("BREAKER_FAILURE_THRESHOLD", "BREAKER_OPEN_SECONDS")
        },
        "timeouts_env": {
            k: env.get(k, "(default)")
            for k in ("DB_POOL_TIMEOUT", "DB_CONNECT_TIMEOUT", "DB_COMMAND_TIMEOUT")
        },
        "breaker": _breaker_figures(res, srv.log_path, box.get("down_epoch", 0.0), t_down, t_up),
        "outage_s": outage,
        "client_timeout_s": client_timeout,
        "db_down_at_s": t_down,
        "db_up_at_s": t_up,
        "streams": per,
        "db_requests_overlapping_outage": len(during_db),
        "db_ok_overlapping_outage": sum(1 for r in during_db if r.kind == "ok"),
        "db_latency_max_overlapping_ms": round(max((r.lat for r in during_db), default=0) * 1000, 1),
        "db_failed_during": len(failed_during),
        "db_fast_failed_under_1s": sum(1 for r in failed_during if r.lat < 1.0),
        "db_failed_1s_to_timeout": sum(1 for r in failed_during if r.lat >= 1.0 and r.kind != "timeout"),
        "db_hung_client_timeout": sum(1 for r in failed_during if r.kind == "timeout"),
        "db_fail_latency_max_ms": round(max((r.lat for r in failed_during), default=0) * 1000, 1),
        "ready_max_latency_during_ms": round(max((r.lat for r in ready_during), default=0) * 1000, 1),
        "ready_statuses_during": res.summary("ready", *phases["during"])["statuses"],
        "health_failed_total": res.summary("health")["failed"],
        "db_first_ok_after_up_s": round(ok_after[0] - t_up, 2) if ok_after else None,
        "db_last_failure_after_up_s": round(max(bad_after) - t_up, 2) if bad_after else 0.0,
        "ready_first_ok_after_up_s": round(ready_ok_after[0] - t_up, 2) if ready_ok_after else None,
        "timeline": {s.name: res.timeline(s.name, 0.5) for s in streams},
        "loadavg_after": h.loadavg(),
    }
    print(
        f"db_outage[{mode}]", {k: v for k, v in data.items() if k not in ("timeline", "streams")}, flush=True
    )
    return data


def plot(crash_data: dict[str, Any] | None, outages: dict[str, Any]) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for mode, d in outages.items():
        fig, ax = plt.subplots(figsize=(9, 3.8))
        for name, tl in d["timeline"].items():
            t = [b["t"] for b in tl]
            ax.plot(t, [b["ok"] / 0.5 for b in tl], label=f"{name} ok/s")
            if any(b["failed"] for b in tl):
                ax.plot(t, [b["failed"] / 0.5 for b in tl], linestyle="--", label=f"{name} failed/s")
        ax.axvspan(d["db_down_at_s"], d["db_up_at_s"], color="red", alpha=0.1, label="PostgreSQL down")
        ax.set_yscale("symlog")
        ax.set_xlabel("seconds")
        ax.set_ylabel("responses/s (by completion)")
        ax.set_title(f"Database outage ({mode}) under load, 2 workers")
        ax.legend(fontsize=7, ncol=2)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        p = h.RESULTS / f"db_outage_{mode}.png"
        fig.savefig(p, dpi=110)
        plt.close(fig)
        paths.append(str(p))
    if crash_data:
        fig, ax = plt.subplots(figsize=(8, 3.5))
        tl = crash_data["timeline_health"]
        ax.plot([b["t"] for b in tl], [b["ok"] / 0.25 for b in tl], label="/health ok/s")
        ax.plot([b["t"] for b in tl], [b["failed"] / 0.25 for b in tl], label="failed/s")
        ax.axvline(crash_data["killed_at_s"], color="red", linestyle="--", label="kill -9 worker")
        ax.set_xlabel("seconds")
        ax.legend()
        ax.grid(alpha=0.3)
        ax.set_title("Worker killed under load (2 workers)")
        fig.tight_layout()
        p = h.RESULTS / "crash.png"
        fig.savefig(p, dpi=110)
        plt.close(fig)
        paths.append(str(p))
    return paths


SCENARIOS = ("graceful", "recycling", "crash", "db-stop", "db-hang", "db-hang-deployed")


def deployed_env(deps: appenv.Deps, stack: str = "prod-ecs") -> dict[str, str]:
    """The container env the deployer computes for `stack` (bench.bench_deployed.deployer_env), pointed at
    the bench's PostgreSQL/Redis and secret; what cannot run here (migrations on start) is left out."""
    from bench.bench_deployed import NOT_DEPLOYABLE_HERE, deployer_env

    env = {k: v for k, v in deployer_env(stack, h.REPO).items() if k not in NOT_DEPLOYABLE_HERE}
    return {
        **{k: v for k, v in deps.env.items() if k not in env},
        **env,
        **{k: deps.env[k] for k in ("DATABASE_URL", "REDIS_URL", "JWT_SECRET_KEY")},
    }


def run(quick: bool = False, only: tuple[str, ...] = SCENARIOS) -> dict[str, Any]:
    data: dict[str, Any] = {"machine": h.machine_info()}
    outages: dict[str, Any] = {}
    previous = h.RESULTS / "faults.json"
    if set(only) != set(SCENARIOS) and previous.exists():
        # a partial re-run keeps the other scenarios' figures (each entry carries its own numbers)
        data = {**json.loads(previous.read_text()), **data}
        outages = dict(data.get("db_outage", {}))
    with appenv.deps() as deps:
        if "graceful" in only:
            with h.timed("graceful shutdown"):
                data["graceful"] = graceful(deps, quick)
        if "recycling" in only:
            with h.timed("max_requests recycling"):
                data["recycling"] = recycling(deps, quick)
        if "crash" in only:
            with h.timed("kill -9 a worker"):
                data["crash"] = crash(deps, quick)
        for mode in ("stop", "hang"):
            if f"db-{mode}" in only:
                with h.timed(f"db outage ({mode})"):
                    outages[mode] = db_outage(deps, quick, mode)
        if "db-hang-deployed" in only:
            with h.timed("db outage (hang, prod-ecs deployed env)"):
                env = deployed_env(deps)
                outages["hang-deployed"] = db_outage(deps, quick, "hang", env, "prod-ecs deployed env")
    data["db_outage"] = outages
    data["loadavg_at_end"] = h.loadavg()
    h.save_json("faults", data)
    data["plots"] = plot(data.get("crash"), outages)
    return data


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", nargs="*", choices=SCENARIOS, default=list(SCENARIOS))
    a = ap.parse_args()
    h.set_quick(a.quick)
    run(a.quick, tuple(a.only))
