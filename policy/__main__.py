"""CrossGuard entry point: `pulumi preview --policy-pack policy` runs this file.

Each rule in `rules.py` becomes one policy. Resource rules become `ResourceValidationPolicy`s fed with
(type token, properties); stack rules become `StackValidationPolicy`s fed with every resource of the
stack. The functions are the ones `infra plan` evaluates offline, so the CLI and the plan agree.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Callable, Mapping, Sequence
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
from pulumi_policy.proxy import UnknownValueError

try:  # installed project (the pack runs in the project's .venv)
    from policy import rules
except ImportError:  # standalone copy of the pack: rules.py sits next to this file
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import rules  # type: ignore[no-redef]

LEVELS = {"mandatory": EnforcementLevel.MANDATORY, "advisory": EnforcementLevel.ADVISORY}


def known(value: Any) -> Any:
    """Plain copy of CrossGuard's property proxy with values unknown during preview left out.

    `dict(args.props)` would raise UnknownValueError on the first unknown property (an execution role
    ARN created in the same deploy, say) and the SDK would then skip the whole policy for the resource.
    Dropping just the unknown values keeps every check that only needs known ones; the rules treat a
    missing value as "nothing to check" except where absence itself is the finding (and those inputs are
    constants from the stack config, known at preview).
    """
    if isinstance(value, str | bytes):
        return value
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key in value:
            try:
                item = value[key]
            except UnknownValueError:
                continue
            out[key] = known(item)
        return out
    if isinstance(value, Sequence):
        items: list[Any] = []
        for index in range(len(value)):
            try:
                items.append(known(value[index]))
            except UnknownValueError:
                continue
        return items
    return value


def _resource_validator(
    check: rules.ResourceCheck,
) -> Callable[[ResourceValidationArgs, ReportViolation], None]:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        for message in check(args.resource_type, known(args.props)):
            report_violation(message, None)

    return validate


def _stack_validator(check: rules.StackCheck) -> Callable[[StackValidationArgs, ReportViolation], None]:
    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        graph = [
            rules.Resource(
                type=r.resource_type,
                inputs=known(r.props),
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


def _unbuffered_stdout() -> None:
    """Make the port line reach the engine at once, whatever the interpreter's buffering.

    The SDK writes the gRPC port with ``sys.stdout.buffer.write`` and never flushes; with stdout a pipe
    (as under the engine) it sits in the buffer, and the engine waits for it forever, unless the
    interpreter happens to run unbuffered (``-u``/``PYTHONUNBUFFERED``). A raw, write-through stdout does
    not depend on how the pack was launched.
    """
    raw = open(sys.stdout.fileno(), "wb", buffering=0, closefd=False)  # noqa: SIM115 - lives as stdout
    sys.stdout = io.TextIOWrapper(raw, write_through=True)


if __name__ == "__main__":  # the analyzer runs this file as __main__; importing it stays side-effect free
    _unbuffered_stdout()
    PolicyPack(name="fastapi-deploy-production", policies=build_policies())
