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

from fastapi_deploy.mocks import ProgramResult, unwrap
from fastapi_deploy.tuning import FORWARDED_ALLOW_IPS
from policy import rules


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
        ("prod-cloudrun", "*"),
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
