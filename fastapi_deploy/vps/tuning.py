"""The vps target's platform rules for the tuning (fastapi_deploy/tuning.py): Docker behind Caddy."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi_deploy.tuning import (
    GRACEFUL_MARGIN_S,
    KEEPALIVE_MARGIN_S,
    PRIVATE_PROXY_NETWORKS,
    ContainerHealth,
    RuntimeTuning,
    TuningInput,
)

if TYPE_CHECKING:
    from fastapi_deploy.vps.config import VpsConfig

VPS_STOP_TIMEOUT_S = 30  # docker stop -t (Docker's default of 10 s is too short for a drain)
# Proxy in front of the VPS container (Caddy): its upstream keepalive is set to this by the VPS target
# (Caddy's default is 2 min, above our keepalive, which would produce 502s).
VPS_PROXY_IDLE_TIMEOUT_S = 60
#: A redeploy starts the new container before the old one stops.
DEPLOY_SURGE = 2.0
#: Caddy reaches the container on the private Docker bridge (172.16/12 or 192.168/16 pools); the app
#: publishes no port, so trusting the private ranges trusts Caddy and nothing a client controls.
FORWARDED_ALLOW_IPS = PRIVATE_PROXY_NETWORKS


def input_for(cfg: Any, keys: dict[str, str], extra: dict[str, Any]) -> TuningInput:
    c: VpsConfig = cfg
    keys.update(size="app.vps.cpus", memory="app.vps.memory")
    return TuningInput("vps", c.vps.cpus, c.vps.memory, c.scaling.max, keys=keys, **extra)


def platform(inp: TuningInput, common: dict[str, Any]) -> RuntimeTuning:
    stop = max(VPS_STOP_TIMEOUT_S, inp.request_timeout_s + GRACEFUL_MARGIN_S)
    return RuntimeTuning(
        **common,
        keepalive_s=VPS_PROXY_IDLE_TIMEOUT_S + KEEPALIVE_MARGIN_S,
        graceful_timeout_s=stop - GRACEFUL_MARGIN_S,
        pool_class="queue",
        stop_timeout_s=stop,
        lb_idle_timeout_s=VPS_PROXY_IDLE_TIMEOUT_S,
        deregistration_delay_s=None,
        health_check_grace_s=None,
        container_health=ContainerHealth(),
        lb_health=None,
        container_concurrency=None,
        lambda_timeout_s=None,
    )
