"""Stack outputs for `infra verify`: from the Pulumi CLI when present, else a file or a JSON argument."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from fastapi_deploy import contract

COMMON = contract.COMMON_OUTPUTS


def __getattr__(name: str) -> Any:
    """``REQUIRED``: target -> the outputs it exports besides the common ones (from the registry)."""
    if name == "REQUIRED":
        return _required()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _required() -> dict[str, tuple[str, ...]]:
    from fastapi_deploy import registry

    return {t.key: t.outputs for t in registry.all_targets()}


class OutputsError(Exception):
    """Outputs missing or malformed; the message names the key and where it was read from."""


def read_outputs(
    stack: str | None,
    outputs_file: str | None = None,
    outputs_json: str | None = None,
    *,
    cwd: str | None = None,
) -> tuple[dict[str, Any], str]:
    """Return (outputs, source description). An explicit file/JSON wins over the CLI."""
    if outputs_json is not None:
        return _parse(outputs_json, "--outputs-json"), "--outputs-json"
    if outputs_file is not None:
        path = Path(outputs_file)
        if not path.is_file():
            raise OutputsError(f"--outputs: {outputs_file} does not exist")
        return _parse(path.read_text(), outputs_file), outputs_file
    pulumi = shutil.which("pulumi")
    if pulumi is None:
        raise OutputsError(
            "no Pulumi CLI on PATH: pass the outputs with --outputs FILE (from "
            "`pulumi stack output --json --stack S > FILE`) or --outputs-json '{...}'"
        )
    if not stack:
        raise OutputsError("--stack is required to read outputs from the Pulumi CLI")
    argv = [pulumi, "stack", "output", "--json", "--show-secrets=false", "--stack", stack]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False, cwd=cwd)
    except subprocess.TimeoutExpired as exc:
        raise OutputsError(f"`pulumi stack output` did not answer within 60 s for stack {stack}") from exc
    if proc.returncode != 0:
        raise OutputsError(f"`pulumi stack output --stack {stack}` failed: {proc.stderr.strip()}")
    return _parse(proc.stdout, f"pulumi stack output --stack {stack}"), f"pulumi stack {stack}"


def _parse(text: str, source: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise OutputsError(f"{source}: not JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise OutputsError(f"{source}: expected a JSON object of stack outputs, got {type(data).__name__}")
    return data


def validate_outputs(outputs: dict[str, Any], source: str) -> str:
    """Check the contract keys for the target; return the target name."""
    target = outputs.get("target")
    REQUIRED = _required()
    if target not in REQUIRED:
        raise OutputsError(f"{source}: output `target` is {target!r}; expected one of {sorted(REQUIRED)}")
    missing = [k for k in (*COMMON, *REQUIRED[target]) if outputs.get(k) in (None, "")]
    if missing:
        raise OutputsError(f"{source}: {target} stack outputs lack {', '.join(missing)}")
    for key in ("health_path", "ready_path"):
        if not str(outputs[key]).startswith("/"):
            raise OutputsError(f"{source}: output `{key}` must start with '/', got {outputs[key]!r}")
    secret_like = [k for k, v in outputs.items() if isinstance(v, str) and v == contract.SECRET_MASK]
    needed_secret = [k for k in secret_like if k in (*COMMON, *REQUIRED[target])]
    if needed_secret:
        raise OutputsError(f"{source}: outputs {needed_secret} are secret; verify needs them in plain text")
    return str(target)
