"""7. Lambda cold start proxy: import + first invocation of app.lambda_handler in a FRESH process.

Each sample is a new `python` process (nothing imported, bytecode already compiled as in the image)
that imports the handler and calls it with realistic API Gateway HTTP API (v2) events: /health, then
a DB-backed route (NullPool: a new PostgreSQL connection per invocation, as on Lambda).

"lazy" is the service as written (boto3 is imported only when a secret reference must be resolved,
Sentry only when a DSN is set...). "eager" first imports every module the handler deliberately does
NOT load on this path - what a module-level `import boto3` etc. would cost. A third variant adds the
secret-reference path (boto3 + client creation, no network call) for Lambda deployments that use
`ssm:`/`secretsmanager:` references. Lambda's own runtime init (~100-200 ms for container images,
outside our control) comes on top; this measures the part the code controls.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import time
from typing import Any

from bench import appenv
from bench import harness as h

# Modules the service might import; after a lazy cold start, the ones NOT loaded are what laziness saves.
CANDIDATES = [
    "boto3",
    "botocore",
    "sentry_sdk",
    "prometheus_client",
    "redis",
    "redis.asyncio",
    "asyncpg",
    "sqlalchemy",
    "sqlalchemy.ext.asyncio",
    "pwdlib",
    "argon2",
    "jwt",
    "alembic",
    "mangum",
    "fastapi",
    "pydantic",
    "pydantic_settings",
    "uvicorn",
    "gunicorn",
    "awslambdaric",
]

PROBE = r"""
import json, os, sys, time
t0 = time.perf_counter(); c0 = time.process_time()
pre = json.loads(os.environ["BENCH_PREIMPORT"])
for m in pre:
    __import__(m)
if os.environ.get("BENCH_BOTO_CLIENTS"):
    import boto3
    boto3.client("ssm", region_name="eu-west-1"); boto3.client("secretsmanager", region_name="eu-west-1")
t_pre = time.perf_counter(); c_pre = time.process_time()
import app.lambda_handler as lh
t_import = time.perf_counter(); c_import = time.process_time()

def event(path, query=""):
    return {
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": query,
        "headers": {"accept": "application/json", "host": "abc123.execute-api.eu-west-1.amazonaws.com",
                    "user-agent": "curl/8.5.0", "x-forwarded-for": "203.0.113.9",
                    "x-forwarded-port": "443", "x-forwarded-proto": "https"},
        "queryStringParameters": dict(p.split("=", 1) for p in query.split("&")) if query else None,
        "requestContext": {"accountId": "123456789012", "apiId": "abc123",
                           "domainName": "abc123.execute-api.eu-west-1.amazonaws.com",
                           "domainPrefix": "abc123",
                           "http": {"method": "GET", "path": path, "protocol": "HTTP/1.1",
                                    "sourceIp": "203.0.113.9", "userAgent": "curl/8.5.0"},
                           "requestId": "JKJaXmPLvHcESHA=", "routeKey": "$default", "stage": "$default",
                           "time": "25/Nov/2026:03:00:00 +0000", "timeEpoch": 1795575600000},
        "isBase64Encoded": False,
    }

class Ctx:
    function_name = "fastapi-deploy"; memory_limit_in_mb = 1024; aws_request_id = "c6af9ac6-7b61-11e6-9a41"
    invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:fastapi-deploy"
    def get_remaining_time_in_millis(self): return 30000

marks = []
for path, query in (("/health", ""), ("/health", ""), ("/api/items", "limit=20"), ("/api/items", "limit=20")):
    a = time.perf_counter(); ca = time.process_time()
    r = lh.handler(event(path, query), Ctx())
    marks.append({"path": path, "status": r["statusCode"], "ms": round((time.perf_counter() - a) * 1000, 2),
                  "cpu_ms": round((time.process_time() - ca) * 1000, 2)})
rss = 0
for line in open("/proc/self/status"):
    if line.startswith("VmRSS:"):
        rss = int(line.split()[1])
cands = json.loads(os.environ["BENCH_CANDIDATES"])
print("PROBE " + json.dumps({
    "preimport_ms": round((t_pre - t0) * 1000, 1), "import_ms": round((t_import - t_pre) * 1000, 1),
    "preimport_cpu_ms": round((c_pre - c0) * 1000, 1), "import_cpu_ms": round((c_import - c_pre) * 1000, 1),
    "invocations": marks, "rss_mib": round(rss / 1024, 1), "modules": len(sys.modules),
    "loaded": [m for m in cands if m in sys.modules],
}))
"""


def _probe(env: dict[str, str], pre: list[str], boto: bool = False) -> dict[str, Any]:
    e = {
        **os.environ,
        **env,
        "PYTHONPATH": str(h.REPO),
        "BENCH_PREIMPORT": json.dumps(pre),
        "BENCH_CANDIDATES": json.dumps(CANDIDATES),
        "AWS_DEFAULT_REGION": "eu-west-1",
    }
    e.pop("PROMETHEUS_MULTIPROC_DIR", None)
    if boto:
        e["BENCH_BOTO_CLIENTS"] = "1"
    t0 = time.perf_counter()
    out = subprocess.run([h.PY, "-c", PROBE], env=e, cwd=h.REPO, capture_output=True, text=True, timeout=60)
    wall = (time.perf_counter() - t0) * 1000
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("PROBE ")), None)
    if not line:
        raise RuntimeError(f"cold-start probe failed: {out.stderr[-2000:]}")
    d = json.loads(line[6:])
    d["process_wall_ms"] = round(wall, 1)
    d["first_health_ms"] = d["invocations"][0]["ms"]
    d["first_db_ms"] = d["invocations"][2]["ms"]
    d["cold_total_ms"] = round(d["preimport_ms"] + d["import_ms"] + d["first_health_ms"], 1)
    # CPU time of the same span: on a shared, loaded machine wall time inflates with other tenants' load,
    # CPU time much less so (Lambda gives a 1769 MB function one full vCPU).
    d["cold_total_cpu_ms"] = round(
        d["preimport_cpu_ms"] + d["import_cpu_ms"] + d["invocations"][0]["cpu_ms"], 1
    )
    return d


def importtime(env: dict[str, str], module: str = "app.lambda_handler", top: int = 15) -> dict[str, Any]:
    """`python -X importtime -c 'import <module>'`, self time summed per top-level package: what dominates."""
    e = {**os.environ, **env, "PYTHONPATH": str(h.REPO)}
    out = subprocess.run(
        [h.PY, "-X", "importtime", "-c", f"import {module}"],
        env=e,
        cwd=h.REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    per: dict[str, int] = {}
    for line in out.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        self_us, _cum_us, name = line[len("import time:") :].split("|")
        pkg = name.strip().split(".")[0]
        per[pkg] = per.get(pkg, 0) + int(self_us)
    total = sum(per.values())
    rows = [
        {"package": k, "self_ms": round(v / 1000, 1), "share_pct": round(100 * v / total, 1)}
        for k, v in sorted(per.items(), key=lambda kv: -kv[1])[:top]
    ]
    return {"module": module, "total_ms": round(total / 1000, 1), "top": rows}


def run(quick: bool = False) -> dict[str, Any]:
    samples = 3 if quick else 7
    data: dict[str, Any] = {"machine": h.machine_info(), "samples": samples}
    with appenv.deps() as deps:
        env = {k: v for k, v in deps.env.items() if not k.startswith(("GUNICORN_", "WEB_"))}
        env["DB_POOL_CLASS"] = "null"
        # warm the bytecode cache once (the image ships compiled .pyc), then measure
        first = _probe(env, [])
        # awslambdaric is loaded by the Lambda runtime itself and alembic is never needed at request time,
        # so neither counts as a lazy-import saving; what remains is what a module-level import would add.
        never = ("uvicorn", "gunicorn", "awslambdaric", "alembic")
        lazily_skipped = [m for m in CANDIDATES if m not in first["loaded"] and m not in never]
        variants = {
            "lazy (as shipped)": ([], False),
            "eager (module-level imports)": (lazily_skipped, False),
            "lazy + secret refs (boto3 clients)": ([], True),
            # what the service did before redis-py, pwdlib/argon2 and PyJWT moved to first use
            "redis + auth libs at import (before)": (["redis.asyncio", "pwdlib", "argon2", "jwt"], False),
        }
        res: dict[str, list[dict[str, Any]]] = {k: [] for k in variants}
        for _ in range(samples):  # interleaved so machine noise hits every variant alike
            for name, (pre, boto) in variants.items():
                res[name].append(_probe(env, pre, boto))
        rows = []
        for name, ss in res.items():

            def med(key: str, ss: list[dict[str, Any]] = ss) -> float:
                return round(statistics.median(s[key] for s in ss), 1)

            rows.append(
                {
                    "variant": name,
                    "preimport_ms": med("preimport_ms"),
                    "import_handler_ms": med("import_ms"),
                    "first_invoke_health_ms": med("first_health_ms"),
                    "cold_total_ms": med("cold_total_ms"),
                    "cold_total_cpu_ms": med("cold_total_cpu_ms"),
                    "import_handler_cpu_ms": med("import_cpu_ms"),
                    "first_invoke_db_ms": med("first_db_ms"),
                    "warm_invoke_health_ms": round(
                        statistics.median(s["invocations"][1]["ms"] for s in ss), 2
                    ),
                    "warm_invoke_db_ms": round(statistics.median(s["invocations"][3]["ms"] for s in ss), 2),
                    "process_wall_ms": med("process_wall_ms"),
                    "rss_mib": med("rss_mib"),
                }
            )
        lazy = rows[0]["cold_total_ms"]
        for r in rows:
            r["vs_lazy"] = round(r["cold_total_ms"] / lazy, 2) if lazy else None
        lazy_cpu = rows[0]["cold_total_cpu_ms"]
        for r in rows:
            r["cpu_vs_lazy"] = round(r["cold_total_cpu_ms"] / lazy_cpu, 2) if lazy_cpu else None
        data["lazily_skipped_modules"] = lazily_skipped
        data["loaded_modules_lazy"] = first["loaded"]
        data["rows"] = rows
        data["raw"] = res
        data["importtime"] = importtime(env)
        data["importtime_boto3"] = importtime(env, "boto3", top=3)
    print(
        h.table(
            data["rows"],
            [
                "variant",
                "import_handler_ms",
                "import_handler_cpu_ms",
                "preimport_ms",
                "first_invoke_health_ms",
                "cold_total_ms",
                "vs_lazy",
                "cold_total_cpu_ms",
                "cpu_vs_lazy",
                "first_invoke_db_ms",
                "warm_invoke_health_ms",
                "rss_mib",
            ],
        )
    )
    print("skipped lazily:", data["lazily_skipped_modules"])
    print(data["importtime"]["total_ms"], "ms total import self time")
    print(h.table(data["importtime"]["top"], ["package", "self_ms", "share_pct"]))
    h.save_json("coldstart", data)
    h.save_csv("coldstart", data["rows"])
    return data


if __name__ == "__main__":
    h.main(run, __doc__)
