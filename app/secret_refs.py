"""Resolve secret references in the environment (`ssm:/path`, `secretsmanager:name[#json-key]`).

Used on Lambda, where the platform cannot inject a secret's value natively: the deployer puts a reference
in the env var and the function resolves it once per execution environment (cold start). boto3 is
imported lazily so gunicorn workers on ECS / Cloud Run / VPS never pay its ~0.3 s import.
"""

from __future__ import annotations

import json
import os
from collections.abc import MutableMapping
from typing import Any

SSM_PREFIX = "ssm:"
SM_PREFIX = "secretsmanager:"


class SecretReferenceError(RuntimeError):
    """A reference could not be resolved; the message names the env var and the reference, never a value."""


def is_reference(value: str) -> bool:
    return value.startswith((SSM_PREFIX, SM_PREFIX))


def _fetch(ref: str, clients: dict[str, Any]) -> str:
    import boto3  # lazy: only Lambda cold starts pay for it

    if ref.startswith(SSM_PREFIX):
        name = ref[len(SSM_PREFIX) :]
        if "ssm" not in clients:
            clients["ssm"] = boto3.client("ssm")
        resp = clients["ssm"].get_parameter(Name=name, WithDecryption=True)
        return str(resp["Parameter"]["Value"])
    secret_id, _, json_key = ref[len(SM_PREFIX) :].partition("#")
    if "secretsmanager" not in clients:
        clients["secretsmanager"] = boto3.client("secretsmanager")
    resp = clients["secretsmanager"].get_secret_value(SecretId=secret_id)
    value = resp.get("SecretString")
    if value is None:
        raise ValueError("secret has no SecretString (binary secrets are not supported)")
    if json_key:
        try:
            return str(json.loads(value)[json_key])
        except (ValueError, KeyError, TypeError):
            raise ValueError(f"secret is not a JSON object with key {json_key!r}") from None
    return str(value)


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
            errors.append(f"  {key}: cannot resolve {value!r}: {code}: {exc}")
    if errors:
        raise SecretReferenceError(
            "secret references could not be resolved (check the name and the function role's "
            "ssm:GetParameter / secretsmanager:GetSecretValue / kms:Decrypt permissions):\n"
            + "\n".join(errors)
        )
    return resolved
