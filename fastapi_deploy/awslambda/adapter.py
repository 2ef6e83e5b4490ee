"""Stack config -> :class:`LambdaServiceArgs`: the spec plus the ``app.lambda`` section."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from fastapi_deploy.config import LambdaSettings
from fastapi_deploy.spec import DeploySpec, common_args

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
    for key in ("timeout_s", "provisioned_concurrency"):
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
