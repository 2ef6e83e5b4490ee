"""Resolve secret references in the environment (`ssm:/path`, `secretsmanager:name[:json-key]`).

Used on Lambda, where the platform cannot inject a secret's value natively: the deployer puts a reference
in the env var and the function resolves it once per execution environment (cold start). boto3 is
imported lazily so gunicorn workers on ECS / Cloud Run / VPS never pay its ~0.3 s import.

The grammar is the one users write in the stack config (``infra/secrets.py`` SecretRef; a contract test
runs both parsers over one table):

* ``ssm:/path`` or ``ssm:arn:aws:ssm:REGION:ACCOUNT:parameter/path``
* ``secretsmanager:NAME[:json-key]`` — a Secrets Manager name cannot contain ``:``, so the first ``:``
  after the name starts the key
* ``secretsmanager:arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME-AbCdEf[:json-key]`` — an ARN has
  exactly 7 ``:``-separated parts; an 8th is the key
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any, Literal

SSM_PREFIX = "ssm:"
SM_PREFIX = "secretsmanager:"

_SSM_PATH = re.compile(r"^(/[A-Za-z0-9_.\-]+)+$")
_SSM_ARN = re.compile(r"^arn:aws[a-z-]*:ssm:[a-z0-9-]+:\d{12}:parameter/[A-Za-z0-9_.\-/]+$")
_SM_NAME = re.compile(r"^[A-Za-z0-9/_+=.@\-]{1,512}$")
_SM_ARN = re.compile(r"^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@\-]+$")
_JSON_KEY = re.compile(r"^[A-Za-z0-9_.\-]{1,256}$")
#: Parts of a Secrets Manager ARN when split on ':' (arn, partition, service, region, account, secret, name).
_ARN_PARTS = 7


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
    """Parse one reference; ValueError (naming the accepted forms, not a value) when it is malformed."""
    if ref.startswith(SSM_PREFIX):
        body = ref[len(SSM_PREFIX) :]
        if _SSM_PATH.match(body) or _SSM_ARN.match(body):
            return Reference("ssm", body)
        raise ValueError("expected ssm:/path or ssm:arn:aws:ssm:REGION:ACCOUNT:parameter/path")
    if ref.startswith(SM_PREFIX):
        body = ref[len(SM_PREFIX) :]
        if body.startswith("arn:"):
            parts = body.split(":")
            arn, keys = ":".join(parts[:_ARN_PARTS]), parts[_ARN_PARTS:]
            if not _SM_ARN.match(arn) or len(keys) > 1 or not all(_JSON_KEY.match(k) for k in keys):
                raise ValueError(
                    "expected secretsmanager:arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME[:key]"
                )
            return Reference("secretsmanager", arn, keys[0] if keys else None)
        name, sep, key = body.partition(":")
        if not _SM_NAME.match(name) or (sep and not _JSON_KEY.match(key)):
            raise ValueError("expected secretsmanager:NAME[:json-key] (key: letters, digits, _ . -)")
        return Reference("secretsmanager", name, key or None)
    raise ValueError("not a reference; expected ssm:... or secretsmanager:...")


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
