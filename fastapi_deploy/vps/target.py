"""The vps target's registration: Docker + Caddy on a host reached over SSH."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from fastapi_deploy.registry import ComponentDoc, PolicyFacts, SecretRules, Target, TuningRules
from fastapi_deploy.vps import checks, cost, mocks, tuning
from fastapi_deploy.vps.config import VpsConfig


def _section(obj: Any, key: str) -> Mapping[str, Any]:
    value = obj.get(key) if isinstance(obj, Mapping) else None
    return value if isinstance(value, Mapping) else {}


def _uses_aws(data: Mapping[str, Any]) -> bool:
    """A VPS that still reads AWS: SSM/Secrets Manager references, an ECR image or a Route 53 zone."""
    vps = _section(data, "vps")
    refs = [*_section(data, "secrets").values(), vps.get("ssh_key_secret")]
    refs.append(_section(vps, "registry").get("password_secret"))
    digest = str(_section(data, "image").get("digest") or "")
    return (
        any(isinstance(r, str) and r.startswith(("ssm:", "secretsmanager:")) for r in refs)
        or bool(re.match(r"^\d{12}\.dkr\.ecr\.", digest))
        or vps.get("zone_provider") == "route53"
    )


def _provider_checks(providers: Mapping[str, Any], app: Mapping[str, Any], stack: str) -> list[str]:
    if providers.get("aws:region") or not _uses_aws(app):
        return []
    return [
        "aws:region: required when a vps stack reads AWS (ssm:/secretsmanager: references, an ECR "
        "image or a route53 vps.zone): set it in the stack file "
        f"(`pulumi config set aws:region eu-central-1 --stack {stack}`); "
        "the deployer does not fall back to AWS_REGION or a profile"
    ]


def _ci_login(raw: Mapping[str, Any], app: Mapping[str, Any]) -> tuple[str, str]:
    """The cloud its secrets live in: GCP when every reference is gcp:, else AWS."""
    refs = [str(v) for v in _section(app, "secrets").values()]
    if refs and all(r.startswith("gcp:") for r in refs):
        return "gcp", str(raw.get("gcp:region") or "")
    return "aws", str(raw.get("aws:region") or "us-east-1")


def _mask_env(
    kind: str, inputs: dict[str, Any], secret: Callable[[str, str], bool], mask: str
) -> dict[str, Any]:
    """The container's envs (``NAME=value`` strings)."""
    if kind != "docker:index/container:Container" or not isinstance(inputs.get("envs"), list):
        return inputs
    envs = []
    for item in inputs["envs"]:
        key, sep, value = str(item).partition("=")
        envs.append(f"{key}={mask}" if sep and secret(key, value) else item)
    return {**inputs, "envs": envs}


COMPONENT_DOC = ComponentDoc(
    package="fastapi_deploy.vps",
    component="VpsService",
    args="VpsServiceArgs",
    children=(
        "`.provider` (docker over SSH), `.network`, `.remote_image`, `.gate` (release gate), `.app`, "
        "`.proxy` (Caddy), `.tuning`, `.outputs`"
    ),
    example="""svc = VpsService(
    "shop",
    {
        "image": "ghcr.io/acme/shop@sha256:...",
        "host": "203.0.113.10",
        "domain": "shop.example.org",
        "registry": {"server": "ghcr.io", "username": "acme", "password_secret": "ssm:/ghcr/token"},
    },
)""",
)


TARGET = Target(
    key="vps",
    config_model=VpsConfig,
    section="vps",
    deploy_module="fastapi_deploy.vps.adapter",
    component_doc=COMPONENT_DOC,
    operations_module="fastapi_deploy.vps.operate",
    # Its stack outputs besides contract.COMMON_OUTPUTS (the component's output annotations are these).
    outputs=("host", "container_name", "domain"),
    tuning=TuningRules(
        deploy_surge=tuning.DEPLOY_SURGE,
        input_for=tuning.input_for,
        platform=tuning.platform,
        forwarded_allow_ips=tuning.FORWARDED_ALLOW_IPS,
        metrics_privately_scrapable=True,
    ),
    cost_lines=cost.lines,
    price_provider="vps",
    cloud=None,
    ci_login=_ci_login,
    provider_checks=_provider_checks,
    secrets=SecretRules(extra_refs=checks.secret_refs),
    doctor_host_checks=(checks.check_host,),
    verify_poller=checks.rollout,
    verify_login=checks.login,
    mask_env=_mask_env,
    plan_inputs={"docker:index/container:Container": ("restart", "memory", "user")},
    mock_invokes=mocks.INVOKES,
    mock_resources=mocks.RESOURCES,
    policy=PolicyFacts(resource_types=("docker:index/container:Container",)),
)
