"""3. Blocking work in async routes, one uvicorn worker.

Each variant spends 50 ms per request. `wrk` drives the variant's route with fixed connections while
a probe connection measures a trivial /ping on the SAME worker: blocking the event loop hurts every
other request on that worker, not just the slow one.
"""

from __future__ import annotations

from typing import Any

from bench import harness as h
from bench import loadgen as lg

VARIANTS = [
    ("async def + time.sleep (blocks loop)", "/block/async-sleep"),
    ("def + time.sleep (thread pool)", "/block/sync-def"),
    ("async def + run_in_threadpool", "/block/to-thread"),
    ("async def + await asyncio.sleep", "/block/asyncio"),
]


def run(quick: bool = False) -> dict[str, Any]:
    duration = 3.0 if quick else 6.0
    conns = 32
    rows: list[dict[str, Any]] = []
    for label, path in VARIANTS:
        port = h.free_port()
        with h.Server(h.uvicorn_cmd("bench.apps.blocking:app", port), port, ready_path="/ping") as srv:
            fut = h.wrk_background(srv.base + path, connections=conns, duration=duration, timeout=10)
            probe = lg.run(port, [lg.Stream("ping", "/ping", 1, timeout=10, think=0.02)], duration)
            r = fut.result(timeout=duration + 60)
            ps = probe.summary("ping", 0.5)
            rows.append(
                {
                    "variant": label,
                    "path": path,
                    "connections": conns,
                    "rps": round(r.rps, 1),
                    "p50_ms": r.p50_ms,
                    "p99_ms": r.p99_ms,
                    "max_ms": r.max_ms,
                    "errors": r.failed,
                    "ping_requests": ps["requests"],
                    "ping_p50_ms": ps["p50_ms"],
                    "ping_p99_ms": ps["p99_ms"],
                    "ping_max_ms": ps["max_ms"],
                    "ideal_rps": round(conns / 0.05, 1),
                }
            )
            print(rows[-1], flush=True)
    cols = [
        "variant",
        "rps",
        "p50_ms",
        "p99_ms",
        "errors",
        "ping_requests",
        "ping_p50_ms",
        "ping_p99_ms",
        "ping_max_ms",
    ]
    print(h.table(rows, cols))
    data = {
        "machine": h.machine_info(),
        "work_ms": 50,
        "connections": conns,
        "duration_s": duration,
        "rows": rows,
    }
    h.save_json("blocking", data)
    h.save_csv("blocking", rows)
    return data


if __name__ == "__main__":
    h.main(run, __doc__)
