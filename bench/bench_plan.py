"""9. Offline plan speed: `infra plan --stack S --format json`, whole command, fresh process each time.

Issue 5 asks that a plan of one stack complete "well under 2 seconds". Almost all of a plan is Python
importing the provider SDKs, so two things are measured against each other, interleaved so machine
noise hits every variant alike:

* "as shipped": provider SDK sub-packages load on demand (fastapi_deploy/lazysdk.py) and the cyclic garbage
  collector is paused for the command (fastapi_deploy/cli.py);
* "GC running": the same with `gc.disable()` made a no-op, to show what the GC pause saves;
* "eager SDK": INFRA_PLAN_EAGER_SDK=1, every module of each touched sub-package is imported (how
  `pulumi preview`/`up` import the SDKs);
* "before": both off, which is how `infra plan` ran before these two changes.

Bytecode is cached first (one unmeasured run per stack), as it is after the first plan on any machine.
Wall time is what the user waits for; CPU time (user+sys of the child) is steadier on a shared machine.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import tempfile
import time
from typing import Any

from bench import harness as h

STACKS = ["prod-ecs", "prod-cloudrun", "prod-lambda", "prod-vps", "all"]
VARIANTS: dict[str, dict[str, str]] = {
    "as shipped": {},
    "GC running": {"BENCH_GC_ON": "1"},
    "eager SDK": {"INFRA_PLAN_EAGER_SDK": "1"},
    "before": {"INFRA_PLAN_EAGER_SDK": "1", "BENCH_GC_ON": "1"},
}
# `infra plan` exactly as the console script runs it; BENCH_GC_ON keeps the collector running.
_DRIVER = (
    "import gc, os, sys\n"
    "if os.environ.get('BENCH_GC_ON'): gc.disable = lambda: None\n"
    "from fastapi_deploy.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def _once(stack: str, env: dict[str, str], timeout: float = 120.0) -> tuple[float, float, float]:
    """(wall s, CPU s, peak RSS MiB) of one `infra plan` process."""
    e = {k: v for k, v in os.environ.items() if not k.startswith(("INFRA_PLAN_", "BENCH_"))}
    e.update(env)
    with tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [h.PY, "-c", _DRIVER, "plan", "--stack", stack, "--format", "json"],
            env=e,
            cwd=h.REPO,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
        while True:  # os.wait4 gives this child's own rusage (CPU, peak RSS); poll so it stays bounded
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() - t0 > timeout:
                proc.kill()
                os.wait4(proc.pid, 0)
                raise RuntimeError(f"infra plan --stack {stack} took over {timeout:.0f} s")
            time.sleep(0.002)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode not in (0, 1):
            err.seek(0)
            raise RuntimeError(
                f"infra plan --stack {stack} exited {proc.returncode}: {err.read()[-2000:].decode()}"
            )
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def run(quick: bool = False) -> dict[str, Any]:
    samples = 2 if quick else 9
    data: dict[str, Any] = {"machine": h.machine_info(), "samples": samples}
    for stack in STACKS:  # warm the bytecode cache (and the OS page cache) once per stack
        _once(stack, {})
    Sample = tuple[float, float, float]
    raw: dict[str, dict[str, list[Sample]]] = {s: {v: [] for v in VARIANTS} for s in STACKS}
    for _ in range(samples):
        for stack in STACKS:
            for name, env in VARIANTS.items():
                raw[stack][name].append(_once(stack, env))
    rows = []
    for stack in STACKS:
        before = statistics.median(w for w, _, _ in raw[stack]["before"])
        for name in VARIANTS:
            walls = [w for w, _, _ in raw[stack][name]]
            cpus = [c for _, c, _ in raw[stack][name]]
            rows.append(
                {
                    "stack": stack,
                    "variant": name,
                    "wall_median_s": round(statistics.median(walls), 2),
                    "wall_min_s": round(min(walls), 2),
                    "wall_max_s": round(max(walls), 2),
                    "cpu_median_s": round(statistics.median(cpus), 2),
                    "peak_rss_mib": round(max(r for _, _, r in raw[stack][name]), 1),
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


COLUMNS = [
    "stack",
    "variant",
    "wall_median_s",
    "wall_min_s",
    "wall_max_s",
    "cpu_median_s",
    "peak_rss_mib",
    "vs_before",
]

if __name__ == "__main__":
    h.main(run, __doc__)
