"""Run every benchmark and write bench/results/ (JSON, CSV, PNG). Not a test: it prints numbers.

    uv run python -m bench.run_all            # full suite, ~15-20 min on a 2-core box
    uv run python -m bench.run_all --quick    # smoke run, ~4 min: shorter points, fewer samples
    uv run python -m bench.run_all --only workers faults

Needs: wrk (apt-get install wrk), PostgreSQL server binaries and redis-server (devenv/services.py starts
throwaway instances on loopback ports). Every run is bounded in time; all traffic is loopback.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
import traceback
from typing import Any

from bench import harness as h

BENCHES = {
    "footprint": "bench.bench_footprint",
    "coldstart": "bench.bench_coldstart",
    "blocking": "bench.bench_blocking",
    "throughput": "bench.bench_throughput",
    "workers": "bench.bench_workers",
    "workers-1vcpu": "bench.bench_workers:run_1vcpu",
    "faults": "bench.bench_faults",
    "plan": "bench.bench_plan",
    "body-limit": "bench.bench_body_limit",
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="short points, fewer samples (smoke run)")
    ap.add_argument("--only", nargs="*", choices=list(BENCHES), default=list(BENCHES))
    args = ap.parse_args(argv)
    h.set_quick(args.quick)
    summary: dict[str, Any] = {"machine": h.machine_info(), "quick": args.quick, "benches": {}}
    print(f"machine: {summary['machine']}", flush=True)
    failed = 0
    t_all = time.monotonic()
    for name in args.only:
        t0 = time.monotonic()
        entry: dict[str, Any] = {"loadavg_at_start": h.loadavg()}
        try:
            with h.timed(name):
                module, _, func = BENCHES[name].partition(":")
                getattr(importlib.import_module(module), func or "run")(args.quick)
            entry["ok"] = True
        except Exception as exc:  # one broken benchmark must not hide the others' numbers
            failed += 1
            entry.update(ok=False, error=f"{type(exc).__name__}: {exc}"[:2000])
            traceback.print_exc()
        entry["seconds"] = round(time.monotonic() - t0, 1)
        summary["benches"][name] = entry
    summary["total_seconds"] = round(time.monotonic() - t_all, 1)
    summary["loadavg_at_end"] = h.loadavg()
    name = "summary" + ("-quick" if args.quick else "")
    prev = h.RESULTS / f"{name}.json"
    if set(args.only) != set(BENCHES) and prev.exists():
        # partial re-run: keep the other benchmarks' entries, record which ones were re-run and when
        old = json.loads(prev.read_text())
        summary["benches"] = {**old.get("benches", {}), **summary["benches"]}
        summary["reruns"] = [
            *old.get("reruns", []),
            {"only": args.only, "time_utc": summary["machine"]["time_utc"]},
        ]
        summary["first_run_machine"] = old.get("first_run_machine", old.get("machine"))
    h.save_json(name, summary)
    print(f"done in {summary['total_seconds']}s; {failed} benchmark(s) failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
