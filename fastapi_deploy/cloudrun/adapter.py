"""Stack config -> :class:`CloudRunServiceArgs`: the spec plus the ``app.cloudrun`` section."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from fastapi_deploy.config import CloudRunSettings
from fastapi_deploy.spec import DeploySpec, common_args

if TYPE_CHECKING:
    from fastapi_deploy.cloudrun.args import CloudRunServiceArgs


def args_from(spec: DeploySpec, section: CloudRunSettings) -> CloudRunServiceArgs:
    """The component Args of this stack (project/region: the section's, else the stack's gcp:*)."""
    args = common_args(spec)
    args.update(
        project=spec.project,
        region=spec.region,
        scaling=_scaling(spec),
        cpu=section.cpu,
        memory=section.memory,
        concurrency=section.concurrency,
        startup_cpu_boost=section.startup_cpu_boost,
        cpu_always_allocated=section.cpu_always_allocated,
        ingress=section.ingress,
        public=section.public,
        alarms=section.alarms.model_dump(),
        alerts={
            "emails": list(spec.alerts.emails),
            "gcp_notification_channels": list(spec.alerts.gcp_notification_channels),
        },
        description=f"{spec.app_name} ({spec.stack}) managed by Pulumi",
    )
    if section.cloud_sql_instance:
        args["cloud_sql_instance"] = section.cloud_sql_instance
    return cast("CloudRunServiceArgs", args)


def _scaling(spec: DeploySpec) -> dict[str, int]:
    assert spec.scaling is not None
    return spec.scaling.model_dump(exclude_none=True)
