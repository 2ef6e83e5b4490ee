"""Secret references: parsing, ARNs, least-privilege IAM and per-platform wiring (never a value)."""

from __future__ import annotations

import pytest

from fastapi_deploy.secret_refs import (
    SecretRef,
    SecretRefError,
    aws_read_policy_statements,
    ecs_secrets,
    gcp_secret_id,
    lambda_reference_env,
)

ACCT, REGION = "123456789012", "us-east-1"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("ssm:/prod/api/jwt", SecretRef("ssm", "/prod/api/jwt")),
        (
            "ssm:arn:aws:ssm:eu-west-1:210987654321:parameter/x/y",
            SecretRef("ssm", "/x/y", given_arn="arn:aws:ssm:eu-west-1:210987654321:parameter/x/y"),
        ),
        ("secretsmanager:prod/db", SecretRef("secretsmanager", "prod/db")),
        ("secretsmanager:prod/db:url", SecretRef("secretsmanager", "prod/db", json_key="url")),
        (
            "secretsmanager:arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbCdEf:password",
            SecretRef(
                "secretsmanager",
                "prod/db-AbCdEf",
                json_key="password",
                given_arn="arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbCdEf",
            ),
        ),
        (
            "gcp:projects/acme-prod/secrets/db-url",
            SecretRef("gcp", "db-url", version="latest", project="acme-prod"),
        ),
        (
            "gcp:projects/acme-prod/secrets/db-url/versions/3",
            SecretRef("gcp", "db-url", version="3", project="acme-prod"),
        ),
        ("gcp:db-url", SecretRef("gcp", "db-url", version="latest")),
    ],
)
def test_parse(raw: str, expected: SecretRef) -> None:
    ref = SecretRef.parse(raw)
    assert ref == expected
    assert SecretRef.parse(str(ref)) == ref  # canonical form round-trips


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("plainvalue", "is not a secret reference"),
        ("vault:kv/db", "unknown scheme 'vault'"),
        ("ssm:relative", "absolute parameter path"),
        ("ssm:/has space", "absolute parameter path"),
        ("secretsmanager:", "1-512 chars"),
        ("secretsmanager:db:a:b", "json key"),
        ("secretsmanager:arn:aws:secretsmanager:us-east-1:1:secret:x", "expected secretsmanager:arn"),
        ("gcp:projects/P/secrets/", "expected gcp:"),
    ],
)
def test_parse_errors_show_the_accepted_forms(raw: str, fragment: str) -> None:
    with pytest.raises(SecretRefError) as err:
        SecretRef.parse(raw)
    assert fragment in str(err.value)


def test_arns_and_ecs_value_from() -> None:
    ssm = SecretRef.parse("ssm:/prod/api/jwt")
    assert ssm.arn(ACCT, REGION) == "arn:aws:ssm:us-east-1:123456789012:parameter/prod/api/jwt"
    assert ssm.ecs_value_from(ACCT, REGION) == ssm.arn(ACCT, REGION)
    sm = SecretRef.parse("secretsmanager:prod/db:url")
    assert sm.arn(ACCT, REGION) == "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db"
    # ECS format for one key of a JSON secret: ARN:json-key:version-stage:version-id
    assert (
        sm.ecs_value_from(ACCT, REGION)
        == "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db:url::"
    )
    assert sm.arn(ACCT, "cn-north-1", "aws-cn").startswith("arn:aws-cn:secretsmanager:cn-north-1:")
    with pytest.raises(SecretRefError):
        SecretRef.parse("gcp:x").arn(ACCT, REGION)


def test_iam_resource_matches_exactly_one_secrets_manager_secret() -> None:
    sm = SecretRef.parse("secretsmanager:prod/db")
    # Six '?' = the random suffix AWS appends; '*' would also match prod/db-admin.
    assert (
        sm.iam_resource(ACCT, REGION) == "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-??????"
    )
    full = SecretRef.parse(
        "secretsmanager:arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbCdEf"
    )
    assert (
        full.iam_resource(ACCT, REGION)
        == "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbCdEf"
    )


def test_policy_statements_cover_exactly_the_references() -> None:
    refs = {
        "A": SecretRef.parse("ssm:/p/a"),
        "B": SecretRef.parse("ssm:/p/b"),
        "C": SecretRef.parse("secretsmanager:p/c:k"),
        "D": SecretRef.parse("secretsmanager:p/c:other"),  # same secret, two keys -> one resource
    }
    kms = ["arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"]
    st = {s["Sid"]: s for s in aws_read_policy_statements(refs, ACCT, REGION, kms)}
    assert st["ReadParameters"]["Resource"] == [
        "arn:aws:ssm:us-east-1:123456789012:parameter/p/a",
        "arn:aws:ssm:us-east-1:123456789012:parameter/p/b",
    ]
    assert st["ReadSecrets"]["Resource"] == [
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:p/c-??????"
    ]
    assert st["DecryptSecrets"]["Resource"] == kms
    for s in st.values():
        assert "*" not in s["Resource"]


def test_no_statements_for_no_references() -> None:
    assert aws_read_policy_statements({}, ACCT, REGION, ["arn:aws:kms:us-east-1:1:key/x"]) == []
    only_ssm = aws_read_policy_statements(
        {"A": SecretRef.parse("ssm:/a")}, ACCT, REGION, ssm_actions=("ssm:GetParameter",)
    )
    assert [s["Sid"] for s in only_ssm] == ["ReadParameters"]
    assert only_ssm[0]["Action"] == ["ssm:GetParameter"]


def test_platform_wiring_helpers() -> None:
    refs = {
        "JWT_SECRET_KEY": SecretRef.parse("ssm:/p/jwt"),
        "DATABASE_URL": SecretRef.parse("secretsmanager:p/db:url"),
    }
    assert [e["name"] for e in ecs_secrets(refs, ACCT, REGION)] == ["DATABASE_URL", "JWT_SECRET_KEY"]
    assert lambda_reference_env(refs) == {
        "DATABASE_URL": "secretsmanager:p/db:url",
        "JWT_SECRET_KEY": "ssm:/p/jwt",
    }
    with pytest.raises(SecretRefError, match="cannot be resolved on Lambda"):
        lambda_reference_env({"X": SecretRef.parse("gcp:x")})
    assert gcp_secret_id(SecretRef.parse("gcp:db"), "acme") == ("db", "latest")
    assert gcp_secret_id(SecretRef.parse("gcp:projects/other-proj/secrets/db/versions/2"), "acme") == (
        "projects/other-proj/secrets/db",
        "2",
    )
