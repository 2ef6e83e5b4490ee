"""Tuning: workers from the CPU allotment (capped by memory), pool from the DB budget, a consistent
timeout chain, and refusals that name the config keys to change."""

# ruff: noqa: E501 - the tables below read best one case per line
from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from fastapi_deploy import tuning as T
from fastapi_deploy.config import parse as parse_with
from fastapi_deploy.tuning import TuningError, TuningInput, container_environment, for_platform, tune


def parse(data: dict[str, Any]) -> Any:
    """A stack's app object with the provider region every AWS stack file sets."""
    return parse_with(data, providers={"aws:region": "us-east-1", "gcp:region": "europe-west1"})


CONTRACT_ENV = {
    "APP_ENV", "PORT", "WEB_CONCURRENCY", "GUNICORN_KEEPALIVE", "GUNICORN_TIMEOUT", "GUNICORN_GRACEFUL_TIMEOUT",
    "GUNICORN_MAX_REQUESTS", "GUNICORN_MAX_REQUESTS_JITTER", "DB_POOL_CLASS", "DB_POOL_SIZE", "DB_MAX_OVERFLOW",
    "DB_POOL_TIMEOUT", "DB_POOL_RECYCLE", "DB_POOL_PRE_PING", "DB_CONNECT_TIMEOUT", "READY_CHECK_TIMEOUT",
    "MAX_REQUEST_BODY_BYTES",
}  # fmt: skip


def inp(
    platform: T.Platform = "ecs",
    vcpu: float = 1,
    mem: int = 2048,
    replicas: int = 2,
    budget: int = 90,
    **kw: Any,
):
    return TuningInput(platform, vcpu, mem, replicas, budget, **kw)


@pytest.mark.parametrize(
    ("vcpu", "mem", "workers"),
    [
        (0.25, 512, 1),  # never 0
        (0.5, 1024, 1),
        (1, 2048, 1),  # async workers = cores, not 2*1+1 = 3
        (2, 4096, 2),
        (4, 8192, 4),
        (4, 512, 1),  # memory caps: (512-256)//150 = 1
        (8, 1024, 5),  # (1024-256)//150 = 5 < 8
        (16, 32768, 16),
        (64, 122880, T.MAX_WORKERS),
    ],
)
def test_workers_follow_vcpu_capped_by_memory(vcpu: float, mem: int, workers: int) -> None:
    assert tune(inp(vcpu=vcpu, mem=mem, budget=10_000)).workers == workers


def test_never_the_sync_worker_rule() -> None:
    for vcpu in (1, 2, 4):
        assert tune(inp(vcpu=vcpu, mem=16384, budget=10_000)).workers != 2 * vcpu + 1


def test_lambda_is_one_worker_null_pool_one_connection() -> None:
    t = tune(inp("lambda", vcpu=1024 / 1769, mem=1024, replicas=50, budget=90))
    assert (t.workers, t.pool_class, t.pool_size, t.max_overflow) == (1, "null", 1, 0)
    assert t.max_total_connections == 50
    assert t.env()["DB_POOL_CLASS"] == "null"


def test_lambda_refuses_more_concurrency_than_connections() -> None:
    with pytest.raises(
        TuningError, match=r"app\.lambda\.reserved_concurrency=100 .* exceeds the database budget of 90"
    ):
        tune(inp("lambda", replicas=100, budget=90, keys={"max_replicas": "app.lambda.reserved_concurrency"}))


def test_lambda_rejects_a_worker_override() -> None:
    with pytest.raises(TuningError, match=r"app\.tuning\.workers: Lambda runs one request per process"):
        tune(inp("lambda", replicas=5, workers=2))


def test_pool_is_derived_from_the_budget_including_the_deploy_surge() -> None:
    # 10 tasks x 1 worker x (5+2) = 70 fits 90 -- but ECS runs old+new side by side: 20 x 7 = 140 does not.
    t = tune(inp(replicas=10, budget=90))
    assert t.replicas_during_deploy == 20
    assert (t.pool_size, t.max_overflow) == (4, 0)  # 90 // 20 = 4 per worker
    assert t.max_total_connections <= 90
    roomy = tune(inp(replicas=10, budget=1000))
    assert (roomy.pool_size, roomy.max_overflow) == (T.DEFAULT_POOL_SIZE, T.DEFAULT_MAX_OVERFLOW)


def test_seed_advice_pool_20_overflow_50_is_refused() -> None:
    """The domain notes' 20+50 per worker at 4 workers x 10 tasks melts a 100-connection database."""
    with pytest.raises(TuningError) as err:
        tune(inp(vcpu=4, mem=8192, replicas=10, budget=90, pool_size=20, max_overflow=50))
    assert "5600 connections exceed the database budget of 90" in str(err.value)


def test_budget_refusal_names_the_keys_to_change() -> None:
    cfg = parse(
        {
            "target": "ecs",
            "name": "api",
            "image": {"build": {}},
            "scaling": {"min": 2, "max": 20},
            "database": {"max_connections": 50, "reserved_connections": 10},
            "ecs": {"cpu": 2048, "memory": 4096},
        }
    )
    with pytest.raises(TuningError) as err:
        for_platform(cfg)
    msg = str(err.value)
    assert "40 replicas during a deploy (app.scaling.max=20 x surge 2) x 2 workers" in msg
    for key in ("app.database.max_connections", "app.database.reserved_connections", "app.scaling.max",
                "app.tuning.workers", "app.ecs.cpu"):  # fmt: skip
        assert key in msg


def test_worker_override_beyond_memory_is_refused() -> None:
    with pytest.raises(
        TuningError, match=r"app\.tuning\.workers: 8 workers need 1456 MiB but app\.ecs\.memory is 1024"
    ):
        tune(
            inp(
                vcpu=0.5,
                mem=1024,
                workers=8,
                keys={"memory": "app.ecs.memory", "workers": "app.tuning.workers"},
            )
        )


def test_memory_too_small_for_one_worker() -> None:
    with pytest.raises(TuningError, match="leaves no room for one worker"):
        tune(inp("vps", vcpu=1, mem=300))


GRID = list(
    itertools.product(
        ["ecs", "cloudrun", "vps"], [0.5, 1, 2, 4], [1024, 4096, 16384], [1, 5, 30], [5, 30, 60]
    )
)


@pytest.mark.parametrize(("platform", "vcpu", "mem", "replicas", "rt"), GRID)
def test_timeout_chain_and_budget_hold_for_every_size(
    platform: Any, vcpu: float, mem: int, replicas: int, rt: int
) -> None:
    t = tune(inp(platform, vcpu=vcpu, mem=mem, replicas=replicas, budget=5000, request_timeout_s=rt))
    if t.lb_idle_timeout_s is not None:
        assert t.keepalive_s > t.lb_idle_timeout_s
    assert t.graceful_timeout_s < t.stop_timeout_s
    if t.deregistration_delay_s is not None:
        assert t.request_timeout_s <= t.deregistration_delay_s <= T.MAX_DEREGISTRATION_DELAY_S < 300
        assert t.graceful_timeout_s <= t.deregistration_delay_s
    assert t.max_total_connections <= t.connection_budget
    assert 1 <= t.workers <= max(1, int(vcpu))


def test_platform_numbers() -> None:
    e = tune(inp("ecs"))
    assert (e.lb_idle_timeout_s, e.keepalive_s, e.stop_timeout_s, e.graceful_timeout_s) == (60, 75, 30, 20)
    assert e.deregistration_delay_s == 35
    c = tune(inp("cloudrun"))
    assert c.stop_timeout_s == 10
    assert c.graceful_timeout_s < 10  # Cloud Run SIGKILLs 10 s after SIGTERM
    v = tune(inp("vps", request_timeout_s=60))
    assert v.stop_timeout_s == 70  # docker stop -t covers the longest request
    assert v.keepalive_s > v.lb_idle_timeout_s  # type: ignore[operator]


def test_ecs_refuses_requests_longer_than_a_sane_drain() -> None:
    with pytest.raises(TuningError, match=r"app\.request_timeout_s: 200 s is above the maximum of 115 s"):
        tune(inp("ecs", request_timeout_s=200))


def test_env_has_exactly_the_contract_names() -> None:
    for platform in ("ecs", "cloudrun", "lambda", "vps"):
        env = tune(inp(platform, replicas=2)).env()  # type: ignore[arg-type]
        # The trusted-proxy list goes to the platforms whose proxy has listable (private) addresses: not
        # Lambda (no proxy in front of a socket), not Cloud Run (FORWARDED_TRUSTED_HOPS, from the config:
        # tests/infra/test_forwarded_allow_ips.py). GC_FREEZE/GC_THRESHOLD are applied by gunicorn_conf, so
        # only where gunicorn runs.
        expected = CONTRACT_ENV | ({"FORWARDED_ALLOW_IPS"} if platform in ("ecs", "vps") else set())
        expected |= {"GC_FREEZE", "GC_THRESHOLD"} if platform != "lambda" else set()
        # CloudWatch EMF metric lines where CloudWatch Logs receives the logs and nothing scrapes /metrics.
        expected |= {"METRICS_EMF"} if platform in ("ecs", "lambda") else set()
        assert set(env) == expected
        assert env.get("METRICS_EMF") == ("true" if platform in ("ecs", "lambda") else None)
        assert all(isinstance(v, str) for v in env.values())
    env = tune(inp("ecs")).env()
    assert env["DB_POOL_PRE_PING"] == "true"
    assert env["READY_CHECK_TIMEOUT"] == "0.5"
    assert env["DB_POOL_TIMEOUT"] == "5"
    assert env["MAX_REQUEST_BODY_BYTES"] == "1048576"  # 1 MiB unless the stack says otherwise


@pytest.mark.parametrize("target", ["ecs", "cloudrun", "lambda", "vps"])
def test_the_stack_body_limit_reaches_the_container_on_every_target(target: str) -> None:
    from tests.infra.test_config import cloudrun, ecs, lam, vps

    data = {"ecs": ecs, "cloudrun": cloudrun, "lambda": lam, "vps": vps}[target](
        max_request_body_bytes=262144
    )
    cfg = parse(data)
    assert container_environment(cfg, for_platform(cfg))["MAX_REQUEST_BODY_BYTES"] == "262144"


def test_container_environment_merges_user_env_cors_and_tuning() -> None:
    cfg = parse(
        {
            "target": "ecs",
            "name": "api",
            "environment": "staging",
            "image": {"build": {}},
            "scaling": {"min": 1, "max": 2},
            "env": {"LOG_LEVEL": "debug"},
            "cors_origins": ["https://a.example.com", "https://b.example.com"],
        }
    )
    env = container_environment(cfg, for_platform(cfg))
    assert env["LOG_LEVEL"] == "debug"
    assert env["CORS_ORIGINS"] == "https://a.example.com,https://b.example.com"
    assert env["APP_ENV"] == "staging"
    assert "DATABASE_URL" not in env


def test_lambda_without_reserved_concurrency_is_refused() -> None:
    cfg = parse({"target": "lambda", "name": "api", "image": {"build": {}}})
    with pytest.raises(TuningError, match=r"app\.lambda\.reserved_concurrency: required"):
        for_platform(cfg)


def test_cloudrun_gets_its_concurrency_hint() -> None:
    cfg = parse(
        {
            "target": "cloudrun",
            "name": "api",
            "image": {"build": {}},
            "scaling": {"min": 0, "max": 4},
            "cloudrun": {
                "project": "acme-prod",
                "region": "europe-west1",
                "cpu": 2,
                "memory": "1Gi",
                "concurrency": 40,
            },
        }
    )
    t = for_platform(cfg)
    assert t.workers == 2
    assert t.container_concurrency == 40
    assert t.as_dict()["env"]["WEB_CONCURRENCY"] == "2"


@pytest.mark.parametrize(
    ("stack", "expected"),
    [
        ("prod-ecs", None),  # on: scraped by a sidecar on localhost, blocked at the ALB
        ("prod-vps", None),  # on: scraped on the Docker network, blocked by Caddy
        ("prod-cloudrun", "false"),
        ("prod-lambda", "false"),
    ],
)
def test_metrics_are_switched_off_where_no_private_scraper_can_reach_them(
    stack: str, expected: str | None
) -> None:
    from fastapi_deploy.config import CONFIG_KEY, stack_file_config

    raw = stack_file_config(Path(__file__).resolve().parents[2] / "stacks" / f"Pulumi.{stack}.yaml")
    app = dict(raw[CONFIG_KEY])
    app.pop("env", None)
    providers = {k: v for k, v in raw.items() if k != CONFIG_KEY}
    cfg = parse_with(app, stack=stack, providers=providers)
    assert container_environment(cfg, for_platform(cfg)).get("METRICS_ENABLED") == expected
    # An explicit choice in app.env is kept (e.g. a collector sidecar that scrapes localhost).
    cfg = parse_with({**app, "env": {"METRICS_ENABLED": "true"}}, stack=stack, providers=providers)
    assert container_environment(cfg, for_platform(cfg))["METRICS_ENABLED"] == "true"


@pytest.mark.parametrize("platform", ["ecs", "cloudrun", "vps"])
def test_a_single_worker_is_never_recycled(platform: T.Platform) -> None:
    """gunicorn forks the replacement only after the old worker exited: with one worker every recycle left
    the task without an accepting worker (BENCHMARKS.md "Deployed settings"). More workers keep the leak
    guard, jittered."""
    one = tune(inp(platform, vcpu=1, mem=2048, budget=10_000))
    assert one.workers == 1
    assert (one.env()["GUNICORN_MAX_REQUESTS"], one.env()["GUNICORN_MAX_REQUESTS_JITTER"]) == ("0", "0")
    two = tune(inp(platform, vcpu=2, mem=4096, budget=10_000))
    assert two.workers == 2
    assert (two.max_requests, two.max_requests_jitter) == (T.MAX_REQUESTS, T.MAX_REQUESTS_JITTER)
    assert two.max_requests_jitter >= two.max_requests // 10


def test_gc_settings_go_to_gunicorn_platforms_only() -> None:
    for platform in ("ecs", "cloudrun", "vps"):
        env = tune(inp(platform, replicas=2)).env()  # type: ignore[arg-type]
        assert env["GC_FREEZE"] == "true"
        assert env["GC_THRESHOLD"] == ",".join(map(str, T.GC_THRESHOLD or ()))
    lam = tune(inp("lambda", vcpu=1024 / 1769, mem=1024, replicas=5)).env()
    assert "GC_FREEZE" not in lam
    assert "GC_THRESHOLD" not in lam


def test_gc_env_is_what_the_app_parses() -> None:
    from app import gctune

    env = tune(inp("ecs")).env()
    assert gctune.freeze_from_env(env) is T.GC_FREEZE
    assert gctune.threshold_from_env(env) == T.GC_THRESHOLD


def test_prod_stacks_get_the_measured_recycling_and_gc() -> None:
    stacks = Path(__file__).resolve().parents[2] / "stacks"
    from fastapi_deploy.config import load_stack_file

    for name, workers in (("prod-ecs", 1), ("prod-vps", 2)):
        cfg = load_stack_file(stacks / f"Pulumi.{name}.yaml")
        env = container_environment(cfg, for_platform(cfg))
        assert env["WEB_CONCURRENCY"] == str(workers)
        assert env["GUNICORN_MAX_REQUESTS"] == ("0" if workers == 1 else str(T.MAX_REQUESTS))
        assert env["GC_FREEZE"] == "true"


def test_emf_lines_carry_the_dimension_the_ecs_alarms_read() -> None:
    """The ECS EMF alarms filter on namespace alarms.emf_namespace and Service=<name>-<stack>; the container
    must send exactly those, or the alarms sit at INSUFFICIENT_DATA for ever."""
    from fastapi_deploy.config import load_stack_file
    from tests.infra.conftest import STACKS

    cfg = load_stack_file(STACKS / "Pulumi.prod-ecs.yaml")
    env = container_environment(cfg, for_platform(cfg))
    assert env["METRICS_EMF"] == "true"
    assert env["METRICS_EMF_SERVICE"] == "items-api-prod-ecs"
    assert env["METRICS_EMF_NAMESPACE"] == cfg.ecs.alarms.emf_namespace  # type: ignore[union-attr]
