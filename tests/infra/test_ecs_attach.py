"""FargateService attached to an existing ALB listener (``listener_arn``): no ALB, listener or ALB security
group of its own, a target group + listener rules on that listener, task ingress from the given security
group, and the load balancer's attributes (DNS name, arn suffix) from the getListener/getLoadBalancer
invokes. Rendered inputs are checked against the botocore models (CreateRule, CreateTargetGroup,
PutMetricAlarm) and the policy pack."""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pytest

from fastapi_deploy import apimodels
from fastapi_deploy.component import ArgsError
from fastapi_deploy.ecs.mocks import EXISTING_LB_ID, EXISTING_LB_NAME
from fastapi_deploy.mocks import ProgramResult, RecordingMocks, run_callable

DIGEST = "123456789012.dkr.ecr.us-east-1.amazonaws.com/shop@sha256:" + "c" * 64
LISTENER = (
    f"arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/{EXISTING_LB_NAME}/{EXISTING_LB_ID}"
    "/9f8e7d6c5b4a3921"
)
LB_SUFFIX = f"app/{EXISTING_LB_NAME}/{EXISTING_LB_ID}"
EDGE_SG = "sg-0e1d2c3b4a5f60788"
VPC = "vpc-0a1b2c3d4e5f60718"
PRIVATE = ["subnet-0a1b2c3d4e5f60011", "subnet-0a1b2c3d4e5f60012"]
RULE = "aws:lb/listenerRule:ListenerRule"
TG = "aws:lb/targetGroup:TargetGroup"


def attached(**extra: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "image": DIGEST,
        "port": 9000,
        "scaling": {"min": 1, "max": 4},
        "vpc_id": VPC,
        "private_subnet_ids": PRIVATE,
        "listener_arn": LISTENER,
        "load_balancer_security_group_id": EDGE_SG,
        "listener_rule_priority": 120,
        "domain": "shop.example.org",
        "alerts": {"emails": ["ops@example.org"]},
        "tags": {"team": "shop"},
        **extra,
    }
    return {k: v for k, v in args.items() if v is not None}


def build(args: dict[str, Any], mocks: RecordingMocks | None = None) -> ProgramResult:
    def program() -> None:
        from fastapi_deploy.ecs import FargateService

        svc = FargateService("shop", args)  # type: ignore[arg-type]
        for key, value in svc.outputs.items():
            pulumi.export(key, value)

    return run_callable(program, stack="direct", mocks=mocks)


@pytest.fixture(scope="module")
def result() -> ProgramResult:
    return build(attached())


def test_no_load_balancer_listener_or_alb_security_group_is_created(result: ProgramResult) -> None:
    assert result.by_type("aws:lb/loadBalancer:LoadBalancer") == []
    assert result.by_type("aws:lb/listener:Listener") == []
    groups = result.by_type("aws:ec2/securityGroup:SecurityGroup")
    assert [g.name for g in groups] == ["shop-task-sg"]
    # nothing opens anything to the internet: no ingress from a CIDR at all
    for rule in result.by_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"):
        assert not rule.inputs.get("cidrIpv4")
        assert not rule.inputs.get("cidrIpv6")


def test_one_target_group_in_the_given_vpc_valid_for_create_target_group(result: ProgramResult) -> None:
    tg = result.one(TG)
    assert tg.inputs["vpcId"] == VPC
    assert (tg.inputs["port"], tg.inputs["targetType"]) == (9000, "ip")
    params = apimodels.elbv2_create_target_group_params(tg.inputs, tg.outputs["name"])
    apimodels.validate(("elbv2", "CreateTargetGroup"), params)


def test_forward_rule_and_metrics_block_rule_on_the_given_listener(result: ProgramResult) -> None:
    rules = {r.name: r for r in result.by_type(RULE)}
    assert set(rules) == {"shop-rule", "shop-block-metrics"}
    forward, block = rules["shop-rule"].inputs, rules["shop-block-metrics"].inputs
    tg = result.one(TG)
    assert forward["listenerArn"] == block["listenerArn"] == LISTENER
    assert forward["priority"] == 120
    assert block["priority"] == 119  # matched just before the forwarding rule
    assert forward["conditions"] == [{"hostHeader": {"values": ["shop.example.org"]}}]
    assert forward["actions"] == [{"type": "forward", "targetGroupArn": tg.outputs["arn"]}]
    # the block rule is scoped to this service's host: other services' /metrics on the listener untouched
    assert block["conditions"] == [
        {"hostHeader": {"values": ["shop.example.org"]}},
        {"pathPattern": {"values": ["/metrics", "/metrics/*"]}},
    ]
    assert block["actions"][0]["type"] == "fixed-response"
    for rule in (forward, block):
        apimodels.validate(("elbv2", "CreateRule"), apimodels.elbv2_create_rule_params(rule, LISTENER))


def test_tasks_accept_the_container_port_from_the_given_security_group_only(result: ProgramResult) -> None:
    (ingress,) = result.by_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
    assert ingress.name == "shop-task-in-alb"
    assert ingress.inputs["referencedSecurityGroupId"] == EDGE_SG
    assert (ingress.inputs["fromPort"], ingress.inputs["toPort"], ingress.inputs["ipProtocol"]) == (
        9000,
        9000,
        "tcp",
    )
    service = result.one("aws:ecs/service:Service").inputs
    assert service["loadBalancers"][0]["targetGroupArn"] == result.one(TG).outputs["arn"]
    assert service["loadBalancers"][0]["containerPort"] == 9000


def test_alarms_and_autoscaling_use_the_invoked_load_balancer(result: ProgramResult) -> None:
    tg_suffix = result.one(TG).outputs["arnSuffix"]
    lb_alarms = [
        a
        for a in result.by_type("aws:cloudwatch/metricAlarm:MetricAlarm")
        if a.inputs["namespace"] == "AWS/ApplicationELB"
    ]
    assert {a.name for a in lb_alarms} == {"shop-5xx", "shop-p95", "shop-unhealthy"}
    for alarm in lb_alarms:
        assert alarm.inputs["dimensions"] == {"LoadBalancer": LB_SUFFIX, "TargetGroup": tg_suffix}
        params = apimodels.cloudwatch_put_metric_alarm_params(alarm.inputs, alarm.outputs["name"])
        apimodels.validate(("cloudwatch", "PutMetricAlarm"), params)
    (requests,) = [
        p for p in result.by_type("aws:appautoscaling/policy:Policy") if p.name == "shop-scale-requests"
    ]
    spec = requests.inputs["targetTrackingScalingPolicyConfiguration"]["predefinedMetricSpecification"]
    assert spec["resourceLabel"] == f"{LB_SUFFIX}/{tg_suffix}"
    # the invokes: the listener by its ARN, then its load balancer by the ARN the listener reported
    calls = dict(result.calls)
    assert calls["aws:lb/getListener:getListener"]["arn"] == LISTENER
    assert calls["aws:lb/getLoadBalancer:getLoadBalancer"]["arn"].endswith(f":loadbalancer/{LB_SUFFIX}")


def test_outputs_come_from_the_existing_load_balancer(result: ProgramResult) -> None:
    assert result.outputs["url"] == "https://shop.example.org"  # the listener is HTTPS:443
    assert result.outputs["load_balancer_dns"] == f"{EXISTING_LB_NAME}-1122334455.us-east-1.elb.amazonaws.com"
    assert result.outputs["target_group_arn"] == result.one(TG).outputs["arn"]


def test_path_pattern_only_rule_without_host_and_without_a_block_rule() -> None:
    """``/api/*`` never sends /metrics to the tasks: no block rule (a bare /metrics rule would 404 the
    /metrics of every other service on the listener); the URL is the load balancer's DNS name."""
    res = build(attached(domain=None, path_pattern="/api/*"))
    (rule,) = res.by_type(RULE)
    assert rule.name == "shop-rule"
    assert rule.inputs["conditions"] == [{"pathPattern": {"values": ["/api/*"]}}]
    assert res.outputs["url"] == f"https://{EXISTING_LB_NAME}-1122334455.us-east-1.elb.amazonaws.com"


def test_catch_all_path_pattern_keeps_the_block_rule() -> None:
    res = build(attached(host_header="shop.internal.example.org", path_pattern="/*"))
    block = next(r for r in res.by_type(RULE) if r.name == "shop-block-metrics").inputs
    assert block["conditions"][0] == {"hostHeader": {"values": ["shop.internal.example.org"]}}
    assert block["conditions"][1] == {"pathPattern": {"values": ["/metrics", "/metrics/*"]}}
    forward = next(r for r in res.by_type(RULE) if r.name == "shop-rule").inputs
    assert len(forward["conditions"]) == 2
    assert res.outputs["url"] == "https://shop.example.org"  # domain wins over host_header for the URL


def test_an_idle_timeout_above_the_keepalive_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    """The component cannot set the existing ALB's idle timeout; one at/above the app's keepalive (75 s)
    makes the ALB reuse connections gunicorn closed, so the run reports an error naming the Arg."""
    from fastapi_deploy.ecs import mocks as ecs_mocks

    errors: list[str] = []
    monkeypatch.setattr(pulumi.log, "error", lambda msg, *a, **k: errors.append(msg))
    original = ecs_mocks._get_load_balancer
    monkeypatch.setitem(
        ecs_mocks.INVOKES,
        "aws:lb/getLoadBalancer:getLoadBalancer",
        lambda m, a: {**original(m, a), "idleTimeout": 120},
    )
    build(attached())
    assert any("listener_arn" in e and "idle timeout of 120 s" in e for e in errors), errors


def test_the_policy_pack_judges_an_attached_service() -> None:
    """No ALB in the stack: the rules keyed on it do not crash, /metrics is seen as blocked by the
    component's rule, and the unverifiable idle timeout / HTTPS of the external ALB is an advisory note."""
    from policy.rules import RULES, Resource, evaluate

    res = build(attached())
    resources = [Resource(type=r.type, name=r.name, urn=r.urn, inputs=r.inputs) for r in res.resources]
    found = {(v.policy, v.enforcement) for v in evaluate(resources, RULES)}
    assert ("metrics-not-public", "advisory") not in found
    assert ("keepalive-above-lb-idle", "mandatory") not in found
    assert ("external-load-balancer", "advisory") in found
    # without the component's block rule, /metrics forwarded through the external listener is reported
    unblocked = [r for r in resources if r.name != "shop-block-metrics"]
    assert ("metrics-not-public", "advisory") in {
        (v.policy, v.enforcement) for v in evaluate(unblocked, RULES)
    }
    # a path pattern that never matches /metrics needs no block rule, and the pack agrees
    api = build(attached(domain=None, path_pattern="/api/*"))
    api_resources = [Resource(type=r.type, name=r.name, urn=r.urn, inputs=r.inputs) for r in api.resources]
    assert "metrics-not-public" not in {v.policy for v in evaluate(api_resources, RULES)}


def test_attached_args_render_plain_json_task_definition(result: ProgramResult) -> None:
    td = result.one("aws:ecs/taskDefinition:TaskDefinition").inputs
    env = {e["name"]: e["value"] for e in json.loads(td["containerDefinitions"])[0]["environment"]}
    assert env["GUNICORN_KEEPALIVE"] == "75"  # above the shared ALB's default 60 s idle timeout


# ------------------------------------------------------------------------------- inconsistent Args
BAD: list[tuple[dict[str, Any], str]] = [
    (
        attached(listener_rule_priority=None),
        r"FargateServiceArgs\.listener_rule_priority: required with listener_arn",
    ),
    (
        attached(listener_rule_priority=1),
        r"FargateServiceArgs\.listener_rule_priority: 1 is outside 2\.\.50000",
    ),
    (attached(listener_rule_priority=50001), r"FargateServiceArgs\.listener_rule_priority: 50001 is outside"),
    (
        attached(listener_rule_priority="7"),
        r"FargateServiceArgs\.listener_rule_priority: '7' is not an integer",
    ),
    (
        attached(load_balancer_security_group_id=None),
        r"FargateServiceArgs\.load_balancer_security_group_id: required with listener_arn",
    ),
    (
        attached(load_balancer_security_group_id="edge"),
        r"FargateServiceArgs\.load_balancer_security_group_id: 'edge' is not a security group id",
    ),
    (attached(listener_arn="arn:aws:elasticloadbalancing:x"), r"FargateServiceArgs\.listener_arn: .* not an"),
    (
        attached(vpc_id=None, private_subnet_ids=None),
        r"FargateServiceArgs\.vpc_id: required with listener_arn",
    ),
    (attached(private_subnet_ids=PRIVATE[:1]), r"FargateServiceArgs\.private_subnet_ids: needs at least 2"),
    (
        attached(public_subnet_ids=["subnet-0a1b2c3d4e5f60001", "subnet-0a1b2c3d4e5f60002"]),
        r"FargateServiceArgs\.public_subnet_ids: not with listener_arn",
    ),
    (attached(zone="example.org"), r"FargateServiceArgs\.zone: not with listener_arn"),
    (
        attached(
            certificate_arn="arn:aws:acm:us-east-1:123456789012:certificate/12345678-1234-1234-1234-123456789012"
        ),
        r"FargateServiceArgs\.certificate_arn: not with listener_arn",
    ),
    (
        attached(alb_deletion_protection=True),
        r"FargateServiceArgs\.alb_deletion_protection: not with listener_arn",
    ),
    (attached(domain=None), r"FargateServiceArgs\.host_header: required with listener_arn unless domain"),
    (attached(host_header="bad host!"), r"FargateServiceArgs\.host_header: 'bad host!' is not a host name"),
    (
        attached(path_pattern="api/*"),
        r"FargateServiceArgs\.path_pattern: 'api/\*' is not an ALB path pattern",
    ),
    (
        attached(request_timeout_s=56),
        r"FargateServiceArgs\.request_timeout_s: 56 s is above 55 s with listener_arn",
    ),
    (
        {"image": DIGEST, "scaling": {"min": 1, "max": 2}, "listener_rule_priority": 5},
        r"FargateServiceArgs\.listener_rule_priority: only with listener_arn",
    ),
    (
        {"image": DIGEST, "scaling": {"min": 1, "max": 2}, "path_pattern": "/api/*"},
        r"FargateServiceArgs\.path_pattern: only with listener_arn",
    ),
]


@pytest.mark.parametrize(("args", "message"), BAD, ids=[m for _, m in BAD])
def test_inconsistent_attach_args_fail_naming_the_arg_before_anything_registers(
    args: dict[str, Any], message: str
) -> None:
    mocks = RecordingMocks()
    with pytest.raises(ArgsError, match=message):
        build(args, mocks=mocks)
    assert mocks.monitor.recorded == []  # type: ignore[attr-defined]


def test_request_timeout_at_the_limit_is_accepted() -> None:
    from fastapi_deploy.ecs.component import inputs_from_args

    inp = inputs_from_args(attached(request_timeout_s=55))  # type: ignore[arg-type]
    assert inp.attach is not None
    assert inp.attach.priority == 120


# ----------------------------------------------------------------- stack config: app.ecs.load_balancer
def _staging_config(**lb: Any) -> dict[str, Any]:
    """stacks/Pulumi.staging-ecs.yaml with ``app.ecs.load_balancer`` (and no public subnets)."""
    import copy
    from pathlib import Path

    from fastapi_deploy import config as config_mod

    raw = copy.deepcopy(
        config_mod.stack_file_config(Path(__file__).parents[2] / "stacks" / "Pulumi.staging-ecs.yaml")
    )
    app = raw["fastapi-deploy:app"]
    app["ecs"]["vpc"].pop("public_subnet_ids")
    app["ecs"]["load_balancer"] = {
        "listener_arn": LISTENER.replace("us-east-1", "eu-west-1"),
        "security_group_id": EDGE_SG,
        "priority": 300,
        **lb,
    }
    return {k: v for k, v in raw.items()}


def test_stack_config_load_balancer_attaches_the_stack() -> None:
    from fastapi_deploy.mocks import run_program

    raw = _staging_config(path_pattern="/items/*")
    res = run_program("staging-ecs", raw)
    assert res.by_type("aws:lb/loadBalancer:LoadBalancer") == []
    assert res.by_type("aws:lb/listener:Listener") == []
    (rule,) = res.by_type(RULE)  # /items/* never sends /metrics here: no block rule
    assert rule.inputs["priority"] == 300
    assert rule.inputs["conditions"] == [{"pathPattern": {"values": ["/items/*"]}}]
    (ingress,) = res.by_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
    assert ingress.inputs["referencedSecurityGroupId"] == EDGE_SG
    assert res.outputs["load_balancer_dns"].startswith(f"{EXISTING_LB_NAME}-")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"priority": 1}, r"ecs\.load_balancer\.priority"),
        ({"listener_arn": "arn:aws:elasticloadbalancing:x"}, r"ecs\.load_balancer\.listener_arn"),
        ({"security_group_id": "edge"}, r"ecs\.load_balancer\.security_group_id"),
        ({"public": True}, r"ecs\.vpc\.public_subnet_ids: not with ecs\.load_balancer"),
        ({"zone": "example.org"}, r"ecs\.zone: not with ecs\.load_balancer"),
        ({"timeout": 90}, r"request_timeout_s: 90 s is above 55 s with ecs\.load_balancer"),
        ({}, r"ecs\.load_balancer\.path_pattern: required without app\.domain"),
        ({"listener_arn": LISTENER}, r"ecs\.load_balancer\.listener_arn: the listener is in us-east-1"),
    ],
)
def test_stack_config_load_balancer_errors_name_the_key(change: dict[str, Any], message: str) -> None:
    from fastapi_deploy.config import ConfigError, parse

    lb = {k: v for k, v in change.items() if k in ("priority", "listener_arn", "security_group_id")}
    raw = _staging_config(**lb)
    app = raw["fastapi-deploy:app"]
    if "priority" in lb or "listener_arn" in lb or "security_group_id" in lb:
        app["ecs"]["load_balancer"]["path_pattern"] = "/items/*"
    if change.get("public"):
        app["ecs"]["vpc"]["public_subnet_ids"] = ["subnet-0a1b2c3d4e5f60001", "subnet-0a1b2c3d4e5f60002"]
        app["ecs"]["load_balancer"]["path_pattern"] = "/items/*"
    if change.get("zone"):
        app["domain"] = "items.example.org"
        app["ecs"]["zone"] = "example.org"
    if change.get("timeout"):
        app["request_timeout_s"] = change["timeout"]
        app["ecs"]["load_balancer"]["path_pattern"] = "/items/*"
    with pytest.raises((ConfigError, ValueError), match=message):
        parse(app, stack="staging-ecs", providers={"aws:region": "eu-west-1"})


def test_existing_vpc_without_load_balancer_still_needs_public_subnets() -> None:
    from fastapi_deploy.config import parse

    raw = _staging_config()
    app = raw["fastapi-deploy:app"]
    del app["ecs"]["load_balancer"]
    with pytest.raises(ValueError, match=r"ecs\.vpc\.public_subnet_ids: required with vpc_id"):
        parse(app, stack="staging-ecs", providers={"aws:region": "eu-west-1"})


def test_doctor_does_not_report_plain_http_for_an_attached_stack() -> None:
    """The existing listener's certificate is its owner's: no "plain HTTP only" finding for it, while the
    same stack without ecs.load_balancer (own ALB, no certificate) still gets one."""
    from types import SimpleNamespace

    from fastapi_deploy.config import parse
    from fastapi_deploy.ecs.checks import check_certificate

    app = _staging_config(path_pattern="/items/*")["fastapi-deploy:app"]
    attached_cfg = parse(app, stack="staging-ecs", providers={"aws:region": "eu-west-1"})
    assert check_certificate(SimpleNamespace(cfg=attached_cfg, aws_ok=True, aws_region="eu-west-1")) == []  # type: ignore[arg-type]
    del app["ecs"]["load_balancer"]
    app["ecs"]["vpc"]["public_subnet_ids"] = ["subnet-0a1b2c3d4e5f60001", "subnet-0a1b2c3d4e5f60002"]
    own_cfg = parse(app, stack="staging-ecs", providers={"aws:region": "eu-west-1"})
    (finding,) = check_certificate(SimpleNamespace(cfg=own_cfg, aws_ok=True, aws_region="eu-west-1"))  # type: ignore[arg-type]
    assert "plain HTTP" in finding.what
