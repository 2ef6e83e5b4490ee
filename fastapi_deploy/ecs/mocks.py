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


def _named(m: Any, name: str, inputs: dict[str, Any], out: dict[str, Any], physical: str) -> str | None:
    """A resource whose physical name the provider reports back as ``name``."""
    out["name"] = physical
    return None


RESOURCES: dict[str, Callable[..., str | None]] = {
    "aws:ecs/cluster:Cluster": _cluster_cluster,
    "aws:ecs/service:Service": _service_service,
    "aws:ecs/taskDefinition:TaskDefinition": _taskdefinition_taskdefinition,
    "aws:lb/loadBalancer:LoadBalancer": _loadbalancer_loadbalancer,
    "aws:lb/targetGroup:TargetGroup": _targetgroup_targetgroup,
    "aws:lb/listener:Listener": _listener_listener,
    "aws:appautoscaling/policy:Policy": _named,
}


def _elb_service_account(m: Any, a: dict[str, Any]) -> dict[str, Any]:
    return {"arn": "arn:aws:iam::127311923021:root", "id": "127311923021"}


#: An existing ALB (not in the stack) the answers below describe: ``listener/app/NAME/LB_ID/LISTENER_ID``.
EXISTING_LB_NAME = "shared-edge"
EXISTING_LB_ID = "50dc6c495c0c9188"


def _listener_parts(m: Any, arn: str) -> tuple[str, str, str, str]:
    """(region, account, load balancer name, id) of a listener ARN (defaults: the shared ALB)."""
    head, _, path = arn.partition(":listener/app/")
    bits = head.split(":")
    region = bits[3] if len(bits) > 4 else m.region
    acct = bits[4] if len(bits) > 4 else m.account
    parts = path.split("/")
    if len(parts) >= 3:
        return region, acct, parts[0], parts[1]
    return region, acct, EXISTING_LB_NAME, EXISTING_LB_ID


def _get_listener(m: Any, a: dict[str, Any]) -> dict[str, Any]:
    """DescribeListeners of an existing HTTPS:443 listener (what aws.lb.get_listener returns)."""
    arn = str(a.get("arn") or "")
    region, acct, lb_name, lb_id = _listener_parts(m, arn)
    lb_arn = f"arn:aws:elasticloadbalancing:{region}:{acct}:loadbalancer/app/{lb_name}/{lb_id}"
    return {
        "arn": arn,
        "id": arn,
        "loadBalancerArn": lb_arn,
        "port": 443,
        "protocol": "HTTPS",
        "sslPolicy": "ELBSecurityPolicy-TLS13-1-2-2021-06",
        "certificateArn": f"arn:aws:acm:{region}:{acct}:certificate/0f0e0d0c-0b0a-0908-0706-050403020100",
        "alpnPolicy": "",
        "defaultActions": [{"type": "fixed-response", "order": 1}],
        "mutualAuthentications": [],
        "tags": {},
        "region": region,
    }


def _get_load_balancer(m: Any, a: dict[str, Any]) -> dict[str, Any]:
    """DescribeLoadBalancers + attributes of that existing internet-facing ALB (default idle timeout)."""
    arn = str(a.get("arn") or "")
    suffix = (
        arn.split(":loadbalancer/", 1)[-1]
        if ":loadbalancer/" in arn
        else (f"app/{EXISTING_LB_NAME}/{EXISTING_LB_ID}")
    )
    region = arn.split(":")[3] if arn.count(":") >= 5 else m.region
    name = suffix.split("/")[1]
    return {
        "arn": arn,
        "arnSuffix": suffix,
        "id": arn,
        "name": name,
        "dnsName": f"{name}-1122334455.{region}.elb.amazonaws.com",
        "zoneId": "Z35SXDOTRQ7X7K",
        "loadBalancerType": "application",
        "internal": False,
        "idleTimeout": 60,
        "ipAddressType": "ipv4",
        "securityGroups": ["sg-0e1d2c3b4a5f60788"],
        "subnets": ["subnet-0a1b2c3d4e5f60001", "subnet-0a1b2c3d4e5f60002"],
        "vpcId": "vpc-0a1b2c3d4e5f60718",
        "dropInvalidHeaderFields": True,
        "enableDeletionProtection": True,
        "tags": {},
        "region": region,
    }


INVOKES: dict[str, Callable[[Any, dict[str, Any]], dict[str, Any]]] = {
    "aws:elb/getServiceAccount:getServiceAccount": _elb_service_account,
    "aws:lb/getListener:getListener": _get_listener,
    "aws:lb/getLoadBalancer:getLoadBalancer": _get_load_balancer,
}
