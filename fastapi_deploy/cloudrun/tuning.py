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
# --- client address (FORWARDED_TRUSTED_HOPS, app/forwarded.py) ------------------------------------------
# Only Google's proxies reach the container, from addresses Google does not publish, so uvicorn's
# FORWARDED_ALLOW_IPS cannot name them — and `*` makes uvicorn take the LEFTMOST X-Forwarded-For entry,
# which the client writes: Google's proxies add what they saw to the RIGHT of whatever the client sent.
# So no FORWARDED_ALLOW_IPS here (the app's gunicorn_conf then trusts no peer) and the app takes the entry
# N from the right, N = the entries Google's proxies add:
# * the run.app URL (no load balancer): 1, the client's address. Google documents X-Forwarded-For for
#   Cloud Functions (the same front end) as "clientIp, proxy1Ip, proxy2Ip", the rightmost entries added by
#   the proxies (https://cloud.google.com/functions/docs/reference/headers); on run.app it has been
#   observed as the client's address alone, replacing what the client sent
#   (https://blog.cateiru.com/entry/2024/02/19/233045, https://pc.atsuhiro-me.net/entry/2022/08/11/081130).
#   Replaced or appended, the client's address is the rightmost entry: 1 is right for both.
# * behind the global external Application Load Balancer of app.domain (serverless NEG,
#   fastapi_deploy/cloudrun/domain.py): 2. Google's load-balancer documentation (Setting up HTTP(S) Load
#   Balancing, the X-Forwarded-For section of https://cloud.google.com/load-balancing/docs/https, as quoted
#   at https://newbetuts.com/908724-private-address-space-ip-found-in-x-forwarded-for): "X-Forwarded-For:
#   <unverified IP(s)>, <immediate client IP>, <global forwarding rule external IP>, <proxies running in
#   GCP>" and "Only the <immediate client IP> and <global forwarding rule external IP> entries are
#   provided by the load balancer." We run no proxy of our own in GCP: the client is 2nd from the right.
#   Only when the service accepts nothing but load-balancer traffic (ingress
#   internal-and-cloud-load-balancing, the default with a domain): with ingress `all` the run.app URL stays
#   open and a client there could put its made-up address 2nd from the right. Then 1 is used — safe, but
#   every client that comes through the load balancer is keyed on the load balancer's address.
FORWARDED_HOPS_DIRECT = 1
FORWARDED_HOPS_LOAD_BALANCER = 2


def forwarded_trusted_hops(domain: str | None, ingress: str) -> int:
    """FORWARDED_TRUSTED_HOPS for a service with this custom domain (None: none) and ingress."""
    if domain and ingress == "internal-and-cloud-load-balancing":
        return FORWARDED_HOPS_LOAD_BALANCER
    return FORWARDED_HOPS_DIRECT


def extra_env(cfg: Any) -> dict[str, str]:
    """The client address by hop count (see above): 2 behind the domain's load balancer, else 1."""
    c: CloudRunConfig = cfg
    return {"FORWARDED_TRUSTED_HOPS": str(forwarded_trusted_hops(c.domain, c.service_ingress))}


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
