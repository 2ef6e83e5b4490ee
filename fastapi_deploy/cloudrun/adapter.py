"""The program's side of the target (the component never reads the stack config): stack config ->
:class:`CloudRunServiceArgs`, from the spec plus the ``app.cloudrun`` section;
the pre-deploy checks and the registry entry point."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, cast

import pulumi
import pulumi_gcp as gcp

from fastapi_deploy.cloudrun.component import CLOUDRUN_SIGTERM_GRACE_S, CloudRunService, _label
from fastapi_deploy.config import CloudRunConfig, CloudRunSettings, ConfigError, StackConfigType
from fastapi_deploy.image import Registry
from fastapi_deploy.spec import DeploySpec, common_args
from fastapi_deploy.targets import DeployContext, RegistryContext
from fastapi_deploy.tuning import RuntimeTuning

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
        public=section.public,
        alarms=section.alarms.model_dump(),
        alerts={
            "emails": list(spec.alerts.emails),
            "gcp_notification_channels": list(spec.alerts.gcp_notification_channels),
        },
        description=f"{spec.app_name} ({spec.stack}) managed by Pulumi",
    )
    if "ingress" in section.model_fields_set:  # unset: the component's default (LB-only with a domain)
        args["ingress"] = section.ingress
    if spec.domain:
        args["domain"] = spec.domain
    if section.zone:
        args["zone"] = section.zone
    if section.cloud_sql_instance:
        args["cloud_sql_instance"] = section.cloud_sql_instance
    return cast("CloudRunServiceArgs", args)


def _scaling(spec: DeploySpec) -> dict[str, int]:
    assert spec.scaling is not None
    return spec.scaling.model_dump(exclude_none=True)


# ------------------------------------------------ the program's side: stack config in, component out
def validate(cfg: StackConfigType, tuning: RuntimeTuning) -> None:
    """Checks run before anything is registered (also by the program, before the registry and image)."""
    assert isinstance(cfg, CloudRunConfig)
    if tuning.graceful_timeout_s >= CLOUDRUN_SIGTERM_GRACE_S:
        # A drain longer than the grace ends in SIGKILL mid-request.
        raise ConfigError(
            f"GUNICORN_GRACEFUL_TIMEOUT {tuning.graceful_timeout_s}s must be below Cloud Run's "
            f"{CLOUDRUN_SIGTERM_GRACE_S}s SIGTERM grace"
        )


def _repo_id(name: str) -> str:
    # Artifact Registry repository ids: lowercase letters, digits, '-', start with a letter, <= 63 chars.
    base = re.sub(r"[^a-z0-9-]", "-", name.lower()).strip("-")[:63].rstrip("-")
    return base if base[:1].isalpha() else f"r-{base}"[:63]


def image_registry(ctx: RegistryContext) -> Registry:
    """An Artifact Registry Docker repository in the service's region (immutable tags, cleanup policies).

    Cloud Run pulls from Artifact Registry in the same project without extra grants (the Cloud Run
    service agent has reader access), so no cross-cloud pull credentials are needed.
    """
    cfg = ctx.cfg
    assert isinstance(cfg, CloudRunConfig)
    project, region = cfg.gcp_project, cfg.gcp_region
    repo_id = _repo_id(ctx.name)
    repo = gcp.artifactregistry.Repository(
        f"{ctx.name}-repo",
        project=project,
        location=region,
        repository_id=repo_id,
        format="DOCKER",
        description=f"Images of {cfg.name}, deployed by digest (managed by Pulumi)",
        docker_config=gcp.artifactregistry.RepositoryDockerConfigArgs(immutable_tags=True),
        # Delete images older than 30 days unless they are among the newest keep_images (the running digest
        # always is), so the repository does not grow forever ($0.10/GB-month).
        cleanup_policy_dry_run=False,
        cleanup_policies=[
            gcp.artifactregistry.RepositoryCleanupPolicyArgs(
                id="keep-recent",
                action="KEEP",
                most_recent_versions=gcp.artifactregistry.RepositoryCleanupPolicyMostRecentVersionsArgs(
                    keep_count=cfg.image.keep_images
                ),
            ),
            gcp.artifactregistry.RepositoryCleanupPolicyArgs(
                id="delete-old",
                action="DELETE",
                condition=gcp.artifactregistry.RepositoryCleanupPolicyConditionArgs(
                    tag_state="ANY", older_than=f"{30 * 86400}s"
                ),
            ),
        ],
        labels={_label(k): _label(v) for k, v in ctx.tags.items()},
    )
    host = f"{region}-docker.pkg.dev"
    token = gcp.organizations.get_client_config_output().access_token
    return Registry(
        repository_url=repo.repository_id.apply(lambda rid: f"{host}/{project}/{rid}/{cfg.name}"),
        server=host,
        username="oauth2accesstoken",
        password=pulumi.Output.secret(token),
        repository_arn=repo.id,
    )


def deploy(ctx: DeployContext) -> dict[str, pulumi.Input[Any]]:
    """Registry entry point: the CloudRunService built from the spec; its outputs are the stack outputs."""
    from fastapi_deploy.cloudrun.adapter import args_from

    svc = CloudRunService(ctx.name, args_from(ctx.spec, ctx.section), opts=ctx.opts, tuning=ctx.tuning)
    return dict(svc.outputs)
