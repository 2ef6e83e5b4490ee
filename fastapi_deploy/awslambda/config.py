"""The lambda target's stack-config models (``app.lambda`` and the ``target: lambda`` stack)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from fastapi_deploy.config import (
    _CERT_ARN,
    LOG_RETENTION_DAYS,
    AppConfigBase,
    _Model,
    aws_domain_problem,
    refuse_gcp_channels,
)

# API Gateway HTTP API integrations time out at 30 s (integration timeoutInMillis max 30000); a Lambda
# running longer behind it keeps burning money after the client already got a 503.
# Source: https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-quotas.html
HTTP_API_MAX_TIMEOUT_S = 30
# Lambda's synchronous invocation payload limit (request and response each): the event JSON carrying the
# body, its headers and, for binary bodies, base64 (4/3 the size) must fit in it.
LAMBDA_MAX_PAYLOAD_BYTES = 6 * 1024 * 1024
LAMBDA_MAX_TIMEOUT_S = 900


class LambdaThrottling(_Model):
    """HTTP API stage throttling (protects the function's reserved concurrency and the database)."""

    rate_limit: float = Field(default=100.0, gt=0)
    """Steady-state requests per second."""
    burst_limit: int = Field(default=200, ge=1)
    """Burst requests."""


class LambdaVpc(_Model):
    """Run the function in a VPC (to reach a private RDS): subnets with NAT egress + security groups."""

    subnet_ids: list[str]
    """At least 2 subnets in different AZs with NAT egress."""
    security_group_ids: list[str]
    """At least one security group."""

    @field_validator("subnet_ids")
    @classmethod
    def _subnets(cls, v: list[str]) -> list[str]:
        problem = lambda_subnets_problem(v)
        if problem:
            raise ValueError(problem)
        return v

    @field_validator("security_group_ids")
    @classmethod
    def _sgs(cls, v: list[str]) -> list[str]:
        problem = lambda_security_groups_problem(v)
        if problem:
            raise ValueError(problem)
        return v


#: Too few subnets for a function in a VPC (the count is checked as soon as it is known).
LAMBDA_TOO_FEW_SUBNETS = "needs at least 2 subnets in different AZs (an AZ outage must not stop it)"
LAMBDA_NO_SECURITY_GROUP = "needs at least one security group id"


def lambda_subnets_problem(ids: list[str]) -> str | None:
    """Why ``ids`` are not the subnets of a function in a VPC, or None (stack config and component Args,
    there also once an Output list resolves)."""
    if len(ids) < 2:
        return LAMBDA_TOO_FEW_SUBNETS
    for s in ids:
        if not re.fullmatch(r"subnet-[0-9a-f]{8,17}", s):
            return f"{s!r} is not a subnet id (subnet-xxxxxxxx)"
    return None


def lambda_security_groups_problem(ids: list[str]) -> str | None:
    """Why ``ids`` are not the security groups of a function in a VPC, or None."""
    if not ids:
        return LAMBDA_NO_SECURITY_GROUP
    for g in ids:
        if not re.fullmatch(r"sg-[0-9a-f]{8,17}", g):
            return f"{g!r} is not a security group id (sg-xxxxxxxx)"
    return None


class LambdaAlarms(_Model):
    """CloudWatch alarms on the function (AWS/Lambda, evaluated per minute), notifying ``app.alerts``."""

    errors_per_minute: int = Field(default=5, ge=1)
    """Invocation errors (unhandled exceptions, timeouts) per minute."""
    throttles_per_minute: int = Field(default=1, ge=1)
    """Throttled invocations per minute (reserved concurrency reached)."""
    p95_duration_s: float | None = Field(default=None, gt=0)
    """p95 duration; default 80 % of the function timeout."""
    evaluation_periods: int = Field(default=3, ge=1, le=60)
    """Minutes over the threshold before the alarm fires."""


class LambdaSettings(_Model):
    """AWS Lambda (container image + Mangum)."""

    architecture: Literal["x86_64", "arm64"] = "x86_64"
    """Must match ``image.build.platform``."""
    memory_mb: int = Field(default=1024, ge=128, le=10240)
    """Function memory (CPU scales with it)."""
    timeout_s: int | None = Field(default=None, ge=1, le=LAMBDA_MAX_TIMEOUT_S)
    """Function timeout; default app.request_timeout_s. Max 900, and 30 behind the HTTP API."""
    reserved_concurrency: int | None = Field(default=None, ge=1)
    """Required in effect: it is the replica bound of the DB connection budget (1 connection each)."""
    provisioned_concurrency: int | None = Field(default=None, ge=1)
    """Pre-initialized environments; at most ``reserved_concurrency``."""
    front: Literal["http_api", "function_url"] = "http_api"
    """API Gateway HTTP API (30 s integration timeout) or a function URL (up to 900 s)."""
    throttling: LambdaThrottling = Field(default_factory=LambdaThrottling)
    log_retention_days: int = Field(default=30, json_schema_extra={"enum": list(LOG_RETENTION_DAYS)})
    """CloudWatch Logs retention (only the values CloudWatch accepts)."""
    vpc: LambdaVpc | None = None
    alarms: LambdaAlarms = Field(default_factory=LambdaAlarms)
    zone: str | None = None
    """Route 53 public hosted zone of ``app.domain``: its id or name. With ``app.domain``: an API Gateway
    custom domain with a regional ACM certificate validated by DNS in this zone, the API mapping and alias
    A/AAAA records. Required with ``app.domain`` unless ``certificate_arn`` is set. Needs
    ``front: http_api``."""
    certificate_arn: str | None = None
    """An issued ACM certificate for ``app.domain`` in the stack's ``aws:region`` (regional custom
    domains); given, the deployer creates no certificate (with ``zone`` it still makes the alias records)."""

    @field_validator("certificate_arn")
    @classmethod
    def _cert(cls, v: str | None) -> str | None:
        if v is not None and not _CERT_ARN.fullmatch(v):
            raise ValueError(
                f"{v!r} is not an ACM certificate ARN (arn:aws:acm:REGION:ACCOUNT:certificate/UUID)"
            )
        return v

    @field_validator("log_retention_days")
    @classmethod
    def _retention(cls, v: int) -> int:
        if v not in LOG_RETENTION_DAYS:
            raise ValueError(f"{v} is not accepted by CloudWatch Logs; allowed: {list(LOG_RETENTION_DAYS)}")
        return v

    @model_validator(mode="after")
    def _rules(self) -> LambdaSettings:
        if (
            self.front == "http_api"
            and self.timeout_s is not None
            and self.timeout_s > HTTP_API_MAX_TIMEOUT_S
        ):
            raise ValueError(
                f"timeout_s: {self.timeout_s} exceeds the API Gateway HTTP API integration limit of "
                f"{HTTP_API_MAX_TIMEOUT_S} s; lower it or use front: function_url (up to 900 s)"
            )
        if (
            self.provisioned_concurrency is not None
            and self.reserved_concurrency is not None
            and self.provisioned_concurrency > self.reserved_concurrency
        ):
            raise ValueError(
                f"provisioned_concurrency ({self.provisioned_concurrency}) exceeds reserved_concurrency "
                f"({self.reserved_concurrency})"
            )
        return self


class LambdaConfig(AppConfigBase):
    """``target: lambda`` — the same image on AWS Lambda through Mangum.

    Secrets: ``ssm:`` and ``secretsmanager:`` references, resolved at cold start. No ``scaling``: the
    replica bound is ``lambda.reserved_concurrency``. Needs ``aws:region`` in the stack file.
    """

    target: Literal["lambda"] = "lambda"
    lambda_: LambdaSettings = Field(default_factory=LambdaSettings, alias="lambda")

    def _alerts_fit_the_target(self) -> None:
        refuse_gcp_channels(self)

    @model_validator(mode="after")
    def _lambda_rules(self) -> LambdaConfig:
        if self.database.migrate == "on_start":
            raise ValueError(
                "app.database.migrate: on_start is refused on target lambda: every cold start (each new "
                "execution environment) would connect and check the schema before its first request; "
                "use release (the deploy invokes the new version with a migrate event before the alias "
                "moves) or manual and run `python -m app.migrate` as a one-off (docs/targets.md)"
            )
        for key, ref in self.secret_refs().items():
            if ref.scheme not in ("ssm", "secretsmanager"):
                raise ValueError(
                    f"secrets.{key}: scheme {ref.scheme}: is not supported on target lambda; "
                    "use ssm:/path or secretsmanager:name[:json-key]"
                )
        arch = {"x86_64": "linux/amd64", "arm64": "linux/arm64"}[self.lambda_.architecture]
        if self.image.build is not None and self.image.platform != arch:
            raise ValueError(
                f"lambda.architecture: {self.lambda_.architecture} needs image.build.platform {arch}, "
                f"not {self.image.platform}"
            )
        for key, value in self.env.items():
            if value.startswith(("ssm:", "secretsmanager:")):
                # The cold start resolves every env value that starts like a reference (app/secret_refs.py).
                raise ValueError(
                    f"env.{key}: looks like a secret reference; on Lambda references go in "
                    f"app.secrets.{key} (an app.env value starting with ssm: or secretsmanager: would be "
                    "resolved at cold start)"
                )
        if self.max_request_body_bytes > LAMBDA_MAX_PAYLOAD_BYTES:
            raise ValueError(
                f"max_request_body_bytes: {self.max_request_body_bytes} exceeds what Lambda accepts: a "
                f"synchronous invocation payload is at most {LAMBDA_MAX_PAYLOAD_BYTES} bytes (6 MB), "
                "event headers included (API Gateway and function URLs refuse larger requests before the "
                f"app sees them); set it to {LAMBDA_MAX_PAYLOAD_BYTES} or less"
            )
        timeout = self.function_timeout_s
        if self.lambda_.front == "http_api" and timeout > HTTP_API_MAX_TIMEOUT_S:
            raise ValueError(
                f"request_timeout_s: {timeout} exceeds the API Gateway HTTP API limit of "
                f"{HTTP_API_MAX_TIMEOUT_S} s; "
                "lower it or set lambda.front: function_url"
            )
        if timeout > LAMBDA_MAX_TIMEOUT_S:
            raise ValueError(f"request_timeout_s: Lambda allows at most {LAMBDA_MAX_TIMEOUT_S} s")
        lam = self.lambda_
        if self.domain and lam.front != "http_api":
            raise ValueError(
                "lambda.front: app.domain needs the API Gateway HTTP API front (a function URL cannot have a "
                "custom domain); set front: http_api or remove app.domain"
            )
        if lam.certificate_arn and self.region and lam.certificate_arn.split(":")[3] != self.region:
            raise ValueError(
                f"lambda.certificate_arn: the certificate is in {lam.certificate_arn.split(':')[3]} but the "
                f"stack deploys to {self.region} (aws:region); a regional API Gateway custom domain needs a "
                "certificate from its own region"
            )
        if lam.certificate_arn and not self.domain:
            raise ValueError("lambda.certificate_arn: set app.domain too (the custom domain it serves)")
        domain_problem = aws_domain_problem(self.domain, lam.zone, lam.certificate_arn, "lambda")
        if domain_problem:
            raise ValueError(domain_problem)
        return self

    @property
    def function_timeout_s(self) -> int:
        """lambda.timeout_s, else app.request_timeout_s."""
        return self.lambda_.timeout_s or self.request_timeout_s
