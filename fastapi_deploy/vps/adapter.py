"""Stack config -> :class:`VpsServiceArgs`: the spec plus the ``app.vps`` section."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from fastapi_deploy.config import VpsSettings
from fastapi_deploy.spec import DeploySpec, common_args

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
    for key in ("ssh_key_secret", "acme_email"):
        if getattr(section, key) is not None:
            args[key] = getattr(section, key)
    if section.registry is not None:
        args["registry"] = section.registry.model_dump(exclude_none=True)
    if spec.repository_url is not None:
        args["repository_url"] = spec.repository_url
    if spec.providers.get("gcp:project"):
        args["gcp_project"] = str(spec.providers["gcp:project"])
    return cast("VpsServiceArgs", args)
