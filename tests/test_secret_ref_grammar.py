"""One secret-reference grammar: what users write in the stack config is what the Lambda resolves.

`fastapi_deploy/secret_refs.py` (SecretRef, the deployer) and `app/secret_refs.py` (the cold-start resolver
in the
image) are separate parsers: the image must not import the deployer. This table runs both over the same
strings; then the real program renders a Lambda env under mocks and the app resolves exactly those
values from moto.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from moto import mock_aws

from app.secret_refs import SecretReferenceError, parse_reference, resolve_env
from fastapi_deploy.mocks import run_program, unwrap
from fastapi_deploy.secret_refs import SecretRef, SecretRefError
from policy import rules

ROOT = Path(__file__).resolve().parents[1]
SM_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/items-api/db-AbCdEf"
SSM_ARN = "arn:aws:ssm:us-east-1:123456789012:parameter/prod/items-api/jwt"

# reference -> (kind, id passed to the AWS API, json key)
VALID: list[tuple[str, tuple[str, str, str | None]]] = [
    ("ssm:/prod/items-api/jwt", ("ssm", "/prod/items-api/jwt", None)),
    (f"ssm:{SSM_ARN}", ("ssm", SSM_ARN, None)),
    ("secretsmanager:prod/items-api/db", ("secretsmanager", "prod/items-api/db", None)),
    ("secretsmanager:prod/items-api/db:url", ("secretsmanager", "prod/items-api/db", "url")),
    ("secretsmanager:a+b=c.d@e_f-g:db.url-2", ("secretsmanager", "a+b=c.d@e_f-g", "db.url-2")),
    (f"secretsmanager:{SM_ARN}", ("secretsmanager", SM_ARN, None)),
    (f"secretsmanager:{SM_ARN}:password", ("secretsmanager", SM_ARN, "password")),
]
INVALID = [
    "ssm:relative/path",
    "secretsmanager:",
    "secretsmanager:name:key:extra",  # names cannot contain ':', a key is one segment
    "secretsmanager:name:",  # empty key
    "secretsmanager:name:bad key",
    f"secretsmanager:{SM_ARN}:key:extra",
    "secretsmanager:arn:aws:secretsmanager:us-east-1:123:secret:x",  # account is 12 digits
    "secretsmanager:prod/items-api/db#url",  # the old, undocumented '#' form is not a second grammar
]


def infra_view(raw: str) -> tuple[str, str, str | None]:
    ref = SecretRef.parse(raw)
    return ref.scheme, ref.given_arn or ref.name, ref.json_key


def app_view(raw: str) -> tuple[str, str, str | None]:
    ref = parse_reference(raw)
    return ref.kind, ref.secret_id, ref.json_key


@pytest.mark.parametrize(("raw", "expected"), VALID, ids=[r for r, _ in VALID])
def test_both_parsers_agree(raw: str, expected: tuple[str, str, str | None]) -> None:
    assert infra_view(raw) == expected
    assert app_view(raw) == expected
    # What the deployer writes into the Lambda env is the string the user wrote.
    assert str(SecretRef.parse(raw)) == raw


@pytest.mark.parametrize(("raw", "expected"), VALID, ids=[r for r, _ in VALID])
def test_the_policy_pack_treats_every_reference_as_a_reference(
    raw: str, expected: tuple[str, str, str | None]
) -> None:
    # A reference in a Lambda env must not be reported as a plaintext secret (a mandatory violation).
    inputs = {"environment": {"variables": {"JWT_SECRET_KEY": raw}}}
    assert rules.check_no_plaintext_secrets(rules.LAMBDA_FUNCTION, inputs) == []


@pytest.mark.parametrize("raw", INVALID)
def test_both_parsers_refuse(raw: str) -> None:
    with pytest.raises(SecretRefError):
        SecretRef.parse(raw)
    with pytest.raises(ValueError, match="chars") as refused:
        parse_reference(raw)
    # The value is shown masked (a malformed "reference" may be a pasted secret), never whole.
    body = raw.split(":", 1)[1]
    assert not body or body not in str(refused.value)
    assert f"({len(raw)} chars)" in str(refused.value)


def lambda_env_from_the_program(secrets: dict[str, str]) -> dict[str, str]:
    doc = yaml.safe_load((ROOT / "stacks" / "Pulumi.prod-lambda.yaml").read_text())
    raw: dict[str, Any] = copy.deepcopy(doc["config"])
    raw["fastapi-deploy:app"]["secrets"] = secrets
    result = run_program("prod-lambda", raw)
    (fn,) = [r for r in result.resources if r.type == "aws:lambda/function:Function"]
    return dict(unwrap(fn.inputs)["environment"]["variables"])


def test_rendered_lambda_env_resolves_from_moto(monkeypatch: pytest.MonkeyPatch) -> None:
    env = lambda_env_from_the_program(
        {
            "DATABASE_URL": "secretsmanager:prod/items-api/db:url",
            "REDIS_URL": "ssm:/prod/items-api/redis-url",
            "JWT_SECRET_KEY": "secretsmanager:prod/items-api/jwt",
        }
    )
    assert env["DATABASE_URL"] == "secretsmanager:prod/items-api/db:url"
    for k, v in {"AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing"}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        boto3.client("ssm").put_parameter(
            Name="/prod/items-api/redis-url", Value="redis://cache:6379/0", Type="SecureString"
        )
        sm = boto3.client("secretsmanager")
        sm.create_secret(
            Name="prod/items-api/db", SecretString=json.dumps({"url": "postgresql+asyncpg://db/x"})
        )
        sm.create_secret(Name="prod/items-api/jwt", SecretString="j" * 48)
        resolved = resolve_env(env)
    assert sorted(resolved) == ["DATABASE_URL", "JWT_SECRET_KEY", "REDIS_URL"]
    assert env["DATABASE_URL"] == "postgresql+asyncpg://db/x"
    assert env["REDIS_URL"] == "redis://cache:6379/0"
    assert env["JWT_SECRET_KEY"] == "j" * 48


def test_a_malformed_reference_fails_the_cold_start_by_name() -> None:
    env = {"DATABASE_URL": "secretsmanager:name:key:extra"}
    with pytest.raises(SecretReferenceError, match="DATABASE_URL: cannot resolve"):
        resolve_env(env)
