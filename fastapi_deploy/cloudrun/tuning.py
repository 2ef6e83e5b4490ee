"""The cloudrun target's platform rules for the tuning (fastapi_deploy/tuning.py)."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from fastapi_deploy.tuning import (
    ALB_IDLE_TIMEOUT_S,
    KEEPALIVE_MARGIN_S,
    ContainerHealth,
    RuntimeTuning,
    TuningInput,
)

if TYPE_CHECKING:
    from fastapi_deploy.cloudrun.config import CloudRunConfig

CLOUDRUN_STOP_GRACE_S = 10  # Cloud Run sends SIGTERM, then SIGKILL 10 s later (not configurable)
# Cloud Run startup probe window (fastapi_deploy/cloudrun/component.py: 24 probes x 5 s).
CLOUDRUN_STARTUP_BUDGET_S = 120
#: Cloud Run keeps old-revision instances until idle.
DEPLOY_SURGE = 2.0
#: Only Google's front end can reach the container, from addresses Google does not publish, and it REPLACES
#: X-Forwarded-For with the client's address, so `*` is both necessary and safe. Known limit: with ingress
#: through an external Application LB, that LB appends "<client>, <LB VIP>" to what the client sent, and
#: `*` then takes the client-written leftmost entry; trusting the LB's VIP would need the address at
#: tuning time (not known here).
FORWARDED_ALLOW_IPS = "*"


def input_for(cfg: Any, keys: dict[str, str], extra: dict[str, Any]) -> TuningInput:
    c: CloudRunConfig = cfg
    keys.update(size="app.cloudrun.cpu", memory="app.cloudrun.memory")
    return TuningInput("cloudrun", c.cloudrun.cpu, c.cloudrun.memory, c.scaling.max, keys=keys, **extra)


def platform(inp: TuningInput, common: dict[str, Any]) -> RuntimeTuning:
    return RuntimeTuning(
        **common,
        # Google's front end reuses connections to the container; 75 s is above any idle window we
        # know of and costs nothing with async workers.
        keepalive_s=ALB_IDLE_TIMEOUT_S + KEEPALIVE_MARGIN_S,
        graceful_timeout_s=CLOUDRUN_STOP_GRACE_S - 2,
        pool_class="queue",
        stop_timeout_s=CLOUDRUN_STOP_GRACE_S,
        lb_idle_timeout_s=None,
        deregistration_delay_s=None,
        health_check_grace_s=None,
        container_health=ContainerHealth(),
        lb_health=None,
        container_concurrency=None,
        lambda_timeout_s=None,
    )


def adjust(cfg: Any, tuning: RuntimeTuning) -> RuntimeTuning:
    c: CloudRunConfig = cfg
    return replace(tuning, container_concurrency=c.cloudrun.concurrency)
