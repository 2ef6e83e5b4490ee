"""13. The item read cache (app/cache.py): DB routes cached vs uncached, under the prod-ecs deployer env.

Same run, same server command (the Dockerfile's CMD), same env -
`fastapi_deploy.tuning.container_environment(cfg,
for_platform(cfg))` for prod-ecs as bench_deployed computes it - except CACHE_TTL_SECONDS: 600 (the
default) vs 0 (cache off). Secrets and PORT point at throwaway local services, as in bench_deployed.
Variants alternate per path and round. Read-only load: every request after the first is a hit in the
cached variant (the best case; a write-heavy mix invalidates and sits between the two).

    uv run python -m bench.bench_cache [--quick]
"""

from __future__ import annotations

from typing import Any

from bench import appenv
from bench import harness as h
from bench.bench_deployed import SERVICE, Variant, _measure, _server, deployer_env

STACK = "prod-ecs"
PATHS = (appenv.DB_PATH, "/api/items/7")
COLUMNS = ["path", "variant", "round", "rps", "p50_ms", "p99_ms", "status_errors", "loadavg_1m_start"]


def run(quick: bool = False, rounds: int = 2) -> dict[str, Any]:
    duration = 5.0 if quick else 15.0
    conns = 32
    rows: list[dict[str, Any]] = []
    with appenv.deps() as deps:
        env = deployer_env(STACK, h.REPO)
        variants = {
            "cached": Variant("cached", SERVICE, h.REPO, {**env, "CACHE_TTL_SECONDS": "600"}),
            "uncached": Variant("uncached", SERVICE, h.REPO, {**env, "CACHE_TTL_SECONDS": "0"}),
        }
        for rnd in range(1 if quick else rounds):
            for path in PATHS:
                order = ["uncached", "cached"] if rnd % 2 == 0 else ["cached", "uncached"]
                for key in order:
                    with h.timed(f"round {rnd} {key} {path}"), _server(variants[key], deps.env) as srv:
                        row = _measure(srv, path, duration, conns)
                    row.update(round=rnd, variant=key, web_concurrency=env.get("WEB_CONCURRENCY"))
                    rows.append(row)
    print(h.table(rows, COLUMNS))
    data = {
        "machine": h.machine_info(),
        "stack": STACK,
        "deployer_env": env,
        "connections": conns,
        "duration_s": duration,
        "loadavg_at_end": h.loadavg(),
        "rows": rows,
    }
    h.save_json("cache", data)
    h.save_csv("cache", rows)
    return data


if __name__ == "__main__":
    h.main(run, __doc__)
