"""The program's side of the target (the component never reads the stack config): stack config ->
:class:`FargateServiceArgs`, from the spec plus the ``app.ecs`` section;
the pre-deploy checks and the registry entry point."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import pulumi

from fastapi_deploy.config import EcsSettings, ExistingVpc
from fastapi_deploy.ecs.component import FargateService
from fastapi_deploy.spec import DeploySpec, common_args
from fastapi_deploy.targets import DeployContext

if TYPE_CHECKING:
    from fastapi_deploy.ecs.args import FargateServiceArgs


def args_from(spec: DeploySpec, section: EcsSettings) -> FargateServiceArgs:
    """The component Args of this stack (the component validates them again, naming the Arg)."""
    args = common_args(spec)
    args.update(
        scaling=_scaling(spec),
        cpu=section.cpu,
        memory=section.memory,
        log_retention_days=section.log_retention_days,
        autoscaling=section.autoscaling.model_dump(),
        alarms=section.alarms.model_dump(exclude={"sns_topic_arn"}),
        container_insights=section.container_insights,
        alb_deletion_protection=section.alb_deletion_protection,
        alerts={
            "emails": list(spec.alerts.emails),
            **({"webhook_url": spec.alerts.webhook_url} if spec.alerts.webhook_url else {}),
            # app.alerts.sns_topic_arn, else its deprecated alias app.ecs.alarms.sns_topic_arn.
            **(
                {"sns_topic_arn": topic}
                if (topic := spec.alerts.sns_topic_arn or section.alarms.sns_topic_arn)
                else {}
            ),
        },
    )
    if section.certificate_arn:
        args["certificate_arn"] = section.certificate_arn
    if spec.domain:
        args["domain"] = spec.domain
    if section.zone:
        args["zone"] = section.zone
    if spec.secret_kms_key_arns:
        args["secret_kms_key_arns"] = list(spec.secret_kms_key_arns)
    if spec.repository_arn is not None:
        args["repository_arn"] = spec.repository_arn
    if isinstance(section.vpc, ExistingVpc):
        args.update(vpc_id=section.vpc.vpc_id, private_subnet_ids=list(section.vpc.private_subnet_ids))
        if section.vpc.public_subnet_ids:
            args["public_subnet_ids"] = list(section.vpc.public_subnet_ids)
    else:
        args["vpc"] = section.vpc.model_dump()
    lb = section.load_balancer
    if lb is not None:  # app.ecs.load_balancer: attach to that listener (no ALB of our own)
        args.update(
            listener_arn=lb.listener_arn,
            load_balancer_security_group_id=lb.security_group_id,
            listener_rule_priority=lb.priority,
        )
        if lb.path_pattern is not None:
            args["path_pattern"] = lb.path_pattern
        args.pop("alb_deletion_protection", None)
    return cast("FargateServiceArgs", args)


def _scaling(spec: DeploySpec) -> dict[str, int]:
    assert spec.scaling is not None
    return spec.scaling.model_dump(exclude_none=True)


# ------------------------------------------------ the program's side: stack config in, component out
def deploy(ctx: DeployContext) -> dict[str, pulumi.Input[Any]]:
    """Registry entry point: the FargateService built from the spec; its outputs are the stack outputs."""
    from fastapi_deploy.ecs.adapter import args_from

    svc = FargateService(ctx.name, args_from(ctx.spec, ctx.section), opts=ctx.opts, tuning=ctx.tuning)
    return dict(svc.outputs)
