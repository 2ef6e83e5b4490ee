"""The cloudrun target's stack-config models (``app.cloudrun`` and the ``target: cloudrun`` stack)."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from fastapi_deploy.config import (
    _GCP_MANAGED_ZONE,
    AppConfigBase,
    MemoryMiB,
    Scaling,
    _closest,
    _Model,
    parse_memory_mib,
)

# Cloud Run: request timeout up to 60 min; memory per CPU limits from
# https://cloud.google.com/run/docs/configuring/services/memory-limits (max 4 GiB at 1 vCPU, 8 at 2,
# 16 at 4, 24 at 6, 32 at 8).
CLOUDRUN_MAX_TIMEOUT_S = 3600
CLOUDRUN_CPUS = (1.0, 2.0, 4.0, 6.0, 8.0)
CLOUDRUN_MAX_MEMORY_MIB_PER_CPU = {1.0: 4096, 2.0: 8192, 4.0: 16384, 6.0: 24576, 8.0: 32768}
#: Source: https://cloud.google.com/run/docs/configuring/cpu ("minimum memory requirements for CPUs").
CLOUDRUN_MIN_MEMORY_MIB_PER_CPU = {4.0: 2048, 6.0: 4096, 8.0: 4096}


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


def gcp_region_problem(region: str) -> str | None:
    """Why ``region`` is not a Cloud Run region, or None."""
    if region in CLOUD_RUN_REGIONS:
        return None
    return (
        f"{region!r} is not a Cloud Run region{_closest(region, CLOUD_RUN_REGIONS)} "
        f"(list: {CLOUD_RUN_REGIONS_SOURCE})"
    )


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
    zone: str | None = None
    """Cloud DNS managed zone (its name, e.g. ``example-com``, in the service's project) that holds
    ``app.domain``: an A record to the load balancer's address is made there. Without it, point the domain
    at the address yourself; the Google-managed certificate is issued only once the domain resolves to it."""

    @field_validator("zone")
    @classmethod
    def _zone(cls, v: str | None) -> str | None:
        if v is not None and not _GCP_MANAGED_ZONE.match(v):
            raise ValueError(
                f"{v!r} is not a Cloud DNS managed zone name (1-63 lowercase letters, digits or '-', "
                "starting with a letter; the zone's name, not its DNS name)"
            )
        return v

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

    def _alerts_fit_the_target(self) -> None:
        a = self.alerts
        for key, given in (("webhook_url", a.webhook_url), ("sns_topic_arn", a.sns_topic_arn)):
            if given:
                raise ValueError(
                    f"alerts.{key}: Cloud Run alert policies notify Cloud Monitoring channels only; "
                    "create a channel for it (`gcloud beta monitoring channels create ...`) and list "
                    "it in app.alerts.gcp_notification_channels"
                )

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
        if self.cloudrun.zone and not self.domain:
            raise ValueError(
                "cloudrun.zone: set app.domain too (the hostname to create in this managed zone)"
            )
        if self.domain and self.cloudrun.ingress == "internal":
            raise ValueError(
                "cloudrun.ingress: 'internal' refuses the load balancer that serves app.domain; use "
                "internal-and-cloud-load-balancing (the default with a domain) or all"
            )
        if self.domain and not self.cloudrun.public:
            raise ValueError(
                "cloudrun.public: app.domain is served to the internet by a load balancer that does not "
                "authenticate; set public: true (ingress stays limited to the load balancer)"
            )
        return self

    @property
    def service_ingress(self) -> Literal["all", "internal", "internal-and-cloud-load-balancing"]:
        """``cloudrun.ingress``; with ``app.domain`` and no explicit ingress, load-balancer traffic only."""
        if self.domain and "ingress" not in self.cloudrun.model_fields_set:
            return "internal-and-cloud-load-balancing"
        return self.cloudrun.ingress

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
