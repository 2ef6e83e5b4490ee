"""The ecs target's registration: everything the shared modules need to know about ECS Fargate + ALB."""

from __future__ import annotations

from fastapi_deploy import contract
from fastapi_deploy.ecs import checks, cost, mocks, tuning
from fastapi_deploy.ecs.config import EcsConfig
from fastapi_deploy.registry import PolicyFacts, SecretRules, Target, TuningRules

AWS_SECRETS = SecretRules(
    schemes=("ssm", "secretsmanager"),
    refused="{target} cannot read gcp: secrets",
    example="ssm:/{env}/{name}/{slug}",
)


def _fargate_table() -> list[str]:
    from fastapi_deploy import config as config_mod

    lines = ["Fargate sizes (`ecs.cpu` → allowed `ecs.memory`, MiB):", "", "| cpu | memory |", "|---|---|"]
    for cpu in config_mod.FARGATE_COMBOS:
        choices = config_mod.fargate_memory_choices(cpu)
        text = ", ".join(map(str, choices)) if len(choices) <= 4 else f"{choices[0]}..{choices[-1]}"
        step = "" if len(choices) <= 4 else f" in {choices[1] - choices[0]} steps"
        lines.append(f"| {cpu} | {text}{step} |")
    return lines


TARGET = Target(
    key="ecs",
    config_model=EcsConfig,
    section="ecs",
    deploy_module="fastapi_deploy.ecs.component",
    outputs=contract.TARGET_OUTPUTS["ecs"],
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
    secrets=AWS_SECRETS,
    doctor_checks=(checks.check_certificate,),
    verify_poller=checks.rollout,
    mock_invokes=mocks.INVOKES,
    mock_resources=mocks.RESOURCES,
    policy=PolicyFacts(resource_types=("aws:ecs/service:Service", "aws:ecs/taskDefinition:TaskDefinition")),
    reference_extra=_fargate_table,
)
