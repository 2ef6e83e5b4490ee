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
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeAlias

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
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
#: `<app.name>-<stack>` prefixes every resource; 40 keeps `<...>-exec-role-xxxxxxx` under IAM's 64.
MAX_COMPONENT_NAME = 40
_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
_NAME = re.compile(r"^[a-z][a-z0-9-]{0,27}[a-z0-9]$")
_HOSTNAME = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_DIGEST_REF = re.compile(r"^[a-z0-9][a-z0-9._\-/:]*@sha256:[0-9a-f]{64}$")
#: Any image reference (the distribution/reference grammar): ``[host[:port]/]path[:tag][@sha256:<64 hex>]``.
_IMAGE_HOST = (
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*(?::\d+)?/)"
)
_IMAGE_PATH = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_IMAGE_REF = re.compile(
    rf"^{_IMAGE_HOST}?{_IMAGE_PATH}(?:/{_IMAGE_PATH})*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})?"
    r"(?:@sha256:[0-9a-f]{64})?$"
)


def image_ref_problem(ref: str) -> str | None:
    """Why ``ref`` is not an image reference a platform can pull, or None. A tag is accepted (a component
    user may deploy one); the stack config's ``app.image.digest`` demands a digest (``_DIGEST_REF``)."""
    if len(ref) > 512 or not _IMAGE_REF.match(ref):
        shown = repr(ref) if len(ref) <= 200 else f"{ref[:60]!r}... ({len(ref)} chars)"
        return (
            f"{shown} is not an image reference; expected 'registry/repo@sha256:<64 hex chars>' (or "
            "'registry/repo:tag'; lowercase repository path)"
        )
    return None


#: A URL with a user part (``scheme://user[:password]@host``): credentials in plain text.
_URL_USERINFO = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://[^/?#\s]*@")
_CERT_ARN = re.compile(r"arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[0-9a-f-]{36}")
_PLATFORM = re.compile(r"^linux/(amd64|arm64)$")
#: Route 53 hosted zone id (``Z`` + upper-case letters/digits, ListHostedZones' Id minus ``/hostedzone/``).
_R53_ZONE_ID = re.compile(r"^Z[A-Z0-9]{1,31}$")
#: Cloud DNS managed zone name (ManagedZone.name: 1-63 lowercase letters, digits, '-'; a letter first).
_GCP_MANAGED_ZONE = re.compile(r"^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")


def route53_zone_problem(zone: str, domain: str | None, key: str) -> str | None:
    """Why ``zone`` (a Route 53 hosted zone id or name, at stack key ``key``) cannot hold ``domain``."""
    if _R53_ZONE_ID.match(zone):
        return None  # an id: the zone's name is only known to Route 53 (checked at deploy time)
    name = zone.rstrip(".").lower()
    if not _HOSTNAME.match(name):
        return (
            f"{key}: {zone!r} is neither a Route 53 hosted zone id (Z0123456789ABCDEFGHIJ) nor a zone "
            "name like 'example.com'"
        )
    if domain is not None and domain != name and not domain.endswith("." + name):
        return (
            f"{key}: app.domain {domain!r} is outside the hosted zone {name!r}; use the zone that holds "
            f"it (for example {'.'.join(domain.split('.')[1:])!r}) or a domain under {name!r}"
        )
    return None


def aws_domain_problem(
    domain: str | None, zone: str | None, certificate_arn: str | None, section: str
) -> str | None:
    """The ECS/Lambda rule: a managed domain needs its Route 53 zone unless the user brings a certificate."""
    if zone is not None and domain is None:
        return f"{section}.zone: set app.domain too (the hostname to create in this hosted zone)"
    if domain is not None and zone is None and certificate_arn is None:
        return (
            f"{section}.zone: required when app.domain is set: the Route 53 hosted zone (id or name) that "
            f"holds {domain!r}, so the ACM certificate can be validated by DNS and the alias records made; "
            f"or set {section}.certificate_arn to an issued certificate (then the DNS records are yours)"
        )
    if zone is not None:
        return route53_zone_problem(zone, domain, f"{section}.zone")
    return None


# CloudWatch Logs accepts only these retention values (PutRetentionPolicy).
LOG_RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
)  # fmt: skip

MIN_REQUEST_BODY_BYTES = 1024
MAX_REQUEST_BODY_BYTES = 1024 * 1024 * 1024


class ConfigError(ValueError):
    """Invalid stack configuration. The message names the key path (``app.x.y``) and the fix."""


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
        from fastapi_deploy import registry

        found = registry.find(target)
        return found.migrate_default if found is not None else "on_start"

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
_GCP_CHANNEL = re.compile(r"^projects/[a-z][a-z0-9-]{4,28}[a-z0-9]/notificationChannels/[0-9]+$")


def gcp_channels_problem(names: list[str]) -> str | None:
    """Why ``names`` are not Cloud Monitoring notification channel names, or None (the stack's
    alerts.gcp_notification_channels and the Cloud Run component's, there also once an Output resolves)."""
    for name in names:
        if not _GCP_CHANNEL.match(name):
            return f"{name!r} is not a notification channel name 'projects/PROJECT/notificationChannels/ID'"
    return None


def aws_partition(region: str) -> str | None:
    """The partition (``aws``, ``aws-cn``, ``aws-us-gov``...) botocore places ``region`` in."""
    import json

    import botocore

    data = json.loads((Path(botocore.__file__).parent / "data" / "partitions.json").read_text())
    for partition in data["partitions"]:
        if region in partition.get("regions", {}):
            return str(partition["outputs"]["name"])
    return None


#: ``arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE`` (REGION empty for a global service such as IAM).
_ARN = re.compile(
    r"^arn:(?P<partition>aws[a-z-]*):(?P<service>[a-z0-9-]+):(?P<region>[a-z0-9-]*):(?P<account>\d{12}):"
    r"(?P<resource>.+)$"
)


@dataclass(frozen=True)
class ArnKind:
    """What an ARN Arg or key must name: its service, the shape of its resource part, and whether it must be
    in the region the stack or component deploys to (``why`` says why, after the region mismatch)."""

    what: str
    """``an ACM certificate``: the message says ``'...' is not an ACM certificate ARN (example)``."""
    service: str
    resource: str
    """A regular expression the resource part must match in full."""
    example: str
    noun: str
    """What the mismatch message calls it: ``the certificate is in eu-west-1 but ...``."""
    same_region: str | None = None
    """Why it must be in the deploying region (None: any region of the partition, e.g. an ECR repository
    pulled across regions)."""
    global_service: bool = False
    """IAM: the ARN has no region."""


ACM_CERTIFICATE = ArnKind(
    "an ACM certificate", "acm", r"certificate/[0-9a-f-]{36}",
    "arn:aws:acm:REGION:ACCOUNT:certificate/UUID", "certificate",
    "a load balancer or regional API serves only a certificate of its own region",
)  # fmt: skip
SNS_TOPIC = ArnKind(
    "an SNS topic", "sns", r"[A-Za-z0-9_-]{1,256}(\.fifo)?", "arn:aws:sns:REGION:ACCOUNT:topic-name", "topic",
    "CloudWatch alarms can only notify a topic in their own region",
)  # fmt: skip
KMS_KEY = ArnKind(
    "a KMS key", "kms", r"key/([0-9a-f-]{36}|mrk-[0-9a-f]{32})", "arn:aws:kms:REGION:ACCOUNT:key/UUID", "key",
    "SSM and Secrets Manager decrypt with a key of the secret's own region",
)  # fmt: skip
IAM_ROLE = ArnKind(
    "an IAM role", "iam", r"role/[\w+=,.@/-]{1,512}", "arn:aws:iam::ACCOUNT:role/NAME", "role",
    global_service=True,
)  # fmt: skip


def aws_arn_problem(
    arn: str, kind: ArnKind, region: str | None, deploys: str = "the stack deploys to {region} (aws:region)"
) -> str | None:
    """Why ``arn`` is not ``kind`` usable from ``region`` (None: region unknown before deploy), or None.

    Checked: the ARN's form, service and resource; its partition against the region's (botocore's
    partitions) - or, with no region, against its own region's; its region against ``region`` when
    ``kind.same_region`` says it must match. ``deploys`` is how the message names where the deploy goes."""
    m = _ARN.match(arn)
    if not m or m["service"] != kind.service or not re.fullmatch(kind.resource, m["resource"]):
        return f"{arn!r} is not {kind.what} ARN ({kind.example})"
    if kind.global_service and m["region"]:
        return f"{arn!r}: {kind.what} ARN has no region ({kind.example})"
    if not kind.global_service and not m["region"]:
        return f"{arn!r} names no region ({kind.example})"
    if region and kind.same_region and m["region"] != region:
        where = deploys.format(region=region)
        return f"the {kind.noun} is in {m['region']} but {where}; {kind.same_region}"
    anchor = region or m["region"]
    partition = aws_partition(anchor) if anchor else None
    if partition and m["partition"] != partition:
        return f"partition {m['partition']!r} does not match {anchor}'s partition {partition!r}"
    return None


def sns_topic_problem(arn: str, region: str | None) -> str | None:
    """Why ``arn`` is not an SNS topic ARN usable from ``region`` (the stack's ``aws:region``), or None.

    CloudWatch alarm actions must name a topic in the alarm's own region (and so its partition)."""
    return aws_arn_problem(arn, SNS_TOPIC, region)


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
        # The URL is never echoed (contract.mask): a webhook's path or user part is often its secret.
        if v is not None and _URL_USERINFO.match(v):
            raise ValueError(
                f"{contract.mask(v)}: credentials in the URL (user:password@host) are refused: they would "
                "sit in plain text in the state and the console; give a URL without them, or subscribe "
                "the endpoint to an SNS topic of your own and set sns_topic_arn"
            )
        if v is not None and not re.fullmatch(r"https://[A-Za-z0-9.\-]+(:\d+)?(/[^\s]*)?", v):
            raise ValueError(
                f"{contract.mask(v)} is not an https:// URL (plain http is refused: alerts leave the VPC)"
            )
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
        problem = gcp_channels_problem(v)
        if problem:
            raise ValueError(problem)
        return v

    @property
    def any_aws(self) -> bool:
        """Something an SNS topic can deliver to (or an existing topic)."""
        return bool(self.emails or self.webhook_url or self.sns_topic_arn)

    @property
    def any_gcp(self) -> bool:
        """Something a Cloud Monitoring alert policy can notify."""
        return bool(self.emails or self.gcp_notification_channels)


def refuse_gcp_channels(cfg: AppConfigBase) -> None:
    """AWS targets notify emails, a webhook or an SNS topic; Cloud Monitoring channels are refused."""
    if cfg.alerts.gcp_notification_channels:
        raise ValueError(
            f"alerts.gcp_notification_channels: only Cloud Run uses them; on target {cfg.target} use "
            "app.alerts.emails, webhook_url or sns_topic_arn"
        )


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
    """Public hostname served over HTTPS. ECS/Lambda: with ``<target>.zone`` the deployer makes the ACM
    certificate and the Route 53 records (or bring ``<target>.certificate_arn``); Cloud Run: a global external
    Application Load Balancer with a Google-managed certificate (plus the Cloud DNS record with
    ``cloudrun.zone``); vps: required (Caddy's certificate; ``vps.zone`` adds the DNS record)."""
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
            problem = contract.env_entry_problem(key, v[key])
            if problem:
                # "KEY: ..." folds into the path: app.env.KEY (the component's env Arg says the same).
                raise ValueError(
                    f"{key}: {problem}; store it in a secret store and put the reference in "
                    f"app.secrets.{key} (e.g. 'ssm:/prod/api/{key.lower().replace('_', '-')}')"
                )
            if key in TUNING_ENV_NAMES:
                raise ValueError(f"{key} {_TUNING_OWNED}")
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
        """A notification target the platform cannot use is refused, not silently dropped (each target's
        model overrides this with what its platform can notify)."""

    # -- helpers used by targets and tuning -------------------------------------------------------
    def secret_refs(self) -> dict[str, SecretRef]:
        """Parsed ``app.secrets``."""
        return {k: SecretRef.parse(v) for k, v in self.secrets.items()}

    def resource_tags(self) -> dict[str, str]:
        """Tags/labels for every resource: user tags plus app, stack, managed-by."""
        return {**self.tags, "app": self.name, "stack": self.stack, "managed-by": "pulumi"}

    @property
    def gcp_project(self) -> str | None:
        """The Google Cloud project (``gcp:project``) if known."""
        value = self.providers.get("gcp:project")
        return str(value) if value else None

    @property
    def region(self) -> str | None:
        """The provider region (``aws:region`` / ``gcp:region``) if known."""
        value = self.providers.get("aws:region")
        return str(value) if value else None


# The per-target models live in fastapi_deploy/<target>/config.py (re-exported below).


if TYPE_CHECKING:
    from fastapi_deploy.awslambda.config import (
        LambdaConfig,
    )
    from fastapi_deploy.cloudrun.config import CloudRunConfig
    from fastapi_deploy.ecs.config import (
        EcsConfig,
    )
    from fastapi_deploy.vps.config import VpsConfig

    #: The built-in targets' stack models (for type checking; a registered target's model is an
    #: AppConfigBase subclass).
    StackConfigType: TypeAlias = EcsConfig | CloudRunConfig | LambdaConfig | VpsConfig

#: Moved names -> the module that defines them (re-exported here: ``from fastapi_deploy.config import
#: EcsConfig`` keeps working). Imported on first use, so this module never imports a target package while
#: it is itself being imported.
_MOVED = {
    **dict.fromkeys(
        (
            "EcsConfig",
            "EcsSettings",
            "EcsAlarms",
            "EcsAutoscaling",
            "NewVpc",
            "ExistingVpc",
            "_vpc_kind",
            "FARGATE_COMBOS",
            "fargate_memory_choices",
            "_describe_fargate",
        ),
        "fastapi_deploy.ecs.config",
    ),
    **dict.fromkeys(
        (
            "CloudRunConfig",
            "CloudRunSettings",
            "CloudRunAlarms",
            "CLOUDRUN_MAX_TIMEOUT_S",
            "CLOUDRUN_CPUS",
            "CLOUDRUN_MAX_MEMORY_MIB_PER_CPU",
            "CLOUDRUN_MIN_MEMORY_MIB_PER_CPU",
            "CLOUD_RUN_REGIONS",
            "CLOUD_RUN_REGIONS_SOURCE",
            "gcp_region_problem",
        ),
        "fastapi_deploy.cloudrun.config",
    ),
    **dict.fromkeys(
        (
            "LambdaConfig",
            "LambdaSettings",
            "LambdaAlarms",
            "LambdaThrottling",
            "LambdaVpc",
            "HTTP_API_MAX_TIMEOUT_S",
            "LAMBDA_MAX_PAYLOAD_BYTES",
            "LAMBDA_MAX_TIMEOUT_S",
        ),
        "fastapi_deploy.awslambda.config",
    ),
    **dict.fromkeys(("VpsConfig", "VpsSettings", "RegistryAuth"), "fastapi_deploy.vps.config"),
}


def __getattr__(name: str) -> Any:
    """``TARGETS``, ``StackConfig`` and ``StackConfigType`` come from the registry (a registered target's
    model is a member of the union); the per-target models from their packages."""
    if name in _MOVED:
        import importlib

        return getattr(importlib.import_module(_MOVED[name]), name)
    if name in ("TARGETS", "TARGETS_TUPLE"):
        from fastapi_deploy import registry

        return registry.names()
    if name == "StackConfig":
        return _union()[0]
    if name == "StackConfigType":
        return _union()[1]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_UNION_CACHE: dict[int, tuple[Any, Any, TypeAdapter[Any]]] = {}


def _union() -> tuple[Any, Any, TypeAdapter[Any]]:
    """(StackConfig, the plain union, its TypeAdapter), built from the registry's config models."""
    from functools import reduce
    from operator import or_

    from fastapi_deploy import registry

    models = tuple(t.config_model for t in registry.all_targets())
    cached = _UNION_CACHE.get(registry.VERSION)
    if cached is None:
        plain: Any = reduce(or_, models) if len(models) > 1 else models[0]
        annotated: Any = Annotated[plain, Field(discriminator="target")]
        cached = (annotated, plain, TypeAdapter(annotated))
        _UNION_CACHE.clear()
        _UNION_CACHE[registry.VERSION] = cached
    return cached


_PATH_IN_MSG = re.compile(r"^([A-Za-z_][A-Za-z0-9_.]*): (.*)$", re.S)


def _format(exc: ValidationError) -> str:
    from fastapi_deploy import registry

    targets = registry.names()
    lines = []
    for err in exc.errors():
        parts = list(err["loc"])
        if parts and parts[0] in targets:  # the discriminator tag pydantic prepends
            parts = parts[1:]
        loc = ".".join(str(p) for p in parts if not (isinstance(p, str) and p in ("new", "existing")))
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling; see docs/stack-config.md for the keys)"
        elif err["type"] == "union_tag_invalid":
            loc, msg = (
                "target",
                f"{err.get('input', {}).get('target')!r} is unknown; allowed: {', '.join(targets)}",
            )
        elif err["type"] == "union_tag_not_found":
            loc, msg = "target", f"required; one of {', '.join(targets)}"
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


def _closest(value: str, choices: frozenset[str]) -> str:
    import difflib

    close = difflib.get_close_matches(value, sorted(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""


def provider_problems(
    target: object, providers: Mapping[str, Any], stack: str, data: Mapping[str, Any] | None = None
) -> list[str]:
    """Provider keys of the stack file (``aws:region``, ``gcp:region``), checked before the app object.

    ``aws:region`` is required on targets that authenticate to AWS (``Target.cloud``). The AWS provider
    itself would fall back to ``AWS_REGION``, ``AWS_DEFAULT_REGION`` or the profile's region when it is unset,
    so the same stack would deploy to whichever region the shell happens to carry, and the offline plan could
    not know which: the deployer refuses instead, and the region always comes from the stack file. The
    target's own checks (``Target.provider_checks``) follow.
    """
    from fastapi_deploy import registry

    spec = registry.find(target)
    found: list[str] = []
    region = providers.get("aws:region")
    if spec is not None and spec.cloud == "aws" and not region:
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
    if spec is not None and spec.provider_checks is not None:
        found.extend(spec.provider_checks(providers, data or {}, stack))
    return found


def parse(data: Any, *, stack: str = "dev", providers: Mapping[str, Any] | None = None) -> StackConfigType:
    """Validate the ``fastapi-deploy:app`` object. Raises :class:`ConfigError` naming the key."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{CONFIG_KEY}: expected a mapping, got {type(data).__name__}")
    providers = dict(providers or {})
    problems = provider_problems(data.get("target"), providers, stack, data)
    if problems:
        # The app object is not read against a region that is missing or wrong (a certificate in "the
        # wrong region" would only blame the certificate for the region's mistake).
        raise ConfigError("; ".join(problems))
    payload = {**data, "stack": stack, "providers": providers}
    try:
        result: StackConfigType = _union()[2].validate_python(payload)
    except ValidationError as exc:
        raise ConfigError(_format(exc)) from None
    return result


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

    from fastapi_deploy import registry

    # The project's own targets (pyproject.toml [tool.fastapi-deploy] targets) before the config union is
    # built: the Pulumi CLI runs the program with no `infra` command in front of it.
    try:
        registry.load_project_targets()
    except registry.ProjectTargetsError as exc:
        raise ConfigError(str(exc)) from None
    data = pulumi.Config(CONFIG_NAMESPACE).require_object("app")
    providers: dict[str, Any] = {}
    for ns, keys in (("aws", ("region",)), ("gcp", ("project", "region"))):
        conf = pulumi.Config(ns)
        for key in keys:
            value = conf.get(key)
            if value:
                providers[f"{ns}:{key}"] = value
    return parse(data, stack=pulumi.get_stack(), providers=providers)
