"""7. Lambda cold start: import + first invocation, the service against minimal FastAPI apps, same run.

Each sample is a FRESH `python` process (bytecode already compiled, as in the image) that imports a
Lambda handler and calls it with realistic API Gateway HTTP API (v2) events (tests/app/lambda_events.py)
against a real, migrated and seeded PostgreSQL. Variants, interleaved so machine noise hits all alike:

* **service, /health first** - `app.lambda_handler`: cold /health, warm /health, then the DB route;
* **service, DB route first** - `app.lambda_handler`: cold `GET /api/items?limit=20`, then warm ones;
* **minimal FastAPI + Mangum** (bench/apps/lambda_min.py) - cold /health: the floor for /health;
* **minimal FastAPI + Mangum + SQLAlchemy/asyncpg** (bench/apps/lambda_min_db.py) - cold
  `GET /api/items?limit=20` with the same ORM query, response models and JSON: the floor for the DB route;
* with ``BENCH_COLDSTART_BEFORE=<dir>`` (a tree holding an older ``app/``, e.g. from `git archive`), the
  two service variants again, running that code: before/after in the same run.

The service runs with the environment the deployer injects for the `prod-lambda` stack, read from
`infra plan --stack prod-lambda --format json` (never hand-picked); its secret references (`ssm:` /
`secretsmanager:`) are replaced by the local PostgreSQL/Redis URLs and a random JWT key, as
`app.secret_refs` would resolve them on Lambda.

Phases (wall and CPU time of the child; CPU is steadier on a shared box): **import** (the handler module;
for the minimal apps this includes building the app, which they do at module level), **settings**
(`resolve_env` + `load_settings`, inside the first invocation), **build** (`create_app` + the Mangum
adapter), **request** (the rest of the first invocation: routing, the endpoint, the query). Lambda's own
runtime init (~100-200 ms for container images, outside our control) and the interpreter start come on
top of every variant alike and are not counted.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import appenv
from bench import harness as h

# After a cold /health, which of these are loaded: the heavy ones the service defers must not be.
CANDIDATES = [
    "sqlalchemy",
    "sqlalchemy.orm",
    "sqlalchemy.ext.asyncio",
    "asyncpg",
    "app.models",
    "prometheus_client",
    "sentry_sdk",
    "boto3",
    "botocore",
    "redis",
    "pwdlib",
    "argon2",
    "jwt",
    "alembic",
    "pydantic_settings",
    "pydantic.v1",
    "fastapi.openapi.models",
    "mangum",
    "fastapi",
]

DB_PATH, DB_QUERY = "/api/items", "limit=20"
WARM_HEALTH, WARM_DB = 200, 30

PROBE = r"""
import importlib, json, os, sys, time
from tests.app.lambda_events import http_api_v2  # before t0: identical for every variant

spec = json.loads(os.environ["BENCH_SPEC"])


def now():
    return time.perf_counter(), time.process_time()


def since(a):
    b = now()
    return round((b[0] - a[0]) * 1000, 2), round((b[1] - a[1]) * 1000, 2)


t0 = now()
exec(spec.get("preexec", ""))  # e.g. what resolving secret references costs (boto3 + clients)
pre = since(t0)
t1 = now()
mod = importlib.import_module(spec["module"])
imp = since(t1)

phases = {"settings": [0.0, 0.0], "build": [0.0, 0.0]}


def wrap(name, phase):
    orig = getattr(mod, name)

    def timed(*a, **k):
        s = now()
        try:
            return orig(*a, **k)
        finally:
            w, c = since(s)
            phases[phase][0] += w
            phases[phase][1] += c

    setattr(mod, name, timed)


for name, phase in spec.get("wrap", {}).items():
    if hasattr(mod, name):
        wrap(name, phase)
handler = getattr(mod, spec["handler"])


class Ctx:
    function_name = "items-api-prod-lambda"; memory_limit_in_mb = 1024
    aws_request_id = "c6af9ac6-7b61-11e6-9a41"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:items-api-prod-lambda"
    def get_remaining_time_in_millis(self): return 25000


def invoke(path, query):
    s = now()
    r = handler(http_api_v2("GET", path, query), Ctx())
    w, c = since(s)
    if r["statusCode"] != 200:
        raise SystemExit(f"{path}?{query}: HTTP {r['statusCode']}: {r.get('body', '')[:500]}")
    return w, c, len(r.get("body") or "")


steps = []
loaded_after_first = None
for path, query, n in spec["sequence"]:
    ws, cs = [], []
    for _ in range(n):
        w, c, size = invoke(path, query)
        ws.append(w); cs.append(c)
    # one invocation: its time; a warm series: the mean (steadier than a median of ~0.3-ms samples)
    steps.append({"path": path, "n": n, "ms": round(sum(ws) / n, 3), "cpu_ms": round(sum(cs) / n, 3),
                  "median_ms": sorted(ws)[n // 2], "body_bytes": size})
    if loaded_after_first is None:
        loaded_after_first = [m for m in spec["candidates"] if m in sys.modules]
rss = 0
for line in open("/proc/self/status"):
    if line.startswith("VmRSS:"):
        rss = int(line.split()[1])
print("PROBE " + json.dumps({
    "preimport": pre, "import": imp, "settings": phases["settings"], "build": phases["build"],
    "steps": steps, "rss_mib": round(rss / 1024, 1), "loaded_after_first": loaded_after_first,
}))
"""

COLUMNS = [
    "variant",
    "cold_path",
    "import_ms",
    "settings_ms",
    "build_ms",
    "request_ms",
    "cold_total_ms",
    "cold_total_cpu_ms",
    "vs_floor",
    "vs_floor_cpu",
    "warm_ms",
    "rss_mib",
]

CPU_COLUMNS = [
    "variant",
    "cold_path",
    "import_cpu_ms",
    "settings_cpu_ms",
    "build_cpu_ms",
    "request_cpu_ms",
    "cold_total_cpu_ms",
    "vs_floor_cpu",
    "cold_total_cpu_min_ms",
    "vs_floor_cpu_min",
    "warm_cpu_ms",
]

_SERVICE_WRAP = {
    "resolve_env": "settings",
    "load_settings": "settings",
    "create_app": "build",
    "Mangum": "build",
}


def lambda_env(deps_env: dict[str, str], pg_url: str, redis_url: str) -> tuple[dict[str, str], list[str]]:
    """The prod-lambda function's environment from the offline plan, references replaced by local values."""
    plan = h.offline_plan("prod-lambda")
    fns = [r for r in plan["resources"] if r["type"] == "aws:lambda/function:Function"]
    if len(fns) != 1:
        raise RuntimeError(f"expected one Lambda function in the prod-lambda plan, found {len(fns)}")
    env = dict(fns[0]["inputs"]["environment"]["variables"])
    local = {"DATABASE_URL": pg_url, "REDIS_URL": redis_url, "JWT_SECRET_KEY": secrets.token_urlsafe(48)}
    replaced = []
    for k, v in env.items():
        if v.startswith(("ssm:", "secretsmanager:")):
            if k not in local:
                raise RuntimeError(f"{k} is a secret reference the benchmark has no local value for")
            env[k] = local[k]
            replaced.append(k)
    for k in ("DATABASE_URL", "REDIS_URL", "JWT_SECRET_KEY"):
        env.setdefault(k, local[k])
    return env, replaced


def _probe(
    spec: dict[str, Any], env: dict[str, str], pythonpath: Path, extra_env: dict[str, str] | None = None
) -> dict[str, Any]:
    e = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        **env,
        **(extra_env or {}),
        "PYTHONPATH": os.pathsep.join([str(pythonpath), str(h.REPO)]),
        "AWS_DEFAULT_REGION": "us-east-1",
        "BENCH_SPEC": json.dumps({**spec, "candidates": CANDIDATES}),
    }
    t0 = time.perf_counter()
    # cwd = the tree under test: `python -c` puts the cwd first on sys.path, ahead of PYTHONPATH
    out = subprocess.run(
        [h.PY, "-c", PROBE], env=e, cwd=pythonpath, capture_output=True, text=True, timeout=120
    )
    wall = (time.perf_counter() - t0) * 1000
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("PROBE ")), None)
    if not line:
        raise RuntimeError(f"cold-start probe {spec['module']} failed: {out.stderr[-3000:]}")
    d: dict[str, Any] = json.loads(line[6:])
    d["process_wall_ms"] = round(wall, 1)
    first = d["steps"][0]
    for i, unit in ((0, "ms"), (1, "cpu_ms")):
        d[f"import_{unit}"] = d["import"][i]
        # the pre-executed code stands for work resolve_env does on Lambda: it belongs to the settings phase
        d[f"settings_{unit}"] = d["preimport"][i] + d["settings"][i]
        d[f"build_{unit}"] = d["build"][i]
        d[f"request_{unit}"] = round(first[unit] - d["settings"][i] - d["build"][i], 2)
        d[f"cold_total_{unit}"] = round(d["preimport"][i] + d[f"import_{unit}"] + first[unit], 2)
    return d


BOTO_CLIENTS = (
    "import boto3\n"
    "boto3.client('ssm', region_name='us-east-1'); boto3.client('secretsmanager', region_name='us-east-1')"
)


def _tree_without_bytecode(tmp: Path) -> Path:
    """A copy of the app package without __pycache__: what the image ran before its Dockerfile compiled
    app/ (PYTHONDONTWRITEBYTECODE=1 and a read-only tree: every cold start compiled app/*.py again)."""
    shutil.copytree(h.REPO / "app", tmp / "app", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp


def variants(before: Path | None, nopyc: Path) -> dict[str, dict[str, Any]]:
    health_seq = [
        ["/health", "", 1],
        ["/health", "", WARM_HEALTH],
        [DB_PATH, DB_QUERY, 1],
        [DB_PATH, DB_QUERY, WARM_DB],
    ]
    db_seq = [[DB_PATH, DB_QUERY, 1], [DB_PATH, DB_QUERY, WARM_DB], ["/health", "", WARM_HEALTH]]
    svc = {"module": "app.lambda_handler", "handler": "handler", "wrap": _SERVICE_WRAP}
    v: dict[str, dict[str, Any]] = {
        "service /health": {
            "spec": {**svc, "sequence": health_seq},
            "cold": "/health",
            "floor": "minimal /health",
        },
        "minimal /health": {
            "spec": {"module": "bench.apps.lambda_min", "handler": "handler", "sequence": health_seq[:2]},
            "cold": "/health",
        },
        "service DB": {"spec": {**svc, "sequence": db_seq}, "cold": "DB", "floor": "minimal DB"},
        "minimal DB": {
            "spec": {"module": "bench.apps.lambda_min_db", "handler": "handler", "sequence": db_seq[:2]},
            "cold": "DB",
        },
    }
    for x in v.values():
        x["path"] = h.REPO
    # For information (not a target): the same cold /health when the deployer's secret references must be
    # resolved (boto3 import + the two clients, no network call), and without app/ bytecode.
    v["service /health + secret refs"] = {
        **v["service /health"],
        "spec": {**v["service /health"]["spec"], "preexec": BOTO_CLIENTS},
        "floor": "minimal /health",
    }
    # ... and with the collector left running through the cold start (app.lambda_handler._cold_start).
    gc_on = "import gc; gc.disable = gc.freeze = lambda: None"
    v["service DB, GC during cold start"] = {
        **v["service DB"],
        "spec": {**v["service DB"]["spec"], "preexec": gc_on},
    }
    v["service /health, app/ not compiled"] = {
        **v["service /health"],
        "path": nopyc,
        "env": {"PYTHONDONTWRITEBYTECODE": "1"},
    }
    if before is not None:
        v["BEFORE service /health"] = {**v["service /health"], "path": before}
        v["BEFORE service DB"] = {**v["service DB"], "path": before}
    return v


def importtime(env: dict[str, str], path: str, top: int = 14) -> dict[str, Any]:
    """`python -X importtime` of a cold start serving `path` (import + first invoke): self time by package."""
    code = (
        "from tests.app.lambda_events import http_api_v2\n"
        "import app.lambda_handler as lh\n"
        "class C:\n    aws_request_id = 'r'\n    def get_remaining_time_in_millis(self): return 25000\n"
        f"assert lh.handler(http_api_v2('GET', {path!r}, {DB_QUERY if path == DB_PATH else ''!r}), C())"
        "['statusCode'] == 200\n"
    )
    e = {"PATH": os.environ.get("PATH", ""), **env, "PYTHONPATH": str(h.REPO)}
    out = subprocess.run(
        [h.PY, "-X", "importtime", "-c", code], env=e, cwd=h.REPO, capture_output=True, text=True, timeout=120
    )
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    base = subprocess.run(
        [h.PY, "-X", "importtime", "-c", "from tests.app.lambda_events import http_api_v2"],
        env=e,
        cwd=h.REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    already = {ln.split("|")[-1].strip() for ln in base.stderr.splitlines() if ln.startswith("import time:")}
    per: dict[str, int] = {}
    for line in out.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        self_us, _cum_us, name = line[len("import time:") :].split("|")
        name = name.strip()
        if name in already:
            continue
        pkg = name.split(".")[0]
        if pkg == "app":
            pkg = ".".join(name.split(".")[:2])
        per[pkg] = per.get(pkg, 0) + int(self_us)
    total = sum(per.values())
    rows = [
        {"package": k, "self_ms": round(v / 1000, 1), "share_pct": round(100 * v / total, 1)}
        for k, v in sorted(per.items(), key=lambda kv: -kv[1])[:top]
    ]
    return {"path": path, "total_ms": round(total / 1000, 1), "top": rows}


def _med(ss: list[dict[str, Any]], key: str) -> float:
    return round(statistics.median(s[key] for s in ss), 1)


def run(quick: bool = False) -> dict[str, Any]:
    samples = int(os.environ.get("BENCH_COLDSTART_SAMPLES", "3" if quick else "7"))
    before_dir = os.environ.get("BENCH_COLDSTART_BEFORE")
    before = Path(before_dir).resolve() if before_dir else None
    data: dict[str, Any] = {"machine": h.machine_info(), "samples": samples, "before": before_dir}
    with appenv.deps() as deps, tempfile.TemporaryDirectory(prefix="bench-nopyc-") as tmp:
        env, replaced = lambda_env(deps.env, deps.pg.url, deps.redis.url)
        data["lambda_env"] = {k: ("<local>" if k in replaced else v) for k, v in sorted(env.items())}
        data["replaced_references"] = replaced
        vs = variants(before, _tree_without_bytecode(Path(tmp)))
        for v in vs.values():  # warm the bytecode cache for every path (the image ships compiled .pyc)
            _probe(v["spec"], env, v["path"], v.get("env"))
        res: dict[str, list[dict[str, Any]]] = {k: [] for k in vs}
        load: list[list[float]] = [h.loadavg()]
        for _ in range(samples):  # interleaved so machine noise hits every variant alike
            for name, v in vs.items():
                res[name].append(_probe(v["spec"], env, v["path"], v.get("env")))
            load.append(h.loadavg())
        data["loadavg"] = load
        rows: list[dict[str, Any]] = []
        for name, v in vs.items():
            ss = res[name]
            warm = [s["steps"][1] for s in ss]
            rows.append(
                {
                    "variant": name,
                    "cold_path": v["cold"],
                    **{f"{p}_ms": _med(ss, f"{p}_ms") for p in ("import", "settings", "build", "request")},
                    **{
                        f"{p}_cpu_ms": _med(ss, f"{p}_cpu_ms")
                        for p in ("import", "settings", "build", "request")
                    },
                    "cold_total_ms": _med(ss, "cold_total_ms"),
                    "cold_total_cpu_ms": _med(ss, "cold_total_cpu_ms"),
                    # the least-disturbed sample: other tenants only ever add time
                    "cold_total_cpu_min_ms": round(min(s["cold_total_cpu_ms"] for s in ss), 1),
                    "warm_ms": round(statistics.median(w["ms"] for w in warm), 2),
                    "warm_cpu_ms": round(statistics.median(w["cpu_ms"] for w in warm), 2),
                    "process_wall_ms": _med(ss, "process_wall_ms"),
                    "rss_mib": _med(ss, "rss_mib"),
                    "loaded_after_first": ss[0]["loaded_after_first"],
                    "_floor": v.get("floor"),
                }
            )
        by_name = {r["variant"]: r for r in rows}
        for r in rows:
            f = by_name.get(r.pop("_floor") or "")
            if f is not None:
                r["vs_floor"] = round(r["cold_total_ms"] / f["cold_total_ms"], 2)
                r["vs_floor_cpu"] = round(r["cold_total_cpu_ms"] / f["cold_total_cpu_ms"], 2)
                r["vs_floor_cpu_min"] = round(r["cold_total_cpu_min_ms"] / f["cold_total_cpu_min_ms"], 2)
        data["rows"] = rows
        data["raw"] = res
        data["importtime"] = {p: importtime(env, p) for p in ("/health", DB_PATH)}
    print("load average (start, after each round):", data["loadavg"])
    print(h.table(data["rows"], COLUMNS))
    print(h.table(data["rows"], CPU_COLUMNS))
    for r in data["rows"]:
        print(f"{r['variant']} ({r['cold_path']}): loaded after the first invoke: {r['loaded_after_first']}")
    for p, it in data["importtime"].items():
        print(f"\nimport self time during a cold {p}: {it['total_ms']} ms")
        print(h.table(it["top"], ["package", "self_ms", "share_pct"]))
    h.save_json("coldstart", data)
    h.save_csv("coldstart", [{k: v for k, v in r.items() if k != "loaded_after_first"} for r in data["rows"]])
    return data


if __name__ == "__main__":
    h.main(run, __doc__)
