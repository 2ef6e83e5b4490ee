"""CrossGuard entry point: `pulumi preview --policy-pack policy` runs this file.

Each rule in `rules.py` becomes one policy. Resource rules become `ResourceValidationPolicy`s fed with
(type token, properties); stack rules become `StackValidationPolicy`s fed with every resource of the
stack. The functions are the ones `infra plan` evaluates offline, so the CLI and the plan agree.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyPack,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

try:  # installed project (the pack runs in the project's .venv)
    from policy import rules
except ImportError:  # standalone copy of the pack: rules.py sits next to this file
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import rules  # type: ignore[no-redef]

LEVELS = {"mandatory": EnforcementLevel.MANDATORY, "advisory": EnforcementLevel.ADVISORY}


def _resource_validator(
    check: rules.ResourceCheck,
) -> Callable[[ResourceValidationArgs, ReportViolation], None]:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        for message in check(args.resource_type, dict(args.props)):
            report_violation(message, None)

    return validate


def _stack_validator(check: rules.StackCheck) -> Callable[[StackValidationArgs, ReportViolation], None]:
    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        graph = [
            rules.Resource(
                type=r.resource_type,
                inputs=dict(r.props),
                urn=r.urn,
                name=r.name,
                parent=r.parent.urn if r.parent is not None else None,
            )
            for r in args.resources
        ]
        for urn, message in check(graph):
            report_violation(message, urn)

    return validate


def build_policies() -> list[Any]:
    """One CrossGuard policy per rule, with the rule's enforcement level."""
    policies: list[Any] = []
    for rule in rules.RULES:
        if rule.resource is not None:
            policies.append(
                ResourceValidationPolicy(
                    name=rule.name,
                    description=rule.description,
                    validate=_resource_validator(rule.resource),
                    enforcement_level=LEVELS[rule.enforcement],
                )
            )
        if rule.stack is not None:
            policies.append(
                StackValidationPolicy(
                    name=rule.name,
                    description=rule.description,
                    validate=_stack_validator(rule.stack),
                    enforcement_level=LEVELS[rule.enforcement],
                )
            )
    return policies


if __name__ == "__main__":  # the analyzer runs this file as __main__; importing it stays side-effect free
    PolicyPack(name="fastapi-deploy-production", policies=build_policies())
