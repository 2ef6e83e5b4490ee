"""Args of :class:`fastapi_deploy.awslambda.LambdaService` (TypedDicts).

No ``from __future__ import annotations``: the schema analyzer needs real types
(see fastapi_deploy/args.py).
"""

from typing import TypedDict

import pulumi

from fastapi_deploy.args import AwsAlertsArgs, DatabaseArgs, HealthArgs, NotRequired, RuntimeOverridesArgs


class LambdaThrottlingArgs(TypedDict):
    """HTTP API stage throttling."""

    rate_limit: NotRequired[float]
    """Steady-state requests per second (default 100)."""
    burst_limit: NotRequired[int]
    """Burst requests (default 200)."""


class LambdaAlarmsArgs(TypedDict):
    """CloudWatch alarms on the function (per minute)."""

    errors_per_minute: NotRequired[int]
    """Invocation errors per minute (default 5)."""
    throttles_per_minute: NotRequired[int]
    """Throttled invocations per minute (default 1)."""
    p95_duration_s: NotRequired[float]
    """p95 duration (default 80 % of the timeout)."""
    evaluation_periods: NotRequired[int]
    """Minutes over the threshold before an alarm fires (default 3)."""


class LambdaServiceArgs(TypedDict):
    """Inputs of a container-image Lambda function behind an HTTP API (or a function URL)."""

    image: pulumi.Input[str]
    """ECR image reference by digest (Lambda pulls from ECR in the same account/region only)."""
    reserved_concurrency: int
    """Reserved concurrent executions: the replica bound the database budget is checked against."""
    memory_mb: NotRequired[int]
    """Function memory in MB, 128..10240 (default 1024; CPU scales with it)."""
    timeout_s: NotRequired[int]
    """Function timeout in seconds (default ``request_timeout_s``)."""
    architecture: NotRequired[str]
    """``x86_64`` (default) or ``arm64``."""
    provisioned_concurrency: NotRequired[int]
    """Warm instances on the live alias (default none)."""
    front: NotRequired[str]
    """``http_api`` (default) or ``function_url``."""
    environment: NotRequired[str]
    """APP_ENV: ``production`` (default), ``staging`` or ``development``."""
    env: NotRequired[dict[str, pulumi.Input[str]]]
    """Plain environment variables (the tuning's variables are added and win)."""
    secrets: NotRequired[dict[str, str]]
    """Secret references by env name (``ssm:`` / ``secretsmanager:``); the function resolves them at cold
    start and may read exactly these."""
    secret_kms_key_arns: NotRequired[list[str]]
    """Customer-managed KMS keys of the referenced secrets."""
    health: NotRequired[HealthArgs]
    """Liveness and readiness paths."""
    database: NotRequired[DatabaseArgs]
    """Database connection budget."""
    request_timeout_s: NotRequired[int]
    """Longest request in seconds (default 30)."""
    max_request_body_bytes: NotRequired[int]
    """Largest request body the app accepts."""
    overrides: NotRequired[RuntimeOverridesArgs]
    """Overrides of the computed tuning (pool)."""
    throttling: NotRequired[LambdaThrottlingArgs]
    """HTTP API throttling."""
    log_retention_days: NotRequired[int]
    """CloudWatch Logs retention (default 30)."""
    subnet_ids: NotRequired[list[pulumi.Input[str]]]
    """Subnets (with NAT egress, at least 2 AZs) to run the function in; needs ``security_group_ids``."""
    security_group_ids: NotRequired[list[pulumi.Input[str]]]
    """Security groups of the function in the VPC."""
    role_arn: NotRequired[pulumi.Input[str]]
    """An existing execution role to use instead of creating one (no policies are attached to it)."""
    repository_url: NotRequired[pulumi.Input[str]]
    """URL of the ECR repository the image is in, when this program owns it: the component adds the
    repository policy that lets exactly this function pull (before the function is created)."""
    region: NotRequired[str]
    """AWS region (default: the provider's, looked up)."""
    description: NotRequired[str]
    """Function description (default ``<name> FastAPI via Mangum``)."""
    alarms: NotRequired[LambdaAlarmsArgs]
    """Alarm thresholds."""
    alerts: NotRequired[AwsAlertsArgs]
    """Who the alarms notify."""
    tags: NotRequired[dict[str, str]]
    """Tags on every resource."""
