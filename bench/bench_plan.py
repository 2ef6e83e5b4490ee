"""8. Offline plan speed: `infra plan --stack S --format json`, whole command, fresh process each time.

Issue 5 asks that a plan of one stack complete "well under 2 seconds". Almost all of a plan is Python
importing the provider SDKs, so two things are measured against each other, interleaved so machine
noise hits every variant alike:

* "as shipped": provider SDK sub-packages load on demand (infra/lazysdk.py);
* "eager SDK": INFRA_PLAN_EAGER_SDK=1, every module of each touched sub-package is imported, which is
  how `infra plan` ran before (and how `pulumi preview`/`up` import the SDKs);
* "eager SDK, GC paused": the same with the cyclic garbage collector disabled for the whole process
  (`python -c 'import gc; gc.disable(); ...'`), to show what GC costs while importing thousands of
  generated classes - a knob considered and not adopted (see BENCHMARKS.md).

Bytecode is cached first (one unmeasured run per stack), as it is after the first plan on any machine.
Wall time is what the user waits for; CPU time (user+sys of the child) is steadier on a shared machine.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import time
from typing import Any

from bench import harness as h

STACKS = ["prod-ecs", "prod-cloudrun", "prod-lambda", "prod-vps"]
VARIANTS: dict[str, dict[str, str]] = {
    "as shipped": {},
    "as shipped, GC paused": {"BENCH_GC_OFF": "1"},
    "eager SDK (before)": {"INFRA_PLAN_EAGER_SDK": "1"},
    "eager SDK, GC paused": {"INFRA_PLAN_EAGER_SDK": "1", "BENCH_GC_OFF": "1"},
}
# `infra plan` exactly as the console script runs it, with the GC optionally disabled first.
_DRIVER = (
    "import gc, os, sys\n"
    "if os.environ.get('BENCH_GC_OFF'): gc.disable()\n"
    "from infra.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def _once(stack: str, env: dict[str, str]) -> tuple[float, float]:
    """(wall s, cpu s) of one `infra plan` process."""
    e = {k: v for k, v in os.environ.items() if not k.startswith(("INFRA_PLAN_", "BENCH_"))}
    e.update(env)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = subprocess.run(
        [h.PY, "-c", _DRIVER, "plan", "--stack", stack, "--format", "json"],
        env=e,
        cwd=h.REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode not in (0, 1):
        raise RuntimeError(f"infra plan --stack {stack} exited {out.returncode}: {out.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def run(quick: bool = False) -> dict[str, Any]:
    samples = 2 if quick else 9
    data: dict[str, Any] = {"machine": h.machine_info(), "samples": samples}
    for stack in STACKS:  # warm the bytecode cache (and the OS page cache) once per stack
        _once(stack, {})
    raw: dict[str, dict[str, list[tuple[float, float]]]] = {s: {v: [] for v in VARIANTS} for s in STACKS}
    for _ in range(samples):
        for stack in STACKS:
            for name, env in VARIANTS.items():
                raw[stack][name].append(_once(stack, env))
    rows = []
    for stack in STACKS:
        before = statistics.median(w for w, _ in raw[stack]["eager SDK (before)"])
        for name in VARIANTS:
            walls = [w for w, _ in raw[stack][name]]
            cpus = [c for _, c in raw[stack][name]]
            rows.append(
                {
                    "stack": stack,
                    "variant": name,
                    "wall_median_s": round(statistics.median(walls), 2),
                    "wall_min_s": round(min(walls), 2),
                    "wall_max_s": round(max(walls), 2),
                    "cpu_median_s": round(statistics.median(cpus), 2),
                    "vs_before": round(statistics.median(walls) / before, 2),
                }
            )
    data["rows"] = rows
    data["raw"] = raw
    data["loadavg_at_end"] = h.loadavg()
    print(h.table(rows, COLUMNS))
    h.save_json("plan", data)
    h.save_csv("plan", rows)
    return data


COLUMNS = ["stack", "variant", "wall_median_s", "wall_min_s", "wall_max_s", "cpu_median_s", "vs_before"]

if __name__ == "__main__":
    h.main(run, __doc__)
