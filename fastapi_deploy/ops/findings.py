"""Findings: what is wrong, where, and the command that fixes it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum


class Severity(StrEnum):
    """How a finding affects the deploy: `blocking` makes `infra doctor` exit 1."""

    OK = "ok"
    WARNING = "warning"
    BLOCKING = "blocking"


@dataclass(frozen=True)
class Finding:
    """One preflight result a user can act on without reading our code.

    `where` names the stack key or the cloud resource (ARN, secret name, host); `fix` is a command to run
    (never containing a secret value: placeholders such as `'<value>'` stand in for them).
    """

    severity: Severity
    check: str
    what: str
    where: str
    fix: str | None = None

    def render(self) -> str:
        head = f"[{self.severity.value.upper():8}] {self.check}: {self.what}"
        lines = [head, f"           where: {self.where}"]
        if self.fix:
            fix_lines = self.fix.splitlines()
            lines.append(f"           fix:   {fix_lines[0]}")
            lines.extend(f"                  {line}" for line in fix_lines[1:])
        return "\n".join(lines)


def ok(check: str, what: str, where: str) -> Finding:
    return Finding(Severity.OK, check, what, where)


def warning(check: str, what: str, where: str, fix: str | None = None) -> Finding:
    return Finding(Severity.WARNING, check, what, where, fix)


def blocking(check: str, what: str, where: str, fix: str | None = None) -> Finding:
    return Finding(Severity.BLOCKING, check, what, where, fix)


def has_blocking(findings: Iterable[Finding]) -> bool:
    return any(f.severity is Severity.BLOCKING for f in findings)


def summary(findings: list[Finding]) -> str:
    counts = {s: sum(1 for f in findings if f.severity is s) for s in Severity}
    return (
        f"{counts[Severity.BLOCKING]} blocking, {counts[Severity.WARNING]} warning(s), "
        f"{counts[Severity.OK]} check(s) passed"
    )
