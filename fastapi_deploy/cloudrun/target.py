"""The cloudrun target's registration: a Google Cloud Run service."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from fastapi_deploy.cloudrun import checks, cost, mocks, tuning
from fastapi_deploy.cloudrun.config import CloudRunConfig
from fastapi_deploy.registry import ComponentDoc, PolicyFacts, SecretRules, Target, TuningRules


def _provider_checks(providers: Mapping[str, Any], app: Mapping[str, Any], stack: str) -> list[str]:
    from fastapi_deploy.cloudrun.config import gcp_region_problem

    gcp_region = providers.get("gcp:region")
    problem = gcp_region_problem(str(gcp_region)) if gcp_region else None
    return [f"gcp:region: {problem}"] if problem else []


def _ci_login(raw: Mapping[str, Any], app: Mapping[str, Any]) -> tuple[str, str]:
    section = app.get("cloudrun") if isinstance(app.get("cloudrun"), Mapping) else {}
    return "gcp", str(raw.get("gcp:region") or (section or {}).get("region") or "")


def _region_line(cfg: Any, stack_file: str) -> str | None:
    c: CloudRunConfig = cfg
    key = "app.cloudrun.region" if c.cloudrun.region else "gcp:region"
    return f"{c.gcp_region} ({key} in {stack_file})"


def _mask_env(
    kind: str, inputs: dict[str, Any], secret: Callable[[str, str], bool], mask: str
) -> dict[str, Any]:
    """The service template's containers[].envs (plain values; secret ones are references); the release
    migration job's too (``template.template.containers``)."""
    if kind not in ("gcp:cloudrunv2/service:Service", "gcp:cloudrunv2/job:Job"):
        return inputs
    template = inputs.get("template") or {}
    if kind == "gcp:cloudrunv2/job:Job":
        template = template.get("template") or {}
    for container in template.get("containers") or []:
        for entry in container.get("envs") or []:
            if isinstance(entry, dict) and secret(str(entry.get("name")), str(entry.get("value") or "")):
                entry["value"] = mask
    return inputs


COMPONENT_DOC = ComponentDoc(
    package="fastapi_deploy.cloudrun",
    component="CloudRunService",
    args="CloudRunServiceArgs",
    children=(
        "`.service`, `.account` (None with `service_account_email`), `.secret_access`, `.invoker`, "
        "`.alert_5xx`, `.alert_latency`, `.alert_instances`, `.tuning`, `.outputs`"
    ),
    example="""svc = CloudRunService(
    "shop",
    {
        "image": "europe-west1-docker.pkg.dev/acme/shop/shop@sha256:...",
        "project": "acme",
        "region": "europe-west1",
        "scaling": {"min": 0, "max": 10},
        "secrets": {"DATABASE_URL": "gcp:shop-db"},
        "public": True,
    },
)""",
)


TARGET = Target(
    key="cloudrun",
    config_model=CloudRunConfig,
    section="cloudrun",
    deploy_module="fastapi_deploy.cloudrun.adapter",
    operations_module="fastapi_deploy.cloudrun.operate",
    component_doc=COMPONENT_DOC,
    release_gate="fastapi_deploy.cloudrun.gate",
    # Its stack outputs besides contract.COMMON_OUTPUTS (the component's output annotations are these).
    outputs=("project", "region", "service_name", "revision", "service_account"),
    tuning=TuningRules(
        deploy_surge=tuning.DEPLOY_SURGE,
        input_for=tuning.input_for,
        platform=tuning.platform,
        # No FORWARDED_ALLOW_IPS: Google's proxies have no listable addresses; the client address is taken
        # by hop count instead (FORWARDED_TRUSTED_HOPS, tuning.extra_env).
        forwarded_allow_ips=None,
        extra_env=tuning.extra_env,
        startup_budget_s=tuning.CLOUDRUN_STARTUP_BUDGET_S,
        adjust=tuning.adjust,
    ),
    cost_lines=cost.lines,
    price_provider="gcp",
    cloud="gcp",
    ci_login=_ci_login,
    region_line=_region_line,
    provider_checks=_provider_checks,
    secrets=SecretRules(
        schemes=("gcp",),
        refused="Cloud Run injects only Secret Manager secrets (gcp:...)",
        example="gcp:{name}-{slug}",
    ),
    verify_poller=checks.rollout,
    smoke_token=checks.id_token,
    mask_env=_mask_env,
    plan_inputs={"gcp:cloudrunv2/service:Service": ("location", "ingress")},
    mock_invokes=mocks.INVOKES,
    mock_resources=mocks.RESOURCES,
    policy=PolicyFacts(resource_types=("gcp:cloudrunv2/service:Service",)),
)
