"""The Cloud Run release gate (fastapi_deploy/release_gate.py): `pulumi up` fails unless the latest
created revision is the one this deploy created, it is the latest READY one, it serves 100 % of the
traffic (or ``traffic_tag`` routes to it), and no condition failed.

Imported by the dynamic provider process (through ``Target.release_gate``): it captures nothing; clients
are built inside the poller (Application Default Credentials of the user running `pulumi up`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pulumi

from fastapi_deploy.release_gate import MAX_TIMEOUT_S, GatePlatform, ReleaseGate, gate_props

#: The provider already waited for the revision; this covers traffic settling + a margin.
CLOUDRUN_MARGIN_S = 120


def cloudrun_timeout_s(startup_budget_s: int | None = None) -> int:
    """Cloud Run: the startup probe window (tuning.CLOUDRUN_STARTUP_BUDGET_S) plus a margin."""
    from fastapi_deploy.cloudrun.tuning import CLOUDRUN_STARTUP_BUDGET_S

    budget = CLOUDRUN_STARTUP_BUDGET_S if startup_budget_s is None else startup_budget_s
    return min(MAX_TIMEOUT_S, budget + CLOUDRUN_MARGIN_S)


def cloudrun_clients(region: str) -> tuple[Any, Any]:
    """Cloud Run admin clients (Application Default Credentials of the user running `pulumi up`)."""
    from google.cloud import run_v2

    return run_v2.ServicesClient(), run_v2.RevisionsClient()


def _poller(props: Mapping[str, Any]) -> Any:
    from fastapi_deploy.ops import rollout

    region = props["region"]
    services, revisions = cloudrun_clients(region)
    return rollout.CloudRunRollout(
        services,
        revisions,
        props["project"],
        region,
        props["service_name"],
        props.get("image") or None,
        expected_revision=props["release"],
        traffic_tag=props.get("traffic_tag") or None,
    )


def _where(props: Mapping[str, Any]) -> str:
    return f"Cloud Run service {props['service_name']} in {props['project']}/{props['region']}"


def _short(release: str) -> str:
    # The provider's outputs name revisions by their full resource path; the short name is what the
    # console and gcloud show.
    return release.rsplit("/", 1)[-1]


PLATFORM = GatePlatform(
    required=("project", "service_name"), what="revision", poller=_poller, where=_where, release_name=_short
)


def cloudrun_gate(
    name: str,
    *,
    project: pulumi.Input[str],
    region: pulumi.Input[str],
    service_name: pulumi.Input[str],
    revision: pulumi.Input[str],
    stack_resource: str,
    timeout_s: int | None = None,
    image: pulumi.Input[str] | None = None,
    traffic_tag: str | None = None,
    poll_interval_s: float = 5,
    opts: pulumi.ResourceOptions | None = None,
) -> ReleaseGate:
    """Gate on a Cloud Run service: ``revision`` (the service's ``latest_created_revision`` output) must be
    the latest ready one and serve 100 % (or be behind ``traffic_tag``)."""
    props = gate_props("cloudrun", stack_resource, timeout_s or cloudrun_timeout_s(), poll_interval_s)
    props.update(
        region=region,
        project=project,
        service_name=service_name,
        release=revision,
        image=image,
        traffic_tag=traffic_tag,
    )
    return ReleaseGate(name, props, opts)
