"""The ECS release gate (fastapi_deploy/release_gate.py): `pulumi up` fails unless the service's PRIMARY
deployment is the task definition this deploy registered, its rolloutState is COMPLETED, running ==
desired, only one deployment is left and (with a target group) every registered target is healthy. A
circuit-breaker rollback leaves the PRIMARY on the previous task definition: the gate fails naming both.

Imported by the dynamic provider process (through ``Target.release_gate``): it captures nothing; clients
are built inside the poller.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pulumi

from fastapi_deploy.aws_clients import bounded_client
from fastapi_deploy.release_gate import MAX_TIMEOUT_S, GatePlatform, ReleaseGate, gate_props

#: Fargate provisioning + ENI attach + image pull + boot of a task, on top of the ECS health timings.
ECS_TASK_START_MARGIN_S = 180
#: What tests replace with a stubbed client: (service, region) -> boto3 client with bounded timeouts.
aws_client = bounded_client


def ecs_timeout_s(
    deregistration_delay_s: int,
    health_check_grace_s: int,
    lb_interval_s: int = 15,
    lb_healthy_threshold: int = 2,
) -> int:
    """How long an ECS rollout may take: a new task starts (margin), passes the grace period and the ALB's
    healthy threshold, then the old tasks drain for the deregistration delay. Bounded by MAX_TIMEOUT_S."""
    total = (
        ECS_TASK_START_MARGIN_S
        + health_check_grace_s
        + lb_interval_s * lb_healthy_threshold
        + deregistration_delay_s
    )
    return min(MAX_TIMEOUT_S, total)


def _poller(props: Mapping[str, Any]) -> Any:
    from fastapi_deploy.ops import rollout

    region = props["region"]
    return rollout.EcsRollout(
        aws_client("ecs", region),
        aws_client("elbv2", region),
        props["cluster"],
        props["service_name"],
        props.get("target_group_arn") or None,
        props.get("image") or None,
        expected_task_definition=props["release"],
    )


def _where(props: Mapping[str, Any]) -> str:
    return f"ECS service {props['service_name']} in cluster {props['cluster']} ({props['region']})"


PLATFORM = GatePlatform(
    required=("cluster", "service_name"),
    what="task definition",
    poller=_poller,
    where=_where,
    rolled_back_line=(
        "the service is on an older task definition: ECS rolled the release back (deployment "
        "circuit breaker or CloudWatch alarm rollback), or another deploy replaced it"
    ),
    rolled_back_hint=(
        "The platform is back on the previous release (nothing is broken for users). Fix the release, "
        "then run `pulumi up --refresh`: without the refresh Pulumi believes the service already runs "
        "the new task definition and does not deploy it again."
    ),
)


def ecs_gate(
    name: str,
    *,
    cluster: pulumi.Input[str],
    service_name: pulumi.Input[str],
    task_definition_arn: pulumi.Input[str],
    region: pulumi.Input[str],
    timeout_s: int,
    stack_resource: str,
    target_group_arn: pulumi.Input[str] | None = None,
    image: pulumi.Input[str] | None = None,
    poll_interval_s: float = 10,
    opts: pulumi.ResourceOptions | None = None,
) -> ReleaseGate:
    """Gate on an ECS service: the PRIMARY deployment must be ``task_definition_arn``, COMPLETED, healthy.

    ``cluster``: name or ARN; ``stack_resource``: the Pulumi name of the service (for the error);
    ``timeout_s``: :func:`ecs_timeout_s` of the stack's tuning. Put the service in ``opts.depends_on``.
    """
    props = gate_props("ecs", stack_resource, timeout_s, poll_interval_s)
    props.update(
        region=region,
        cluster=cluster,
        service_name=service_name,
        release=task_definition_arn,
        target_group_arn=target_group_arn,
        image=image,
    )
    return ReleaseGate(name, props, opts)
