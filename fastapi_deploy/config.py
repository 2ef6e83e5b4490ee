"""Stack configuration: one structured object per stack, validated before any resource exists.

A stack file (``stacks/Pulumi.<stack>.yaml``) holds the provider keys (``aws:region``, ``gcp:project``,
``gcp:region``) and one object under ``fastapi-deploy:app``. That object is parsed into a pydantic
discriminated union on ``target`` (``ecs`` | ``cloudrun`` | ``lambda`` | ``vps``). Every error is a
:class:`ConfigError` whose message names the key path (``app.ecs.memory: ...``) and the allowed values.

Public names (other modules import these; keep them stable):
``StackConfig`` (the union type), ``AppConfigBase``, ``EcsConfig``, ``CloudRunConfig``, ``LambdaConfig``,
``VpsConfig``, the section models, ``ConfigError``, ``parse(data, stack=..., providers=...)``,
``load_stack_file(path)``, ``load()`` (inside a Pulumi program), ``CONFIG_KEY``, ``FARGATE_COMBOS``,
``fargate_memory_choices(cpu)``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema

from fastapi_deploy import contract
from fastapi_deploy.secret_refs import SecretRef, SecretRefError
from fastapi_deploy.tuning import DEFAULT_MAX_REQUEST_BODY_BYTES

CONFIG_NAMESPACE = "fastapi-deploy"
CONFIG_KEY = f"{CONFIG_NAMESPACE}:app"
#: Placeholder shown for ``secure:`` values, which cannot be decrypted offline.
SECRET_PLACEHOLDER = contract.SECRET_MASK

# Env names whose values are credentials: they must come from app.secrets (a reference injected natively
# by the platform), never from app.env, so no credential ever sits in plaintext in state or the console.
SECRET_ENV_NAMES = contract.CREDENTIAL_ENV_NAMES
# Env names that the tuning module owns: setting them by hand would silently break the connection budget
# or the timeout chain, so they are refused with a pointer to the real knob.
TUNING_ENV_NAMES = contract.TUNING_ENV_NAMES
_TUNING_OWNED = (
    "is computed by the deployer (fastapi_deploy/tuning.py); change app.environment, app.tuning, "
    "app.scaling, "
    "app.database, the target's size or app.cors_origins instead"
)
TARGETS = ("ecs", "cloudrun", "lambda", "vps")
TARGETS_TUPLE = TARGETS
#: `<app.name>-<stack>` prefixes every resource; 40 keeps `<...>-exec-role-xxxxxxx` under IAM's 64.
MAX_COMPONENT_NAME = 40
_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
_NAME = re.compile(r"^[a-z][a-z0-9-]{0,27}[a-z0-9]$")
_HOSTNAME = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_DIGEST_REF = re.compile(r"^[a-z0-9][a-z0-9._\-/:]*@sha256:[0-9a-f]{64}$")
_CERT_ARN = re.compile(r"arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[0-9a-f-]{36}")
_PLATFORM = re.compile(r"^linux/(amd64|arm64)$")

# AWS Fargate task sizes (Linux): cpu units -> allowed memory MiB.
# Source: https://docs.aws.amazon.com/AmazonECS/latest/developerguide/fargate-tasks-services.html#fargate-tasks-size
FARGATE_COMBOS: dict[int, tuple[int, int, int]] = {
    # cpu: (min MiB, max MiB, step MiB)
    256: (512, 2048, 512),  # 512, 1024, 2048 (1536 is NOT allowed; handled below)
    512: (1024, 4096, 1024),
    1024: (2048, 8192, 1024),
    2048: (4096, 16384, 1024),
    4096: (8192, 30720, 1024),
    8192: (16384, 61440, 4096),
    16384: (32768, 122880, 8192),
}

# CloudWatch Logs accepts only these retention values (PutRetentionPolicy).
LOG_RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
)  # fmt: skip

# API Gateway HTTP API integrations time out at 30 s (integration timeoutInMillis max 30000); a Lambda
# running longer behind it keeps burning money after the client already got a 503.
# Source: https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-quotas.html
HTTP_API_MAX_TIMEOUT_S = 30
# Lambda's synchronous invocation payload limit (request and response each): the event JSON carrying the
# body, its headers and, for binary bodies, base64 (4/3 the size) must fit in it.
LAMBDA_MAX_PAYLOAD_BYTES = 6 * 1024 * 1024
MIN_REQUEST_BODY_BYTES = 1024
MAX_REQUEST_BODY_BYTES = 1024 * 1024 * 1024
LAMBDA_MAX_TIMEOUT_S = 900
# Cloud Run: request timeout up to 60 min; memory per CPU limits from
# https://cloud.google.com/run/docs/configuring/services/memory-limits (max 4 GiB at 1 vCPU, 8 at 2,
# 16 at 4, 24 at 6, 32 at 8).
CLOUDRUN_MAX_TIMEOUT_S = 3600
CLOUDRUN_CPUS = (1.0, 2.0, 4.0, 6.0, 8.0)
CLOUDRUN_MAX_MEMORY_MIB_PER_CPU = {1.0: 4096, 2.0: 8192, 4.0: 16384, 6.0: 24576, 8.0: 32768}
#: Source: https://cloud.google.com/run/docs/configuring/cpu ("minimum memory requirements for CPUs").
CLOUDRUN_MIN_MEMORY_MIB_PER_CPU = {4.0: 2048, 6.0: 4096, 8.0: 4096}


class ConfigError(ValueError):
    """Invalid stack configuration. The message names the key path (``app.x.y``) and the fix."""


def fargate_memory_choices(cpu: int) -> list[int]:
    """All memory sizes (MiB) Fargate accepts for ``cpu`` units."""
    if cpu == 256:
        return [512, 1024, 2048]
    lo, hi, step = FARGATE_COMBOS[cpu]
    return list(range(lo, hi + 1, step))


def _describe_fargate(cpu: int) -> str:
    if cpu == 256:
        return "512, 1024, 2048"
    lo, hi, step = FARGATE_COMBOS[cpu]
    return f"{lo}..{hi} in {step} steps"


def parse_memory_mib(value: int | str) -> int:
    """``512``, ``"512Mi"``, ``"2Gi"`` -> MiB."""
    if isinstance(value, int):
        return value
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(Mi|Gi|MiB|GiB)?\s*", str(value))
    if not m:
        raise ValueError(
            f"{value!r} is not a memory size; use MiB as an integer or a string like '512Mi', '2Gi'"
        )
    number, unit = float(m.group(1)), (m.group(2) or "Mi")
    mib = number * 1024 if unit.startswith("G") else number
    if mib != int(mib):
        raise ValueError(f"{value!r} is not a whole number of MiB")
    return int(mib)


#: Memory in MiB; the loaders also accept ``"512Mi"``/``"2Gi"`` (``parse_memory_mib``): the schema says so.
MemoryMiB = Annotated[
    int,
    WithJsonSchema(
        {"anyOf": [{"type": "integer"}, {"type": "string", "pattern": r"^\d+(\.\d+)?(Mi|Gi|MiB|GiB)?$"}]}
    ),
]


class _Model(BaseModel):
    """Strict base: unknown keys are errors (a typo must not silently fall back to a default)."""

    # Field docstrings become the descriptions of the JSON schema (docs/stack-config.md is generated from it).
    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, use_attribute_docstrings=True
    )


# ---------------------------------------------------------------------------------------------- common
class BuildSpec(_Model):
    """Build the image from a Docker context (once per deploy; pushed and deployed by digest)."""

    context: str = "."
    """Docker build context, relative to the project root."""
    dockerfile: str = "Dockerfile"
    """Dockerfile, relative to the context."""
    platform: str = "linux/amd64"
    """``linux/amd64`` or ``linux/arm64`` (ECS runs X86_64; Lambda must match ``lambda.architecture``)."""
    target: str | None = None
    """Multi-stage build target."""
    tag: str | None = None
    """Tag for the pushed image. Tags are immutable in the registry, so a tag must never be reused; default:
    IMAGE_TAG env var, else the git commit (+ a hash of uncommitted changes).
    """
    args: dict[str, str] = Field(default_factory=dict)
    """Build arguments."""

    @field_validator("platform")
    @classmethod
    def _platform(cls, v: str) -> str:
        if not _PLATFORM.match(v):
            raise ValueError(f"{v!r} is not supported; allowed: linux/amd64, linux/arm64")
        return v

    @field_validator("tag")
    @classmethod
    def _tag(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", v):
            raise ValueError(f"{v!r} is not a valid Docker tag ([A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})")
        if v == "latest":
            raise ValueError("'latest' is mutable by convention; use a commit sha or version")
        return v


class ImageSpec(_Model):
    """``build`` (context/dockerfile/platform), an existing ``digest`` (``repo@sha256:<64 hex>``), or both.

    * ``build`` only: the stack owns a registry (ECR / Artifact Registry), builds, pushes, deploys by digest.
    * ``digest`` only: nothing is built and the stack owns no registry; the digest is deployed as given.
    * both (the promote path, ``deploy.yml``): the stack keeps the registry its ``build`` created, so a
      promotion does not delete it, but builds nothing and deploys ``digest``, which CI copied into that
      registry from staging (``pulumi config set --path app.image.digest ...``).
    """

    build: BuildSpec | None = None
    digest: str | None = None
    """Deploy an already-built image: ``registry/repo@sha256:<64 hex>`` (a tag can be re-pointed; a digest
    cannot). Alone: the stack owns no registry. With ``build``: the promote path (deploy.yml) — the stack
    keeps the registry ``build`` created, builds nothing and deploys this digest."""
    keep_images: int = Field(default=30, ge=5, le=1000)
    """ECR images kept by the lifecycle policy (older ones expire; the running digest is among the newest);
    untagged images expire after 7 days."""

    @field_validator("digest")
    @classmethod
    def _digest(cls, v: str | None) -> str | None:
        if v is not None and not _DIGEST_REF.match(v):
            raise ValueError(
                f"{v!r} is not a digest reference; expected 'registry/repo@sha256:<64 hex chars>' "
                "(a tag can be re-pointed; a digest cannot)"
            )
        return v

    @model_validator(mode="after")
    def _build_or_digest(self) -> ImageSpec:
        if self.build is None and self.digest is None:
            raise ValueError(
                "set image.build (build and push), image.digest (deploy an existing digest), or both "
                "(keep this stack's registry, deploy the digest promoted into it, build nothing)"
            )
        return self

    @property
    def promoted(self) -> bool:
        """A digest was promoted into the registry this stack owns: keep the registry, build nothing."""
        return self.build is not None and self.digest is not None

    @property
    def platform(self) -> str:
        """The CPU architecture of the image (an existing digest is assumed linux/amd64 unless built)."""
        return self.build.platform if self.build else "linux/amd64"


class Scaling(_Model):
    """Replica bounds. ``max`` feeds the DB connection budget (with the platform's deploy surge)."""

    min: int = Field(ge=0, le=1000)
    """Fewest replicas (``min <= desired <= max``)."""
    max: int = Field(ge=1, le=1000)
    """Most replicas; the connection budget is checked against it."""
    desired: int | None = Field(default=None, ge=0, le=1000)
    """Replicas at deploy time (default: ``min``, at least 1)."""

    @model_validator(mode="after")
    def _order(self) -> Scaling:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) is above max ({self.max})")
        if self.desired is not None and not (self.min <= self.desired <= self.max):
            raise ValueError(
                f"desired ({self.desired}) must be between min ({self.min}) and max ({self.max})"
            )
        return self

    @property
    def initial(self) -> int:
        """Replica count at deploy time (desired, else min, at least 1)."""
        return max(1, self.desired if self.desired is not None else self.min)


class Health(_Model):
    """Liveness (process up, no dependencies) and readiness (dependencies reachable) paths."""

    liveness_path: str = "/health"
    """Process up, no dependencies checked. A plain path starting with ``/``."""
    readiness_path: str = "/ready"
    """Dependencies reachable. A plain path starting with ``/``."""

    @field_validator("liveness_path", "readiness_path")
    @classmethod
    def _path(cls, v: str) -> str:
        if not v.startswith("/"):
            raise ValueError(f"{v!r} must start with '/', e.g. '/{v}'")
        if any(c in v for c in " ?#") or len(v) > 1024:
            raise ValueError(f"{v!r} must be a plain URL path (no spaces, query or fragment)")
        return v


class Database(_Model):
    """The connection budget: what the database allows, minus what admins and migrations need.

    Budget = ``max_connections - reserved_connections``; ``scaling.max`` x deploy surge x workers x
    (pool + overflow) must fit in it.
    """

    max_connections: int = Field(default=100, ge=1, le=100_000)
    """PostgreSQL ``max_connections`` (RDS: depends on the instance class; 100 is PostgreSQL's default)."""
    reserved_connections: int = Field(default=10, ge=0)
    """Kept free for psql, Alembic migrations, monitoring and superuser_reserved_connections."""
    migrate: Literal["on_start", "release", "manual"] | None = None
    """``on_start``: the gunicorn master runs ``alembic upgrade head`` under an advisory lock before the
    workers fork (MIGRATE_ON_START=true). ``release``: the deploy itself runs ``python -m app.migrate``
    once with the new image, secrets and network before the new release takes traffic, and a failed
    migration fails ``pulumi up`` (ECS: a one-off task; Cloud Run: a Job execution; Lambda: an invocation
    of the new version before the alias moves; VPS: the release-gate container); MIGRATE_ON_START is off.
    ``manual``: the operator runs ``python -m app.migrate`` as a one-off. Unset = ``on_start`` on
    ecs/cloudrun/vps, ``manual`` on lambda (``on_start`` is refused there: every cold start would pay for it).
    """

    @model_validator(mode="after")
    def _fits(self) -> Database:
        if self.reserved_connections >= self.max_connections:
            raise ValueError(
                f"reserved_connections ({self.reserved_connections}) must be below max_connections "
                f"({self.max_connections})"
            )
        return self

    def migrate_mode(self, target: str) -> Literal["on_start", "release", "manual"]:
        """``migrate`` with the per-target default applied."""
        if self.migrate is not None:
            return self.migrate
        return "manual" if target == "lambda" else "on_start"

    @property
    def budget(self) -> int:
        """Connections the service may open across all replicas and workers."""
        return self.max_connections - self.reserved_connections


class TuningOverrides(_Model):
    """Escape hatches for the tuning module; each one is still checked against the connection budget."""

    workers: int | None = Field(default=None, ge=1, le=64)
    """Gunicorn workers per replica (default: the vCPU allotment, capped by memory)."""
    db_pool_size: int | None = Field(default=None, ge=1, le=100)
    """SQLAlchemy pool size per worker (default 5, shrunk to fit the budget)."""
    db_max_overflow: int | None = Field(default=None, ge=0, le=100)
    """SQLAlchemy max overflow per worker (default 2)."""
    db_pool_timeout_s: float | None = Field(default=None, gt=0, le=60)
    """Seconds to wait for a pooled connection before a 503 (default 5)."""


class CostAssumptions(_Model):
    """Traffic assumptions for the offline cost estimate (``infra plan``)."""

    requests_per_month: int = Field(default=10_000_000, ge=0)
    """Requests per month."""
    avg_duration_ms: float = Field(default=100.0, gt=0)
    """Average request duration (Lambda and Cloud Run bill by it)."""
    egress_gb_per_month: float = Field(default=50.0, ge=0)
    """Data sent to the internet per month."""
    hours_per_month: float = Field(default=730.0, gt=0, le=744)
    """Hours the always-on resources run per month."""
    vps_monthly_usd: float | None = Field(default=None, ge=0)
    """Flat monthly price of the VPS host (default: the price table's droplet-class price)."""


Environment = Literal["production", "staging", "development"]


_EMAIL = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$"
)
_SNS_TOPIC_ARN = re.compile(
    r"^arn:(?P<partition>aws[a-z-]*):sns:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):[A-Za-z0-9_-]{1,256}(\.fifo)?$"
)
_GCP_CHANNEL = re.compile(r"^projects/[a-z][a-z0-9-]{4,28}[a-z0-9]/notificationChannels/[0-9]+$")


def aws_partition(region: str) -> str | None:
    """The partition (``aws``, ``aws-cn``, ``aws-us-gov``...) botocore places ``region`` in."""
    import json

    import botocore

    data = json.loads((Path(botocore.__file__).parent / "data" / "partitions.json").read_text())
    for partition in data["partitions"]:
        if region in partition.get("regions", {}):
            return str(partition["outputs"]["name"])
    return None


def sns_topic_problem(arn: str, region: str | None) -> str | None:
    """Why ``arn`` is not an SNS topic ARN usable from ``region`` (the stack's ``aws:region``), or None.

    CloudWatch alarm actions must name a topic in the alarm's own region (and so its partition)."""
    m = _SNS_TOPIC_ARN.match(arn)
    if not m:
        return f"{arn!r} is not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:topic-name)"
    if region and m["region"] != region:
        return (
            f"the topic is in {m['region']} but the stack deploys to {region} (aws:region); CloudWatch "
            "alarms can only notify a topic in their own region"
        )
    partition = aws_partition(region) if region else None
    if partition and m["partition"] != partition:
        return f"partition {m['partition']!r} does not match {region}'s partition {partition!r}"
    return None


class Alerts(_Model):
    """Who is told when an alarm fires or recovers; common to every target (what each target makes of it
    is in docs/targets.md). Production stacks on ecs, lambda and cloudrun need at least one target here
    (policy ``alarms-notify-in-production``)."""

    emails: list[str] = Field(default_factory=list)
    """Email addresses. ECS/Lambda: SNS email subscriptions (each address must confirm the mail AWS
    sends); Cloud Run: one Monitoring email notification channel each."""
    webhook_url: str | None = None
    """An ``https://`` URL (ECS/Lambda: SNS ``https`` subscription; the endpoint must confirm the
    subscription). Not used on Cloud Run (create a webhook channel and list it in
    ``gcp_notification_channels``)."""
    sns_topic_arn: str | None = None
    """An existing SNS topic (``arn:aws:sns:REGION:ACCOUNT:name``) in the stack's ``aws:region``; when set,
    no topic is created and ``emails``/``webhook_url`` are subscribed to this one. Replaces
    ``ecs.alarms.sns_topic_arn``."""
    gcp_notification_channels: list[str] = Field(default_factory=list)
    """Existing Cloud Monitoring channels ``projects/PROJECT/notificationChannels/ID`` (Cloud Run)."""

    @field_validator("emails")
    @classmethod
    def _emails(cls, v: list[str]) -> list[str]:
        for email in v:
            if not _EMAIL.match(email):
                raise ValueError(f"{email!r} is not an email address like 'oncall@example.com'")
        if len(set(v)) != len(v):
            raise ValueError("an address is listed twice")
        return v

    @field_validator("webhook_url")
    @classmethod
    def _webhook(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"https://[A-Za-z0-9.\-]+(:\d+)?(/[^\s]*)?", v):
            raise ValueError(f"{v!r} is not an https:// URL (plain http is refused: alerts leave the VPC)")
        return v

    @field_validator("sns_topic_arn")
    @classmethod
    def _arn(cls, v: str | None) -> str | None:
        problem = sns_topic_problem(v, None) if v is not None else None
        if problem:
            raise ValueError(problem)
        return v

    @field_validator("gcp_notification_channels")
    @classmethod
    def _channels(cls, v: list[str]) -> list[str]:
        for name in v:
            if not _GCP_CHANNEL.match(name):
                raise ValueError(
                    f"{name!r} is not a notification channel name 'projects/PROJECT/notificationChannels/ID'"
                )
        return v

    @property
    def any_aws(self) -> bool:
        """Something an SNS topic can deliver to (or an existing topic)."""
        return bool(self.emails or self.webhook_url or self.sns_topic_arn)

    @property
    def any_gcp(self) -> bool:
        """Something a Cloud Monitoring alert policy can notify."""
        return bool(self.emails or self.gcp_notification_channels)


class AppConfigBase(_Model):
    """Fields every target shares. Subclasses add one per-target section named like the target."""

    target: str
    """Selects the model and the component: ``ecs``, ``cloudrun``, ``lambda`` or ``vps``."""
    name: str
    """2-29 chars of lowercase letters, digits and ``-``, starting with a letter; prefixes every resource
    (``<name>-<stack>-...``, at most 40 chars)."""
    environment: Environment = "production"
    """Becomes ``APP_ENV`` in the container."""
    image: ImageSpec
    port: int = Field(default=8000, ge=1024, le=65535)
    """Port the container listens on."""
    health: Health = Field(default_factory=Health)
    database: Database = Field(default_factory=Database)
    request_timeout_s: int = Field(default=30, ge=1, le=3600)
    """Longest request the service is expected to serve (seconds); drives drain and platform timeouts.
    At most: ECS 115 (above 60 the ALB idle timeout, keepalive and drain rise with it), Cloud Run 3600,
    Lambda 30 behind the HTTP API and 900 with a function URL."""
    max_request_body_bytes: int = Field(
        default=DEFAULT_MAX_REQUEST_BODY_BYTES, ge=MIN_REQUEST_BODY_BYTES, le=MAX_REQUEST_BODY_BYTES
    )
    """Largest request body accepted (bytes): MAX_REQUEST_BODY_BYTES for the app (413 above it, enforced
    while the body streams in), Caddy's request_body max_size on the VPS. The ALB cannot limit bodies: on
    ECS the app enforces it. On lambda at most 6291456 (the 6 MB synchronous invocation payload, headers
    included: API Gateway and function URLs refuse more before the app runs)."""
    env: dict[str, str] = Field(default_factory=dict)
    """Plain environment variables; credential names, tuning-owned names and URLs with a password are
    refused."""
    secrets: dict[str, str] = Field(default_factory=dict)
    """ENV_NAME -> secret reference (``ssm:/path``, ``secretsmanager:name[:json-key]``, ``gcp:...``; the
    schemes each target accepts are in its section), injected natively by the platform."""
    secret_kms_key_arns: list[str] = Field(default_factory=list)
    """Customer-managed KMS keys that encrypt the referenced secrets (decrypt is granted on exactly these)."""
    cors_origins: list[str] = Field(default_factory=list)
    """Allowed CORS origins like ``https://app.example.com`` (no path); ``*`` is refused in production."""
    domain: str | None = None
    """Public hostname. ECS: the URL output (the DNS record is the user's); required on vps (Caddy's TLS
    certificate)."""
    tuning: TuningOverrides = Field(default_factory=TuningOverrides)
    cost: CostAssumptions = Field(default_factory=CostAssumptions)
    tags: dict[str, str] = Field(default_factory=dict)
    """Extra tags/labels on every resource (app, stack and managed-by are always added)."""
    alerts: Alerts = Field(default_factory=Alerts)
    """Notification targets of the alarms (emails, webhook, SNS topic, GCP channels)."""

    # Filled by the loaders, not by users.
    stack: SkipJsonSchema[str] = Field(default="dev", exclude=True)
    providers: SkipJsonSchema[dict[str, Any]] = Field(default_factory=dict, exclude=True)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError(
                f"{v!r} must be 2-29 chars of lowercase letters, digits and '-', starting with a letter "
                "(it prefixes resource names such as the ALB, which AWS limits to 32 chars)"
            )
        return v

    @field_validator("env")
    @classmethod
    def _env(cls, v: dict[str, str]) -> dict[str, str]:
        for key in v:
            if not _ENV_NAME.match(key):
                raise ValueError(f"{key!r} is not a valid env var name (A-Z, 0-9, _)")
            if key in SECRET_ENV_NAMES:
                raise ValueError(
                    f"{key} is a credential: put a reference in app.secrets.{key} "
                    "(e.g. 'ssm:/prod/api/...'), never a value in app.env"
                )
            if key in TUNING_ENV_NAMES:
                raise ValueError(f"{key} {_TUNING_OWNED}")
            if contract.URL_WITH_PASSWORD.match(v[key]):
                raise ValueError(
                    f"{key}: the URL carries a password; store it in a secret store and put the reference in "
                    f"app.secrets.{key} (e.g. 'ssm:/prod/api/{key.lower().replace('_', '-')}')"
                )
        return v

    @field_validator("secrets")
    @classmethod
    def _secrets(cls, v: dict[str, str]) -> dict[str, str]:
        for key, ref in v.items():
            if not _ENV_NAME.match(key):
                raise ValueError(f"{key!r} is not a valid env var name (A-Z, 0-9, _)")
            if key in TUNING_ENV_NAMES:
                raise ValueError(f"{key} {_TUNING_OWNED}")
            try:
                SecretRef.parse(ref)
            except SecretRefError as exc:
                raise ValueError(f"{key}: {exc}") from None
        return v

    @field_validator("secret_kms_key_arns")
    @classmethod
    def _kms(cls, v: list[str]) -> list[str]:
        for arn in v:
            if not re.fullmatch(r"arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[0-9a-f-]{36}", arn):
                raise ValueError(f"{arn!r} is not a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/UUID)")
        return v

    @field_validator("domain")
    @classmethod
    def _domain(cls, v: str | None) -> str | None:
        if v is not None and not _HOSTNAME.match(v):
            raise ValueError(f"{v!r} is not a lowercase DNS hostname like 'api.example.com'")
        return v

    @field_validator("cors_origins")
    @classmethod
    def _cors(cls, v: list[str]) -> list[str]:
        for origin in v:
            if origin != "*" and not re.fullmatch(r"https?://[A-Za-z0-9.\-]+(:\d+)?", origin):
                raise ValueError(f"{origin!r} is not an origin like 'https://app.example.com' (no path)")
        return v

    @model_validator(mode="after")
    def _production_rules(self) -> AppConfigBase:
        self._alerts_fit_the_target()
        component = f"{self.name}-{self.stack}"
        if len(component) > MAX_COMPONENT_NAME:
            raise ValueError(
                f"name: '{component}' (app.name + '-' + stack) is {len(component)} chars; resource names "
                f"derive from it and must fit AWS limits (IAM role 64 with suffixes), so keep it <= "
                f"{MAX_COMPONENT_NAME}: shorten app.name"
            )
        if not re.fullmatch(r"[a-z0-9-]+", self.stack):
            # Pulumi accepts A-Z, '_' and '.' in stack names; CreateLoadBalancer/CreateTargetGroup (letters,
            # digits, '-') and CreateRepository (lowercase) refuse them, but only at `pulumi up`.
            raise ValueError(
                f"stack '{self.stack}' gives resource names like '{component}-alb'; they may only hold "
                "lowercase letters, digits and '-' (ALB, target group, ECR repository): rename the stack"
            )
        if self.environment == "production" and "*" in self.cors_origins:
            raise ValueError(
                "cors_origins: '*' is refused in production (the app refuses it too); list the origins"
            )
        if self.alerts.sns_topic_arn:
            aws_region = self.providers.get("aws:region")
            problem = sns_topic_problem(self.alerts.sns_topic_arn, str(aws_region) if aws_region else None)
            if problem:
                raise ValueError(f"alerts.sns_topic_arn: {problem}")
        overlap = set(self.env) & set(self.secrets)
        if overlap:
            raise ValueError(f"env and secrets both set {sorted(overlap)}; keep each name in one place")
        return self

    def _alerts_fit_the_target(self) -> None:
        """A notification target the platform cannot use is refused, not silently dropped."""
        a = self.alerts
        if self.target == "cloudrun":
            for key, given in (("webhook_url", a.webhook_url), ("sns_topic_arn", a.sns_topic_arn)):
                if given:
                    raise ValueError(
                        f"alerts.{key}: Cloud Run alert policies notify Cloud Monitoring channels only; "
                        "create a channel for it (`gcloud beta monitoring channels create ...`) and list "
                        "it in app.alerts.gcp_notification_channels"
                    )
        elif self.target in ("ecs", "lambda") and a.gcp_notification_channels:
            raise ValueError(
                f"alerts.gcp_notification_channels: only Cloud Run uses them; on target {self.target} use "
                "app.alerts.emails, webhook_url or sns_topic_arn"
            )
        elif self.target == "vps" and (
            a.emails or a.webhook_url or a.sns_topic_arn or a.gcp_notification_channels
        ):
            raise ValueError(
                "alerts: a VPS has no managed alarms to notify (docs/targets.md, alarms); remove app.alerts "
                "and monitor the host with the external checks described there"
            )

    # -- helpers used by targets and tuning -------------------------------------------------------
    def secret_refs(self) -> dict[str, SecretRef]:
        """Parsed ``app.secrets``."""
        return {k: SecretRef.parse(v) for k, v in self.secrets.items()}

    def resource_tags(self) -> dict[str, str]:
        """Tags/labels for every resource: user tags plus app, stack, managed-by."""
        return {**self.tags, "app": self.name, "stack": self.stack, "managed-by": "pulumi"}

    @property
    def region(self) -> str | None:
        """The provider region (``aws:region`` / ``gcp:region``) if known."""
        value = self.providers.get("aws:region")
        return str(value) if value else None


# -------------------------------------------------------------------------------------------------- ecs
class NewVpc(_Model):
    """Create a VPC with public + private subnets over ``az_count`` AZs."""

    cidr: str = "10.0.0.0/16"
    """IPv4 CIDR with a prefix between /16 and /22."""
    az_count: int = Field(default=2, ge=2, le=6)
    """Availability zones (one public and one private subnet each)."""
    nat_gateways: Literal["single", "per_az"] = "single"
    """``single``: one NAT gateway (~$33/month each; an AZ outage cuts egress); ``per_az``: one per AZ."""

    @field_validator("cidr")
    @classmethod
    def _cidr(cls, v: str) -> str:
        m = re.fullmatch(r"(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})/(\d{1,2})", v)
        if not m or any(int(x) > 255 for x in m.groups()[:4]) or not 16 <= int(m.group(5)) <= 22:
            raise ValueError(f"{v!r} must be an IPv4 CIDR with a prefix between /16 and /22")
        return v


class ExistingVpc(_Model):
    """Use an existing VPC: public subnets for the ALB, private subnets (with NAT egress) for tasks."""

    vpc_id: str
    """``vpc-xxxxxxxx``."""
    public_subnet_ids: list[str]
    """At least 2 subnets in different AZs, for the ALB."""
    private_subnet_ids: list[str]
    """At least 2 subnets in different AZs with NAT egress, for the tasks."""

    @field_validator("vpc_id")
    @classmethod
    def _vpc(cls, v: str) -> str:
        if not re.fullmatch(r"vpc-[0-9a-f]{8,17}", v):
            raise ValueError(f"{v!r} is not a VPC id (vpc-xxxxxxxx)")
        return v

    @field_validator("public_subnet_ids", "private_subnet_ids")
    @classmethod
    def _subnets(cls, v: list[str]) -> list[str]:
        if len(v) < 2:
            raise ValueError("needs at least 2 subnets in different AZs (an ALB requires 2 AZs)")
        for s in v:
            if not re.fullmatch(r"subnet-[0-9a-f]{8,17}", s):
                raise ValueError(f"{s!r} is not a subnet id (subnet-xxxxxxxx)")
        if len(set(v)) != len(v):
            raise ValueError("subnet ids repeat")
        return v


def _vpc_kind(value: Any) -> str:
    # Pick the VPC model by its keys so errors talk about the model the user meant.
    if isinstance(value, ExistingVpc) or (isinstance(value, Mapping) and "vpc_id" in value):
        return "existing"
    return "new"


class EcsAutoscaling(_Model):
    """Target tracking between app.scaling.min and max."""

    cpu_target_percent: float = Field(default=60.0, gt=0, le=95)
    """Average CPU the target tracking keeps."""
    requests_per_target: int | None = Field(default=1000, ge=1)
    """ALBRequestCountPerTarget (requests per target per minute)."""
    scale_in_cooldown_s: int = Field(default=300, ge=0, le=3600)
    """Seconds between scale-in steps."""
    scale_out_cooldown_s: int = Field(default=60, ge=0, le=3600)
    """Seconds between scale-out steps."""


class EcsAlarms(_Model):
    """CloudWatch alarm thresholds (evaluated per minute)."""

    http_5xx_per_minute: int = Field(default=10, ge=1)
    """5xx responses per minute."""
    p95_response_time_s: float = Field(default=1.0, gt=0)
    """p95 target response time."""
    unhealthy_hosts: int = Field(default=1, ge=1)
    """Unhealthy targets behind the ALB."""
    evaluation_periods: int = Field(default=3, ge=1, le=60)
    """Minutes over the threshold before the alarm fires."""
    memory_percent: float = Field(default=90, gt=0, le=100)
    """Task memory utilization in percent (AWS/ECS ``MemoryUtilization`` of the service, Maximum)."""
    db_pool_usage_ratio: float = Field(default=0.9, gt=0, le=1)
    """DB pool in use / pool size, from the app's EMF metric ``db_pool_usage_ratio`` (namespace
    ``emf_namespace``). The alarm only has data once the app emits EMF metrics."""
    worker_restarts: int = Field(default=3, ge=1)
    """Worker restarts per period, from the app's EMF metric ``worker_restarts`` (needs EMF, as above)."""
    emf_namespace: str = "FastAPIDeploy"
    """CloudWatch namespace of the app's embedded-metric-format metrics."""
    sns_topic_arn: str | None = None
    """Deprecated alias of ``app.alerts.sns_topic_arn`` (still honoured; setting both to different
    topics is refused)."""


class EcsSettings(_Model):
    """ECS Fargate behind an ALB."""

    cpu: int = Field(default=512, json_schema_extra={"enum": list(FARGATE_COMBOS)})
    """CPU units (1024 = 1 vCPU)."""
    memory: int = 1024
    """MiB; must be one of the sizes Fargate allows with ``cpu`` (table below)."""
    vpc: Annotated[
        Annotated[NewVpc, Tag("new")] | Annotated[ExistingVpc, Tag("existing")], Discriminator(_vpc_kind)
    ] = Field(default_factory=NewVpc)
    """A new VPC (``cidr``, ``az_count``, ``nat_gateways``) or an existing one (``vpc_id``, subnets)."""
    certificate_arn: str | None = None
    """ACM certificate for HTTPS on the ALB; must be in the stack's ``aws:region``."""
    log_retention_days: int = Field(default=30, json_schema_extra={"enum": list(LOG_RETENTION_DAYS)})
    """CloudWatch Logs retention (only the values CloudWatch accepts)."""
    autoscaling: EcsAutoscaling = Field(default_factory=EcsAutoscaling)
    alarms: EcsAlarms = Field(default_factory=EcsAlarms)
    container_insights: bool = True
    """CloudWatch Container Insights on the cluster."""
    alb_deletion_protection: bool = False
    """Deletion protection on the ALB."""

    @field_validator("cpu")
    @classmethod
    def _cpu(cls, v: int) -> int:
        if v not in FARGATE_COMBOS:
            raise ValueError(f"{v} is not a Fargate cpu; allowed: {', '.join(map(str, FARGATE_COMBOS))}")
        return v

    @field_validator("log_retention_days")
    @classmethod
    def _retention(cls, v: int) -> int:
        if v not in LOG_RETENTION_DAYS:
            raise ValueError(f"{v} is not accepted by CloudWatch Logs; allowed: {list(LOG_RETENTION_DAYS)}")
        return v

    @field_validator("certificate_arn")
    @classmethod
    def _cert(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(
            r"arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[0-9a-f-]{36}", v
        ):
            raise ValueError(
                f"{v!r} is not an ACM certificate ARN (arn:aws:acm:REGION:ACCOUNT:certificate/UUID)"
            )
        return v

    @model_validator(mode="after")
    def _memory(self) -> EcsSettings:
        if self.memory not in fargate_memory_choices(self.cpu):
            raise ValueError(
                f"memory: {self.memory} is not valid with cpu {self.cpu}; "
                f"allowed: {_describe_fargate(self.cpu)}"
            )
        return self

    @property
    def vcpu(self) -> float:
        """vCPUs (1024 cpu units = 1 vCPU)."""
        return self.cpu / 1024


class EcsConfig(AppConfigBase):
    """``target: ecs`` — ECS Fargate service behind an ALB.

    Secrets: ``ssm:`` and ``secretsmanager:`` references. Needs ``aws:region`` in the stack file.
    """

    target: Literal["ecs"] = "ecs"
    scaling: Scaling
    """Task count bounds (required)."""
    ecs: EcsSettings = Field(default_factory=EcsSettings)

    @model_validator(mode="after")
    def _ecs_rules(self) -> EcsConfig:
        for key, ref in self.secret_refs().items():
            if ref.scheme not in ("ssm", "secretsmanager"):
                raise ValueError(
                    f"secrets.{key}: scheme {ref.scheme}: is not supported on target ecs; "
                    "use ssm:/path or secretsmanager:name[:json-key]"
                )
        if self.scaling.max < 1:
            raise ValueError("scaling.max must be at least 1")
        cert = self.ecs.certificate_arn
        region = self.region
        if cert and region and cert.split(":")[3] != region:
            raise ValueError(
                f"ecs.certificate_arn: the certificate is in {cert.split(':')[3]} but the stack deploys to "
                f"{region} (aws:region); an ALB can only use an ACM certificate from its own region"
            )
        if self.image.platform != "linux/amd64":
            raise ValueError("image.build.platform: ECS tasks here run X86_64; use linux/amd64")
        legacy = self.ecs.alarms.sns_topic_arn
        if legacy and self.alerts.sns_topic_arn and legacy != self.alerts.sns_topic_arn:
            raise ValueError(
                "ecs.alarms.sns_topic_arn: names a different topic than alerts.sns_topic_arn; keep only "
                "alerts.sns_topic_arn (ecs.alarms.sns_topic_arn is its deprecated alias)"
            )
        if legacy:
            problem = sns_topic_problem(legacy, region)
            if problem:
                raise ValueError(f"ecs.alarms.sns_topic_arn: {problem}")
        return self

    @property
    def alert_topic_arn(self) -> str | None:
        """``alerts.sns_topic_arn``, else the deprecated ``ecs.alarms.sns_topic_arn``."""
        return self.alerts.sns_topic_arn or self.ecs.alarms.sns_topic_arn


# --------------------------------------------------------------------------------------------- cloudrun
class CloudRunAlarms(_Model):
    """Cloud Monitoring alert policies on the service, notifying ``app.alerts`` (email channels and
    ``gcp_notification_channels``)."""

    http_5xx_ratio: float = Field(default=0.05, gt=0, le=1)
    """Share of requests answered 5xx (request_count, response_code_class 5xx / all)."""
    p95_latency_s: float = Field(default=1.0, gt=0)
    """p95 request latency (request_latencies)."""
    duration_s: int = Field(default=180, ge=0, le=86400)
    """How long the condition must hold before the policy opens an incident (seconds, multiple of 60)."""

    @field_validator("duration_s")
    @classmethod
    def _minutes(cls, v: int) -> int:
        if v % 60:
            raise ValueError(f"{v} is not a whole number of minutes (the alignment period is 60 s)")
        return v


class CloudRunSettings(_Model):
    """Google Cloud Run (v2 service). Instances come from app.scaling (min/max instances)."""

    project: str | None = None
    """GCP project (default: the stack's ``gcp:project``)."""
    region: str | None = None
    """Cloud Run region (default: the stack's ``gcp:region``)."""
    cpu: float = 1.0
    """vCPUs: 0.08 to below 1 (then concurrency must be 1), or 1, 2, 4, 6, 8."""
    memory: MemoryMiB = 512
    """MiB, or a string like ``512Mi``, ``2Gi``; at least 128, capped per cpu (4 GiB per vCPU)."""
    concurrency: int = Field(default=80, ge=1, le=1000)
    """Max concurrent requests per instance (Cloud Run default 80; async FastAPI handles it)."""
    startup_cpu_boost: bool = True
    """Extra CPU during startup."""
    cpu_always_allocated: bool = False
    """CPU allocated only during requests (cheaper) unless true (needed for background work)."""
    ingress: Literal["all", "internal", "internal-and-cloud-load-balancing"] = "all"
    """Where requests may come from."""
    public: bool = False
    """Grant ``roles/run.invoker`` to ``allUsers`` (unauthenticated access)."""
    cloud_sql_instance: str | None = None
    """Cloud SQL connection name ``project:region:instance``, mounted via the Cloud SQL connector volume."""
    alarms: CloudRunAlarms = Field(default_factory=CloudRunAlarms)

    @field_validator("memory", mode="before")
    @classmethod
    def _mem(cls, v: Any) -> int:
        return parse_memory_mib(v)

    @field_validator("cpu")
    @classmethod
    def _cpu(cls, v: float) -> float:
        if v not in CLOUDRUN_CPUS and not (0.08 <= v < 1):
            raise ValueError(
                f"{v} is not a Cloud Run cpu; allowed: 0.08..<1 or {', '.join(map(str, CLOUDRUN_CPUS))}"
            )
        return v

    @field_validator("cloud_sql_instance")
    @classmethod
    def _sql(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"[a-z][a-z0-9:.\-]*:[a-z0-9-]+:[a-z][a-z0-9-]*", v):
            raise ValueError(f"{v!r} is not a Cloud SQL connection name 'project:region:instance'")
        return v

    @model_validator(mode="after")
    def _limits(self) -> CloudRunSettings:
        if self.memory < 128:
            raise ValueError(f"memory: {self.memory} MiB is below Cloud Run's minimum of 128Mi")
        # Below 1 CPU: > 512 MiB needs >= 0.5 CPU, > 1 GiB a whole CPU (the Admin API refuses the revision).
        fractional_cap = 512 if self.cpu < 0.5 else 1024
        cap = CLOUDRUN_MAX_MEMORY_MIB_PER_CPU.get(self.cpu, fractional_cap if self.cpu < 1 else 4096)
        if self.memory > cap:
            raise ValueError(
                f"memory: {self.memory} MiB is above {cap} MiB allowed with cpu {self.cpu}; raise cpu"
            )
        floor = CLOUDRUN_MIN_MEMORY_MIB_PER_CPU.get(self.cpu, 0)
        if self.memory < floor:
            raise ValueError(f"memory: cpu {self.cpu} needs at least {floor} MiB on Cloud Run")
        if self.cpu < 1 and self.concurrency != 1:
            raise ValueError(f"concurrency: cpu {self.cpu} (< 1) requires concurrency 1 on Cloud Run")
        if self.cpu < 1 and self.cpu_always_allocated:
            raise ValueError(
                f"cpu_always_allocated: cpu {self.cpu} (< 1) is only allocated during requests on Cloud "
                "Run; use cpu 1 or set cpu_always_allocated: false"
            )
        return self


class CloudRunConfig(AppConfigBase):
    """``target: cloudrun`` — Google Cloud Run service.

    Secrets: ``gcp:`` references. The project and region come from ``cloudrun.project``/``cloudrun.region``
    or the stack's ``gcp:project``/``gcp:region``.
    """

    target: Literal["cloudrun"] = "cloudrun"
    port: int = Field(default=8080, ge=1024, le=65535)
    """Port the container listens on (Cloud Run's default is 8080)."""
    scaling: Scaling
    """Instance bounds (min/max instances; required)."""
    cloudrun: CloudRunSettings = Field(default_factory=CloudRunSettings)

    @model_validator(mode="after")
    def _cloudrun_rules(self) -> CloudRunConfig:
        for key, ref in self.secret_refs().items():
            if ref.scheme != "gcp":
                raise ValueError(
                    f"secrets.{key}: scheme {ref.scheme}: is not supported on target cloudrun; "
                    "use gcp:projects/P/secrets/S[/versions/V] or gcp:S"
                )
        if self.request_timeout_s > CLOUDRUN_MAX_TIMEOUT_S:
            raise ValueError(f"request_timeout_s: Cloud Run allows at most {CLOUDRUN_MAX_TIMEOUT_S}")
        if not self.gcp_project:
            raise ValueError("cloudrun.project: required (or set gcp:project in the stack file)")
        if not self.gcp_region:
            raise ValueError("cloudrun.region: required (or set gcp:region in the stack file)")
        if self.cloudrun.region:
            problem = gcp_region_problem(self.cloudrun.region)
            if problem:
                raise ValueError(f"cloudrun.region: {problem}")
        return self

    @property
    def gcp_project(self) -> str | None:
        """cloudrun.project, else the stack's gcp:project."""
        return self.cloudrun.project or (
            str(self.providers["gcp:project"]) if self.providers.get("gcp:project") else None
        )

    @property
    def gcp_region(self) -> str | None:
        """cloudrun.region, else the stack's gcp:region."""
        return self.cloudrun.region or (
            str(self.providers["gcp:region"]) if self.providers.get("gcp:region") else None
        )

    @property
    def region(self) -> str | None:
        """The GCP region."""
        return self.gcp_region


# ----------------------------------------------------------------------------------------------- lambda
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
        if len(v) < 2:
            raise ValueError("needs at least 2 subnets in different AZs (an AZ outage must not stop it)")
        for s in v:
            if not re.fullmatch(r"subnet-[0-9a-f]{8,17}", s):
                raise ValueError(f"{s!r} is not a subnet id (subnet-xxxxxxxx)")
        return v

    @field_validator("security_group_ids")
    @classmethod
    def _sgs(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("needs at least one security group id")
        for g in v:
            if not re.fullmatch(r"sg-[0-9a-f]{8,17}", g):
                raise ValueError(f"{g!r} is not a security group id (sg-xxxxxxxx)")
        return v


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
        return self

    @property
    def function_timeout_s(self) -> int:
        """lambda.timeout_s, else app.request_timeout_s."""
        return self.lambda_.timeout_s or self.request_timeout_s


# -------------------------------------------------------------------------------------------------- vps
class RegistryAuth(_Model):
    """Credentials the VPS uses to pull the image (password is a secret reference)."""

    server: str
    """Registry host, e.g. ``ghcr.io``."""
    username: str
    """Registry user."""
    password_secret: str | None = None
    """Secret reference to the password or token."""

    @field_validator("password_secret")
    @classmethod
    def _ref(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                SecretRef.parse(v)
            except SecretRefError as exc:
                raise ValueError(str(exc)) from None
        return v


class VpsSettings(_Model):
    """An existing Linux host reached over SSH, running Docker."""

    host: str
    """Hostname or IP address."""
    ssh_port: int = Field(default=22, ge=1, le=65535)
    """SSH port."""
    ssh_user: str = "deploy"
    """SSH user (must be allowed to run Docker)."""
    ssh_key_secret: str | None = None
    """Reference to the private key (else the local ssh-agent is used)."""
    cpus: float = Field(default=1.0, gt=0, le=256)
    """CPUs of the host given to the app container (drives the worker count)."""
    memory: MemoryMiB = 1024
    """Memory limit of the app container: MiB, or a string like ``512Mi``, ``2Gi``."""
    registry: RegistryAuth | None = None
    acme_email: str | None = None
    """Contact email for Caddy's ACME account."""

    @field_validator("memory", mode="before")
    @classmethod
    def _mem(cls, v: Any) -> int:
        return parse_memory_mib(v)

    @field_validator("ssh_key_secret")
    @classmethod
    def _ref(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                SecretRef.parse(v)
            except SecretRefError as exc:
                raise ValueError(str(exc)) from None
        return v

    @field_validator("host")
    @classmethod
    def _host(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9.\-:]+", v):
            raise ValueError(f"{v!r} is not a hostname or IP address")
        return v


class VpsConfig(AppConfigBase):
    """``target: vps`` — Docker over SSH on one host, Caddy in front for TLS.

    ``domain`` is required. Secrets: any scheme, read at deploy time (a ``gcp:`` reference needs its
    project: in the reference or the stack's ``gcp:project``).
    """

    target: Literal["vps"] = "vps"
    scaling: Scaling = Field(default_factory=lambda: Scaling(min=1, max=1, desired=1))
    """Fixed: one app container (min 1, max 1)."""
    vps: VpsSettings

    @model_validator(mode="after")
    def _vps_rules(self) -> VpsConfig:
        for key, ref in self.secret_refs().items():
            if ref.scheme == "gcp" and not ref.project and not self.providers.get("gcp:project"):
                raise ValueError(
                    f"secrets.{key}: a gcp: reference on a VPS needs its project: write "
                    f"gcp:projects/PROJECT/secrets/{ref.name} or set gcp:project in the stack file"
                )
        if self.scaling.max != 1 or self.scaling.min > 1:
            raise ValueError("scaling: a VPS runs one app container; use min 1, max 1 (or another target)")
        if self.domain is None:
            raise ValueError("domain: required for target vps (Caddy obtains its TLS certificate for it)")
        return self


StackConfig = Annotated[EcsConfig | CloudRunConfig | LambdaConfig | VpsConfig, Field(discriminator="target")]
_ADAPTER: TypeAdapter[EcsConfig | CloudRunConfig | LambdaConfig | VpsConfig] = TypeAdapter(StackConfig)


_TAGS = frozenset({*TARGETS_TUPLE, "new", "existing"})
_PATH_IN_MSG = re.compile(r"^([A-Za-z_][A-Za-z0-9_.]*): (.*)$", re.S)


def _format(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        parts = list(err["loc"])
        if parts and parts[0] in TARGETS_TUPLE:  # the discriminator tag pydantic prepends
            parts = parts[1:]
        loc = ".".join(str(p) for p in parts if not (isinstance(p, str) and p in ("new", "existing")))
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling; see docs/stack-config.md for the keys)"
        elif err["type"] == "union_tag_invalid":
            loc, msg = (
                "target",
                f"{err.get('input', {}).get('target')!r} is unknown; allowed: {', '.join(TARGETS)}",
            )
        elif err["type"] == "union_tag_not_found":
            loc, msg = "target", f"required; one of {', '.join(TARGETS)}"
        elif err["type"] == "missing":
            msg = "required"
        elif err["type"] == "string_type" and parts[:1] in (["env"], ["secrets"]):
            msg = "must be a string: quote it in the stack file (e.g. '0.1', 'true', '5')"
        m = _PATH_IN_MSG.match(msg)
        if m and " " not in m.group(1):  # a model validator naming a sub-key: fold it into the path
            loc, msg = ".".join(x for x in (loc, m.group(1)) if x), m.group(2)
        lines.append(f"app.{loc}: {msg}" if loc else f"app: {msg}")
    return "; ".join(lines)


def aws_regions() -> frozenset[str]:
    """Every region of every partition botocore knows (its ``partitions.json``; ``*-global`` left out).

    Read from the data file rather than through a botocore session: ~10 ms instead of ~1 s per plan.
    """
    import json

    import botocore

    data = json.loads((Path(botocore.__file__).parent / "data" / "partitions.json").read_text())
    return frozenset(
        region
        for partition in data["partitions"]
        for region in partition.get("regions", {})
        if not region.endswith("-global")
    )


#: Cloud Run regions, from https://cloud.google.com/run/docs/locations (Tier 1 and Tier 2 pricing lists),
#: read 2026-11-29. A region Google adds later is refused until it is added here.
CLOUD_RUN_REGIONS = frozenset(
    {
        "africa-south1", "asia-east1", "asia-east2", "asia-northeast1", "asia-northeast2", "asia-northeast3",
        "asia-south1", "asia-south2", "asia-southeast1", "asia-southeast2", "australia-southeast1",
        "australia-southeast2", "europe-central2", "europe-north1", "europe-southwest1", "europe-west1",
        "europe-west10", "europe-west12", "europe-west2", "europe-west3", "europe-west4", "europe-west6",
        "europe-west8", "europe-west9", "me-central1", "me-central2", "me-west1", "northamerica-northeast1",
        "northamerica-northeast2", "southamerica-east1", "southamerica-west1", "us-central1", "us-east1",
        "us-east4", "us-east5", "us-south1", "us-west1", "us-west2", "us-west3", "us-west4",
    }
)  # fmt: skip
CLOUD_RUN_REGIONS_SOURCE = "https://cloud.google.com/run/docs/locations (read 2026-11-29)"
#: Targets that deploy to AWS and so need ``aws:region``.
AWS_TARGETS = ("ecs", "lambda")


def _closest(value: str, choices: frozenset[str]) -> str:
    import difflib

    close = difflib.get_close_matches(value, sorted(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""


def gcp_region_problem(region: str) -> str | None:
    """Why ``region`` is not a Cloud Run region, or None."""
    if region in CLOUD_RUN_REGIONS:
        return None
    return (
        f"{region!r} is not a Cloud Run region{_closest(region, CLOUD_RUN_REGIONS)} "
        f"(list: {CLOUD_RUN_REGIONS_SOURCE})"
    )


def provider_problems(target: object, providers: Mapping[str, Any], stack: str) -> list[str]:
    """Provider keys of the stack file (``aws:region``, ``gcp:region``), checked before the app object.

    ``aws:region`` is required on AWS targets. The AWS provider itself would fall back to ``AWS_REGION``,
    ``AWS_DEFAULT_REGION`` or the profile's region when it is unset, so the same stack would deploy to
    whichever region the shell happens to carry, and the offline plan could not know which: the deployer
    refuses instead, and the region always comes from the stack file.
    """
    found: list[str] = []
    region = providers.get("aws:region")
    if target in AWS_TARGETS and not region:
        found.append(
            f"aws:region: required for target {target}; set it in the stack file "
            f"(`pulumi config set aws:region us-east-1 --stack {stack}`). The deployer does not fall back "
            "to AWS_REGION or a profile, so a plan and a deploy can never disagree on the region"
        )
    elif region and str(region) not in aws_regions():
        found.append(
            f"aws:region: {str(region)!r} is not an AWS region{_closest(str(region), aws_regions())} "
            "(regions known to botocore)"
        )
    gcp_region = providers.get("gcp:region")
    if gcp_region and target == "cloudrun":
        problem = gcp_region_problem(str(gcp_region))
        if problem:
            found.append(f"gcp:region: {problem}")
    return found


def _uses_aws(data: Mapping[str, Any]) -> bool:
    """A non-AWS target that still reads AWS: secret references in SSM/Secrets Manager or an ECR image."""

    def section(obj: Any, key: str) -> Mapping[str, Any]:
        value = obj.get(key) if isinstance(obj, Mapping) else None
        return value if isinstance(value, Mapping) else {}

    vps = section(data, "vps")
    refs = [*section(data, "secrets").values(), vps.get("ssh_key_secret")]
    refs.append(section(vps, "registry").get("password_secret"))
    digest = str(section(data, "image").get("digest") or "")
    return any(isinstance(r, str) and r.startswith(("ssm:", "secretsmanager:")) for r in refs) or bool(
        re.match(r"^\d{12}\.dkr\.ecr\.", digest)
    )


def parse(data: Any, *, stack: str = "dev", providers: Mapping[str, Any] | None = None) -> StackConfigType:
    """Validate the ``fastapi-deploy:app`` object. Raises :class:`ConfigError` naming the key."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{CONFIG_KEY}: expected a mapping, got {type(data).__name__}")
    providers = dict(providers or {})
    problems = provider_problems(data.get("target"), providers, stack)
    if data.get("target") == "vps" and not providers.get("aws:region") and _uses_aws(data):
        problems.append(
            "aws:region: required when a vps stack reads AWS (ssm:/secretsmanager: references or an ECR "
            "image): set it in the stack file "
            f"(`pulumi config set aws:region eu-central-1 --stack {stack}`); "
            "the deployer does not fall back to AWS_REGION or a profile"
        )
    if problems:
        # The app object is not read against a region that is missing or wrong (a certificate in "the
        # wrong region" would only blame the certificate for the region's mistake).
        raise ConfigError("; ".join(problems))
    payload = {**data, "stack": stack, "providers": providers}
    try:
        return _ADAPTER.validate_python(payload)
    except ValidationError as exc:
        raise ConfigError(_format(exc)) from None


StackConfigType = EcsConfig | CloudRunConfig | LambdaConfig | VpsConfig


def _plain(value: Any) -> Any:
    # `secure:` values cannot be decrypted without the stack's secrets provider.
    if isinstance(value, Mapping) and set(value) == {"secure"}:
        return SECRET_PLACEHOLDER
    return value


def load_stack_file(path: str | Path) -> StackConfigType:
    """Parse ``stacks/Pulumi.<stack>.yaml`` offline (no Pulumi engine, no credentials)."""
    import yaml

    p = Path(path)
    m = re.fullmatch(r"Pulumi\.(.+)\.ya?ml", p.name)
    if not m:
        raise ConfigError(f"{p}: stack files are named Pulumi.<stack>.yaml")
    try:
        doc = yaml.safe_load(p.read_text()) or {}
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        # Not str(exc): PyYAML quotes the offending line, which may hold a pasted secret.
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "cannot be parsed"
        raise ConfigError(f"{p}: not valid YAML{where}: {problem}") from None
    cfg = doc.get("config") if isinstance(doc, dict) else None
    if not isinstance(cfg, dict):
        raise ConfigError(f"{p}: expected a mapping with a `config:` key (a Pulumi stack file)")
    if CONFIG_KEY not in cfg:
        raise ConfigError(f"{p}: missing the {CONFIG_KEY} object")
    providers = {k: _plain(v) for k, v in cfg.items() if not k.startswith(f"{CONFIG_NAMESPACE}:")}
    return parse(cfg[CONFIG_KEY], stack=m.group(1), providers=providers)


def stack_file_config(path: str | Path) -> dict[str, Any]:
    """The raw ``config:`` mapping of a stack file (for feeding Pulumi mocks' config)."""
    import yaml

    doc = yaml.safe_load(Path(path).read_text()) or {}
    return dict(doc.get("config") or {})


def load() -> StackConfigType:
    """Inside a Pulumi program: read ``fastapi-deploy:app`` and provider keys from the stack config."""
    import pulumi

    data = pulumi.Config(CONFIG_NAMESPACE).require_object("app")
    providers: dict[str, Any] = {}
    for ns, keys in (("aws", ("region",)), ("gcp", ("project", "region"))):
        conf = pulumi.Config(ns)
        for key in keys:
            value = conf.get(key)
            if value:
                providers[f"{ns}:{key}"] = value
    return parse(data, stack=pulumi.get_stack(), providers=providers)
