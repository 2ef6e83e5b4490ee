"""Behind a proxy the app must trust the proxy's X-Forwarded-For, or every client shares one login budget.

The rendered container env (as the engine receives it under mocks) carries FORWARDED_ALLOW_IPS on the
three targets with a proxy in front of the container, never on Lambda (Mangum reads the event). And the
value the deployer picks must identify the client the proxy saw, not an address the client made up.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from app.forwarded import TrustedHopsMiddleware
from fastapi_deploy.mocks import ProgramResult, run_program, unwrap
from fastapi_deploy.tuning import FORWARDED_ALLOW_IPS
from policy import rules
from tests.infra.conftest import edited_config


def rendered_app_envs(result: ProgramResult) -> list[dict[str, str]]:
    """Env of every app container/function exactly as registered with the engine."""
    envs: list[dict[str, str]] = []
    for r in result.resources:
        inputs: dict[str, Any] = unwrap(r.inputs)
        if r.type == rules.ECS_TASK_DEFINITION:
            for c in json.loads(inputs["containerDefinitions"]):
                envs.append({e["name"]: e["value"] for e in c.get("environment", [])})
        elif r.type == rules.CLOUD_RUN_SERVICE:
            for c in inputs["template"]["containers"]:
                envs.append({e["name"]: e.get("value") for e in c.get("envs", [])})
        elif r.type == rules.DOCKER_CONTAINER:
            envs.append(dict(item.partition("=")[::2] for item in inputs.get("envs") or []))
        elif r.type == rules.LAMBDA_FUNCTION:
            envs.append(dict(inputs["environment"]["variables"]))
    return [e for e in envs if "WEB_CONCURRENCY" in e]


@pytest.mark.parametrize(
    ("stack", "expected"),
    [
        ("prod-ecs", FORWARDED_ALLOW_IPS["ecs"]),
        ("prod-vps", FORWARDED_ALLOW_IPS["vps"]),
    ],
)
def test_proxied_targets_trust_the_proxy(
    run_stack: Callable[..., ProgramResult], stack: str, expected: str
) -> None:
    envs = rendered_app_envs(run_stack(stack))
    assert envs, f"{stack}: no app container recorded"
    assert all(env.get("FORWARDED_ALLOW_IPS") == expected for env in envs), envs


def test_lambda_gets_no_trusted_proxy_setting(run_stack: Callable[..., ProgramResult]) -> None:
    envs = rendered_app_envs(run_stack("prod-lambda"))
    assert envs
    assert all("FORWARDED_ALLOW_IPS" not in env for env in envs)


async def _client_seen(trusted: str, peer: str, xff: str) -> str:
    seen: dict[str, Any] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen["client"] = scope["client"][0]

    scope = {
        "type": "http",
        "client": (peer, 40000),
        "headers": [(b"x-forwarded-for", xff.encode())],
    }
    await ProxyHeadersMiddleware(app, trusted_hosts=trusted)(scope, None, None)  # type: ignore[arg-type]
    return str(seen["client"])


@pytest.mark.parametrize("platform", ["ecs", "vps"])
async def test_a_client_cannot_pick_its_rate_limit_key_behind_the_alb_or_caddy(platform: str) -> None:
    """The ALB appends the client's address to the header the client sent; the app must take the ALB's
    entry (rightmost untrusted), not the client's made-up one. (`*` would take the leftmost: spoofable.)"""
    trusted = FORWARDED_ALLOW_IPS[platform]
    assert await _client_seen(trusted, "10.0.1.17", "6.6.6.6, 203.0.113.9") == "203.0.113.9"
    assert await _client_seen(trusted, "172.18.0.2", "203.0.113.9") == "203.0.113.9"  # Caddy's bridge
    # A direct (non-proxy) peer is never trusted: its header is ignored.
    assert await _client_seen(trusted, "198.51.100.7", "203.0.113.9") == "198.51.100.7"


@pytest.mark.parametrize("stack", ["prod-ecs", "prod-cloudrun", "prod-vps"])
def test_committed_stacks_pass_the_proxy_headers_rule(
    run_stack: Callable[..., ProgramResult], stack: str
) -> None:
    graph = [
        rules.Resource(type=r.type, inputs=unwrap(r.inputs), urn=r.urn, name=r.name, parent=r.parent)
        for r in run_stack(stack).resources
    ]
    rule = next(r for r in rules.RULES if r.name == "proxy-headers-trusted")
    assert [v for v in rules.evaluate(graph, [rule])] == []


# ------------------------------------------------------------------------------------------ Cloud Run
# Google's proxies have no listable addresses; `*` took the client-written leftmost entry. The deployer
# injects the number of entries Google's proxies append instead (fastapi_deploy/cloudrun/tuning.py).


def _cloudrun(domain: str | None = None, ingress: str | None = "keep") -> ProgramResult:
    changes: dict[str, Any] = {"domain": domain} if domain else {}
    raw = edited_config("prod-cloudrun", **changes)
    if ingress is None:  # no explicit ingress: with a domain, load-balancer traffic only
        del raw["fastapi-deploy:app"]["cloudrun"]["ingress"]
    elif ingress != "keep":
        raw["fastapi-deploy:app"]["cloudrun"]["ingress"] = ingress
    return run_program("prod-cloudrun", raw)


def _service_ingress(result: ProgramResult) -> str:
    return str(unwrap(result.one(rules.CLOUD_RUN_SERVICE).inputs)["ingress"])


@pytest.mark.parametrize(
    ("domain", "ingress", "hops", "service_ingress"),
    [
        # run.app URL: Google's front end adds the client's address -> the rightmost entry.
        (None, "keep", "1", "INGRESS_TRAFFIC_ALL"),
        # The domain's load balancer appends "<client>, <LB address>" -> 2nd from the right.
        ("api.example.com", None, "2", "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER"),
        # Domain but run.app still open: a direct client could place its made-up entry 2nd from the right.
        ("api.example.com", "all", "1", "INGRESS_TRAFFIC_ALL"),
    ],
)
def test_cloudrun_env_carries_the_hop_count_and_no_wildcard(
    domain: str | None, ingress: str | None, hops: str, service_ingress: str
) -> None:
    result = _cloudrun(domain, ingress)
    assert _service_ingress(result) == service_ingress
    envs = rendered_app_envs(result)
    assert envs
    for env in envs:
        assert env.get("FORWARDED_TRUSTED_HOPS") == hops, env
        assert "FORWARDED_ALLOW_IPS" not in env, env  # not `*`: uvicorn trusts no peer (gunicorn_conf)


def test_shipped_cloudrun_stacks_carry_the_hop_count(run_stack: Callable[..., ProgramResult]) -> None:
    for stack in ("prod-cloudrun", "staging-cloudrun"):  # neither has a domain: the run.app URL
        envs = rendered_app_envs(run_stack(stack))
        assert envs, stack
        assert all(e.get("FORWARDED_TRUSTED_HOPS") == "1" for e in envs), (stack, envs)
        assert all("FORWARDED_ALLOW_IPS" not in e for e in envs), (stack, envs)


def test_component_args_choose_the_same_hop_count() -> None:
    """The public component (no stack config): the domain Arg with the default ingress gives 2, else 1."""
    from fastapi_deploy.cloudrun import component

    base: dict[str, Any] = {
        "image": "r.example/x@sha256:" + "e" * 64,
        "project": "my-project-123",
        "region": "europe-west1",
        "scaling": {"min": 1, "max": 2},
        "public": True,
    }
    cases = [
        ({}, "1"),
        ({"domain": "api.example.com"}, "2"),
        ({"domain": "api.example.com", "ingress": "all"}, "1"),
    ]
    for extra, hops in cases:
        inp = component.inputs_from_args({**base, **extra})  # type: ignore[typeddict-item]
        env = component.final_env(inp, component.tuning_for(inp))
        assert env["FORWARDED_TRUSTED_HOPS"] == hops, extra
        assert "FORWARDED_ALLOW_IPS" not in env


async def _hops_client_seen(hops: int, peer: str, xff: str) -> str:
    seen: dict[str, Any] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen["client"] = scope["client"][0]

    scope = {"type": "http", "client": (peer, 40000), "headers": [(b"x-forwarded-for", xff.encode())]}
    await TrustedHopsMiddleware(app, hops)(scope, None, None)
    return str(seen["client"])


@pytest.mark.parametrize(("domain", "ingress"), [(None, "keep"), ("api.example.com", None)])
async def test_a_client_cannot_pick_its_rate_limit_key_on_cloud_run(
    domain: str | None, ingress: str | None
) -> None:
    """With the value the deployer renders, a client-written X-Forwarded-For changes nothing: the app
    takes the entry Google's proxies wrote."""
    (env, *_) = rendered_app_envs(_cloudrun(domain, ingress))
    hops = int(env["FORWARDED_TRUSTED_HOPS"])
    appended = "203.0.113.9" if hops == 1 else "203.0.113.9, 34.120.0.1"  # + the LB's address
    for spoofed in ("6.6.6.6", "6.6.6.6, 7.7.7.7", "203.0.113.200", ""):
        xff = f"{spoofed}, {appended}" if spoofed else appended
        assert await _hops_client_seen(hops, "169.254.1.1", xff) == "203.0.113.9", xff
    # No header (not through the expected proxies): the TCP peer.
    assert await _hops_client_seen(hops, "169.254.1.1", "") == "169.254.1.1"


@pytest.mark.parametrize(("ingress", "hops"), [(None, "2"), ("all", "1")])
def test_with_a_domain_the_spec_env_and_the_components_env_agree(ingress: str | None, hops: str) -> None:
    """The program's spec (stack config -> extra_env) and the component (Args -> final_env) choose the hop
    count independently; with a domain they must still give the same env (the shipped stacks have none:
    tests/infra/test_components.py covers those)."""
    from fastapi_deploy import spec as spec_mod
    from fastapi_deploy import targets, tuning
    from fastapi_deploy.cloudrun import adapter, component
    from fastapi_deploy.config import CONFIG_KEY, parse

    raw = edited_config("prod-cloudrun", domain="api.example.com")
    if ingress is None:
        del raw[CONFIG_KEY]["cloudrun"]["ingress"]
    else:
        raw[CONFIG_KEY]["cloudrun"]["ingress"] = ingress
    providers = {k: v for k, v in raw.items() if k != CONFIG_KEY}
    cfg = parse(raw[CONFIG_KEY], stack="prod-cloudrun", providers=providers)
    runtime = tuning.for_platform(cfg)
    spec = spec_mod.build(cfg, runtime, "r.example/x@sha256:" + "e" * 64)
    inp = component.inputs_from_args(adapter.args_from(spec, targets.config_section(cfg)))
    env = component.final_env(inp, runtime)
    assert env["FORWARDED_TRUSTED_HOPS"] == spec.env["FORWARDED_TRUSTED_HOPS"] == hops
    assert env == {k: v for k, v in spec.env.items() if k not in component.RESERVED_ENV}
