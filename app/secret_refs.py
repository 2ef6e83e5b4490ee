"""Resolve secret references in the environment (`ssm:/path`, `secretsmanager:name[:json-key]`).

Used on Lambda, where the platform cannot inject a secret's value natively: the deployer puts a reference
in the env var and the function resolves it once per execution environment (cold start). boto3 is
imported lazily so gunicorn workers on ECS / Cloud Run / VPS never pay its ~0.3 s import.

The grammar is the one users write in the stack config, defined once in ``app/contract.py`` (the deployer's
``fastapi_deploy/secret_refs.py`` SecretRef and the policy pack parse with the same function):

* ``ssm:/path`` or ``ssm:arn:aws:ssm:REGION:ACCOUNT:parameter/path``
* ``secretsmanager:NAME[:json-key]`` — a Secrets Manager name cannot contain ``:``, so the first ``:``
  after the name starts the key
* ``secretsmanager:arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME-AbCdEf[:json-key]`` — an ARN has
  exactly 7 ``:``-separated parts; an 8th is the key
"""

from __future__ import annotations

import json
import os
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any, Literal

from app import contract

SSM_PREFIX = "ssm:"
SM_PREFIX = "secretsmanager:"


class SecretReferenceError(RuntimeError):
    """A reference could not be resolved; the message names the env var and the reference, never a value."""


def is_reference(value: str) -> bool:
    return value.startswith((SSM_PREFIX, SM_PREFIX))


@dataclass(frozen=True)
class Reference:
    """A parsed reference: which store, the id passed to it (path, name or ARN), and an optional JSON key."""

    kind: Literal["ssm", "secretsmanager"]
    secret_id: str
    json_key: str | None = None


def parse_reference(ref: str) -> Reference:
    """Parse one AWS reference with the contract's grammar; ValueError (the value masked) when malformed."""
    if not is_reference(ref):
        raise ValueError("not a reference; expected ssm:... or secretsmanager:...")
    parsed = contract.parse_secret_ref(ref)
    kind: Literal["ssm", "secretsmanager"] = "ssm" if parsed.scheme == "ssm" else "secretsmanager"
    return Reference(kind, parsed.aws_id, parsed.json_key)


def _fetch(ref: str, clients: dict[str, Any]) -> str:
    parsed = parse_reference(ref)
    import boto3  # lazy: only Lambda cold starts pay for it

    if parsed.kind == "ssm":
        if "ssm" not in clients:
            clients["ssm"] = boto3.client("ssm")
        resp = clients["ssm"].get_parameter(Name=parsed.secret_id, WithDecryption=True)
        return str(resp["Parameter"]["Value"])
    if "secretsmanager" not in clients:
        clients["secretsmanager"] = boto3.client("secretsmanager")
    resp = clients["secretsmanager"].get_secret_value(SecretId=parsed.secret_id)
    value = resp.get("SecretString")
    if value is None:
        raise ValueError("secret has no SecretString (binary secrets are not supported)")
    if parsed.json_key:
        try:
            return str(json.loads(value)[parsed.json_key])
        except (ValueError, KeyError, TypeError):
            raise ValueError(f"secret is not a JSON object with key {parsed.json_key!r}") from None
    return str(value)


def _shown(value: str) -> str:
    """The reference as written when it parses (a name or ARN, not sensitive), else masked: a malformed one
    may be a pasted secret."""
    try:
        parse_reference(value)
    except ValueError:
        return contract.mask(value)
    return repr(value)


def resolve_env(environ: MutableMapping[str, str] | None = None) -> list[str]:
    """Replace every env var whose value is a reference by the referenced value, in place.

    Returns the names of the variables resolved. Raises SecretReferenceError listing every failure.
    """
    env = os.environ if environ is None else environ
    clients: dict[str, Any] = {}
    resolved, errors = [], []
    for key, value in list(env.items()):
        if not is_reference(value):
            continue
        try:
            env[key] = _fetch(value, clients)
            resolved.append(key)
        except Exception as exc:
            # Print the reference (a name/ARN, not sensitive) and the AWS error code, never a value.
            code = getattr(exc, "response", {}).get("Error", {}).get("Code") or type(exc).__name__
            errors.append(f"  {key}: cannot resolve {_shown(value)}: {code}: {exc}")
    if errors:
        raise SecretReferenceError(
            "secret references could not be resolved (check the name and the function role's "
            "ssm:GetParameter / secretsmanager:GetSecretValue / kms:Decrypt permissions):\n"
            + "\n".join(errors)
        )
    return resolved
