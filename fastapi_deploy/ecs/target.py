"""The ecs target's registration: everything the shared modules need to know about ECS Fargate + ALB."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from fastapi_deploy.ecs import checks, cost, mocks, tuning
from fastapi_deploy.ecs.config import EcsConfig
from fastapi_deploy.registry import ComponentDoc, PolicyFacts, SecretRules, Target, TuningRules

AWS_SECRETS = SecretRules(
    schemes=("ssm", "secretsmanager"),
    refused="{target} cannot read gcp: secrets",
    example="ssm:/{env}/{name}/{slug}",
)


def aws_ci_login(raw: Mapping[str, Any], app: Mapping[str, Any]) -> tuple[str, str]:
    """`infra plan --list`: an AWS target's CI job logs in to AWS, in the stack's ``aws:region``."""
    return "aws", str(raw.get("aws:region") or "us-east-1")


def _fargate_table() -> list[str]:
    from fastapi_deploy import config as config_mod

    lines = ["Fargate sizes (`ecs.cpu` → allowed `ecs.memory`, MiB):", "", "| cpu | memory |", "|---|---|"]
    for cpu in config_mod.FARGATE_COMBOS:
        choices = config_mod.fargate_memory_choices(cpu)
        text = ", ".join(map(str, choices)) if len(choices) <= 4 else f"{choices[0]}..{choices[-1]}"
        step = "" if len(choices) <= 4 else f" in {choices[1] - choices[0]} steps"
        lines.append(f"| {cpu} | {text}{step} |")
    return lines


def _mask_env(
    kind: str, inputs: dict[str, Any], secret: Callable[[str, str], bool], mask: str
) -> dict[str, Any]:
    """The task definition's containerDefinitions (a JSON string, as the engine receives it)."""
    if kind != "aws:ecs/taskDefinition:TaskDefinition" or not isinstance(
        inputs.get("containerDefinitions"), str
    ):
        return inputs
    try:
        containers = json.loads(inputs["containerDefinitions"])
    except ValueError:
        return inputs
    for container in containers if isinstance(containers, list) else []:
        for entry in container.get("environment") or []:
            if isinstance(entry, dict) and secret(str(entry.get("name")), str(entry.get("value", ""))):
                entry["value"] = mask
    return {**inputs, "containerDefinitions": json.dumps(containers)}


COMPONENT_DOC = ComponentDoc(
    package="fastapi_deploy.ecs",
    component="FargateService",
    args="FargateServiceArgs",
    children=(
        "`.service`, `.task_definition`, `.load_balancer`, `.target_group`, `.listeners`, `.cluster` "
        "(None with `cluster_arn`), `.logs`, `.execution_role`, `.task_role`, `.alb_security_group`, "
        "`.listener_rule` (`.load_balancer`/`.alb_security_group` None, `.listeners` empty and "
        "`.listener_rule` the forwarding rule with `listener_arn`), `.metrics_block`, "
        "`.task_security_group`, `.vpc` (only when created), `.scaling_target`, `.alarm_5xx`, `.alarm_p95`, "
        "`.alarm_unhealthy`, `.alarm_memory`, `.alarm_db_pool`, `.alarm_restarts`, `.tuning`, `.outputs`"
    ),
    example="""svc = FargateService(
    "shop",
    {
        "image": image.repo_digest,
        "port": 9000,
        "scaling": {"min": 2, "max": 6},
        "database": {"max_connections": 200},
        "secrets": {"DATABASE_URL": "secretsmanager:shop/db:url"},
        "health": {"liveness_path": "/livez", "readiness_path": "/readyz"},
        "vpc_id": vpc.id,
        "public_subnet_ids": vpc.public_subnet_ids,
        "private_subnet_ids": vpc.private_subnet_ids,
        "certificate_arn": cert.arn,
    },
)
pulumi.export("url", svc.url)""",
)


TARGET = Target(
    key="ecs",
    config_model=EcsConfig,
    section="ecs",
    deploy_module="fastapi_deploy.ecs.adapter",
    operations_module="fastapi_deploy.ecs.operate",
    component_doc=COMPONENT_DOC,
    release_gate="fastapi_deploy.ecs.gate",
    # Its stack outputs besides contract.COMMON_OUTPUTS (the component's output annotations are these).
    outputs=("region", "cluster_name", "service_name", "log_group", "target_group_arn", "load_balancer_dns"),
    tuning=TuningRules(
        deploy_surge=tuning.DEPLOY_SURGE,
        input_for=tuning.input_for,
        platform=tuning.platform,
        forwarded_allow_ips=tuning.FORWARDED_ALLOW_IPS,
        metrics_privately_scrapable=True,
        metrics_emf=True,
        extra_env=tuning.extra_env,
    ),
    cost_lines=cost.lines,
    price_provider="aws",
    cloud="aws",
    ci_login=aws_ci_login,
    secrets=AWS_SECRETS,
    doctor_checks=(checks.check_certificate,),
    verify_poller=checks.rollout,
    mask_env=_mask_env,
    plan_inputs={
        "aws:lb/loadBalancer:LoadBalancer": ("loadBalancerType", "internal", "idleTimeout"),
        "aws:lb/listener:Listener": ("protocol", "port", "sslPolicy"),
        "aws:lb/targetGroup:TargetGroup": ("targetType", "port", "deregistrationDelay"),
        "aws:ecs/cluster:Cluster": (),
        "aws:ecs/taskDefinition:TaskDefinition": ("cpu", "memory", "networkMode"),
        "aws:ecs/service:Service": ("desiredCount", "launchType", "healthCheckGracePeriodSeconds"),
    },
    mock_invokes=mocks.INVOKES,
    mock_resources=mocks.RESOURCES,
    policy=PolicyFacts(resource_types=("aws:ecs/service:Service", "aws:ecs/taskDefinition:TaskDefinition")),
    reference_extra=_fargate_table,
)
