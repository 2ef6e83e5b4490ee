"""The ecs target's platform rules for the tuning (fastapi_deploy/tuning.py): Fargate + ALB."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi_deploy.tuning import (
    ALB_IDLE_TIMEOUT_S,
    DRAIN_MARGIN_S,
    GRACEFUL_MARGIN_S,
    KEEPALIVE_MARGIN_S,
    MAX_DEREGISTRATION_DELAY_S,
    PRIVATE_PROXY_NETWORKS,
    ContainerHealth,
    LbHealth,
    RuntimeTuning,
    TuningError,
    TuningInput,
)

if TYPE_CHECKING:
    from fastapi_deploy.ecs.config import EcsConfig

ECS_STOP_TIMEOUT_S = 30  # ECS default stopTimeout (max 120 on Fargate)
#: The longest request ECS can drain within MAX_DEREGISTRATION_DELAY_S.
ECS_MAX_REQUEST_TIMEOUT_S = MAX_DEREGISTRATION_DELAY_S - DRAIN_MARGIN_S
# ECS deployment maximumPercent / minimumHealthyPercent used by the ECS target (DEPLOY_SURGE matches).
ECS_MAX_PERCENT = 200
ECS_MIN_HEALTHY_PERCENT = 100
#: maximumPercent 200 runs old and new tasks side by side.
DEPLOY_SURGE = 2.0
#: Not `*`: uvicorn (0.54) with `*` takes the LEFTMOST X-Forwarded-For entry, and the ALB APPENDS the client
#: address to whatever the client sent. With the private ranges uvicorn walks right to left and stops at the
#: address the ALB (VPC-private nodes) saw; the task security group admits only the ALB.
FORWARDED_ALLOW_IPS = PRIVATE_PROXY_NETWORKS


def input_for(cfg: Any, keys: dict[str, str], extra: dict[str, Any]) -> TuningInput:
    c: EcsConfig = cfg
    keys.update(size="app.ecs.cpu", memory="app.ecs.memory")
    return TuningInput("ecs", c.ecs.vcpu, c.ecs.memory, c.scaling.max, keys=keys, **extra)


def platform(inp: TuningInput, common: dict[str, Any]) -> RuntimeTuning:
    rt = inp.request_timeout_s
    # ECS drains (deregistration delay) BEFORE it sends SIGTERM, so in-flight requests finish during
    # the drain; SIGTERM then only has idle keep-alive connections to close within graceful_timeout.
    graceful = ECS_STOP_TIMEOUT_S - GRACEFUL_MARGIN_S
    dereg = min(MAX_DEREGISTRATION_DELAY_S, max(rt + DRAIN_MARGIN_S, graceful))
    if rt > ECS_MAX_REQUEST_TIMEOUT_S:
        raise TuningError(
            f"app.request_timeout_s: {rt} s is above the maximum of {ECS_MAX_REQUEST_TIMEOUT_S} s on ECS "
            f"(the drain before SIGTERM, request + {DRAIN_MARGIN_S} s, is capped at "
            f"{MAX_DEREGISTRATION_DELAY_S} s so a deploy stays minutes, not hours); lower it to "
            f"{ECS_MAX_REQUEST_TIMEOUT_S} or less, or make long work asynchronous (a queue)"
        )
    # The ALB closes a connection that carried no byte for its idle timeout, so a request may not run
    # longer than it: from request_timeout_s 56 (+ 5 s margin > the default 60 s) the idle timeout
    # follows, and so does the keepalive (it must outlive the idle timeout, or the ALB gets 502s).
    idle = max(ALB_IDLE_TIMEOUT_S, rt + DRAIN_MARGIN_S)
    return RuntimeTuning(
        **common,
        keepalive_s=idle + KEEPALIVE_MARGIN_S,
        graceful_timeout_s=graceful,
        pool_class="queue",
        stop_timeout_s=ECS_STOP_TIMEOUT_S,
        lb_idle_timeout_s=idle,
        deregistration_delay_s=dereg,
        # ALB checks are ignored this long after a task starts: startPeriod + 3 intervals.
        health_check_grace_s=60,
        container_health=ContainerHealth(),
        lb_health=LbHealth(),
        container_concurrency=None,
        lambda_timeout_s=None,
    )


def extra_env(cfg: Any) -> dict[str, str]:
    """The EMF lines must carry exactly the namespace the stack's alarms read
    (fastapi_deploy/ecs/component.py), or those alarms never get a data point."""
    c: EcsConfig = cfg
    return {"METRICS_EMF_NAMESPACE": c.ecs.alarms.emf_namespace}
