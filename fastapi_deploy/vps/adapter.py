"""The program's side of the target (the component never reads the stack config): stack config ->
:class:`VpsServiceArgs`, from the spec plus the ``app.vps`` section;
the pre-deploy checks and the registry entry point."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import pulumi

from fastapi_deploy.config import ConfigError, StackConfigType, VpsConfig, VpsSettings
from fastapi_deploy.spec import DeploySpec, common_args
from fastapi_deploy.targets import DeployContext
from fastapi_deploy.tuning import RuntimeTuning
from fastapi_deploy.vps.component import VpsService

if TYPE_CHECKING:
    from fastapi_deploy.vps.args import VpsServiceArgs


def args_from(spec: DeploySpec, section: VpsSettings) -> VpsServiceArgs:
    """The component Args of this stack."""
    args = common_args(spec)
    # A named digest is passed as the plain string, so the component knows the registry host up front.
    args["image"] = spec.image_digest or spec.image
    args.update(
        host=section.host,
        domain=spec.domain,
        ssh_port=section.ssh_port,
        ssh_user=section.ssh_user,
        cpus=section.cpus,
        memory=section.memory,
    )
    for key in ("ssh_key_secret", "acme_email", "zone", "zone_provider"):
        if getattr(section, key) is not None:
            args[key] = getattr(section, key)
    if section.registry is not None:
        args["registry"] = section.registry.model_dump(exclude_none=True)
    if spec.repository_url is not None:
        args["repository_url"] = spec.repository_url
    if spec.providers.get("gcp:project"):
        args["gcp_project"] = str(spec.providers["gcp:project"])
    return cast("VpsServiceArgs", args)


# ------------------------------------------------ the program's side: stack config in, component out
def validate(cfg: StackConfigType, tuning: RuntimeTuning) -> None:
    """Checks run before anything is registered (also by the program, before the image)."""
    assert isinstance(cfg, VpsConfig)
    if tuning.container_health is None:
        raise ConfigError("VPS tuning must define container health timings")
    if tuning.graceful_timeout_s >= tuning.stop_timeout_s:
        raise ConfigError(
            f"GUNICORN_GRACEFUL_TIMEOUT {tuning.graceful_timeout_s}s must be below the stop timeout "
            f"{tuning.stop_timeout_s}s, or `docker stop` kills requests mid-drain"
        )


def deploy(ctx: DeployContext) -> dict[str, pulumi.Input[Any]]:
    """Registry entry point: the VpsService built from the spec; its outputs are the stack outputs."""
    from fastapi_deploy.vps.adapter import args_from

    svc = VpsService(ctx.name, args_from(ctx.spec, ctx.section), opts=ctx.opts, tuning=ctx.tuning)
    return dict(svc.outputs)
