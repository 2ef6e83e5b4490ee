"""The one frozen deploy spec: stack file -> config model -> :class:`DeploySpec` -> component Args.

The program builds the spec once from the validated stack config, the computed tuning and the resolved
image; each target's adapter (``fastapi_deploy/<target>/adapter.py``: ``args_from(spec, section)``) turns
it (plus the target's own config section) into that component's Args. Components never see the stack
config; secret references are parsed here once and carried parsed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from fastapi_deploy.tuning import container_environment

if TYPE_CHECKING:
    import pulumi

    from fastapi_deploy.config import Alerts, Database, Health, Scaling, StackConfigType, TuningOverrides
    from fastapi_deploy.secret_refs import SecretRef
    from fastapi_deploy.tuning import RuntimeTuning


def _frozen(d: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(d))


@dataclass(frozen=True)
class DeploySpec:
    """Everything a target needs that is not specific to it, decided once."""

    #: Component name (``<app name>-<stack>``); every child's name starts with it.
    name: str
    #: ``app.name`` (the service's name without the stack).
    app_name: str
    target: str
    stack: str
    #: Image reference by digest (an Output when built or resolved here).
    image: pulumi.Input[str]
    #: ``app.image.digest`` when the stack names an existing image (a plain string, known before deploy).
    image_digest: str | None
    #: ECR repository ARN / URL when the image was built into (or promoted to) a registry this stack owns.
    repository_arn: pulumi.Input[str] | None
    repository_url: pulumi.Input[str] | None
    port: int
    app_env: str
    #: Final plain container env: app.env + CORS + the tuning's variables + migrate/metrics switches.
    env: Mapping[str, str]
    #: Parsed secret references by env name.
    secrets: Mapping[str, SecretRef]
    secret_kms_key_arns: tuple[str, ...]
    health: Health
    #: Replica bounds (None on Lambda: its bound is the reserved concurrency).
    scaling: Scaling | None
    database: Database
    request_timeout_s: int
    max_request_body_bytes: int
    overrides: TuningOverrides
    #: SIGTERM -> SIGKILL window and gunicorn's graceful drain (from the tuning).
    stop_timeout_s: int
    graceful_timeout_s: int
    domain: str | None
    alerts: Alerts
    tags: Mapping[str, str]
    #: The computed tuning (passed to the component as ``tuning=``, so it is not computed twice).
    tuning: RuntimeTuning = field(repr=False)
    #: Cloud region (``aws:region``; Cloud Run: ``app.cloudrun.region`` else ``gcp:region``) and GCP project.
    region: str | None = None
    project: str | None = None
    #: Provider settings from the stack file (``aws:region``, ``gcp:project``...), read-only.
    providers: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


def build(
    cfg: StackConfigType,
    tuning: RuntimeTuning,
    image: pulumi.Input[str],
    repository_arn: pulumi.Input[str] | None = None,
    repository_url: pulumi.Input[str] | None = None,
) -> DeploySpec:
    """The spec of a validated stack config (no resources are registered)."""
    return DeploySpec(
        name=f"{cfg.name}-{cfg.stack}",
        app_name=cfg.name,
        target=cfg.target,
        stack=cfg.stack,
        image=image,
        image_digest=cfg.image.digest,
        repository_arn=repository_arn,
        repository_url=repository_url,
        port=cfg.port,
        app_env=cfg.environment,
        env=_frozen(container_environment(cfg, tuning)),
        secrets=_frozen(cfg.secret_refs()),
        secret_kms_key_arns=tuple(cfg.secret_kms_key_arns),
        health=cfg.health,
        scaling=getattr(cfg, "scaling", None),
        database=cfg.database,
        request_timeout_s=cfg.request_timeout_s,
        max_request_body_bytes=cfg.max_request_body_bytes,
        overrides=cfg.tuning,
        stop_timeout_s=tuning.stop_timeout_s,
        graceful_timeout_s=tuning.graceful_timeout_s,
        domain=cfg.domain,
        alerts=cfg.alerts,
        tags=_frozen(cfg.resource_tags()),
        tuning=tuning,
        region=getattr(cfg, "gcp_region", None) or cfg.region,
        project=getattr(cfg, "gcp_project", None),
        providers=_frozen(cfg.providers),
    )


def common_args(spec: DeploySpec) -> dict[str, Any]:
    """The Args keys every component shares, from the spec (adapters add their target's keys)."""
    args: dict[str, Any] = {
        "image": spec.image,
        "port": spec.port,
        "environment": spec.app_env,
        "env": dict(spec.env),
        # Parsed once (the spec); the component accepts parsed references as they are.
        "secrets": dict(spec.secrets),
        "health": spec.health.model_dump(),
        "database": spec.database.model_dump(exclude_none=True),
        "request_timeout_s": spec.request_timeout_s,
        "max_request_body_bytes": spec.max_request_body_bytes,
        "overrides": spec.overrides.model_dump(exclude_none=True),
        "tags": dict(spec.tags),
    }
    return args
