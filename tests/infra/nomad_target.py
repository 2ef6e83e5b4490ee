"""A fifth, minimal target defined OUTSIDE fastapi_deploy: the proof that a target is one package.

`nomad`: the image as a HashiCorp Nomad service job. Everything the deployer needs is here — the config
section, the component, the tuning rule, one doctor check, one verify check, a cost line, a mock answer,
the runtime facts the policy pack's stack rules judge it by (published on the component), the release
gate's platform — and :data:`TARGET` is handed to ``fastapi_deploy.registry.register``. No file of
``fastapi_deploy/`` knows it exists (tests/infra/test_fifth_target.py registers it and runs plan, doctor,
verify and the cost on it).
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Mapping
from typing import Any, Literal

import pulumi
from pydantic import Field

from fastapi_deploy.component import runtime_props
from fastapi_deploy.config import AppConfigBase, Scaling, _Model
from fastapi_deploy.cost import Assumptions, Line, PriceTable, aws_lines
from fastapi_deploy.ops.findings import Finding, blocking, ok
from fastapi_deploy.ops.rollout import Observation
from fastapi_deploy.registry import PolicyFacts, SecretRules, Target, TuningRules
from fastapi_deploy.release_gate import GatePlatform
from fastapi_deploy.targets import DeployContext
from fastapi_deploy.tuning import (
    ALB_IDLE_TIMEOUT_S,
    GRACEFUL_MARGIN_S,
    KEEPALIVE_MARGIN_S,
    PRIVATE_PROXY_NETWORKS,
    ContainerHealth,
    RuntimeTuning,
    TuningInput,
)

JOB_TYPE = "nomad:index/job:Job"
COMPONENT_TYPE = "tests-nomad:index:NomadService"
#: Nomad's kill_timeout: SIGTERM, then SIGKILL this long after.
KILL_TIMEOUT_S = 45
#: The test's own price assumption for a share of a Nomad client: USD per allocated GHz per month.
USD_PER_GHZ_MONTH = 12.0


# --------------------------------------------------------------------------------------------- config
class NomadSettings(_Model):
    """Where and how big the job runs."""

    address: str = "http://127.0.0.1:4646"
    """Nomad HTTP API address."""
    datacenter: str = "dc1"
    """Datacenter the job is placed in."""
    cpu_mhz: int = Field(default=1000, ge=100, le=32000)
    """CPU per allocation (MHz; 1000 = one core for the worker count)."""
    memory: int = Field(default=1024, ge=256, le=65536)
    """Memory per allocation (MiB)."""


class NomadConfig(AppConfigBase):
    """``target: nomad`` — a Nomad service job (registered by tests/infra/nomad_target.py)."""

    target: Literal["nomad"] = "nomad"
    scaling: Scaling
    """Allocation count bounds."""
    nomad: NomadSettings = Field(default_factory=NomadSettings)


# --------------------------------------------------------------------------------------------- tuning
def _tuning_input(cfg: Any, keys: dict[str, str], extra: dict[str, Any]) -> TuningInput:
    c: NomadConfig = cfg
    keys.update(size="app.nomad.cpu_mhz", memory="app.nomad.memory")
    return TuningInput("nomad", c.nomad.cpu_mhz / 1000, c.nomad.memory, c.scaling.max, keys=keys, **extra)


def _tuning_platform(inp: TuningInput, common: dict[str, Any]) -> RuntimeTuning:
    return RuntimeTuning(
        **common,
        keepalive_s=ALB_IDLE_TIMEOUT_S + KEEPALIVE_MARGIN_S,
        graceful_timeout_s=KILL_TIMEOUT_S - GRACEFUL_MARGIN_S,
        pool_class="queue",
        stop_timeout_s=KILL_TIMEOUT_S,
        lb_idle_timeout_s=ALB_IDLE_TIMEOUT_S,
        deregistration_delay_s=None,
        health_check_grace_s=None,
        container_health=ContainerHealth(),
        lb_health=None,
        container_concurrency=None,
        lambda_timeout_s=None,
    )


# ------------------------------------------------------------------------------------------ component
class NomadService(pulumi.ComponentResource):
    def __init__(self, name: str, ctx: DeployContext, opts: pulumi.ResourceOptions | None = None) -> None:
        spec, nomad = ctx.spec, ctx.section  # the frozen spec and this target's own section (app.nomad)
        env = dict(spec.env)
        assert spec.scaling is not None
        kill_timeout_s = ctx.tuning.stop_timeout_s
        # The policy pack cannot read a Nomad jobspec: the component states what the job below sets (its
        # env, allocation size and kill timeout) and the rest comes from the tuning (replicas x surge...).
        facts = {"memoryMib": nomad.memory, "vcpu": nomad.cpu_mhz / 1000, "stopGraceS": kill_timeout_s}
        props = runtime_props(ctx.tuning, env, min_replicas=spec.scaling.min, overrides=facts)
        super().__init__(COMPONENT_TYPE, name, props, opts)
        jobspec = pulumi.Output.from_input(spec.image).apply(
            lambda image: json.dumps(
                {
                    "ID": name,
                    "Datacenters": [nomad.datacenter],
                    "TaskGroups": [
                        {
                            "Count": spec.scaling.initial,
                            "Tasks": [
                                {
                                    "Driver": "docker",
                                    "Config": {"image": image},
                                    "Env": env,
                                    "KillTimeout": kill_timeout_s * 1_000_000_000,
                                    "Resources": {"CPU": nomad.cpu_mhz, "MemoryMB": nomad.memory},
                                }
                            ],
                        }
                    ],
                },
                sort_keys=True,
            )
        )
        self.job = pulumi.CustomResource(
            JOB_TYPE,
            f"{name}-job",
            {"jobspec": jobspec, "detach": False, "modifyIndex": None},
            pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({})


def deploy(ctx: DeployContext) -> dict[str, Any]:
    spec = ctx.spec
    service = NomadService(ctx.name, ctx, ctx.opts)
    return {
        "target": "nomad",
        "url": f"https://{spec.domain}" if spec.domain else "http://127.0.0.1:8000",
        "image": spec.image,
        "health_path": spec.health.liveness_path,
        "ready_path": spec.health.readiness_path,
        "nomad_address": ctx.section.address,
        "job_id": service.job.id,
    }


# --------------------------------------------------------------------------------------------- mocks
def _mock_job(m: Any, name: str, inputs: dict[str, Any], out: dict[str, Any], physical: str) -> str | None:
    out["modifyIndex"] = "7"
    out["deploymentId"] = f"deploy-{name}"
    return name.removesuffix("-job")  # a Nomad job's id is its name


# ----------------------------------------------------------------------------------------------- cost
def _cost(resources: list[Mapping[str, Any]], a: Assumptions, p: PriceTable) -> list[Line]:
    lines: list[Line] = []
    for job in (r for r in resources if r.get("type") == JOB_TYPE):
        spec = json.loads(str((job.get("inputs") or {}).get("jobspec") or "{}"))
        group = spec["TaskGroups"][0]
        ghz = group["Tasks"][0]["Resources"]["CPU"] / 1000
        monthly = group["Count"] * ghz * USD_PER_GHZ_MONTH
        lines.append(
            Line(
                f"Nomad job {spec['ID']}",
                monthly,
                f"{group['Count']} allocation(s) x {ghz:g} GHz x ${USD_PER_GHZ_MONTH:g}/GHz-month",
            )
        )
    return aws_lines(resources, a, p) + lines


# ------------------------------------------------------------------------------------- doctor, verify
def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


def check_leader(ctx: Any) -> list[Finding]:
    """The Nomad API answers and the cluster has a leader (a job cannot be placed without one)."""
    cfg: NomadConfig = ctx.cfg
    url = f"{cfg.nomad.address}/v1/status/leader"
    try:
        leader = _get_json(url)
    except OSError as exc:
        return [blocking("nomad-leader", f"{url} does not answer: {exc}", "app.nomad.address")]
    if not leader:
        return [blocking("nomad-leader", "the cluster has no leader", "app.nomad.address")]
    return [ok("nomad-leader", f"Nomad leader {leader}", "app.nomad.address")]


class NomadRollout:
    """`infra verify`: the job's latest deployment is successful."""

    def __init__(self, address: str, job_id: str, image: str | None) -> None:
        self.url = f"{address}/v1/job/{job_id}/deployment"
        self.image = image

    def poll(self) -> Observation:
        deployment = _get_json(self.url)
        status = deployment.get("Status")
        summary = f"deployment {deployment.get('ID')} {status}: {deployment.get('StatusDescription')}"
        release = deployment.get("ID")
        if status == "successful":
            images = [self.image] if self.image else []
            return Observation("stable", summary, running_images=images, release=release)
        if status in ("failed", "cancelled"):
            return Observation("failed", summary, reason=deployment.get("StatusDescription"), release=release)
        return Observation("progress", summary, release=release)

    def explain(self) -> str:
        return ""


def _rollout(outputs: Mapping[str, Any], clients: Any, login: Any) -> NomadRollout:
    return NomadRollout(str(outputs["nomad_address"]), str(outputs["job_id"]), outputs.get("image"))


# --------------------------------------------------------------------------------------- release gate
#: `pulumi up` waits for the job's deployment (``release``: the deployment ID) through the shared gate.
PLATFORM = GatePlatform(
    required=("nomad_address", "job_id"),
    what="deployment",
    poller=lambda props: NomadRollout(str(props["nomad_address"]), str(props["job_id"]), props.get("image")),
    where=lambda props: f"Nomad job {props['job_id']} at {props['nomad_address']}",
)


TARGET = Target(
    key="nomad",
    config_model=NomadConfig,
    section="nomad",
    deploy_module=__name__,
    outputs=("nomad_address", "job_id"),
    tuning=TuningRules(
        deploy_surge=2.0,  # canary + old allocations during an update
        input_for=_tuning_input,
        platform=_tuning_platform,
        forwarded_allow_ips=PRIVATE_PROXY_NETWORKS,
        metrics_privately_scrapable=True,
    ),
    cost_lines=_cost,
    price_provider="nomad",  # priced by its own assumption, not from prices.yaml
    cloud=None,
    secrets=SecretRules(
        schemes=("gcp",), refused="nomad reads gcp: secrets only", example="gcp:{name}-{slug}"
    ),
    doctor_checks=(check_leader,),
    verify_poller=_rollout,
    mock_resources={JOB_TYPE: _mock_job},
    policy=PolicyFacts(resource_types=(JOB_TYPE,)),
    release_gate=__name__,
)
