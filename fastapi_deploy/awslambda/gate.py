"""The Lambda release gate (fastapi_deploy/release_gate.py): `pulumi up` fails unless the alias points at
the version this deploy published and that version is State Active / LastUpdateStatus Successful (without
an alias: ``$LATEST`` runs the deployed image digest).

Imported by the dynamic provider process (through ``Target.release_gate``): it captures nothing; clients
are built inside the poller.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pulumi

from fastapi_deploy.aws_clients import bounded_client
from fastapi_deploy.release_gate import GatePlatform, ReleaseGate, gate_props

#: An image function's version leaves State Pending within a few minutes.
LAMBDA_TIMEOUT_S = 300
#: What tests replace with a stubbed client: (service, region) -> boto3 client with bounded timeouts.
aws_client = bounded_client


def _poller(props: Mapping[str, Any]) -> Any:
    from fastapi_deploy.ops import rollout

    return rollout.LambdaRollout(
        aws_client("lambda", props["region"]),
        props["function_name"],
        props.get("alias") or None,
        props.get("image") or None,
        expected_version=props["release"],
    )


def _where(props: Mapping[str, Any]) -> str:
    alias = f" alias {props['alias']}" if props.get("alias") else ""
    return f"Lambda function {props['function_name']}{alias} ({props['region']})"


PLATFORM = GatePlatform(required=("function_name",), what="version", poller=_poller, where=_where)


def lambda_gate(
    name: str,
    *,
    function_name: pulumi.Input[str],
    version: pulumi.Input[str],
    region: pulumi.Input[str],
    stack_resource: str,
    alias: pulumi.Input[str] | None = None,
    image: pulumi.Input[str] | None = None,
    timeout_s: int = LAMBDA_TIMEOUT_S,
    poll_interval_s: float = 5,
    opts: pulumi.ResourceOptions | None = None,
) -> ReleaseGate:
    """Gate on a Lambda function: ``alias`` must point at ``version`` (the function's published
    ``version`` output) and that version be Active/Successful; without an alias ``$LATEST`` must run
    ``image`` (pass it: the version is always ``$LATEST`` then, so the image is what identifies a release).
    """
    props = gate_props("lambda", stack_resource, timeout_s, poll_interval_s)
    props.update(region=region, function_name=function_name, release=version, alias=alias, image=image)
    return ReleaseGate(name, props, opts)
