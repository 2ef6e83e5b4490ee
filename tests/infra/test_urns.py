"""Existing stacks must not replace anything: every URN of the six shipped stacks, as snapshotted before
the component refactor (tests/infra/urns/<stack>.json, the engine's URN rule: the parent's whole qualified
type chain), is still produced — or a resource produced now carries an alias that resolves to it (the
recording monitor resolves alias specs the way the engine does) — and no resource is new unless listed
in INTENDED_ADDITIONS."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pulumi
import pytest

from fastapi_deploy.component import NamedComponent
from fastapi_deploy.mocks import ProgramResult, run_callable

URNS = Path(__file__).parent / "urns"
SHIPPED = ["prod-ecs", "staging-ecs", "prod-cloudrun", "staging-cloudrun", "prod-lambda", "prod-vps"]
#: stack -> URNs deliberately added by the refactor (none: the pieces are helpers, not new components).
INTENDED_ADDITIONS: dict[str, set[str]] = {stack: set() for stack in SHIPPED}


def snapshot(stack: str) -> set[str]:
    return set(json.loads((URNS / f"{stack}.json").read_text()))


def urn_problems(before: set[str], result: ProgramResult, intended: set[str]) -> list[str]:
    """What would make `pulumi up` replace or add something: a lost URN without an alias to it, or a
    new URN that is neither aliased to an old one nor intended."""
    now = {r.urn for r in result.resources}
    aliased_to: dict[str, str] = {}
    for r in result.resources:
        for alias in r.aliases:
            aliased_to[alias] = r.urn
    problems = [f"lost (would be deleted/replaced): {u}" for u in sorted(before - now) if u not in aliased_to]
    carried = {aliased_to[u] for u in before if u in aliased_to}
    problems += [
        f"new (would be created): {u}" for u in sorted(now - before) if u not in carried and u not in intended
    ]
    return problems


@pytest.mark.parametrize("stack", SHIPPED)
def test_every_snapshotted_urn_is_kept_or_aliased(
    run_stack: Callable[..., ProgramResult], stack: str
) -> None:
    before = snapshot(stack)
    assert before, f"empty snapshot for {stack}"
    result = run_stack(stack)
    assert urn_problems(before, result, INTENDED_ADDITIONS[stack]) == []


# ----------------------------------------------------------- the check itself (it must be able to fail)
class _Moved(NamedComponent):
    """A component whose topic moved under a new child component, with or without an alias."""

    def __init__(self, name: str, *, alias: bool) -> None:
        super().__init__("fastapi-deploy:test:Moved", name, {}, None)
        import pulumi_aws as aws

        group = pulumi.ComponentResource(
            "fastapi-deploy:test:Alerts", f"{name}-alerting", None, self.child_opts()
        )
        aws.sns.Topic(
            f"{name}-alerts",
            opts=pulumi.ResourceOptions(parent=group, aliases=[pulumi.Alias(parent=self)] if alias else None),
        )


class _Flat(NamedComponent):
    def __init__(self, name: str) -> None:
        super().__init__("fastapi-deploy:test:Moved", name, {}, None)
        import pulumi_aws as aws

        aws.sns.Topic(f"{name}-alerts", opts=self.child_opts())


def _urns(fn: Callable[[], Any]) -> ProgramResult:
    return run_callable(fn, stack="urns")


def test_a_moved_resource_without_alias_is_reported() -> None:
    before = {r.urn for r in _urns(lambda: _Flat("svc")).resources}
    moved = _urns(lambda: _Moved("svc", alias=False))
    problems = urn_problems(before, moved, intended=set())
    assert any(p.startswith("lost") and p.endswith("::svc-alerts") for p in problems), problems
    assert any("fastapi-deploy:test:Alerts$aws:sns/topic:Topic::svc-alerts" in p for p in problems), problems


def test_alias_parent_resolves_to_the_old_urn() -> None:
    """``pulumi.Alias(parent=<the component>)`` is sent as a spec; resolved like the engine does, it is
    exactly the URN the topic had as a direct child — so the move is not a replacement."""
    flat = _urns(lambda: _Flat("svc"))
    old = flat.one("aws:sns/topic:Topic").urn
    assert old == "urn:pulumi:urns::fastapi-deploy::fastapi-deploy:test:Moved$aws:sns/topic:Topic::svc-alerts"
    moved = _urns(lambda: _Moved("svc", alias=True))
    topic = moved.one("aws:sns/topic:Topic")
    assert topic.urn != old
    assert old in topic.aliases
    intended = {moved.one("fastapi-deploy:test:Alerts").urn}
    assert urn_problems({r.urn for r in flat.resources}, moved, intended) == []
