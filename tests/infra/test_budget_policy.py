"""The policy pack's `db-connection-budget` rule sees the budget under the real engine.

The rule reads `dbConnectionBudget` off the `fastapi-deploy:*` component (CrossGuard gets component props
like any resource's) and the pool/workers/replicas/surge from the real resources. These tests go through
the offline plan: the real program under mocks → recorded registrations → the rules.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fastapi_deploy import plan as plan_mod
from fastapi_deploy.mocks import run_stack_file, unwrap
from fastapi_deploy.tuning import RuntimeTuning
from policy import rules

STACKS = {plan_mod.stack_name(p): p for p in plan_mod.stack_files()}
PROD = ["prod-ecs", "prod-cloudrun", "prod-lambda", "prod-vps"]


def graph(path: Path) -> list[rules.Resource]:
    """The graph exactly as the plan hands it to the rules (unmasked: the VPS env is a Pulumi secret)."""
    return [
        rules.Resource(type=r.type, inputs=unwrap(r.inputs), urn=r.urn, name=r.name, parent=r.parent)
        for r in run_stack_file(path).resources
    ]


@pytest.mark.parametrize("stack", sorted(STACKS))
def test_committed_stacks_are_checked_against_their_budget_and_pass(stack: str) -> None:
    plan = plan_mod.plan_stack(STACKS[stack])
    assert plan.error is None
    (component,) = [r for r in plan.resources if r["type"].startswith("fastapi-deploy:")]
    props = component["inputs"]
    assert props["dbConnectionBudget"] == plan.tuning["connection_budget"]
    assert {"maxReplicas", "deploySurge", "workers", "poolSize", "maxOverflow"} <= set(props)
    # Not vacuous: the rule found the app and a budget for it (before, it silently skipped).
    runtimes = rules.app_runtimes(graph(STACKS[stack]))
    assert runtimes
    assert all(rt.connection_budget == props["dbConnectionBudget"] for rt in runtimes)
    assert [v for v in plan.violations if v["policy"] == "db-connection-budget"] == []


@pytest.mark.parametrize("stack", PROD)
def test_a_budget_the_deployment_exceeds_fails_the_plan(stack: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The component registers a budget of 10 (e.g. the database shrank after tuning ran): the deployment's
    real pool x workers x replicas x surge exceeds it, and the plan fails on the mandatory rule."""
    original = RuntimeTuning.component_props

    def smaller_budget(self: RuntimeTuning) -> dict[str, Any]:
        return {**original(self), "dbConnectionBudget": 10}

    monkeypatch.setattr(RuntimeTuning, "component_props", smaller_budget)
    plan = plan_mod.plan_stack(Path(STACKS[stack]))
    assert plan.error is None
    found = [v for v in plan.violations if v["policy"] == "db-connection-budget"]
    assert found, plan.violations
    assert all(v["enforcement"] == "mandatory" and "> budget 10" in v["message"] for v in found)
    assert plan.exit_code == plan_mod.EXIT_FINDINGS
