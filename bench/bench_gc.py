"""11. Garbage-collector settings for a worker: what GC_FREEZE / GC_THRESHOLD do to pauses and CPU.

Each variant runs in a FRESH interpreter that imports the service and builds the app exactly as a
gunicorn worker does (then applies the variant), and drives requests straight into the ASGI app (no
socket, no HTTP client allocating on the side), so the numbers are the app's own: CPU per request,
collections per generation, total time spent in the collector and the longest single collection (a pause
every request on that worker waits out), and the objects the collector tracks. Variants interleaved over
rounds; CPU time, not wall time (other tenants of this box).
"""

from __future__ import annotations

import os
from typing import Any

from bench import appenv
from bench import harness as h

VARIANTS: dict[str, dict[str, str]] = {
    "default (700,10,10)": {"GC_FREEZE": "false", "GC_THRESHOLD": ""},
    "freeze": {"GC_FREEZE": "true", "GC_THRESHOLD": ""},
    "freeze + 7000,10,10": {"GC_FREEZE": "true", "GC_THRESHOLD": "7000,10,10"},
    "freeze + 20000,10,10": {"GC_FREEZE": "true", "GC_THRESHOLD": "20000,10,10"},
    "freeze + 50000,20,100": {"GC_FREEZE": "true", "GC_THRESHOLD": "50000,20,100"},
}

# Runs inside the fresh interpreter: argv = path, requests[, module:attr of another app to drive]
_CHILD = r"""
import asyncio, gc, importlib, json, sys, time
n = int(sys.argv[2]); path = sys.argv[1]
if len(sys.argv) > 3:
    mod, _, attr = sys.argv[3].partition(":")
    app = getattr(importlib.import_module(mod), attr)
    class _R:
        async def close(self):
            engine = getattr(importlib.import_module(mod), "engine", None)
            if engine is not None:
                await engine.dispose()
    app.state.resources = _R()
else:
    from app.main import create_app
    app = create_app()
from app import gctune
gctune.apply()            # GC_THRESHOLD + GC_FREEZE as the gunicorn hooks apply them
import uvloop
pauses = []; counts = [0, 0, 0]; t = [0.0]
def cb(phase, info):
    if phase == "start":
        t[0] = time.perf_counter()
    else:
        pauses.append(time.perf_counter() - t[0]); counts[info["generation"]] += 1
from bench.asgi_drive import get, get_scope
scope = get_scope(path)
async def one():
    return await get(app, scope)
async def main():
    for _ in range(min(200, n)):          # warm-up: pool, caches, lazily built things
        assert await one() == 200
    gc.collect() if not gctune.freeze_from_env() else None
    gc.callbacks.append(cb)
    c0 = time.process_time()
    for _ in range(n):
        await one()
    c1 = time.process_time()
    gc.callbacks.remove(cb)
    await app.state.resources.close()
    return c1 - c0
cpu = uvloop.run(main())
print(json.dumps({"cpu_ms_per_req": cpu * 1000 / n, "collections": counts, "gc_ms_total": sum(pauses) * 1000,
    "gc_ms_per_req": sum(pauses) * 1000 / n, "gc_max_pause_ms": max(pauses, default=0) * 1000,
    "tracked_objects": len(gc.get_objects()), "frozen": gc.get_freeze_count()}))
"""


def run(quick: bool = False) -> dict[str, Any]:
    rounds = 1 if quick else 3
    counts = {"/health": 5000 if quick else 20000, appenv.DB_PATH: 300 if quick else 1500}
    machine = h.machine_info()
    raw: list[dict[str, Any]] = []
    with appenv.deps() as deps:
        for rnd in range(rounds):
            names = list(VARIANTS) if rnd % 2 == 0 else list(VARIANTS)[::-1]
            for name in names:
                for path, n in counts.items():
                    env = {**os.environ, **deps.env, **VARIANTS[name], "LOG_LEVEL": "warning"}
                    env["PYTHONPATH"] = str(h.REPO)
                    row = {"round": rnd, "variant": name, "path": path, "requests": n}
                    row.update(h.run_child_json(_CHILD, [path, str(n)], env, timeout=600))
                    row["loadavg_1m"] = h.loadavg()[0]
                    raw.append(row)
                    print(row, flush=True)
    rows = []
    for name in VARIANTS:
        for path in counts:
            pts = [r for r in raw if r["variant"] == name and r["path"] == path]
            med = sorted(pts, key=lambda r: r["cpu_ms_per_req"])[len(pts) // 2]
            rows.append(
                {
                    "variant": name,
                    "path": path,
                    "cpu_ms_per_req_median": round(med["cpu_ms_per_req"], 4),
                    "cpu_ms_per_req_min": round(min(r["cpu_ms_per_req"] for r in pts), 4),
                    "gc_ms_per_req_median": round(sorted(r["gc_ms_per_req"] for r in pts)[len(pts) // 2], 4),
                    "gc_max_pause_ms": round(max(r["gc_max_pause_ms"] for r in pts), 2),
                    "collections_gen0_1_2": med["collections"],
                    "tracked_objects": med["tracked_objects"],
                    "frozen": med["frozen"],
                }
            )
    print(h.table(rows, list(rows[0])))
    data = {"machine": machine, "rounds": rounds, "rows": rows, "raw": raw, "loadavg_at_end": h.loadavg()}
    h.save_json("gc", data)
    h.save_csv("gc", rows)
    return data


if __name__ == "__main__":
    h.main(run, __doc__)
