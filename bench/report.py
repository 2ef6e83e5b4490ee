"""Print the Markdown tables of BENCHMARKS.md from bench/results/*.json (after `python -m bench.run_all`).

uv run python -m bench.report > /tmp/tables.md
"""

from __future__ import annotations

import json
from typing import Any

from bench import bench_coldstart, bench_plan, bench_throughput
from bench import harness as h


def _load(name: str) -> dict[str, Any] | None:
    p = h.RESULTS / f"{name}.json"
    return json.loads(p.read_text()) if p.exists() else None


def main() -> None:
    d = _load("throughput")
    if d:
        print(f"## throughput (load avg {d['machine']['loadavg_at_start']} -> {d['loadavg_at_end']})\n")
        print(h.table(d["rows"], bench_throughput.COLUMNS))
    d = _load("workers")
    if d:
        print(f"\n## workers (load avg {d['machine']['loadavg_at_start']} -> {d['loadavg_at_end']})\n")
        print(
            h.table(
                d["rows"],
                [
                    "workers",
                    "endpoint",
                    "rps",
                    "rps_vs_1_worker",
                    "server_cpu_ms_per_req",
                    "p50_ms",
                    "p99_ms",
                    "p99_ms_worst_round",
                    "errors",
                    "worker_rss_mib",
                    "worker_pss_mib",
                    "master_rss_mib",
                    "total_pss_mib",
                    "loadavg_1m",
                ],
            )
        )
    d = _load("blocking")
    if d:
        print("\n## blocking\n")
        print(
            h.table(
                d["rows"],
                [
                    "variant",
                    "rps",
                    "ideal_rps",
                    "p50_ms",
                    "p99_ms",
                    "errors",
                    "ping_requests",
                    "ping_p50_ms",
                    "ping_p99_ms",
                    "ping_max_ms",
                ],
            )
        )
    d = _load("coldstart")
    if d:
        print(
            f"\n## coldstart ({d['samples']} samples; load average {d['loadavg'][0]} .. {d['loadavg'][-1]})\n"
        )
        print(h.table(d["rows"], bench_coldstart.COLUMNS))
        print(h.table(d["rows"], bench_coldstart.CPU_COLUMNS))
        for path, it in d["importtime"].items():
            print(f"\nimport self time during a cold {path}: {it['total_ms']} ms\n")
            print(h.table(it["top"], ["package", "self_ms", "share_pct"]))
    d = _load("footprint")
    if d:
        print(f"\n## footprint: {d['total_mib']} MiB, {d['distributions']} distributions\n")
        print(h.table(d["rows"][:12], ["distribution", "mib", "share_pct"]))
    d = _load("faults")
    if d:
        print("\n## faults\n")
        print(
            json.dumps({k: v for k, v in d.items() if k not in ("machine", "db_outage", "crash")}, indent=1)
        )
        if "crash" in d:
            print(json.dumps({k: v for k, v in d["crash"].items() if k != "timeline_health"}, indent=1))
        for mode, o in d.get("db_outage", {}).items():
            print(mode, json.dumps({k: v for k, v in o.items() if k != "timeline"}, indent=1))
    d = _load("plan")
    if d:
        load = f"load avg {d['machine']['loadavg_at_start']} -> {d['loadavg_at_end']}"
        print(f"\n## plan ({d['samples']} samples; {load})\n")
        print(h.table(d["rows"], bench_plan.COLUMNS))


if __name__ == "__main__":
    main()
