"""The program's side of the target (the component never reads the stack config): stack config ->
:class:`LambdaServiceArgs`, from the spec plus the ``app.lambda`` section;
the pre-deploy checks and the registry entry point."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import pulumi

from fastapi_deploy.awslambda.component import LambdaService, build_function_env
from fastapi_deploy.config import ConfigError, LambdaConfig, LambdaSettings, StackConfigType
from fastapi_deploy.spec import DeploySpec, common_args
from fastapi_deploy.targets import DeployContext
from fastapi_deploy.tuning import RuntimeTuning, container_environment

if TYPE_CHECKING:
    from fastapi_deploy.awslambda.args import LambdaServiceArgs


def args_from(spec: DeploySpec, section: LambdaSettings) -> LambdaServiceArgs:
    """The component Args of this stack."""
    args = common_args(spec)
    del args["port"]  # the handler does not listen; PORT stays the tuning's
    args.update(
        reserved_concurrency=section.reserved_concurrency,
        memory_mb=section.memory_mb,
        architecture=section.architecture,
        front=section.front,
        throttling=section.throttling.model_dump(),
        log_retention_days=section.log_retention_days,
        alarms=section.alarms.model_dump(exclude_none=True),
        alerts={
            "emails": list(spec.alerts.emails),
            **({"webhook_url": spec.alerts.webhook_url} if spec.alerts.webhook_url else {}),
            **({"sns_topic_arn": spec.alerts.sns_topic_arn} if spec.alerts.sns_topic_arn else {}),
        },
        description=f"{spec.app_name} ({spec.stack}) FastAPI via Mangum, managed by Pulumi",
    )
    if spec.domain:
        args["domain"] = spec.domain
    for key in ("timeout_s", "provisioned_concurrency", "zone", "certificate_arn"):
        if getattr(section, key) is not None:
            args[key] = getattr(section, key)
    if section.vpc is not None:
        args["subnet_ids"] = list(section.vpc.subnet_ids)
        args["security_group_ids"] = list(section.vpc.security_group_ids)
    if spec.region:
        args["region"] = spec.region
    if spec.repository_url is not None:
        args["repository_url"] = spec.repository_url
    if spec.secret_kms_key_arns:
        args["secret_kms_key_arns"] = list(spec.secret_kms_key_arns)
    return cast("LambdaServiceArgs", args)


# ------------------------------------------------ the program's side: stack config in, component out
def function_env(config: LambdaConfig, tuning: RuntimeTuning) -> dict[str, str]:
    """The function env of a stack config (the program's pre-check; errors name ``app.env``)."""
    return build_function_env(container_environment(config, tuning), config.secret_refs(), "app.env")


def validate(cfg: StackConfigType, tuning: RuntimeTuning) -> None:
    """Checks run before anything is registered: reserved/oversized env, one-request-at-a-time tuning."""
    assert isinstance(cfg, LambdaConfig)
    function_env(cfg, tuning)
    if tuning.pool_class != "null" or tuning.workers != 1:
        raise ConfigError("Lambda tuning must be one worker with DB_POOL_CLASS=null (one request at a time)")


def deploy(ctx: DeployContext) -> dict[str, pulumi.Input[Any]]:
    """Registry entry point: the LambdaService built from the spec; its outputs are the stack outputs."""
    from fastapi_deploy.awslambda.adapter import args_from

    svc = LambdaService(ctx.name, args_from(ctx.spec, ctx.section), opts=ctx.opts, tuning=ctx.tuning)
    return dict(svc.outputs)
