"""The ECS target under Pulumi mocks: what a reviewer checks before `pulumi up --stack prod-ecs`.

The real program (infra/__main__.py, via runpy like the CLI) runs for stacks/Pulumi.prod-ecs.yaml and
variants; every registered resource is recorded with the inputs the engine would receive (camelCase).
Rendered task definition / service / target group params are validated against botocore's AWS models.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pulumi
import pytest

from fastapi_deploy import apimodels, registry
from fastapi_deploy.config import ConfigError
from fastapi_deploy.contract import COMMON_OUTPUTS
from fastapi_deploy.ecs import component as ecs_target
from fastapi_deploy.mocks import (
    ACCOUNT_ID,
    ProgramResult,
    RecordedResource,
    RecordingMocks,
    is_secret,
    unwrap,
)
from fastapi_deploy.tuning import TuningError
from tests.infra.conftest import run_raw, stack_config

COMPONENT = "items-api-prod-ecs"
TASKDEF = "aws:ecs/taskDefinition:TaskDefinition"
SERVICE = "aws:ecs/service:Service"
TG = "aws:lb/targetGroup:TargetGroup"
DIGEST_RE = re.compile(r"^[0-9]{12}\.dkr\.ecr\.us-east-1\.amazonaws\.com/[a-z0-9-]+@sha256:[0-9a-f]{64}$")


@pytest.fixture(scope="module")
def prod(run_stack: Any) -> ProgramResult:
    return run_stack("prod-ecs")


@pytest.fixture(scope="module")
def staging(run_stack: Any) -> ProgramResult:
    return run_stack("staging-ecs")


def container(result: ProgramResult) -> dict[str, Any]:
    defs = json.loads(result.one(TASKDEF).inputs["containerDefinitions"])
    assert len(defs) == 1
    return defs[0]


def exec_policy(result: ProgramResult) -> dict[str, Any]:
    pol = next(r for r in result.by_type("aws:iam/rolePolicy:RolePolicy") if r.name.endswith("-exec-policy"))
    return json.loads(pol.inputs["policy"])


def env_of(c: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in c["environment"]}


# ------------------------------------------------------------------------------------------- graph
def test_component_owns_every_target_resource_and_names_derive_from_it(prod: ProgramResult) -> None:
    comp = prod.one("fastapi-deploy:ecs:FargateService")
    assert comp.name == COMPONENT
    by_urn = {r.urn: r for r in prod.resources}
    stack_level = {
        "aws:ecr/repository:Repository",
        "docker:index/image:Image",
        "fastapi-deploy:ecs:FargateService",
    }
    for r in prod.resources:
        assert r.name.startswith(COMPONENT), r.name  # two stacks never collide
        if r.type in stack_level or r.type == "aws:ecr/lifecyclePolicy:LifecyclePolicy":
            continue
        node: RecordedResource | None = r
        while node is not None and node.urn != comp.urn:
            node = by_urn.get(node.parent or "")
        assert node is not None, f"{r.type} {r.name} is not inside the component"


def test_every_taggable_resource_has_app_stack_managed_by_tags(prod: ProgramResult) -> None:
    untaggable = {
        "fastapi-deploy:ecs:FargateService",
        "docker:index/image:Image",
        "aws:ecr/lifecyclePolicy:LifecyclePolicy",
        "aws:ec2/routeTableAssociation:RouteTableAssociation",
        "aws:iam/rolePolicy:RolePolicy",
        "aws:lb/listener:Listener",  # tagged below too, but keep the rule about taggable types
        "aws:appautoscaling/policy:Policy",
        "aws:sns/topicSubscription:TopicSubscription",  # Subscribe takes no tags
        "pulumi-python:dynamic:ReleaseGate",  # not an AWS resource: a check the deploy waits on
    }
    checked = 0
    for r in prod.resources:
        if r.type in untaggable:
            continue
        tags = r.inputs.get("tags")
        assert tags, f"{r.type} {r.name} has no tags"
        assert tags["app"] == "items-api"
        assert tags["stack"] == "prod-ecs"
        assert tags["managed-by"] == "pulumi"
        checked += 1
    assert checked > 20


def test_outputs_follow_the_contract(prod: ProgramResult) -> None:
    for key in (*COMMON_OUTPUTS, *registry.get("ecs").outputs):
        assert key in prod.outputs, key
    out = prod.outputs
    assert out["target"] == "ecs"
    assert out["url"] == "https://api.example.com"
    assert DIGEST_RE.match(out["image"]), out["image"]
    assert (out["health_path"], out["ready_path"]) == ("/health", "/ready")
    assert out["region"] == "us-east-1"
    assert out["log_group"] == f"/ecs/{COMPONENT}"
    assert out["target_group_arn"].startswith("arn:aws:elasticloadbalancing:us-east-1:")
    assert out["load_balancer_dns"].endswith(".elb.amazonaws.com")
    assert out["service_name"] == prod.one(SERVICE).outputs["name"]


# ----------------------------------------------------------------------------------------- network
def test_new_vpc_has_public_and_private_subnets_in_distinct_azs_with_nat_per_az(prod: ProgramResult) -> None:
    subnets = prod.by_type("aws:ec2/subnet:Subnet")
    public = [s for s in subnets if s.inputs["tags"]["tier"] == "public"]
    private = [s for s in subnets if s.inputs["tags"]["tier"] == "private"]
    assert len(public) == len(private) == 2
    assert len({s.inputs["availabilityZone"] for s in public}) == 2
    assert len({s.inputs["availabilityZone"] for s in private}) == 2
    assert not any(s.inputs.get("mapPublicIpOnLaunch") for s in subnets)
    assert len(prod.by_type("aws:ec2/natGateway:NatGateway")) == 2  # nat_gateways: per_az
    nat_routes = [
        rt
        for rt in prod.by_type("aws:ec2/routeTable:RouteTable")
        if rt.inputs["routes"][0].get("natGatewayId")
    ]
    assert len(nat_routes) == 2


def test_service_runs_in_private_subnets_without_public_ip(prod: ProgramResult) -> None:
    svc = prod.one(SERVICE).inputs
    private_ids = {
        s.id for s in prod.by_type("aws:ec2/subnet:Subnet") if s.inputs["tags"]["tier"] == "private"
    }
    assert set(svc["networkConfiguration"]["subnets"]) == private_ids
    assert svc["networkConfiguration"]["assignPublicIp"] is False
    alb = prod.one("aws:lb/loadBalancer:LoadBalancer").inputs
    public_ids = {s.id for s in prod.by_type("aws:ec2/subnet:Subnet") if s.inputs["tags"]["tier"] == "public"}
    assert set(alb["subnets"]) == public_ids
    assert alb["internal"] is False


def test_security_groups_let_tasks_accept_traffic_only_from_the_alb(prod: ProgramResult) -> None:
    sgs = {r.name: r for r in prod.by_type("aws:ec2/securityGroup:SecurityGroup")}
    alb_sg, task_sg = sgs[f"{COMPONENT}-alb-sg"].id, sgs[f"{COMPONENT}-task-sg"].id
    ingress = prod.by_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
    egress = prod.by_type("aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule")
    task_in = [r.inputs for r in ingress if r.inputs["securityGroupId"] == task_sg]
    assert task_in == [
        {
            **task_in[0],
            "referencedSecurityGroupId": alb_sg,
            "fromPort": 8000,
            "toPort": 8000,
            "ipProtocol": "tcp",
        }
    ]
    assert "cidrIpv4" not in task_in[0]
    alb_in = [r.inputs for r in ingress if r.inputs["securityGroupId"] == alb_sg]
    assert sorted({(r["fromPort"], r["toPort"]) for r in alb_in}) == [(80, 80), (443, 443)]
    alb_out = [r.inputs for r in egress if r.inputs["securityGroupId"] == alb_sg]
    assert len(alb_out) == 1
    assert alb_out[0]["referencedSecurityGroupId"] == task_sg
    assert alb_out[0]["fromPort"] == 8000
    # No inline rules that could open everything (and fight the rule resources).
    for sg in sgs.values():
        assert not sg.inputs.get("ingress")
        assert not sg.inputs.get("egress")
    task_out = {r.inputs["fromPort"]: r.inputs for r in egress if r.inputs["securityGroupId"] == task_sg}
    assert set(task_out) == {443, 5432, 6379}
    assert task_out[5432]["cidrIpv4"] == "10.40.0.0/16"


# --------------------------------------------------------------------------------------------- ALB
def test_alb_serves_https_with_a_modern_policy_and_redirects_http(prod: ProgramResult) -> None:
    listeners = {r.inputs["port"]: r.inputs for r in prod.by_type("aws:lb/listener:Listener")}
    https, http = listeners[443], listeners[80]
    assert https["protocol"] == "HTTPS"
    assert https["certificateArn"].startswith("arn:aws:acm:us-east-1:")
    assert https["sslPolicy"].startswith("ELBSecurityPolicy-TLS13")
    assert https["defaultActions"][0]["type"] == "forward"
    redirect = http["defaultActions"][0]
    assert redirect["type"] == "redirect"
    assert redirect["redirect"] == {"protocol": "HTTPS", "port": "443", "statusCode": "HTTP_301"}
    alb = prod.one("aws:lb/loadBalancer:LoadBalancer").inputs
    assert alb["dropInvalidHeaderFields"] is True
    assert alb["enableDeletionProtection"] is True


def test_the_alb_answers_metrics_itself_and_never_forwards_it(
    prod: ProgramResult, staging: ProgramResult
) -> None:
    for result, port in ((prod, 443), (staging, 80)):  # the listener that forwards to the app
        (rule,) = result.by_type("aws:lb/listenerRule:ListenerRule")
        listener = next(r for r in result.by_type("aws:lb/listener:Listener") if r.inputs["port"] == port)
        assert rule.inputs["listenerArn"] == listener.outputs["arn"]
        assert rule.parent == listener.urn
        assert rule.inputs["priority"] == 1  # before anything else a later rule might add
        (cond,) = rule.inputs["conditions"]
        assert cond["pathPattern"]["values"] == ["/metrics", "/metrics/*"]
        (action,) = rule.inputs["actions"]
        assert action["type"] == "fixed-response"
        assert action["fixedResponse"]["statusCode"] == "404"
        params = apimodels.elbv2_create_rule_params(rule.inputs, listener.outputs["arn"])
        apimodels.validate(("elbv2", "CreateRule"), params)


def test_target_group_checks_liveness_with_short_drain(prod: ProgramResult) -> None:
    tg = prod.one(TG).inputs
    assert tg["targetType"] == "ip"
    hc = tg["healthCheck"]
    # Liveness, not readiness: ECS replaces ALB-unhealthy tasks, so /ready here = restart loop in a DB outage.
    assert hc["path"] == "/health"
    assert hc["matcher"] == "200"
    assert hc["timeout"] < hc["interval"]
    assert tg["deregistrationDelay"] == 35  # request_timeout_s 30 + 5, not the 300 s default


def test_timeout_chain_is_consistent_across_alb_target_group_and_container(prod: ProgramResult) -> None:
    c = container(prod)
    env = env_of(c)
    idle = prod.one("aws:lb/loadBalancer:LoadBalancer").inputs["idleTimeout"]
    dereg = prod.one(TG).inputs["deregistrationDelay"]
    keepalive, graceful = int(env["GUNICORN_KEEPALIVE"]), int(env["GUNICORN_GRACEFUL_TIMEOUT"])
    assert idle == 60
    assert keepalive > idle  # else ALB reuses a connection gunicorn closed -> 502
    assert graceful < c["stopTimeout"]  # else SIGKILL mid-drain
    assert graceful <= dereg
    assert dereg >= 30  # covers the longest request (app.request_timeout_s)
    assert dereg < 300


# ------------------------------------------------------------------------------------ task definition
def test_task_definition_runs_the_digest_non_root_on_read_only_fs(prod: ProgramResult) -> None:
    td = prod.one(TASKDEF).inputs
    c = container(prod)
    assert c["image"] == prod.outputs["image"]
    assert DIGEST_RE.match(c["image"])
    assert td["cpu"] == "1024"
    assert td["memory"] == "2048"
    assert td["networkMode"] == "awsvpc"
    assert td["requiresCompatibilities"] == ["FARGATE"]
    assert td["runtimePlatform"] == {"operatingSystemFamily": "LINUX", "cpuArchitecture": "X86_64"}
    user = c["user"].split(":")[0]
    assert user not in ("0", "root")
    assert c["readonlyRootFilesystem"] is True
    assert c["mountPoints"] == [{"sourceVolume": "tmp", "containerPath": "/tmp", "readOnly": False}]
    assert td["volumes"] == [{"name": "tmp"}]
    assert c["linuxParameters"]["initProcessEnabled"] is True
    assert c["essential"] is True
    assert c["portMappings"][0]["containerPort"] == 8000


def test_container_env_carries_tuning_and_no_secret_values(prod: ProgramResult) -> None:
    c = container(prod)
    env = env_of(c)
    assert env["WEB_CONCURRENCY"] == "1"  # 1 vCPU
    assert env["DB_POOL_SIZE"] == "5"
    assert env["DB_MAX_OVERFLOW"] == "2"
    assert env["APP_ENV"] == "production"
    assert env["CORS_ORIGINS"] == "https://app.example.com"
    assert env["LOG_LEVEL"] == "info"
    secret_names = {s["name"] for s in c["secrets"]}
    assert secret_names == {"DATABASE_URL", "REDIS_URL", "JWT_SECRET_KEY", "SENTRY_DSN"}
    assert not secret_names & set(env)
    values = {s["name"]: s["valueFrom"] for s in c["secrets"]}
    assert values["DATABASE_URL"] == (
        f"arn:aws:secretsmanager:us-east-1:{ACCOUNT_ID}:secret:prod/items-api/db:url::"
    )
    assert (
        values["JWT_SECRET_KEY"]
        == f"arn:aws:ssm:us-east-1:{ACCOUNT_ID}:parameter/prod/items-api/jwt-secret-key"
    )
    # No secret-looking values anywhere in plain env.
    assert not any(re.search(r"postgres(ql)?(\+asyncpg)?://|redis://", v) for v in env.values())


def test_container_health_check_gates_on_readiness_once_then_liveness(prod: ProgramResult) -> None:
    hc = container(prod)["healthCheck"]
    assert hc["command"][:3] == ["CMD", "python", "-c"]
    script = hc["command"][3]
    assert "'/ready'" in script
    assert "'/health'" in script
    assert hc["startPeriod"] >= 10
    assert hc["timeout"] < hc["interval"]
    assert hc["retries"] >= 2


def test_health_check_marker_is_writable_by_the_non_root_user_on_fargate(prod: ProgramResult) -> None:
    """Fargate creates task bind-mount volumes root-owned with mode 0755 (AWS "Use bind mounts with Amazon
    ECS", considerations; aws/containers-roadmap#938): uid 10001 cannot create the marker there, the script
    dies with PermissionError and no task ever turns healthy. /dev/shm is a per-container 1777 tmpfs."""
    c = container(prod)
    script = c["healthCheck"]["command"][3]
    marker = re.search(r"m='([^']+)'", script)
    assert marker is not None
    path = marker.group(1)
    assert c["user"].split(":")[0] not in ("0", "root")
    mounted = [m["containerPath"].rstrip("/") + "/" for m in c["mountPoints"]]
    assert not any(path.startswith(m) for m in mounted), f"{path} is on a root-owned Fargate bind mount"
    assert path.startswith("/dev/shm/")


def test_health_check_script_behaviour(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Execute the real script against a fake server: ready gates the first success, then liveness only."""
    import http.server
    import subprocess
    import sys
    import threading

    state = {"ready": 503, "health": 200, "hits": []}

    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state["hits"].append(self.path)
            code = state["ready"] if self.path == "/ready" else state["health"]
            self.send_response(code)
            self.end_headers()

        def log_message(self, *a: Any) -> None:
            pass

    srv = http.server.HTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    marker = tmp_path / "ready-once"
    script = ecs_target.health_command("/health", "/ready", 3)[3].replace(
        ecs_target.READY_MARKER, str(marker)
    )
    env = {"PORT": str(srv.server_address[1])}

    def check() -> int:
        return subprocess.run([sys.executable, "-c", script], env=env, timeout=20).returncode

    try:
        assert check() == 1  # DB down at start: never becomes healthy -> circuit breaker
        assert state["hits"][-1] == "/ready"
        state["ready"] = 200
        assert check() == 0
        assert marker.exists()
        state["ready"] = 503  # DB outage later: liveness only, task is kept
        assert check() == 0
        assert state["hits"][-1] == "/health"
        state["health"] = 500  # process wedged: unhealthy -> replaced
        assert check() == 1
    finally:
        srv.shutdown()


def test_logs_go_to_a_retained_group_without_blocking(prod: ProgramResult) -> None:
    lg = prod.one("aws:cloudwatch/logGroup:LogGroup").inputs
    assert lg["retentionInDays"] == 90
    opts = container(prod)["logConfiguration"]
    assert opts["logDriver"] == "awslogs"
    assert opts["options"]["awslogs-group"] == lg["name"]
    assert opts["options"]["awslogs-region"] == "us-east-1"
    assert opts["options"]["mode"] == "non-blocking"


def test_cluster_has_container_insights(prod: ProgramResult, staging: ProgramResult) -> None:
    assert prod.one("aws:ecs/cluster:Cluster").inputs["settings"] == [
        {"name": "containerInsights", "value": "enabled"}
    ]
    assert staging.one("aws:ecs/cluster:Cluster").inputs["settings"][0]["value"] == "disabled"


# ------------------------------------------------------------------------------------------------ IAM
def test_execution_role_reads_exactly_the_referenced_secrets(prod: ProgramResult) -> None:
    pol = exec_policy(prod)
    st = {s["Sid"]: s for s in pol["Statement"]}
    assert st["ReadParameters"]["Action"] == ["ssm:GetParameters"]
    assert st["ReadParameters"]["Resource"] == sorted(
        f"arn:aws:ssm:us-east-1:{ACCOUNT_ID}:parameter/prod/items-api/{n}"
        for n in ("redis-url", "jwt-secret-key", "sentry-dsn")
    )
    assert st["ReadSecrets"]["Action"] == ["secretsmanager:GetSecretValue"]
    assert st["ReadSecrets"]["Resource"] == [
        f"arn:aws:secretsmanager:us-east-1:{ACCOUNT_ID}:secret:prod/items-api/db-??????"
    ]
    repo_arn = prod.one("aws:ecr/repository:Repository").outputs["arn"]
    assert st["PullImage"]["Resource"] == [repo_arn]
    assert st["WriteLogs"]["Resource"] == [
        prod.one("aws:cloudwatch/logGroup:LogGroup").outputs["arn"] + ":log-stream:*"
    ]


def test_no_wildcard_actions_and_the_only_star_resource_is_ecr_login(prod: ProgramResult) -> None:
    for s in exec_policy(prod)["Statement"]:
        actions = s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
        assert not any(a == "*" or a.endswith(":*") for a in actions), s
        if s["Resource"] == "*":
            assert actions == ["ecr:GetAuthorizationToken"]  # AWS accepts only "*" for this action


def test_roles_trust_only_ecs_tasks_of_this_account_and_task_role_has_no_permissions(
    prod: ProgramResult,
) -> None:
    roles = {r.name: r for r in prod.by_type("aws:iam/role:Role")}
    for role in roles.values():
        trust = json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]
        assert trust["Principal"] == {"Service": "ecs-tasks.amazonaws.com"}
        assert trust["Condition"]["StringEquals"]["aws:SourceAccount"] == ACCOUNT_ID
        assert not role.inputs.get("managedPolicyArns")
    task_role_urn = roles[f"{COMPONENT}-task-role"].urn
    assert not [p for p in prod.by_type("aws:iam/rolePolicy:RolePolicy") if p.parent == task_role_urn]
    td = prod.one(TASKDEF).inputs
    assert td["taskRoleArn"] != td["executionRoleArn"]


def test_kms_decrypt_is_granted_only_for_configured_keys(run_stack: Any) -> None:
    key = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    result = run_stack("prod-ecs", lambda app: app.__setitem__("secret_kms_key_arns", [key]))
    kms = next(s for s in exec_policy(result)["Statement"] if s["Sid"] == "DecryptSecrets")
    assert kms["Action"] == ["kms:Decrypt"]
    assert kms["Resource"] == [key]
    assert set(kms["Condition"]["StringEquals"]["kms:ViaService"]) == {
        "ssm.us-east-1.amazonaws.com",
        "secretsmanager.us-east-1.amazonaws.com",
    }


# --------------------------------------------------------------------------------------------- service
def test_service_rolls_back_bad_releases_and_keeps_capacity(prod: ProgramResult) -> None:
    svc = prod.one(SERVICE).inputs
    assert svc["deploymentCircuitBreaker"] == {"enable": True, "rollback": True}
    assert svc["deploymentMinimumHealthyPercent"] == 100
    assert svc["deploymentMaximumPercent"] == 200
    assert svc["healthCheckGracePeriodSeconds"] == 60
    assert svc["launchType"] == "FARGATE"
    assert svc["desiredCount"] == 2
    alarm_5xx = next(
        a for a in prod.by_type("aws:cloudwatch/metricAlarm:MetricAlarm") if a.name.endswith("-5xx")
    )
    assert svc["alarms"] == {"alarmNames": [alarm_5xx.outputs["name"]], "enable": True, "rollback": True}
    lb = svc["loadBalancers"][0]
    assert lb["containerName"] == "app"
    assert lb["containerPort"] == 8000
    assert lb["targetGroupArn"] == prod.one(TG).outputs["arn"]


def test_autoscaling_tracks_cpu_and_requests_between_min_and_max(prod: ProgramResult) -> None:
    target = prod.one("aws:appautoscaling/target:Target").inputs
    assert (target["minCapacity"], target["maxCapacity"]) == (2, 10)
    assert target["scalableDimension"] == "ecs:service:DesiredCount"
    policies = {p.name.rsplit("-", 1)[-1]: p.inputs for p in prod.by_type("aws:appautoscaling/policy:Policy")}
    cpu = policies["cpu"]["targetTrackingScalingPolicyConfiguration"]
    assert cpu["predefinedMetricSpecification"]["predefinedMetricType"] == "ECSServiceAverageCPUUtilization"
    assert cpu["targetValue"] == 60
    req = policies["requests"]["targetTrackingScalingPolicyConfiguration"]
    spec = req["predefinedMetricSpecification"]
    assert spec["predefinedMetricType"] == "ALBRequestCountPerTarget"
    alb_suffix = prod.one("aws:lb/loadBalancer:LoadBalancer").outputs["arnSuffix"]
    tg_suffix = prod.one(TG).outputs["arnSuffix"]
    assert spec["resourceLabel"] == f"{alb_suffix}/{tg_suffix}"


def test_alarms_on_5xx_p95_unhealthy_memory_and_emf_metrics(prod: ProgramResult) -> None:
    alarms = {
        a.name.rsplit("-", 1)[-1]: a.inputs for a in prod.by_type("aws:cloudwatch/metricAlarm:MetricAlarm")
    }
    assert set(alarms) == {"5xx", "p95", "unhealthy", "memory", "dbpool", "restarts"}
    assert alarms["5xx"]["metricName"] == "HTTPCode_Target_5XX_Count"
    assert alarms["5xx"]["threshold"] == 10
    assert alarms["p95"]["extendedStatistic"] == "p95"
    assert alarms["p95"]["threshold"] == 1.0
    assert alarms["unhealthy"]["metricName"] == "UnHealthyHostCount"
    assert alarms["unhealthy"]["comparisonOperator"] == "GreaterThanOrEqualToThreshold"
    for key in ("5xx", "p95", "unhealthy"):
        assert alarms[key]["namespace"] == "AWS/ApplicationELB"
        assert set(alarms[key]["dimensions"]) == {"LoadBalancer", "TargetGroup"}
    svc = prod.one("aws:ecs/service:Service")
    cluster = prod.one("aws:ecs/cluster:Cluster")
    assert alarms["memory"]["namespace"] == "AWS/ECS"
    assert alarms["memory"]["metricName"] == "MemoryUtilization"
    assert alarms["memory"]["threshold"] == 90
    assert alarms["memory"]["dimensions"] == {
        "ClusterName": cluster.outputs["name"],
        "ServiceName": svc.outputs["name"],
    }
    assert alarms["dbpool"]["namespace"] == alarms["restarts"]["namespace"] == "FastAPIDeploy"
    assert alarms["dbpool"]["metricName"] == "db_pool_usage_ratio"
    assert alarms["dbpool"]["threshold"] == 0.9
    assert alarms["restarts"]["metricName"] == "worker_restarts"
    assert alarms["dbpool"]["dimensions"] == {"Service": "items-api-prod-ecs"}


def test_every_alarm_notifies_the_stack_topic_on_alarm_and_ok(prod: ProgramResult) -> None:
    topic = prod.one("aws:sns/topic:Topic")
    subs = prod.by_type("aws:sns/topicSubscription:TopicSubscription")
    assert [(s.inputs["protocol"], s.inputs["endpoint"]) for s in subs] == [("email", "oncall@example.com")]
    assert all(s.inputs["topic"] == topic.outputs["arn"] for s in subs)
    for alarm in prod.by_type("aws:cloudwatch/metricAlarm:MetricAlarm"):
        assert alarm.inputs["alarmActions"] == [topic.outputs["arn"]], alarm.name
        assert alarm.inputs["okActions"] == [topic.outputs["arn"]], alarm.name


def test_an_existing_topic_is_used_and_subscribed_not_created(run_stack: Any) -> None:
    arn = "arn:aws:sns:us-east-1:123456789012:oncall"

    def edit(app: dict[str, Any]) -> None:
        app["alerts"] = {"sns_topic_arn": arn, "webhook_url": "https://hooks.example.com/alarms"}

    result = run_stack("prod-ecs", edit)
    assert result.by_type("aws:sns/topic:Topic") == []
    (sub,) = result.by_type("aws:sns/topicSubscription:TopicSubscription")
    assert (sub.inputs["topic"], sub.inputs["protocol"]) == (arn, "https")
    for alarm in result.by_type("aws:cloudwatch/metricAlarm:MetricAlarm"):
        assert alarm.inputs["alarmActions"] == alarm.inputs["okActions"] == [arn]


def test_legacy_ecs_alarms_sns_topic_arn_still_works(run_stack: Any) -> None:
    arn = "arn:aws:sns:us-east-1:123456789012:legacy"

    def edit(app: dict[str, Any]) -> None:
        app.pop("alerts", None)
        app["ecs"]["alarms"]["sns_topic_arn"] = arn

    result = run_stack("prod-ecs", edit)
    assert result.by_type("aws:sns/topic:Topic") == []
    for alarm in result.by_type("aws:cloudwatch/metricAlarm:MetricAlarm"):
        assert alarm.inputs["alarmActions"] == [arn]


def test_rendered_alarms_and_sns_match_cloudwatch_and_sns_models(prod: ProgramResult) -> None:
    for alarm in prod.by_type("aws:cloudwatch/metricAlarm:MetricAlarm"):
        params = apimodels.cloudwatch_put_metric_alarm_params(alarm.inputs, alarm.outputs["name"])
        apimodels.validate(("cloudwatch", "PutMetricAlarm"), params)
        op = ("cloudwatch", "PutMetricAlarm")
        assert params["ComparisonOperator"] in apimodels.enum_values(op, "ComparisonOperator")
        if "Statistic" in params:
            assert params["Statistic"] in apimodels.enum_values(op, "Statistic")
        assert params["AlarmActions"]
        assert params["OKActions"]
    topic = prod.one("aws:sns/topic:Topic")
    apimodels.validate(("sns", "CreateTopic"), apimodels.sns_create_topic_params(topic.inputs, "t"))
    for sub in prod.by_type("aws:sns/topicSubscription:TopicSubscription"):
        params = apimodels.sns_subscribe_params(sub.inputs, topic.outputs["arn"])
        apimodels.validate(("sns", "Subscribe"), params)
    with pytest.raises(apimodels.ApiValidationError):
        apimodels.validate(("cloudwatch", "PutMetricAlarm"), {**params, "Threshhold": 1})


# ------------------------------------------------------------------------------------------------ image
def test_ecr_repository_is_immutable_scanned_and_pruned(prod: ProgramResult) -> None:
    repo = prod.one("aws:ecr/repository:Repository").inputs
    assert repo["imageTagMutability"] == "IMMUTABLE"
    assert repo["imageScanningConfiguration"] == {"scanOnPush": True}
    rules = json.loads(prod.one("aws:ecr/lifecyclePolicy:LifecyclePolicy").inputs["policy"])["rules"]
    assert {r["selection"]["tagStatus"] for r in rules} == {"untagged", "any"}
    image = prod.one("docker:index/image:Image").inputs
    assert image["build"]["platform"] == "linux/amd64"
    assert image["imageName"].endswith(":test-0123456789ab")
    assert unwrap(image["registry"])["username"] == "AWS"
    # The registry password reaches the engine as a secret (encrypted in state, masked in the plan).
    assert is_secret(image["registry"]) or is_secret(image["registry"]["password"])


def test_existing_digest_is_promoted_without_building(run_stack: Any) -> None:
    digest = "987654321098.dkr.ecr.us-east-1.amazonaws.com/items-api@sha256:" + "ab" * 32
    result = run_stack("prod-ecs", lambda app: app.__setitem__("image", {"digest": digest}))
    assert not result.by_type("docker:index/image:Image")
    assert not result.by_type("aws:ecr/repository:Repository")
    assert container(result)["image"] == digest
    assert result.outputs["image"] == digest
    pull = next(s for s in exec_policy(result)["Statement"] if s["Sid"] == "PullImage")
    assert pull["Resource"] == ["arn:aws:ecr:us-east-1:987654321098:repository/items-api"]


# ---------------------------------------------------------------------------------------------- staging
def test_existing_vpc_is_used_as_given_and_http_only_forwards(staging: ProgramResult) -> None:
    assert not staging.by_type("aws:ec2/vpc:Vpc")
    assert not staging.by_type("aws:ec2/subnet:Subnet")
    svc = staging.one(SERVICE).inputs
    assert svc["networkConfiguration"]["subnets"] == ["subnet-0a1b2c3d4e5f60011", "subnet-0a1b2c3d4e5f60012"]
    assert staging.one(TG).inputs["vpcId"] == "vpc-0a1b2c3d4e5f60718"
    (listener,) = staging.by_type("aws:lb/listener:Listener")
    assert listener.inputs["port"] == 80
    assert listener.inputs["defaultActions"][0]["type"] == "forward"
    assert staging.outputs["url"].startswith("http://")
    assert staging.outputs["region"] == "eu-west-1"


# ------------------------------------------------------------------------------- AWS API model validation
def test_rendered_task_definition_matches_register_task_definition_model(prod: ProgramResult) -> None:
    params = apimodels.ecs_register_task_definition_params(prod.one(TASKDEF).inputs)
    apimodels.validate(("ecs", "RegisterTaskDefinition"), params)


def test_rendered_service_matches_create_service_model(prod: ProgramResult) -> None:
    svc = prod.one(SERVICE)
    params = apimodels.ecs_create_service_params(svc.inputs, svc.outputs["name"])
    assert params["deploymentConfiguration"]["deploymentCircuitBreaker"] == {"enable": True, "rollback": True}
    apimodels.validate(("ecs", "CreateService"), params)
    assert params["launchType"] in apimodels.enum_values(("ecs", "CreateService"), "launchType")
    assert params["propagateTags"] in apimodels.enum_values(("ecs", "CreateService"), "propagateTags")


def test_rendered_target_group_matches_elbv2_models(prod: ProgramResult) -> None:
    tg = prod.one(TG)
    apimodels.validate(
        ("elbv2", "CreateTargetGroup"), apimodels.elbv2_create_target_group_params(tg.inputs, "tg")
    )
    apimodels.validate(
        ("elbv2", "ModifyTargetGroupAttributes"),
        apimodels.elbv2_target_group_attributes(tg.inputs, tg.outputs["arn"]),
    )
    repo = prod.one("aws:ecr/repository:Repository")
    apimodels.validate(
        ("ecr", "CreateRepository"), apimodels.ecr_create_repository_params(repo.inputs, "items-api")
    )


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [
        (
            lambda c: c["healthCheck"].__setitem__("startperiod", 5),
            'Unknown parameter in containerDefinitions[0].healthCheck: "startperiod"',
        ),
        (lambda c: c.__setitem__("stopTimeout", "30"), "containerDefinitions[0].stopTimeout"),
        (
            lambda c: c["portMappings"][0].__setitem__("containerPort", "8000"),
            "portMappings[0].containerPort",
        ),
        (lambda c: c.__setitem__("readOnlyRootFilesystem", True), "readOnlyRootFilesystem"),
    ],
)
def test_model_validation_catches_field_and_type_mistakes(
    prod: ProgramResult, mutate: Any, fragment: str
) -> None:
    params = apimodels.ecs_register_task_definition_params(prod.one(TASKDEF).inputs)
    mutate(params["containerDefinitions"][0])
    with pytest.raises(apimodels.ApiValidationError) as err:
        apimodels.validate(("ecs", "RegisterTaskDefinition"), params)
    assert fragment in str(err.value)


# ------------------------------------------------------------------------------------- invalid configs
def _set(path: str, value: Any) -> Any:
    def edit(app: dict[str, Any]) -> None:
        node = app
        *parents, last = path.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value

    return edit


INVALID = [
    (
        _set("ecs.memory", 3000),
        ConfigError,
        "app.ecs.memory: 3000 is not valid with cpu 1024; allowed: 2048..8192",
    ),
    (_set("ecs.cpu", 1000), ConfigError, "app.ecs.cpu: 1000 is not a Fargate cpu"),
    (
        _set("health.liveness_path", "health"),
        ConfigError,
        "app.health.liveness_path: 'health' must start with '/'",
    ),
    (_set("secrets.DATABASE_URL", "vault:secret/db"), ConfigError, "app.secrets.DATABASE_URL:"),
    (_set("secrets.DATABASE_URL", "gcp:db-url"), ConfigError, "not supported on target ecs"),
    (
        _set("scaling.desired", 20),
        ConfigError,
        "app.scaling: desired (20) must be between min (2) and max (10)",
    ),
    (_set("env.DATABASE_URL", "postgresql://u:p@h/db"), ConfigError, "app.env.DATABASE_URL: a credential"),
    (_set("env.WEB_CONCURRENCY", "9"), ConfigError, "computed by the deployer"),
    (_set("ecs.log_retention_days", 10), ConfigError, "app.ecs.log_retention_days: 10 is not accepted"),
    (
        _set(
            "ecs.certificate_arn",
            "arn:aws:acm:eu-west-1:123456789012:certificate/0f6d1a4e-3b1c-4a2b-9e8f-1c2d3e4f5a6b",
        ),
        ConfigError,
        "app.ecs.certificate_arn: the certificate is in eu-west-1",
    ),
    (
        _set(
            "ecs.vpc",
            {
                "vpc_id": "vpc-0a1b2c3d4e5f60718",
                "public_subnet_ids": ["subnet-0a1b2c3d4e5f60001"],
                "private_subnet_ids": [],
            },
        ),
        ConfigError,
        "app.ecs.vpc.public_subnet_ids: needs at least 2 subnets",
    ),
    (_set("cors_origins", ["*"]), ConfigError, "app.cors_origins: '*' is refused in production"),
    (_set("image", {"digest": "repo:latest"}), ConfigError, "app.image.digest:"),
    (_set("target", "kubernetes"), ConfigError, "app.target: 'kubernetes' is unknown"),
    (_set("ecs.cpu_units", 1024), ConfigError, "app.ecs.cpu_units: unknown key"),
    (_set("database.max_connections", 40), TuningError, "app.scaling.max"),
    (_set("request_timeout_s", 200), TuningError, "app.request_timeout_s"),
]


@pytest.mark.parametrize(("edit", "error", "fragment"), INVALID)
def test_invalid_config_is_refused_before_any_resource(
    edit: Any, error: type[Exception], fragment: str
) -> None:
    raw = stack_config("prod-ecs")
    edit(raw["fastapi-deploy:app"])
    mocks, exc, _ = run_raw("prod-ecs", raw)
    assert isinstance(exc, error), repr(exc)
    assert fragment in str(exc)
    assert mocks.monitor.recorded == []  # type: ignore[attr-defined]


def test_budget_refusal_names_every_key_to_change() -> None:
    raw = stack_config("prod-ecs")
    raw["fastapi-deploy:app"]["database"] = {"max_connections": 40, "reserved_connections": 10}
    _, exc, _ = run_raw("prod-ecs", raw)
    msg = str(exc)
    for key in (
        "app.database.max_connections",
        "app.database.reserved_connections",
        "app.scaling.max",
        "app.tuning.workers",
        "app.ecs.cpu",
    ):
        assert key in msg
    assert "20 replicas during a deploy" in msg


# --------------------------------------------------------------------- component used directly (Output.apply)
@pulumi.runtime.test
def test_component_outputs_resolve_through_output_apply() -> Any:
    """The component built from plain Args (no stack file): outputs and children resolve through apply."""
    from fastapi_deploy.ecs import FargateService, FargateServiceArgs

    pulumi.runtime.set_mocks(RecordingMocks(), project="fastapi-deploy", stack="prod-ecs", preview=False)
    args: FargateServiceArgs = {
        "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/x@sha256:" + "0" * 64,
        "scaling": {"min": 2, "max": 10},
        "database": {"max_connections": 400, "reserved_connections": 20},
        "certificate_arn": "arn:aws:acm:us-east-1:123456789012:certificate/"
        + "0" * 8
        + "-0000-0000-0000-"
        + "0" * 12,
        "domain": "api.example.com",
    }
    svc = FargateService("unit", args)

    def check(args: list[Any]) -> None:
        url, dereg, hc_path = args
        assert url == "https://api.example.com"
        assert dereg == 35
        assert hc_path == "/health"

    return pulumi.Output.all(
        svc.url, svc.target_group.deregistration_delay, svc.target_group.health_check.path
    ).apply(check)


@pytest.mark.parametrize("stack", ["prod-ecs", "staging-ecs"])
def test_alb_and_target_group_names_fit_aws_limits(run_stack: Any, stack: str) -> None:
    """AWS caps both at 32 chars; Pulumi's auto-name (+8 chars) would fail `pulumi up` for long stacks."""
    result = run_stack(stack)
    for type_token in ("aws:lb/loadBalancer:LoadBalancer", TG):
        physical = result.one(type_token).inputs["name"]
        assert re.fullmatch(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,30}[A-Za-z0-9])?", physical), physical
        assert len(physical) <= 32


def test_target_group_name_changes_when_a_replacement_is_forced() -> None:
    """Create-before-delete needs a new name when port/protocol/VPC change (the listener holds the old)."""
    base = ecs_target.lb_physical_name("items-api-prod-ecs", "tg", 8000, "HTTP", "ip", "vpc-1")
    assert ecs_target.lb_physical_name("items-api-prod-ecs", "tg", 8000, "HTTP", "ip", "vpc-1") == base
    assert ecs_target.lb_physical_name("items-api-prod-ecs", "tg", 8080, "HTTP", "ip", "vpc-1") != base
    long_a = ecs_target.lb_physical_name("a-very-long-application-name-staging-ecs", "tg", 8000)
    long_b = ecs_target.lb_physical_name("a-very-long-application-name-staging-ecs2", "tg", 8000)
    assert long_a != long_b
    assert max(len(long_a), len(long_b)) <= 32


def test_target_registry_names_missing_targets(monkeypatch: pytest.MonkeyPatch) -> None:
    from fastapi_deploy import targets
    from fastapi_deploy.ecs import adapter as ecs_adapter

    assert targets.module_for("ecs") is ecs_adapter
    import dataclasses

    from fastapi_deploy import registry

    ghost = dataclasses.replace(
        registry.get("ecs"), key="nomad", deploy_module="fastapi_deploy.targets.nomad"
    )
    monkeypatch.setitem(registry.TARGETS, "nomad", ghost)
    with pytest.raises(
        targets.TargetNotAvailable, match=r"app\.target: 'nomad' is not implemented .*nomad\.py missing"
    ):
        targets.module_for("nomad")
    with pytest.raises(targets.TargetNotAvailable, match=r"app\.target: 'k8s' has no deployer"):
        targets.module_for("k8s")


def test_tasks_migrate_on_start_within_the_container_health_budget(prod: ProgramResult) -> None:
    """Default app.database.migrate on ECS is on_start; the migration must give up before the task's
    health check (startPeriod + retries x interval) declares it unhealthy mid-migration."""
    c = container(prod)
    env = env_of(c)
    assert env["MIGRATE_ON_START"] == "true"
    hc = c["healthCheck"]
    assert int(env["MIGRATE_TIMEOUT"]) < hc["startPeriod"] + hc["retries"] * hc["interval"]
