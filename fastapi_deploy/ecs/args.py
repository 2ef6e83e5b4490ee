"""Args of :class:`fastapi_deploy.ecs.FargateService` (TypedDicts).

No ``from __future__ import annotations``: the schema analyzer needs real types
(see fastapi_deploy/args.py).
"""

from collections.abc import Sequence
from typing import TypedDict

import pulumi

from fastapi_deploy.args import (
    AwsAlertsArgs,
    DatabaseArgs,
    HealthArgs,
    NotRequired,
    RuntimeOverridesArgs,
    ScalingArgs,
)


class EcsNewVpcArgs(TypedDict):
    """A VPC the component creates: public + private subnets over ``az_count`` AZs."""

    cidr: NotRequired[str]
    """IPv4 CIDR with a prefix between /16 and /22 (default ``10.0.0.0/16``)."""
    az_count: NotRequired[int]
    """Availability zones, 2..6 (default 2)."""
    nat_gateways: NotRequired[str]
    """``single`` (default, one NAT gateway) or ``per_az``."""


class EcsAutoscalingArgs(TypedDict):
    """Target tracking between ``scaling.min`` and ``scaling.max``."""

    cpu_target_percent: NotRequired[float]
    """Average CPU the target tracking keeps (default 60)."""
    requests_per_target: NotRequired[int]
    """ALBRequestCountPerTarget per minute (default 1000)."""
    scale_in_cooldown_s: NotRequired[int]
    """Seconds between scale-in steps (default 300)."""
    scale_out_cooldown_s: NotRequired[int]
    """Seconds between scale-out steps (default 60)."""


class EcsAlarmsArgs(TypedDict):
    """CloudWatch alarm thresholds (evaluated per minute)."""

    http_5xx_per_minute: NotRequired[int]
    """Target 5xx responses per minute (default 10); also gates the deployment rollback."""
    p95_response_time_s: NotRequired[float]
    """p95 target response time in seconds (default 1.0)."""
    unhealthy_hosts: NotRequired[int]
    """Unhealthy targets behind the ALB (default 1)."""
    evaluation_periods: NotRequired[int]
    """Minutes over the threshold before an alarm fires (default 3)."""
    memory_percent: NotRequired[float]
    """Task memory utilization in percent (default 90)."""
    db_pool_usage_ratio: NotRequired[float]
    """DB pool usage from the app's EMF metrics (default 0.9)."""
    worker_restarts: NotRequired[int]
    """Worker restarts per minute from the app's EMF metrics (default 3)."""
    emf_namespace: NotRequired[str]
    """CloudWatch namespace of the app's EMF metrics (default ``FastAPIDeploy``)."""


class FargateServiceArgs(TypedDict):
    """Inputs of an ECS Fargate service behind an ALB."""

    image: pulumi.Input[str]
    """Image reference, preferably by digest (``REGISTRY/REPO@sha256:...``)."""
    cpu: NotRequired[int]
    """Task CPU units (256, 512, 1024, 2048, 4096, 8192, 16384; default 512)."""
    memory: NotRequired[int]
    """Task memory in MiB; one of the sizes Fargate allows with ``cpu`` (default 1024)."""
    port: NotRequired[int]
    """Container port, 1024..65535 (default 8000)."""
    environment: NotRequired[str]
    """APP_ENV: ``production`` (default), ``staging`` or ``development``."""
    env: NotRequired[dict[str, pulumi.Input[str]]]
    """Plain environment variables (the tuning's variables are added and win)."""
    secrets: NotRequired[dict[str, str]]
    """Secret references by env name (``ssm:/path`` or ``secretsmanager:name[:json-key]``); ECS injects
    the values, they never reach the task definition or the state."""
    secret_kms_key_arns: NotRequired[pulumi.Input[Sequence[pulumi.Input[str]]]]
    """Customer-managed KMS keys the referenced secrets are encrypted with (decrypt is granted). A list (its
    entries may be Outputs) or an Output of a list; plain ARNs are checked: KMS keys in the component's
    region."""
    health: NotRequired[HealthArgs]
    """Liveness and readiness paths."""
    scaling: ScalingArgs
    """Task count bounds."""
    database: NotRequired[DatabaseArgs]
    """Database connection budget."""
    request_timeout_s: NotRequired[int]
    """Longest request in seconds (default 30); drives the gunicorn and drain timeouts."""
    max_request_body_bytes: NotRequired[int]
    """Largest request body the app accepts."""
    overrides: NotRequired[RuntimeOverridesArgs]
    """Overrides of the computed tuning (workers, pool)."""
    domain: NotRequired[str]
    """Public host name (the URL output). With ``zone``: the deployer makes its certificate and records."""
    zone: NotRequired[str]
    """Route 53 hosted zone (id or name) of ``domain``: an ACM certificate validated by DNS there (awaited),
    alias A records to the ALB, HTTPS with HTTP redirecting. Required with ``domain`` unless
    ``certificate_arn`` is given."""
    certificate_arn: NotRequired[pulumi.Input[str]]
    """ACM certificate for HTTPS on the ALB (HTTP then redirects); given, none is created. Without it or
    ``domain`` + ``zone`` the ALB serves plain HTTP. A plain ARN is checked before anything registers: an
    ACM certificate in the component's region and partition (the region is known when the default AWS
    provider applies: ``aws:region``); an Output is taken as is."""
    vpc: NotRequired[EcsNewVpcArgs]
    """Settings of the VPC the component creates (ignored when ``vpc_id`` is given)."""
    vpc_id: NotRequired[pulumi.Input[str]]
    """An existing VPC to deploy into (with ``public_subnet_ids`` and ``private_subnet_ids``)."""
    public_subnet_ids: NotRequired[pulumi.Input[Sequence[pulumi.Input[str]]]]
    """Existing public subnets for the ALB (at least 2 AZs): a list (entries may be Outputs) or an Output of
    a list such as awsx's ``vpc.public_subnet_ids``. Count, id shapes and repeats are checked before
    anything registers when the list is plain, else when the Output resolves (at deploy, failing the ALB
    with the same message; a preview of a still unknown list skips it)."""
    private_subnet_ids: NotRequired[pulumi.Input[Sequence[pulumi.Input[str]]]]
    """Existing private subnets with NAT egress for the tasks (at least 2 AZs); a list or an Output of one,
    checked like ``public_subnet_ids``."""
    cluster_arn: NotRequired[pulumi.Input[str]]
    """An existing ECS cluster to run in (default: the component creates one); a plain ARN must be an ECS
    cluster in the component's region."""
    task_security_group_ids: NotRequired[pulumi.Input[Sequence[pulumi.Input[str]]]]
    """Extra security groups for the tasks (e.g. one the database accepts), beside the component's own; a
    list or an Output of one (``sg-`` ids, no repeats: checked when known)."""
    repository_arn: NotRequired[pulumi.Input[str]]
    """ECR repository ARN the image is pulled from (pull is granted on it; derived from an ECR image
    reference when unset); a plain ARN must be an ECR repository of the component's partition (any
    region)."""
    log_retention_days: NotRequired[int]
    """CloudWatch Logs retention (default 30)."""
    autoscaling: NotRequired[EcsAutoscalingArgs]
    """Target tracking settings."""
    alarms: NotRequired[EcsAlarmsArgs]
    """Alarm thresholds."""
    alerts: NotRequired[AwsAlertsArgs]
    """Who the alarms notify."""
    container_insights: NotRequired[bool]
    """CloudWatch Container Insights on a created cluster (default true)."""
    alb_deletion_protection: NotRequired[bool]
    """Deletion protection on the ALB (default false)."""
    listener_arn: NotRequired[pulumi.Input[str]]
    """An existing ALB listener (usually HTTPS; a plain ARN must be an application load balancer listener in
    the component's region) to attach to instead of creating an ALB: then no ALB, no
    listeners and no ALB security group are made, only a target group and listener rules forwarding
    ``host_header`` (default ``domain``) and/or ``path_pattern`` to it at ``listener_rule_priority``.
    Needs ``vpc_id`` (the ALB's VPC), ``private_subnet_ids``, ``load_balancer_security_group_id`` and
    ``listener_rule_priority``; refuses ``zone``, ``certificate_arn``, ``public_subnet_ids`` and a
    ``request_timeout_s`` above 55 (the listener's certificate, DNS and idle timeout are not ours)."""
    load_balancer_security_group_id: NotRequired[pulumi.Input[str]]
    """Security group of the existing load balancer (with ``listener_arn``): the tasks accept the container
    port from it only. Its egress must allow that port to the tasks."""
    listener_rule_priority: NotRequired[int]
    """Priority of the forwarding rule on ``listener_arn``, 2..50000, unique on that listener (required
    with it; no automatic choice: the listener's other rules belong to others, and the priority is the
    order in which they are matched). The ``/metrics`` block rule takes the priority just before it."""
    host_header: NotRequired[str]
    """Host header the forwarding rule matches on ``listener_arn`` (default ``domain``)."""
    path_pattern: NotRequired[str]
    """Path pattern the forwarding rule matches on ``listener_arn`` (``*``/``?`` wildcards; the app gets
    the full path, nothing is stripped)."""
    wait_for_release: NotRequired[bool]
    """``pulumi up`` waits until the service runs this release and fails when ECS rolled it back (default
    true): a dynamic resource polls ECS, so the Pulumi CLI's Python needs this package and boto3."""
    tags: NotRequired[dict[str, str]]
    """Tags on every resource."""
