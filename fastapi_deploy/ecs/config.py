"""The ecs target's stack-config models (``app.ecs`` and the ``target: ecs`` stack)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, field_validator, model_validator

from fastapi_deploy.config import (
    LOG_RETENTION_DAYS,
    AppConfigBase,
    Scaling,
    _Model,
    aws_domain_problem,
    refuse_gcp_channels,
    sns_topic_problem,
)

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
    public_subnet_ids: list[str] = Field(default_factory=list)
    """At least 2 subnets in different AZs, for the ALB (required unless ``ecs.load_balancer`` is set, and
    refused with it: the existing load balancer has its own)."""
    private_subnet_ids: list[str]
    """At least 2 subnets in different AZs with NAT egress, for the tasks."""

    @field_validator("vpc_id")
    @classmethod
    def _vpc(cls, v: str) -> str:
        problem = vpc_id_problem(v)
        if problem:
            raise ValueError(problem)
        return v

    @field_validator("public_subnet_ids", "private_subnet_ids")
    @classmethod
    def _subnets(cls, v: list[str]) -> list[str]:
        problem = subnet_ids_problem(v) if v else None
        if problem:
            raise ValueError(problem)
        return v


def vpc_id_problem(vpc_id: str) -> str | None:
    """Why ``vpc_id`` is not a VPC id, or None (the stack's ecs.vpc.vpc_id and the component's vpc_id)."""
    if not re.fullmatch(r"vpc-[0-9a-f]{8,17}", vpc_id):
        return f"{vpc_id!r} is not a VPC id (vpc-xxxxxxxx)"
    return None


def subnet_ids_problem(ids: list[str]) -> str | None:
    """Why ``ids`` are not the subnets of an existing VPC (at least 2, subnet ids, none repeated), or None.
    The stack's ecs.vpc subnets and the component's subnet Args (there also once an Output list resolves)."""
    if len(ids) < 2:
        return "needs at least 2 subnets in different AZs (an ALB requires 2 AZs)"
    for s in ids:
        if not re.fullmatch(r"subnet-[0-9a-f]{8,17}", s):
            return f"{s!r} is not a subnet id (subnet-xxxxxxxx)"
    if len(set(ids)) != len(ids):
        return "subnet ids repeat"
    return None


def security_group_ids_problem(ids: list[str]) -> str | None:
    """Why ``ids`` are not security group ids (none repeated), or None."""
    for g in ids:
        if not re.fullmatch(r"sg-[0-9a-f]{8,17}", g):
            return f"{g!r} is not a security group id (sg-xxxxxxxx)"
    if len(set(ids)) != len(ids):
        return "security group ids repeat"
    return None


class EcsLoadBalancer(_Model):
    """An existing ALB listener the service is added to (no ALB, listener or ALB security group is made):
    a target group and a rule forwarding ``app.domain`` (host header) and/or ``path_pattern`` to it."""

    listener_arn: str
    """The listener (usually HTTPS:443) of an application load balancer in ``ecs.vpc.vpc_id``."""
    security_group_id: str
    """The load balancer's security group: the tasks accept the app port from it only (its egress must
    allow that port)."""
    priority: int
    """The forwarding rule's priority on that listener, 2..50000 and unused there; ``priority - 1`` holds the
    rule answering ``/metrics`` with 404. No automatic choice: the listener's other rules belong to other
    stacks, a free number read now can be taken by a concurrent deploy, and the order decides which rule
    matches first."""
    path_pattern: str | None = None
    """Path pattern of the forwarding rule (``/api/*``; the app gets the full path). Without it the rule
    matches ``app.domain``, which is then required."""

    @field_validator("listener_arn")
    @classmethod
    def _listener(cls, v: str) -> str:
        if not re.fullmatch(
            r"arn:aws[a-z-]*:elasticloadbalancing:[a-z0-9-]+:\d{12}:listener/app/[A-Za-z0-9-]{1,32}/[0-9a-f]+/[0-9a-f]+",
            v,
        ):
            raise ValueError(
                f"{v!r} is not an application load balancer listener ARN "
                "(arn:aws:elasticloadbalancing:REGION:ACCOUNT:listener/app/NAME/ID/ID)"
            )
        return v

    @field_validator("security_group_id")
    @classmethod
    def _sg(cls, v: str) -> str:
        if not re.fullmatch(r"sg-[0-9a-f]{8}([0-9a-f]{9})?", v):
            raise ValueError(f"{v!r} is not a security group id (sg-...)")
        return v

    @field_validator("priority")
    @classmethod
    def _priority(cls, v: int) -> int:
        if not 2 <= v <= 50000:
            raise ValueError(f"{v} is outside 2..50000 (priority - 1 is the /metrics block rule)")
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
    """ACM certificate for HTTPS on the ALB; must be in the stack's ``aws:region``. Given, the deployer
    creates no certificate (with ``zone`` it still makes the alias records)."""
    zone: str | None = None
    """Route 53 public hosted zone of ``app.domain``: its id (``Z0123456789ABCDEFGHIJ``) or its name
    (``example.com``). With ``app.domain`` and no ``certificate_arn``: an ACM certificate validated by DNS in
    this zone (the deploy waits for issuance), alias A records to the ALB, HTTPS with HTTP redirecting.
    Required with ``app.domain`` unless ``certificate_arn`` is set."""
    log_retention_days: int = Field(default=30, json_schema_extra={"enum": list(LOG_RETENTION_DAYS)})
    """CloudWatch Logs retention (only the values CloudWatch accepts)."""
    autoscaling: EcsAutoscaling = Field(default_factory=EcsAutoscaling)
    alarms: EcsAlarms = Field(default_factory=EcsAlarms)
    container_insights: bool = True
    """CloudWatch Container Insights on the cluster."""
    alb_deletion_protection: bool = False
    """Deletion protection on the ALB."""
    load_balancer: EcsLoadBalancer | None = None
    """Attach to an existing ALB listener instead of creating an ALB (needs an existing ``vpc``; refuses
    ``zone``, ``certificate_arn``, ``vpc.public_subnet_ids``, ``alb_deletion_protection`` and
    ``app.request_timeout_s`` above 55: the listener's certificate, DNS and idle timeout are not ours)."""

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

    def _alerts_fit_the_target(self) -> None:
        refuse_gcp_channels(self)

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
        lb = self.ecs.load_balancer
        vpc = self.ecs.vpc
        if lb is None and isinstance(vpc, ExistingVpc) and not vpc.public_subnet_ids:
            raise ValueError("ecs.vpc.public_subnet_ids: required with vpc_id (at least 2, for the ALB)")
        if lb is not None:
            self._attach_rules(lb)
        domain_problem = aws_domain_problem(
            self.domain, self.ecs.zone, cert or ("attached" if lb else None), "ecs"
        )
        if domain_problem:
            raise ValueError(domain_problem)
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

    def _attach_rules(self, lb: EcsLoadBalancer) -> None:
        """``ecs.load_balancer``: what cannot go with an existing listener (see FargateServiceArgs)."""
        vpc = self.ecs.vpc
        if not isinstance(vpc, ExistingVpc):
            raise ValueError(
                "ecs.load_balancer: needs ecs.vpc.vpc_id and private_subnet_ids (the load balancer's VPC: "
                "the target group and the tasks must be in it)"
            )
        listener_region = lb.listener_arn.split(":")[3]
        if self.region and listener_region != self.region:
            raise ValueError(
                f"ecs.load_balancer.listener_arn: the listener is in {listener_region} but the stack deploys "
                f"to {self.region} (aws:region); a target group can only join a listener of its own region"
            )
        why = "the existing load balancer's listener"
        refused = {
            "ecs.vpc.public_subnet_ids": (
                bool(vpc.public_subnet_ids),
                "the existing load balancer has its own",
            ),
            "ecs.zone": (self.ecs.zone is not None, f"the certificate and DNS record belong to {why}"),
            "ecs.certificate_arn": (
                self.ecs.certificate_arn is not None,
                f"the certificate belongs to {why}",
            ),
            "ecs.alb_deletion_protection": (
                self.ecs.alb_deletion_protection,
                "that load balancer is not ours",
            ),
        }
        for key, (present, reason) in refused.items():
            if present:
                raise ValueError(f"{key}: not with ecs.load_balancer: {reason}")
        if self.domain is None and lb.path_pattern is None:
            raise ValueError(
                "ecs.load_balancer.path_pattern: required without app.domain: a rule without conditions "
                "would take every request of the listener"
            )
        if self.request_timeout_s > 55:
            raise ValueError(
                f"request_timeout_s: {self.request_timeout_s} s is above 55 s with ecs.load_balancer: a "
                "request may not outlast the load balancer's idle timeout (default 60 s, minus 5 s), which "
                "the deployer cannot raise on a load balancer it does not own"
            )

    @property
    def https(self) -> bool:
        """The ALB serves HTTPS: a certificate is given or one is made for ``app.domain`` in ``ecs.zone``."""
        return bool(self.ecs.certificate_arn or (self.domain and self.ecs.zone))

    @property
    def alert_topic_arn(self) -> str | None:
        """``alerts.sns_topic_arn``, else the deprecated ``ecs.alarms.sns_topic_arn``."""
        return self.alerts.sns_topic_arn or self.ecs.alarms.sns_topic_arn
