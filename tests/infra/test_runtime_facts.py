"""The runtime facts every built-in component publishes (contract.RUNTIME_FACTS) are what the policy pack
reads off its real resources.

The pack judges the four built-in targets from their resources and a fifth target from the facts its
component publishes (tests/infra/test_fifth_target.py). Here the built-in components' facts, read the way
the pack reads a target it does not know, are compared with the resource-derived view of the committed
stacks: the recipe a fifth target follows (``fastapi_deploy.component.runtime_props``) states what its
resources really do.
"""

from __future__ import annotations

import io
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
import yaml

from fastapi_deploy import contract
from fastapi_deploy import plan as plan_mod
from fastapi_deploy.mocks import is_secret, run_stack_file, unwrap
from policy import rules

STACKS = {plan_mod.stack_name(p): p for p in plan_mod.stack_files()}
#: Facts the pack does not derive from these platforms' resources because no rule needs them there (the
#: resource view leaves the AppRuntime default); the published facts state them anyway.
NOT_DERIVED = {
    "ecs": {"max_instances"},
    "cloudrun": set(),
    "lambda": {"vcpu", "stop_grace_s", "min_replicas", "max_instances"},
    # Caddy is the proxy in front of the container: the pack does not read its idle timeout.
    "vps": {"lb_idle_timeout_s"},
}


def _graph(path: Path) -> tuple[list[rules.Resource], Any]:
    recorded = run_stack_file(path)
    graph = [
        rules.Resource(type=r.type, inputs=unwrap(r.inputs), urn=r.urn, name=r.name, parent=r.parent)
        for r in recorded.resources
    ]
    return graph, recorded


@pytest.mark.parametrize("stack", sorted(STACKS))
def test_a_built_in_components_facts_are_what_its_resources_say(stack: str) -> None:
    graph, _ = _graph(STACKS[stack])
    (derived,) = rules.app_runtimes(graph)  # the facts on the component are not used for a built-in
    (component,) = [r for r in graph if r.type.startswith("fastapi-deploy:")]
    facts = component.inputs[contract.RUNTIME_FACTS]
    assert facts["platform"] == derived.platform
    assert contract.runtime_facts_problems(facts) == []
    # Read as the pack reads a target it does not know.
    unknown = rules.Resource(component.type, {contract.RUNTIME_FACTS: {**facts, "platform": "x"}}, urn="u")
    (published,) = rules.app_runtimes([unknown])
    want, got = asdict(derived), asdict(published)
    for key in ("platform", "urn", "env", *NOT_DERIVED[derived.platform]):
        want.pop(key)
        got.pop(key)
    assert got == want
    # The env: the container's plain env, secret references included (Lambda's handler resolves them); the
    # VPS container's env list also carries the secrets' values, which the facts never do.
    secret_names = set(yaml.safe_load(STACKS[stack].read_text())["config"]["fastapi-deploy:app"]["secrets"])
    plain = {k: v for k, v in derived.env.items() if k not in secret_names or rules.is_reference(v)}
    assert published.env == plain
    assert "WEB_CONCURRENCY" in published.env


def test_the_vps_facts_carry_no_secret_value() -> None:
    """The VPS container's env list is one Pulumi secret because the secrets' values ride in it; the facts
    hold only the plain env, so nothing secret sits in them (and nothing in them is hidden)."""
    _, recorded = _graph(STACKS["prod-vps"])
    (component,) = [r for r in recorded.resources if r.type.startswith("fastapi-deploy:")]
    facts = component.inputs[contract.RUNTIME_FACTS]
    assert not is_secret(facts)
    assert facts["env"]["APP_ENV"] == "production"
    secret_names = yaml.safe_load(STACKS["prod-vps"].read_text())["config"]["fastapi-deploy:app"]["secrets"]
    assert not set(secret_names) & set(facts["env"])


def test_the_plan_masks_a_credential_in_the_published_env(tmp_path: Path) -> None:
    doc = yaml.safe_load(STACKS["staging-ecs"].read_text())
    doc["config"]["fastapi-deploy:app"].setdefault("env", {})["PAYMENT_API_KEY"] = "plain-text-credential"
    path = tmp_path / "Pulumi.staging-ecs.yaml"
    path.write_text(yaml.safe_dump(doc))
    out = io.StringIO()
    rc = plan_mod.cli(["--stack", str(path), "--format", "json"], out=out, err=io.StringIO())
    assert rc == plan_mod.EXIT_FINDINGS  # no-plaintext-secrets on the task definition
    assert "plain-text-credential" not in out.getvalue()
    planned = json.loads(out.getvalue())
    planned = planned[0] if isinstance(planned, list) else planned
    (component,) = [r for r in planned["resources"] if r["type"].startswith("fastapi-deploy:")]
    env = component["inputs"][contract.RUNTIME_FACTS]["env"]
    assert env["PAYMENT_API_KEY"] == contract.SECRET_MASK
    assert env["APP_ENV"] == "staging"
