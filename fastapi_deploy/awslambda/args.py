"""Args of :class:`fastapi_deploy.awslambda.LambdaService` (TypedDicts).

No ``from __future__ import annotations``: the schema analyzer needs real types
(see fastapi_deploy/args.py).
"""

from collections.abc import Sequence
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
    wait_for_release: NotRequired[bool]
    """``pulumi up`` waits until the function (or its live alias) serves this deploy's version and fails
    otherwise (default true; a dynamic resource polls the Lambda API)."""
    domain: NotRequired[str]
    """Custom domain of the HTTP API (needs ``front: http_api``): an API Gateway custom domain with a
    regional certificate, the API mapping and, with ``zone``, alias A/AAAA records."""
    zone: NotRequired[str]
    """Route 53 hosted zone (id or name) of ``domain``: the certificate is validated by DNS there.
    Required with ``domain`` unless ``certificate_arn`` is given."""
    certificate_arn: NotRequired[pulumi.Input[str]]
    """An issued regional ACM certificate for ``domain``; given, none is created. An Output (another
    resource's ARN) is taken as is; a plain ARN is checked before anything registers: an ACM certificate in
    the component's region and partition (``region``, else ``aws:region`` of the default provider)."""
    environment: NotRequired[str]
    """APP_ENV: ``production`` (default), ``staging`` or ``development``."""
    env: NotRequired[dict[str, pulumi.Input[str]]]
    """Plain environment variables (the tuning's variables are added and win)."""
    secrets: NotRequired[dict[str, str]]
    """Secret references by env name (``ssm:`` / ``secretsmanager:``); the function resolves them at cold
    start and may read exactly these."""
    secret_kms_key_arns: NotRequired[pulumi.Input[Sequence[pulumi.Input[str]]]]
    """Customer-managed KMS keys of the referenced secrets: a list (entries may be Outputs) or an Output of
    a list; plain ARNs must be KMS keys in the component's region."""
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
    subnet_ids: NotRequired[pulumi.Input[Sequence[pulumi.Input[str]]]]
    """Subnets (with NAT egress, at least 2 AZs) to run the function in; needs ``security_group_ids``. A
    list (entries may be Outputs) or an Output of a list such as awsx's ``vpc.private_subnet_ids``: count
    and id shapes are checked before anything registers when plain, else when the Output resolves (at
    deploy, failing the function with the same message; a preview of a still unknown list skips it)."""
    security_group_ids: NotRequired[pulumi.Input[Sequence[pulumi.Input[str]]]]
    """Security groups of the function in the VPC (at least one); a list or an Output of one, checked like
    ``subnet_ids``."""
    role_arn: NotRequired[pulumi.Input[str]]
    """An existing execution role to use instead of creating one (no policies are attached to it); a plain
    ARN must be an IAM role of the component's partition."""
    repository_url: NotRequired[pulumi.Input[str]]
    """URL of the ECR repository the image is in, when this program owns it: the component adds the
    repository policy that lets exactly this function pull (before the function is created)."""
    region: NotRequired[str]
    """AWS region (default: the provider's, looked up). Plain: it is the region plain ARN Args are checked
    against before anything registers, and it must agree with ``aws:region`` when the default provider
    applies (the function is created in the provider's region)."""
    description: NotRequired[str]
    """Function description (default ``<name> FastAPI via Mangum``)."""
    alarms: NotRequired[LambdaAlarmsArgs]
    """Alarm thresholds."""
    alerts: NotRequired[AwsAlertsArgs]
    """Who the alarms notify."""
    tags: NotRequired[dict[str, str]]
    """Tags on every resource."""
