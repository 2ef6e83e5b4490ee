"""Args of :class:`fastapi_deploy.cloudrun.CloudRunService` (TypedDicts).

No ``from __future__ import annotations``: the schema analyzer needs real types
(see fastapi_deploy/args.py).
"""

from typing import TypedDict

import pulumi

from fastapi_deploy.args import (
    DatabaseArgs,
    GcpAlertsArgs,
    HealthArgs,
    NotRequired,
    RuntimeOverridesArgs,
    ScalingArgs,
)


class CloudRunAlarmsArgs(TypedDict):
    """Cloud Monitoring alert policy thresholds."""

    http_5xx_ratio: NotRequired[float]
    """Share of requests answered 5xx (default 0.05)."""
    p95_latency_s: NotRequired[float]
    """p95 request latency in seconds (default 1.0)."""
    duration_s: NotRequired[int]
    """Seconds (a multiple of 60) the condition must hold before an incident opens (default 180)."""


class CloudRunServiceArgs(TypedDict):
    """Inputs of a Cloud Run v2 service with its own least-privilege service account."""

    image: pulumi.Input[str]
    """Image reference by digest (``REGION-docker.pkg.dev/P/REPO/IMG@sha256:...``)."""
    project: str
    """Google Cloud project the service is created in."""
    region: str
    """Cloud Run region, e.g. ``europe-west1``. Plain, not an Input: it is checked against Cloud Run's
    regions before anything registers (a misspelt region would otherwise fail only at ``pulumi up``), and
    the release migration (``database.migrate: release``) takes it as a plain value at construction."""
    cpu: NotRequired[float]
    """vCPUs per instance (default 1)."""
    memory: NotRequired[int]
    """MiB per instance (default 512)."""
    port: NotRequired[int]
    """Container port, 1024..65535 (default 8080)."""
    concurrency: NotRequired[int]
    """Requests per instance (default 80)."""
    environment: NotRequired[str]
    """APP_ENV: ``production`` (default), ``staging`` or ``development``."""
    env: NotRequired[dict[str, pulumi.Input[str]]]
    """Plain environment variables (the tuning's variables are added and win; Cloud Run's reserved names
    such as PORT are dropped)."""
    secrets: NotRequired[dict[str, str]]
    """Secret references by env name (``gcp:projects/P/secrets/S[/versions/V]`` or ``gcp:S``); Cloud Run
    injects the values and the service account may read exactly these secrets."""
    health: NotRequired[HealthArgs]
    """Liveness and readiness paths (startup and liveness probes)."""
    scaling: ScalingArgs
    """Instance count bounds."""
    database: NotRequired[DatabaseArgs]
    """Database connection budget."""
    request_timeout_s: NotRequired[int]
    """Longest request in seconds (default 30)."""
    max_request_body_bytes: NotRequired[int]
    """Largest request body the app accepts."""
    overrides: NotRequired[RuntimeOverridesArgs]
    """Overrides of the computed tuning (workers, pool)."""
    startup_cpu_boost: NotRequired[bool]
    """Extra CPU during start-up (default true)."""
    cpu_always_allocated: NotRequired[bool]
    """CPU outside requests (default false: billed per request)."""
    ingress: NotRequired[str]
    """``all`` (default), ``internal`` or ``internal-and-cloud-load-balancing``."""
    public: NotRequired[bool]
    """Let allUsers invoke the service (default false)."""
    domain: NotRequired[str]
    """Custom domain: a global external Application Load Balancer (serverless NEG, Google-managed
    certificate, HTTP redirecting to HTTPS) in front of the service, whose ingress then defaults to
    load-balancer traffic only. Needs ``public: true``."""
    zone: NotRequired[str]
    """Cloud DNS managed zone (its name) holding ``domain``: an A record to the load balancer is made."""
    cloud_sql_instance: NotRequired[str]
    """``PROJECT:REGION:INSTANCE`` mounted at /cloudsql (the service account gets cloudsql.client on it)."""
    service_account_email: NotRequired[pulumi.Input[str]]
    """An existing runtime service account to use instead of creating one (it is granted the secrets)."""
    vpc_network: NotRequired[pulumi.Input[str]]
    """VPC network for Direct VPC egress (with ``vpc_subnetwork``)."""
    vpc_subnetwork: NotRequired[pulumi.Input[str]]
    """Subnetwork for Direct VPC egress."""
    vpc_connector: NotRequired[pulumi.Input[str]]
    """A Serverless VPC Access connector (instead of Direct VPC egress)."""
    vpc_egress: NotRequired[str]
    """``PRIVATE_RANGES_ONLY`` (default with a VPC) or ``ALL_TRAFFIC``."""
    wait_for_release: NotRequired[bool]
    """``pulumi up`` waits until this release's revision serves all traffic and fails when Cloud Run kept
    traffic on an older one (default true; a dynamic resource polls the Cloud Run API)."""
    alarms: NotRequired[CloudRunAlarmsArgs]
    """Alert policy thresholds."""
    alerts: NotRequired[GcpAlertsArgs]
    """Who the alert policies notify."""
    description: NotRequired[str]
    """Description of the Cloud Run service (default ``<name> managed by Pulumi``)."""
    tags: NotRequired[dict[str, str]]
    """Labels on every resource (sanitised to GCP's label rules)."""
