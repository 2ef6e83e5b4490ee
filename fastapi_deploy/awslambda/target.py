"""The lambda target's registration: the same image on AWS Lambda through Mangum."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi_deploy.awslambda import checks, cost, mocks, tuning
from fastapi_deploy.awslambda.config import LambdaConfig
from fastapi_deploy.ecs.target import AWS_SECRETS, aws_ci_login
from fastapi_deploy.registry import ComponentDoc, PolicyFacts, Target, TuningRules


def _mask_env(
    kind: str, inputs: dict[str, Any], secret: Callable[[str, str], bool], mask: str
) -> dict[str, Any]:
    """The function's environment.variables."""
    if kind != "aws:lambda/function:Function":
        return inputs
    variables = (inputs.get("environment") or {}).get("variables")
    if not isinstance(variables, dict):
        return inputs
    masked = {k: mask if secret(k, str(v)) else v for k, v in variables.items()}
    return {**inputs, "environment": {**inputs["environment"], "variables": masked}}


COMPONENT_DOC = ComponentDoc(
    package="fastapi_deploy.awslambda",
    component="LambdaService",
    args="LambdaServiceArgs",
    children=(
        "`.function`, `.alias` (with provisioned concurrency), `.role` (None with `role_arn`), `.logs`, "
        "`.api` / `.function_url`, `.alarm_errors`, `.alarm_throttles`, `.alarm_duration`, `.tuning`, "
        "`.outputs`"
    ),
    example="""svc = LambdaService(
    "shop",
    {
        "image": image.repo_digest,
        "reserved_concurrency": 20,
        "database": {"max_connections": 100},
        "secrets": {"DATABASE_URL": "ssm:/shop/db"},
        "subnet_ids": private_subnet_ids,
        "security_group_ids": [sg.id],
    },
)""",
)


TARGET = Target(
    key="lambda",
    config_model=LambdaConfig,
    section="lambda",
    deploy_module="fastapi_deploy.awslambda.adapter",
    operations_module="fastapi_deploy.awslambda.operate",
    component_doc=COMPONENT_DOC,
    release_gate="fastapi_deploy.awslambda.gate",
    # Its stack outputs besides contract.COMMON_OUTPUTS (the component's output annotations are these).
    outputs=("region", "function_name", "function_arn", "alias_name", "log_group"),
    tuning=TuningRules(
        deploy_surge=tuning.DEPLOY_SURGE,
        input_for=tuning.input_for,
        platform=tuning.platform,
        workers=tuning.workers,
        pool=tuning.pool,
        # No proxy in front of a socket; Mangum takes the client address from the event.
        forwarded_allow_ips=None,
        metrics_emf=True,
        # The handler process is not started by gunicorn; its GC is left to app/lambda_handler.py.
        gunicorn=False,
    ),
    cost_lines=cost.lines,
    price_provider="aws",
    # Every cold start would pay for a migration.
    migrate_default="manual",
    cloud="aws",
    ci_login=aws_ci_login,
    secrets=AWS_SECRETS,
    ecr_only=True,
    verify_poller=checks.rollout,
    mask_env=_mask_env,
    plan_inputs={
        "aws:lambda/function:Function": (
            "packageType",
            "memorySize",
            "timeout",
            "reservedConcurrentExecutions",
        ),
        "aws:apigatewayv2/api:Api": ("protocolType",),
    },
    mock_invokes=mocks.INVOKES,
    mock_resources=mocks.RESOURCES,
    policy=PolicyFacts(resource_types=("aws:lambda/function:Function",)),
)
