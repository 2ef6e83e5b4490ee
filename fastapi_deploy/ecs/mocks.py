"""The ecs target's answers for the recording mocks (fastapi_deploy/mocks.py): ECS cluster, service
and task definition, the ALB."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def _fake_hex(*parts: str, n: int = 64) -> str:
    # Imported when a mock answers, so registering the target never imports pulumi.
    from fastapi_deploy.mocks import fake_hex

    return fake_hex(*parts, n=n)


def _cluster_cluster(
    m: Any, name: str, inputs: dict[str, Any], out: dict[str, Any], physical: str
) -> str | None:
    region, acct = m.region, m.account
    rid: str | None = None
    out["name"] = physical
    out["arn"] = f"arn:aws:ecs:{region}:{acct}:cluster/{physical}"
    rid = out["arn"]
    return rid


def _service_service(
    m: Any, name: str, inputs: dict[str, Any], out: dict[str, Any], physical: str
) -> str | None:
    region, acct = m.region, m.account
    rid: str | None = None
    out["name"] = physical
    rid = f"arn:aws:ecs:{region}:{acct}:service/{physical}"
    return rid


def _taskdefinition_taskdefinition(
    m: Any, name: str, inputs: dict[str, Any], out: dict[str, Any], physical: str
) -> str | None:
    region, acct = m.region, m.account
    out["revision"] = 1
    out["arn"] = f"arn:aws:ecs:{region}:{acct}:task-definition/{inputs.get('family', name)}:1"
    out["arnWithoutRevision"] = f"arn:aws:ecs:{region}:{acct}:task-definition/{inputs.get('family', name)}"
    return None


def _loadbalancer_loadbalancer(
    m: Any, name: str, inputs: dict[str, Any], out: dict[str, Any], physical: str
) -> str | None:
    region, acct = m.region, m.account
    rid: str | None = None
    out["name"] = physical
    suffix = f"app/{physical}/{_fake_hex(name, n=16)}"
    out["arn"] = f"arn:aws:elasticloadbalancing:{region}:{acct}:loadbalancer/{suffix}"
    out["arnSuffix"] = suffix
    out["dnsName"] = f"{physical}-1234567890.{region}.elb.amazonaws.com"
    out["zoneId"] = "Z35SXDOTRQ7X7K"
    rid = out["arn"]
    return rid


def _targetgroup_targetgroup(
    m: Any, name: str, inputs: dict[str, Any], out: dict[str, Any], physical: str
) -> str | None:
    region, acct = m.region, m.account
    rid: str | None = None
    out["name"] = physical
    suffix = f"targetgroup/{physical}/{_fake_hex(name, n=16)}"
    out["arn"] = f"arn:aws:elasticloadbalancing:{region}:{acct}:{suffix}"
    out["arnSuffix"] = suffix
    rid = out["arn"]
    return rid


def _listener_listener(
    m: Any, name: str, inputs: dict[str, Any], out: dict[str, Any], physical: str
) -> str | None:
    region, acct = m.region, m.account
    out["arn"] = f"arn:aws:elasticloadbalancing:{region}:{acct}:listener/app/{name}/{_fake_hex(name, n=16)}"
    return None


RESOURCES: dict[str, Callable[..., str | None]] = {
    "aws:ecs/cluster:Cluster": _cluster_cluster,
    "aws:ecs/service:Service": _service_service,
    "aws:ecs/taskDefinition:TaskDefinition": _taskdefinition_taskdefinition,
    "aws:lb/loadBalancer:LoadBalancer": _loadbalancer_loadbalancer,
    "aws:lb/targetGroup:TargetGroup": _targetgroup_targetgroup,
    "aws:lb/listener:Listener": _listener_listener,
}


def _elb_service_account(m: Any, a: dict[str, Any]) -> dict[str, Any]:
    return {"arn": "arn:aws:iam::127311923021:root", "id": "127311923021"}


INVOKES: dict[str, Callable[[Any, dict[str, Any]], dict[str, Any]]] = {
    "aws:elb/getServiceAccount:getServiceAccount": _elb_service_account,
}
