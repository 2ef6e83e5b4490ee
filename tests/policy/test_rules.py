"""Every policy rule passes a good resource and fails a bad one.

Resources are written the way the engine hands them to CrossGuard and to the mocks: Pulumi type token
plus camelCase inputs, with ECS container definitions and IAM documents as JSON strings.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from policy import rules
from policy.rules import Resource

# --- builders of realistic good resources ------------------------------------------------------------
APP_ENV = {
    "APP_ENV": "production",
    "WEB_CONCURRENCY": "2",
    "GUNICORN_KEEPALIVE": "75",
    "GUNICORN_GRACEFUL_TIMEOUT": "20",
    "DB_POOL_SIZE": "5",
    "DB_MAX_OVERFLOW": "2",
    "CORS_ORIGINS": "https://app.example.com",
    "REDIS_URL": "redis://cache.internal:6379/0",
}


def ecs_container(**overrides: Any) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "app",
        "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/api@sha256:" + "a" * 64,
        "essential": True,
        "user": "10001:10001",
        "stopTimeout": 30,
        "environment": [{"name": k, "value": v} for k, v in APP_ENV.items()],
        "secrets": [
            {"name": "DATABASE_URL", "valueFrom": "arn:aws:ssm:us-east-1:123456789012:parameter/prod/api/db"}
        ],
        "healthCheck": {"command": ["CMD-SHELL", "curl -fsS http://localhost:8000/health || exit 1"]},
    }
    container.update(overrides)
    return container


def task_definition(*containers: dict[str, Any], cpu: str = "1024", memory: str = "2048") -> Resource:
    return Resource(
        type=rules.ECS_TASK_DEFINITION,
        urn="urn:pulumi:prod-ecs::fastapi-deploy::aws:ecs/taskDefinition:TaskDefinition::api-task",
        inputs={
            "cpu": cpu,
            "memory": memory,
            "containerDefinitions": json.dumps(list(containers or [ecs_container()])),
        },
    )


def ecs_env(resource: Resource) -> dict[str, str]:
    return {
        e["name"]: e["value"] for e in json.loads(resource.inputs["containerDefinitions"])[0]["environment"]
    }


def with_env(env: dict[str, str], **container_overrides: Any) -> Resource:
    container = ecs_container(
        environment=[{"name": k, "value": v} for k, v in env.items()], **container_overrides
    )
    return task_definition(container)


def ecs_stack(
    task: Resource | None = None,
    *,
    idle: int | None = 60,
    max_capacity: int = 4,
    min_capacity: int = 2,
    budget: int = 90,
) -> list[Resource]:
    lb_inputs: dict[str, Any] = {"loadBalancerType": "application"}
    if idle is not None:
        lb_inputs["idleTimeout"] = idle
    return [
        Resource(
            type="fastapi-deploy:ecs:FargateService", urn="urn:comp", inputs={"dbConnectionBudget": budget}
        ),
        Resource(type=rules.LB, urn="urn:alb", inputs=lb_inputs),
        task or task_definition(),
        Resource(
            type=rules.ECS_SERVICE,
            urn="urn:svc",
            inputs={"desiredCount": min_capacity, "deploymentMaximumPercent": 200},
        ),
        Resource(
            type=rules.AUTOSCALING_TARGET,
            urn="urn:scaling",
            inputs={"minCapacity": min_capacity, "maxCapacity": max_capacity},
        ),
    ]


def _attached_stack() -> list[Resource]:
    """An ECS service on a listener of an ALB the stack does not own: no LB resource, the service's
    loadBalancers name a target group the stack's listener rule forwards to."""
    stack = [r for r in ecs_stack() if r.type != rules.LB]
    service = next(r for r in stack if r.type == rules.ECS_SERVICE)
    service.inputs["loadBalancers"] = [
        {"targetGroupArn": "arn:tg", "containerName": "app", "containerPort": 8000}
    ]
    return stack


def cloud_run(env: dict[str, str] | None = None, **container_overrides: Any) -> Resource:
    container: dict[str, Any] = {
        "image": "us-central1-docker.pkg.dev/p/r/api@sha256:" + "b" * 64,
        "envs": [{"name": k, "value": v} for k, v in (env or {**APP_ENV, "WEB_CONCURRENCY": "1"}).items()]
        + [
            {
                "name": "DATABASE_URL",
                "valueSource": {"secretKeyRef": {"secret": "db-url", "version": "latest"}},
            }
        ],
        "resources": {"limits": {"cpu": "1", "memory": "512Mi"}},
        "startupProbe": {"httpGet": {"path": "/health"}},
        "livenessProbe": {"httpGet": {"path": "/health"}},
    }
    container.update(container_overrides)
    return Resource(
        type=rules.CLOUD_RUN_SERVICE,
        urn="urn:run",
        inputs={
            "template": {"containers": [container], "scaling": {"minInstanceCount": 1, "maxInstanceCount": 5}}
        },
    )


def metric_alarm(actions: list[str] | None) -> Resource:
    inputs: dict[str, Any] = {"metricName": "HTTPCode_Target_5XX_Count", "threshold": 10}
    if actions is not None:
        inputs["alarmActions"] = actions
    return Resource(type=rules.METRIC_ALARM, urn="urn:alarm", inputs=inputs)


def alert_policy(channels: list[str] | None) -> Resource:
    inputs: dict[str, Any] = {"displayName": "api 5xx", "conditions": []}
    if channels is not None:
        inputs["notificationChannels"] = channels
    return Resource(type=rules.ALERT_POLICY, urn="urn:policy", inputs=inputs)


def lambda_function(env: dict[str, str] | None = None, **overrides: Any) -> Resource:
    variables = env or {
        "APP_ENV": "production",
        "WEB_CONCURRENCY": "1",
        "DB_POOL_CLASS": "null",
        "DATABASE_URL": "ssm:/prod/api/database-url",
        "JWT_SECRET_KEY": "secretsmanager:prod/api/jwt",
    }
    inputs: dict[str, Any] = {
        "packageType": "Image",
        "memorySize": 1024,
        "reservedConcurrentExecutions": 20,
        "environment": {"variables": variables},
    }
    inputs.update(overrides)
    return Resource(type=rules.LAMBDA_FUNCTION, urn="urn:fn", inputs=inputs)


def docker_container(env: dict[str, str] | None = None, **overrides: Any) -> Resource:
    inputs: dict[str, Any] = {
        "image": "ghcr.io/acme/api@sha256:" + "c" * 64,
        "user": "10001",
        "envs": [f"{k}={v}" for k, v in (env or APP_ENV).items()],
        "healthcheck": {"tests": ["CMD", "curl", "-fsS", "http://localhost:8000/health"]},
        "logDriver": "json-file",
        "logOpts": {"max-size": "10m", "max-file": "3"},
        "memory": 1024,
        "cpus": "1",
        "stopTimeout": 30,
    }
    inputs.update(overrides)
    return Resource(type=rules.DOCKER_CONTAINER, urn="urn:docker", inputs=inputs)


def resource_messages(rule: str, resource: Resource) -> list[str]:
    found = [v for v in rules.evaluate([resource]) if v.policy == rule]
    return [v.message for v in found]


def stack_messages(rule: str, graph: list[Resource]) -> list[str]:
    return [v.message for v in rules.evaluate(graph) if v.policy == rule]


def iam(document: dict[str, Any], token: str = rules.IAM_ROLE_POLICY) -> Resource:
    return Resource(type=token, urn="urn:iam", inputs={"role": "exec", "policy": json.dumps(document)})


def statement(actions: list[str] | str, resources: list[str] | str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": actions, "Resource": resources}],
    }


SECRET_ARN = "arn:aws:ssm:us-east-1:123456789012:parameter/prod/api/db"


def facts_component(platform: str = "fly", **env: str) -> Resource:
    """A target's component publishing its runtime facts (only ``platform`` and ``env`` matter here)."""
    facts = {"platform": platform, "env": {**APP_ENV, **env}}
    return Resource(
        type="acme:fly:App", urn="urn:pulumi:s::p::acme:fly:App::api", inputs={"runtimeFacts": facts}
    )


# --- resource rules ----------------------------------------------------------------------------------
GOOD_AND_BAD: list[tuple[str, Resource, Resource]] = [
    # another target's plain env, as published in its runtime facts
    ("no-plaintext-secrets", facts_component(), facts_component(PAYMENT_API_KEY="plain-text-credential")),
    (
        "no-plaintext-secrets",
        facts_component(DATABASE_URL=f"ssm:{SECRET_ARN}"),
        facts_component(DATABASE_URL="postgresql://u:pw@db/x"),
    ),
    ("containers-non-root", task_definition(), task_definition(ecs_container(user="root"))),
    (
        "containers-non-root",
        task_definition(),
        task_definition({k: v for k, v in ecs_container().items() if k != "user"}),
    ),
    ("containers-non-root", task_definition(), task_definition(ecs_container(user="0:0"))),
    ("containers-non-root", docker_container(), docker_container(user="root")),
    ("health-checks-present", task_definition(), task_definition(ecs_container(healthCheck=None))),
    (
        "health-checks-present",
        Resource(
            type=rules.LB_TARGET_GROUP, urn="u", inputs={"healthCheck": {"path": "/health", "enabled": True}}
        ),
        Resource(type=rules.LB_TARGET_GROUP, urn="u", inputs={"healthCheck": {"enabled": False}}),
    ),
    ("health-checks-present", cloud_run(), cloud_run(livenessProbe=None)),
    ("health-checks-present", docker_container(), docker_container(healthcheck=None)),
    (
        "health-checks-present",
        Resource(
            type=rules.ECS_SERVICE,
            urn="u",
            inputs={"loadBalancers": [{}], "healthCheckGracePeriodSeconds": 60},
        ),
        Resource(type=rules.ECS_SERVICE, urn="u", inputs={"loadBalancers": [{}]}),
    ),
    (
        "liveness-independent-of-dependencies",
        cloud_run(),
        cloud_run(livenessProbe={"httpGet": {"path": "/ready"}}),
    ),
    (
        "liveness-independent-of-dependencies",
        task_definition(),
        task_definition(
            ecs_container(healthCheck={"command": ["CMD-SHELL", "curl -f http://localhost:8000/ready"]})
        ),
    ),
    ("no-plaintext-secrets", task_definition(), with_env({**APP_ENV, "JWT_SECRET_KEY": "hunter2hunter2"})),
    (
        "no-plaintext-secrets",
        task_definition(),
        with_env({**APP_ENV, "REDIS_URL": "redis://:pw@cache:6379/0"}),
    ),
    ("no-plaintext-secrets", task_definition(), with_env({**APP_ENV, "STRIPE_API_KEY": "sk_live_x"})),
    ("no-plaintext-secrets", cloud_run(), cloud_run({**APP_ENV, "DATABASE_URL": "postgresql://u:p@db/x"})),
    (
        "no-plaintext-secrets",
        lambda_function(),
        lambda_function({"APP_ENV": "production", "DATABASE_URL": "postgresql+asyncpg://u:p@db/app"}),
    ),
    (
        "iam-least-privilege",
        iam(statement(["ssm:GetParameters"], [SECRET_ARN])),
        iam(statement("ssm:*", [SECRET_ARN])),
    ),
    (
        "iam-least-privilege",
        iam(statement(["ssm:GetParameters"], [SECRET_ARN])),
        iam(statement(["ssm:GetParameters"], "*")),
    ),
    (
        "iam-least-privilege",
        iam(statement(["ecr:GetAuthorizationToken"], "*"), rules.IAM_POLICY),
        iam(statement(["ecr:GetAuthorizationToken", "s3:GetObject"], "*"), rules.IAM_POLICY),
    ),
    (
        # Lambda in a VPC: EC2 Describe* only accept "*"; the mutating ENI calls are scoped elsewhere.
        "iam-least-privilege",
        iam(statement(["ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets"], "*")),
        iam(statement(["ec2:Describe*"], "*")),
    ),
    (
        "iam-least-privilege",
        Resource(
            type=rules.IAM_ROLE_POLICY_ATTACHMENT,
            urn="u",
            inputs={"policyArn": "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"},
        ),
        Resource(
            type=rules.IAM_ROLE_POLICY_ATTACHMENT,
            urn="u",
            inputs={"policyArn": "arn:aws:iam::aws:policy/AdministratorAccess"},
        ),
    ),
    (
        "iam-least-privilege",
        Resource(
            type=rules.IAM_ROLE,
            urn="u",
            inputs={
                "inlinePolicies": [
                    {
                        "name": "ok",
                        "policy": json.dumps(
                            statement("logs:PutLogEvents", "arn:aws:logs:us-east-1:1:log-group:x:*")
                        ),
                    }
                ]
            },
        ),
        Resource(
            type=rules.IAM_ROLE,
            urn="u",
            inputs={"inlinePolicies": [{"name": "bad", "policy": json.dumps(statement("*", "*"))}]},
        ),
    ),
    (
        "iam-least-privilege",
        Resource(
            type="gcp:projects/iAMMember:IAMMember", urn="u", inputs={"role": "roles/logging.logWriter"}
        ),
        Resource(
            type="gcp:projects/iAMMember:IAMMember",
            urn="u",
            inputs={"role": "roles/secretmanager.secretAccessor"},
        ),
    ),
    (
        "alb-https-only",
        Resource(
            type=rules.LB_LISTENER,
            urn="u",
            inputs={
                "port": 80,
                "protocol": "HTTP",
                "defaultActions": [
                    {
                        "type": "redirect",
                        "redirect": {"protocol": "HTTPS", "port": "443", "statusCode": "HTTP_301"},
                    }
                ],
            },
        ),
        Resource(
            type=rules.LB_LISTENER,
            urn="u",
            inputs={
                "port": 80,
                "protocol": "HTTP",
                "defaultActions": [{"type": "forward", "targetGroupArn": "arn:tg"}],
            },
        ),
    ),
    (
        "log-retention",
        Resource(type=rules.LOG_GROUP, urn="u", inputs={"retentionInDays": 30}),
        Resource(type=rules.LOG_GROUP, urn="u", inputs={"name": "/ecs/api"}),
    ),
    ("docker-log-rotation", docker_container(), docker_container(logOpts=None)),
    (
        "deployment-rollback",
        Resource(
            type=rules.ECS_SERVICE,
            urn="u",
            inputs={"deploymentCircuitBreaker": {"enable": True, "rollback": True}},
        ),
        Resource(
            type=rules.ECS_SERVICE,
            urn="u",
            inputs={"deploymentCircuitBreaker": {"enable": True, "rollback": False}},
        ),
    ),
    (
        "deregistration-delay",
        Resource(
            type=rules.LB_TARGET_GROUP,
            urn="u",
            inputs={"deregistrationDelay": 35, "healthCheck": {"path": "/health"}},
        ),
        Resource(type=rules.LB_TARGET_GROUP, urn="u", inputs={"healthCheck": {"path": "/health"}}),
    ),
]


@pytest.mark.parametrize(
    ("rule", "good", "bad"), GOOD_AND_BAD, ids=[f"{r}-{i}" for i, (r, _, _) in enumerate(GOOD_AND_BAD)]
)
def test_resource_rule_passes_good_and_fails_bad(rule: str, good: Resource, bad: Resource) -> None:
    assert resource_messages(rule, good) == []
    assert resource_messages(rule, bad), f"{rule} did not flag {bad.inputs}"


def test_every_rule_is_covered_by_a_good_and_a_bad_case() -> None:
    covered = {rule for rule, _, _ in GOOD_AND_BAD} | {name for name, _, _ in STACK_CASES}
    assert covered == {rule.name for rule in rules.RULES}


def test_ready_once_then_health_check_is_a_gate_not_a_liveness_problem() -> None:
    command = [
        "CMD-SHELL",
        "test -f /tmp/ok && curl -f localhost:8000/health || curl -f localhost:8000/ready",
    ]
    assert (
        resource_messages(
            "liveness-independent-of-dependencies",
            task_definition(ecs_container(healthCheck={"command": command})),
        )
        == []
    )


def test_docker_healthcheck_on_readiness_is_a_gate_not_a_restart_loop() -> None:
    # Docker never restarts an unhealthy container, so probing /ready there cannot restart-storm.
    probe = {"tests": ["CMD", "curl", "-fsS", "http://127.0.0.1:8000/ready"]}
    assert (
        resource_messages("liveness-independent-of-dependencies", docker_container(healthcheck=probe)) == []
    )


def test_facts_of_a_built_in_platform_are_left_to_its_resources() -> None:
    """ECS publishes the task definition's env in its facts too: the task definition is judged, once."""
    assert resource_messages("no-plaintext-secrets", facts_component("ecs", PAYMENT_API_KEY="plain")) == []


def test_secret_rule_never_echoes_the_value() -> None:
    messages = resource_messages(
        "no-plaintext-secrets", with_env({**APP_ENV, "JWT_SECRET_KEY": "TOPSECRET-42-xyz"})
    )
    assert messages
    assert all("TOPSECRET-42-xyz" not in m and "JWT_SECRET_KEY" in m for m in messages)


def test_plain_redis_url_and_references_are_not_secrets() -> None:
    env = {**APP_ENV, "REDIS_URL": "redis://cache:6379/0", "DATABASE_URL": "secretsmanager:prod/db"}
    assert resource_messages("no-plaintext-secrets", with_env(env)) == []


# --- stack rules -------------------------------------------------------------------------------------
def _env_task(**env: str) -> Resource:
    return with_env({**APP_ENV, **env})


def metrics_rule(action: str = "fixed-response") -> Resource:
    act: dict[str, Any] = {"type": action}
    if action == "fixed-response":
        act["fixedResponse"] = {"contentType": "text/plain", "statusCode": "404"}
    else:
        act["targetGroupArn"] = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/tg/1"
    return Resource(
        type=rules.LB_LISTENER_RULE,
        urn="urn:metrics-rule",
        inputs={
            "priority": 1,
            "conditions": [{"pathPattern": {"values": ["/metrics", "/metrics/*"]}}],
            "actions": [act],
        },
    )


def caddy(block_metrics: bool | str = True) -> Resource:
    from fastapi_deploy.vps.component import render_caddyfile

    text = render_caddyfile("api.example.com", 8000, 60, None)
    if block_metrics is False:
        text = "\n".join(line for line in text.splitlines() if "metrics" not in line)
    elif block_metrics == "other-path":  # a 404 for something else, /metrics only in a comment
        text = text.replace("@metrics path /metrics /metrics/*", "@admin path /admin")
        text = text.replace("respond @metrics 404", "respond @admin 404")
    return Resource(
        type=rules.DOCKER_CONTAINER,
        urn="urn:caddy",
        inputs={
            "image": "caddy@sha256:" + "d" * 64,
            "uploads": [{"file": "/etc/caddy/Caddyfile", "content": text}],
        },
    )


# --- custom domains (issue 15) -----------------------------------------------------------------------
def listener(protocol: str, action: str, name: str) -> Resource:
    act: dict[str, Any] = {"type": action}
    if action == "redirect":
        act["redirect"] = {"protocol": "HTTPS", "port": "443", "statusCode": "HTTP_301"}
    else:
        act["targetGroupArn"] = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/tg/1"
    port = 443 if protocol == "HTTPS" else 80
    return Resource(
        type=rules.LB_LISTENER,
        urn=f"urn:pulumi:s::p::aws:lb/listener:Listener::{name}",
        inputs={"protocol": protocol, "port": float(port), "defaultActions": [act]},
    )


def ecs_domain_stack(http_action: str = "redirect", *, env: str = "production") -> list[Resource]:
    cert = Resource(type=rules.ACM_CERTIFICATE, urn="urn:cert", inputs={"domainName": "api.example.com"})
    return [
        _env_task(APP_ENV=env),
        cert,
        listener("HTTPS", "forward", "api-https"),
        listener("HTTP", http_action, "api-http"),
    ]


def gcp_lb(port80_map: str = "api-redirect") -> list[Resource]:
    def url_map(name: str, **inputs: Any) -> Resource:
        return Resource(type=rules.GCP_URL_MAP, urn=f"urn:{name}", name=name, inputs={"name": name, **inputs})

    return [
        cloud_run(),
        Resource(type=rules.GCP_MANAGED_CERT, urn="urn:gcert", inputs={"managed": {"domains": ["a.b.com"]}}),
        url_map("api-urlmap", defaultService="projects/p/global/backendServices/api-backend"),
        url_map("api-redirect", defaultUrlRedirect={"httpsRedirect": True, "stripQuery": False}),
        Resource(
            type=rules.GCP_HTTP_PROXY,
            urn="urn:pulumi:s::p::gcp:compute/targetHttpProxy:TargetHttpProxy::api-http-proxy",
            inputs={"name": "api-http-proxy", "urlMap": f"projects/p/global/urlMaps/{port80_map}"},
        ),
    ]


def apigw_domain(policy: str = "TLS_1_2") -> list[Resource]:
    fn = Resource(
        type=rules.LAMBDA_FUNCTION,
        urn="urn:fn",
        inputs={"environment": {"variables": {**APP_ENV, "WEB_CONCURRENCY": "1"}}},
    )
    domain = Resource(
        type=rules.APIGW_DOMAIN,
        urn="urn:pulumi:s::p::aws:apigatewayv2/domainName:DomainName::api-domain",
        inputs={
            "domainName": "api.example.com",
            "domainNameConfiguration": {"endpointType": "REGIONAL", "securityPolicy": policy},
        },
    )
    return [fn, domain]


def caddy_https(off: bool = False) -> Resource:
    resource = caddy()
    if not off:
        return resource
    upload = dict(resource.inputs["uploads"][0])
    upload["content"] = upload["content"].replace("\tadmin off", "\tadmin off\n\tauto_https off", 1)
    return Resource(type=resource.type, urn=resource.urn, inputs={**resource.inputs, "uploads": [upload]})


def published(**facts: Any) -> list[Resource]:
    """A component of a target the pack does not read (a fifth one) publishing its runtime facts."""
    env = {**APP_ENV, "WEB_CONCURRENCY": "2", "FORWARDED_ALLOW_IPS": "10.0.0.0/8", **facts.pop("env", {})}
    base: dict[str, Any] = {
        "platform": "fly",
        "env": env,
        "memoryMib": 2048,
        "vcpu": 2,
        "stopGraceS": 30,
        "lbIdleTimeoutS": 60,
        "maxReplicas": 4,
        "minReplicas": 2,
        "maxInstances": 2,
        "connectionBudget": 100,
    }
    base.update(facts)
    return [
        Resource(type="acme:fly:App", urn="urn:pulumi:s::p::acme:fly:App::api", inputs={"runtimeFacts": base})
    ]


STACK_CASES: list[tuple[str, list[Resource], list[Resource]]] = [
    ("runtime-facts-valid", published(), published(stopGrace=30)),
    # facts the pack cannot compute with are reported, never a crash of the pack
    ("runtime-facts-valid", published(), published(platform=["kube"])),
    ("runtime-facts-valid", published(), published(platform={"name": "kube"})),
    ("runtime-facts-valid", published(), published(connectionBudget=10**400)),
    ("runtime-facts-valid", published(), published(memoryMib=10**5000)),
    ("runtime-facts-valid", published(), published(stopGraceS=float("nan"))),
    ("runtime-facts-valid", published(), published(maxReplicas=float("inf"))),
    ("runtime-facts-valid", published(), published(env={"WEB_CONCURRENCY": 2})),
    # every runtime rule judges a target it knows only from its published facts
    ("keepalive-above-lb-idle", published(), published(lbIdleTimeoutS=75)),
    ("graceful-below-stop-grace", published(), published(stopGraceS=20)),
    ("workers-per-platform", published(), published(vcpu=0.5)),
    ("workers-per-platform", published(), published(memoryMib=512)),
    ("db-connection-budget", published(), published(connectionBudget=50)),
    ("single-instance-production", published(), published(minReplicas=1)),
    ("proxy-headers-trusted", published(), published(env={"FORWARDED_ALLOW_IPS": "127.0.0.1"})),
    # no load balancer in front (lbIdleTimeoutS null): nobody appends X-Forwarded-For, nothing to trust
    (
        "proxy-headers-trusted",
        published(lbIdleTimeoutS=None, env={"FORWARDED_ALLOW_IPS": ""}),
        published(env={"FORWARDED_ALLOW_IPS": ""}),
    ),
    ("cors-not-wildcard-in-production", published(), published(env={"CORS_ORIGINS": "*"})),
    (
        "alarms-notify-in-production",
        [*published(env={"APP_ENV": "staging"}), metric_alarm(None)],
        [*published(), metric_alarm(None)],
    ),
    ("keepalive-above-lb-idle", ecs_stack(), ecs_stack(_env_task(GUNICORN_KEEPALIVE="60"))),
    # Default ALB idle (60 s) applies when idleTimeout is not set; gunicorn's 2 s default is the classic 502.
    (
        "keepalive-above-lb-idle",
        ecs_stack(idle=None),
        ecs_stack(with_env({"APP_ENV": "production"}), idle=None),
    ),
    (
        "keepalive-above-lb-idle",
        ecs_stack(_env_task(GUNICORN_KEEPALIVE="400"), idle=350),
        ecs_stack(idle=350),
    ),
    (
        "graceful-below-stop-grace",
        ecs_stack(),
        ecs_stack(task_definition(ecs_container(stopTimeout=15))),
    ),
    ("graceful-below-stop-grace", [cloud_run({**APP_ENV, "GUNICORN_GRACEFUL_TIMEOUT": "8"})], [cloud_run()]),
    ("graceful-below-stop-grace", [docker_container()], [docker_container(stopTimeout=None)]),
    (
        "workers-per-platform",
        [lambda_function()],
        [lambda_function({"APP_ENV": "production", "WEB_CONCURRENCY": "4"})],
    ),
    (
        "workers-per-platform",
        [lambda_function()],
        [lambda_function({"APP_ENV": "production", "WEB_CONCURRENCY": "1", "DB_POOL_SIZE": "5"})],
    ),
    # 2 x cores + 1 = 5 sync-style workers on 2 vCPU / 512 MiB: too many for the CPU and the memory.
    (
        "workers-per-platform",
        ecs_stack(),
        ecs_stack(
            task_definition(
                ecs_container(
                    environment=[
                        {"name": "APP_ENV", "value": "production"},
                        {"name": "WEB_CONCURRENCY", "value": "5"},
                    ]
                ),
                cpu="1024",
                memory="2048",
            )
        ),
    ),
    (
        "workers-per-platform",
        [docker_container()],
        [docker_container({**APP_ENV, "WEB_CONCURRENCY": "9"}, memory=1024, cpus="4")],
    ),
    # 7 connections x 2 workers x 4 tasks x 200 % surge = 112 > 90.
    ("db-connection-budget", ecs_stack(max_capacity=3), ecs_stack(max_capacity=4)),
    ("db-connection-budget", [lambda_function()], [lambda_function(reservedConcurrentExecutions=None)]),
    (
        "cors-not-wildcard-in-production",
        ecs_stack(),
        ecs_stack(_env_task(CORS_ORIGINS="https://a.example.com,*")),
    ),
    ("single-instance-production", ecs_stack(), ecs_stack(min_capacity=1)),
    (
        "single-instance-production",
        [cloud_run()],
        [
            Resource(
                type=rules.CLOUD_RUN_SERVICE,
                urn="urn:run",
                inputs={
                    **cloud_run().inputs,
                    "template": {**cloud_run().inputs["template"], "scaling": {"maxInstanceCount": 1}},
                },
            )
        ],
    ),
    (
        "single-instance-production",
        [docker_container({**APP_ENV, "APP_ENV": "staging"})],
        [docker_container()],
    ),
    # Behind the ALB/Caddy/Google's front end, loopback-only trust makes every client one rate-limit key.
    (
        "proxy-headers-trusted",
        ecs_stack(_env_task(FORWARDED_ALLOW_IPS="10.0.0.0/8,172.16.0.0/12,192.168.0.0/16")),
        ecs_stack(),
    ),
    (
        "proxy-headers-trusted",
        ecs_stack(_env_task(FORWARDED_ALLOW_IPS="10.0.0.0/8")),
        ecs_stack(_env_task(FORWARDED_ALLOW_IPS="*")),  # uvicorn takes the client-written leftmost entry
    ),
    # Cloud Run: the hop count; `*` lets the client pick its address (Google's front end appends).
    (
        "proxy-headers-trusted",
        [cloud_run({**APP_ENV, "WEB_CONCURRENCY": "1", "FORWARDED_TRUSTED_HOPS": "1"})],
        [cloud_run({**APP_ENV, "WEB_CONCURRENCY": "1", "FORWARDED_ALLOW_IPS": "*"})],
    ),
    (
        "proxy-headers-trusted",
        [cloud_run({**APP_ENV, "WEB_CONCURRENCY": "1", "FORWARDED_TRUSTED_HOPS": "2"})],
        [cloud_run({**APP_ENV, "WEB_CONCURRENCY": "1", "FORWARDED_ALLOW_IPS": "127.0.0.1,::1"})],
    ),
    (
        "proxy-headers-trusted",
        [docker_container({**APP_ENV, "FORWARDED_ALLOW_IPS": "172.16.0.0/12"})],
        [docker_container()],
    ),
    # alarms reach a person in production (a staging stack may keep silent alarms)
    (
        "alarms-notify-in-production",
        [*ecs_stack(), metric_alarm(["arn:aws:sns:us-east-1:123456789012:alerts"])],
        [*ecs_stack(), metric_alarm([])],
    ),
    (
        "alarms-notify-in-production",
        [cloud_run(), alert_policy(["projects/p/notificationChannels/1"])],
        [cloud_run(), alert_policy(None)],
    ),
    (
        "alarms-notify-in-production",
        [lambda_function(), metric_alarm(["arn:aws:sns:us-east-1:123456789012:alerts"])],
        [lambda_function(), metric_alarm(None)],
    ),
    # /metrics: answered by the ALB / Caddy, or switched off where nothing can scrape it privately.
    ("metrics-not-public", [*ecs_stack(), metrics_rule()], ecs_stack()),
    (
        "metrics-not-public",
        ecs_stack(_env_task(METRICS_ENABLED="false")),
        [*ecs_stack(), metrics_rule("forward")],
    ),
    ("metrics-not-public", [docker_container(), caddy()], [docker_container(), caddy(block_metrics=False)]),
    ("metrics-not-public", [docker_container(), caddy()], [docker_container(), caddy("other-path")]),
    (
        "metrics-not-public",
        [cloud_run({**APP_ENV, "WEB_CONCURRENCY": "1", "METRICS_ENABLED": "false"})],
        [cloud_run()],
    ),
    (
        "metrics-not-public",
        [lambda_function({"APP_ENV": "production", "WEB_CONCURRENCY": "1", "METRICS_ENABLED": "False"})],
        [lambda_function()],
    ),
    # attached to an ALB outside the stack (FargateService listener_arn): its idle timeout is unchecked
    ("external-load-balancer", ecs_stack(), _attached_stack()),
    # custom domains: HTTPS only (mandatory in production, advisory elsewhere)
    ("custom-domain-https-only", ecs_domain_stack(), ecs_domain_stack("forward")),
    ("custom-domain-https-only", gcp_lb(), gcp_lb(port80_map="api-urlmap")),
    ("custom-domain-https-only", apigw_domain(), apigw_domain("TLS_1_0")),
    ("custom-domain-https-only", [_env_task(), caddy_https()], [_env_task(), caddy_https(off=True)]),
    (
        "custom-domain-https-only-nonprod",
        ecs_domain_stack(env="staging"),
        ecs_domain_stack("forward", env="staging"),
    ),
]


@pytest.mark.parametrize(
    ("rule", "good", "bad"), STACK_CASES, ids=[f"{r}-{i}" for i, (r, _, _) in enumerate(STACK_CASES)]
)
def test_stack_rule_passes_good_and_fails_bad(rule: str, good: list[Resource], bad: list[Resource]) -> None:
    assert stack_messages(rule, good) == []
    assert stack_messages(rule, bad), f"{rule} did not flag the bad stack"


def test_silent_alarms_outside_production_are_allowed() -> None:
    staging = cloud_run({**APP_ENV, "APP_ENV": "staging", "WEB_CONCURRENCY": "1"})
    assert stack_messages("alarms-notify-in-production", [staging, alert_policy(None)]) == []
    assert stack_messages("alarms-notify-in-production", [metric_alarm(None)]) == []


def test_cors_wildcard_outside_production_is_allowed() -> None:
    assert (
        stack_messages(
            "cors-not-wildcard-in-production", ecs_stack(_env_task(APP_ENV="staging", CORS_ORIGINS="*"))
        )
        == []
    )


def test_connection_budget_message_shows_the_arithmetic() -> None:
    (message,) = stack_messages("db-connection-budget", ecs_stack(max_capacity=4))
    assert "7 per worker x 2 workers x 8 instances" in message
    assert "112 > budget 90" in message


def test_budget_read_from_env_when_no_component_carries_it() -> None:
    graph = [
        r for r in ecs_stack(_env_task(DB_CONNECTION_BUDGET="20")) if not r.type.startswith("fastapi-deploy:")
    ]
    assert stack_messages("db-connection-budget", graph)


def test_stack_rules_ignore_non_app_containers() -> None:
    proxy = Resource(type=rules.DOCKER_CONTAINER, urn="urn:caddy", inputs={"image": "caddy:2", "envs": []})
    assert [v for v in rules.evaluate([proxy]) if v.policy != "docker-log-rotation"] == []


def test_release_gate_container_is_not_an_instance() -> None:
    """The VPS release gate carries the app's env; labelled, it must not double the stack findings."""
    gate_label = [{"label": rules.RELEASE_GATE_LABEL[0], "value": rules.RELEASE_GATE_LABEL[1]}]
    app = docker_container()
    gate = Resource(type=rules.DOCKER_CONTAINER, urn="urn:gate", inputs={**app.inputs, "labels": gate_label})
    unlabelled = Resource(type=rules.DOCKER_CONTAINER, urn="urn:gate", inputs=dict(app.inputs))
    assert len(stack_messages("single-instance-production", [app, unlabelled])) == 2
    assert len(stack_messages("single-instance-production", [app, gate])) == 1
    assert [rt.urn for rt in rules.app_runtimes([app, gate])] == ["urn:docker"]
    # Resource rules still check the gate (it runs the image with the app's env).
    assert resource_messages("containers-non-root", Resource(gate.type, {**gate.inputs, "user": None}))


def test_inputs_are_not_mutated() -> None:
    graph = ecs_stack()
    before = copy.deepcopy([dict(r.inputs) for r in graph])
    rules.evaluate(graph)
    assert [dict(r.inputs) for r in graph] == before


def test_policy_constants_agree_with_the_tuning_module() -> None:
    # The policy must not flag what tuning produces, nor let through what tuning would refuse.
    from fastapi_deploy import tuning

    assert rules.WORKER_MEMORY_MIB == tuning.MEMORY_PER_WORKER_MIB
    assert rules.MEMORY_HEADROOM_MIB == tuning.MEMORY_HEADROOM_MIB
    assert rules.ALB_DEFAULT_IDLE_TIMEOUT_S == tuning.ALB_IDLE_TIMEOUT_S
    assert rules.CLOUD_RUN_STOP_GRACE_S == tuning.CLOUDRUN_STOP_GRACE_S
    assert rules.MAX_DEREGISTRATION_DELAY_S == tuning.MAX_DEREGISTRATION_DELAY_S
    for platform, surge in rules.DEPLOY_SURGE.items():
        assert surge == tuning.DEPLOY_SURGE[platform]


def test_custom_domain_rule_names_the_resource_and_is_mandatory_only_in_production() -> None:
    prod = [v for v in rules.evaluate(ecs_domain_stack("forward")) if v.policy.startswith("custom-domain")]
    assert [(v.policy, v.enforcement, v.urn) for v in prod] == [
        ("custom-domain-https-only", "mandatory", "urn:pulumi:s::p::aws:lb/listener:Listener::api-http")
    ]
    staging = ecs_domain_stack("forward", env="staging")
    found = [v for v in rules.evaluate(staging) if v.policy.startswith("custom-domain")]
    assert [(v.policy, v.enforcement) for v in found] == [("custom-domain-https-only-nonprod", "advisory")]
    gcp = [v for v in rules.evaluate(gcp_lb("api-urlmap")) if v.policy == "custom-domain-https-only"]
    assert gcp[0].urn.endswith("::api-http-proxy")
    assert "api-urlmap" in gcp[0].message


def test_a_stack_without_a_custom_domain_is_left_to_alb_https_only() -> None:
    """staging-ecs style: HTTP-only ALB, no domain -> only the advisory alb-https-only speaks."""
    graph = [_env_task(APP_ENV="staging"), listener("HTTP", "forward", "api-http")]
    assert [v.policy for v in rules.evaluate(graph) if "https" in v.policy] == ["alb-https-only"]


@pytest.mark.parametrize("value", ["nan", "1e400", "-inf", "9" * 5000, "x"])
def test_an_unreadable_number_in_an_env_is_unset_for_the_rules_not_a_crash(value: str) -> None:
    """DB_CONNECTION_BUDGET / WEB_CONCURRENCY from a stack's app.env reach the pack as strings."""
    env = {**APP_ENV, "DB_CONNECTION_BUDGET": value, "WEB_CONCURRENCY": value}
    listed = [{"name": k, "value": v} for k, v in env.items()]
    for stack in (ecs_stack(task_definition(ecs_container(environment=listed))), published(env=env)):
        rules.evaluate(stack)  # no exception
    assert stack_messages("db-connection-budget", published(env=env, connectionBudget=10)) != []
