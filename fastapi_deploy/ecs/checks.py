"""The ecs target's `infra doctor` and `infra verify` checks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi_deploy.doctor import DoctorContext
    from fastapi_deploy.ecs.config import EcsConfig
    from fastapi_deploy.ops.findings import Finding
    from fastapi_deploy.ops.rollout import Poller
    from fastapi_deploy.verify import Clients, Login


def check_certificate(ctx: DoctorContext) -> list[Finding]:
    """The ALB's certificate is issued, in the region, and covers the domain (or: plain HTTP only)."""
    from fastapi_deploy.ops import aws_checks
    from fastapi_deploy.ops.findings import warning

    cfg: EcsConfig = ctx.cfg  # type: ignore[assignment]
    if not ctx.aws_ok:
        return []
    region = ctx.aws_region
    if cfg.ecs.load_balancer is not None:  # the existing listener's certificate is its owner's
        return []
    if cfg.ecs.certificate_arn and region:
        return aws_checks.check_acm_certificate(
            ctx.clients.aws, cfg.ecs.certificate_arn, cfg.domain, region, "app.ecs.certificate_arn"
        )
    if not cfg.https:  # with app.domain + app.ecs.zone the deploy makes the certificate
        return [
            warning(
                "acm-certificate",
                "no certificate: the load balancer serves plain HTTP only",
                "app.ecs.certificate_arn",
                f"aws acm request-certificate --domain-name {cfg.domain or '<domain>'} "
                f"--validation-method DNS --region {region or '<region>'}",
            )
        ]
    return []


def rollout(outputs: Mapping[str, Any], clients: Clients, login: Login) -> Poller:
    """`infra verify`: the ECS deployment rolled out and the target group's targets are healthy."""
    from fastapi_deploy.ops.rollout import EcsRollout

    region = outputs["region"]
    return EcsRollout(
        clients.aws_client("ecs", region),
        clients.aws_client("elbv2", region),
        outputs["cluster_name"],
        outputs["service_name"],
        outputs.get("target_group_arn"),
        outputs.get("image"),
    )
