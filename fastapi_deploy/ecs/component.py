"""ECS Fargate behind an ALB: ``fastapi-deploy:ecs:FargateService``.

What a user gets: a VPC (or theirs) with tasks in private subnets, an internet-facing ALB with HTTPS
(HTTP redirects), a target group health-checking the liveness path, a task definition that runs the
image by digest as a non-root user on a read-only root filesystem with secrets injected by ECS, a
service that rolls back a bad release on its own (deployment circuit breaker + container health gate +
5xx alarm), target-tracking autoscaling, and alarms on 5xx, p95 latency and unhealthy hosts.

Health design (see docs/deployer.md): the ALB and the container health check must never kill tasks for
a database outage, so they probe the LIVENESS path after start-up; a new task must pass READINESS once
before its container health check switches to liveness, so a release with a wrong DATABASE_URL never
becomes healthy and the circuit breaker rolls it back.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from fastapi_deploy import secret_refs as refs_mod
from fastapi_deploy.aws_alerts import alert_actions
from fastapi_deploy.config import EcsConfig, ExistingVpc, NewVpc
from fastapi_deploy.release_migrate import ecs_release_migration  # issue 15 item 2
from fastapi_deploy.targets import DeployContext
from fastapi_deploy.tuning import METRICS_PATHS, RuntimeTuning, container_environment

CONTAINER_NAME = "app"
#: Numeric uid:gid so "non-root" holds whatever USER the image declares (files only need to be readable).
CONTAINER_USER = "10001:10001"
TMP_VOLUME = "tmp"
TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"
#: Readiness must pass once before this marker exists; afterwards the check is liveness only. Not in the
#: /tmp volume: Fargate creates bind-mount volumes root-owned 0755 (AWS "Use bind mounts with Amazon ECS"),
#: so uid 10001 could not create it there and no task would ever turn healthy. /dev/shm is a per-container
#: 1777 tmpfs on Fargate too; it also resets with the container, so a restarted container re-checks readiness.
READY_MARKER = "/dev/shm/.ready-once"  # noqa: S108 - per-container tmpfs, not a shared host path

# Container health check. Before the first success it probes READINESS (DB/Redis reachable): a release
# with a bad DATABASE_URL never turns HEALTHY, ECS stops it after startPeriod + retries x interval and
# the circuit breaker rolls the deployment back. After the first success it probes LIVENESS only, so a
# later database outage does not make ECS replace every healthy task in a loop.
HEALTH_SCRIPT = (
    "import os,sys,urllib.request as u\n"
    "m='{marker}';p=os.environ.get('PORT','8000')\n"
    "path='{live}' if os.path.exists(m) else '{ready}'\n"
    "try:\n"
    " ok=u.urlopen('http://127.0.0.1:'+p+path,timeout={timeout}).status==200\n"
    "except Exception:\n"
    " ok=False\n"
    "if ok and not os.path.exists(m):\n"
    " open(m,'w').close()\n"
    "sys.exit(0 if ok else 1)"
)


@dataclass
class FargateServiceArgs:
    """Inputs of :class:`FargateService` (validated config, computed tuning, resolved image)."""

    config: EcsConfig
    tuning: RuntimeTuning
    image: pulumi.Input[str]
    tags: dict[str, str]
    #: ECR repository ARN when the image was built here (pull permission is scoped to it).
    repository_arn: pulumi.Input[str] | None = None


def lb_physical_name(component: str, kind: str, *replace_triggers: object) -> str:
    """A <= 32-char name for an ALB or target group (AWS's limit; Pulumi's auto-name would append 8
    characters to the logical name and fail at `pulumi up` for names over 24 characters).

    The hash covers the full component name (two stacks whose truncated heads collide still differ) and
    the properties that force a replacement, so a replacement gets a new name and Pulumi can create the
    new resource before deleting the old one (which the listener still points at).
    """
    digest = hashlib.sha256("|".join([component, kind, *map(str, replace_triggers)]).encode()).hexdigest()[:6]
    head = component[: 32 - len(kind) - len(digest) - 2].rstrip("-")
    return f"{head}-{kind}-{digest}"


def health_command(live: str, ready: str, timeout_s: int) -> list[str]:
    """The ECS container ``healthCheck.command`` (runs the image's own python; no curl needed)."""
    script = HEALTH_SCRIPT.format(marker=READY_MARKER, live=live, ready=ready, timeout=max(1, timeout_s - 1))
    return ["CMD", "python", "-c", script]


def ecr_repository_arn_from_ref(ref: str, partition: str = "aws") -> str | None:
    """``ACCT.dkr.ecr.REGION.amazonaws.com/repo@sha256:..`` -> the repository ARN (None if not ECR)."""
    host, _, rest = ref.partition("/")
    parts = host.split(".")
    if len(parts) >= 6 and parts[1:3] == ["dkr", "ecr"]:
        repo = rest.split("@", 1)[0].split(":", 1)[0]
        return f"arn:{partition}:ecr:{parts[3]}:{parts[0]}:repository/{repo}"
    return None


def subnet_cidrs(cidr: str, az_count: int) -> tuple[list[str], list[str]]:
    """Split the VPC CIDR: public subnets first, private after, each a /(prefix+4) (4096 IPs in a /16)."""
    net = ipaddress.ip_network(cidr)
    subs = list(net.subnets(new_prefix=net.prefixlen + 4))
    return [str(s) for s in subs[:az_count]], [str(s) for s in subs[az_count : 2 * az_count]]


def task_execution_policy(
    *,
    account: str,
    region: str,
    partition: str,
    log_group_arn: str,
    repository_arn: str | None,
    secret_refs: dict[str, refs_mod.SecretRef],
    kms_key_arns: list[str],
) -> dict[str, Any]:
    """The execution role's inline policy: pull this image, write this log group, read these secrets."""
    statements: list[dict[str, Any]] = []
    if repository_arn:
        statements += [
            # ecr:GetAuthorizationToken cannot be scoped to a resource (AWS only accepts "*"); it grants
            # a registry login, not access to any repository.
            {"Sid": "EcrLogin", "Effect": "Allow", "Action": ["ecr:GetAuthorizationToken"], "Resource": "*"},
            {
                "Sid": "PullImage",
                "Effect": "Allow",
                "Action": [
                    "ecr:BatchCheckLayerAvailability",
                    "ecr:BatchGetImage",
                    "ecr:GetDownloadUrlForLayer",
                ],
                "Resource": [repository_arn],
            },
        ]
    statements.append(
        {
            "Sid": "WriteLogs",
            "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": [f"{log_group_arn}:log-stream:*"],
        }
    )
    statements += refs_mod.aws_read_policy_statements(secret_refs, account, region, kms_key_arns, partition)
    return {"Version": "2012-10-17", "Statement": statements}


def assume_role_policy(account: str, partition: str) -> str:
    """Trust policy for ECS tasks of this account only (confused-deputy protection)."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "ecs-tasks.amazonaws.com"},
                    "Action": "sts:AssumeRole",
                    "Condition": {
                        "ArnLike": {"aws:SourceArn": f"arn:{partition}:ecs:*:{account}:*"},
                        "StringEquals": {"aws:SourceAccount": account},
                    },
                }
            ],
        }
    )


def container_definitions(
    *,
    cfg: EcsConfig,
    tuning: RuntimeTuning,
    image: str,
    region: str,
    account: str,
    partition: str,
    log_group: str,
) -> list[dict[str, Any]]:
    """The ECS container definitions (RegisterTaskDefinition shape)."""
    env = container_environment(cfg, tuning)
    hc = tuning.container_health
    assert hc is not None
    return [
        {
            "name": CONTAINER_NAME,
            "image": image,
            "essential": True,
            "user": CONTAINER_USER,
            "readonlyRootFilesystem": True,
            "portMappings": [
                {"containerPort": cfg.port, "hostPort": cfg.port, "protocol": "tcp", "name": "http"}
            ],
            "environment": [{"name": k, "value": v} for k, v in env.items()],
            "secrets": refs_mod.ecs_secrets(cfg.secret_refs(), account, region, partition),
            "mountPoints": [{"sourceVolume": TMP_VOLUME, "containerPath": "/tmp", "readOnly": False}],  # noqa: S108
            # tini as PID 1: forwards SIGTERM to gunicorn and reaps zombies.
            "linuxParameters": {"initProcessEnabled": True},
            # SIGTERM -> SIGKILL window; gunicorn's graceful timeout (tuning) is 10 s shorter.
            "stopTimeout": tuning.stop_timeout_s,
            "healthCheck": {
                "command": health_command(cfg.health.liveness_path, cfg.health.readiness_path, hc.timeout_s),
                "interval": hc.interval_s,
                "timeout": hc.timeout_s,
                "retries": hc.retries,
                "startPeriod": hc.start_period_s,
            },
            "logConfiguration": {
                "logDriver": "awslogs",
                "options": {
                    "awslogs-group": log_group,
                    "awslogs-region": region,
                    "awslogs-stream-prefix": CONTAINER_NAME,
                    # Never block request handling on CloudWatch back-pressure; drop logs instead.
                    "mode": "non-blocking",
                    "max-buffer-size": "25m",
                },
            },
        }
    ]


class FargateService(pulumi.ComponentResource):
    """An ECS Fargate service behind an ALB, with its network, IAM, logs, autoscaling and alarms."""

    url: pulumi.Output[str]
    cluster: aws.ecs.Cluster
    service: aws.ecs.Service
    task_definition: aws.ecs.TaskDefinition
    target_group: aws.lb.TargetGroup
    load_balancer: aws.lb.LoadBalancer
    log_group: aws.cloudwatch.LogGroup
    execution_role: aws.iam.Role
    task_role: aws.iam.Role

    def __init__(
        self, name: str, args: FargateServiceArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("fastapi-deploy:ecs:FargateService", name, args.tuning.component_props(), opts)
        cfg, tuning, tags = args.config, args.tuning, args.tags
        ecs_cfg = cfg.ecs
        child = pulumi.ResourceOptions(parent=self)
        assert tuning.lb_health is not None
        assert tuning.deregistration_delay_s is not None

        identity = aws.get_caller_identity_output(opts=pulumi.InvokeOutputOptions(parent=self))
        region_out = aws.get_region_output(opts=pulumi.InvokeOutputOptions(parent=self))
        partition_out = aws.get_partition_output(opts=pulumi.InvokeOutputOptions(parent=self))
        account = identity.account_id
        region = region_out.region
        partition = partition_out.partition

        # ------------------------------------------------------------------------------- network
        vpc_id, vpc_cidr, public_subnets, private_subnets = self._network(name, ecs_cfg.vpc, tags, child)

        alb_sg = aws.ec2.SecurityGroup(
            f"{name}-alb-sg",
            vpc_id=vpc_id,
            description=f"{name} ALB: HTTP(S) from the internet, to the tasks only",
            tags={**tags, "Name": f"{name}-alb"},
            opts=child,
        )
        task_sg = aws.ec2.SecurityGroup(
            f"{name}-task-sg",
            vpc_id=vpc_id,
            description=f"{name} tasks: app port from the ALB only",
            tags={**tags, "Name": f"{name}-task"},
            opts=child,
        )
        listen_ports = [443, 80] if ecs_cfg.certificate_arn else [80]
        for port in listen_ports:
            for family, cidr in (("v4", "0.0.0.0/0"), ("v6", "::/0")):
                aws.vpc.SecurityGroupIngressRule(
                    f"{name}-alb-in-{port}-{family}",
                    security_group_id=alb_sg.id,
                    ip_protocol="tcp",
                    from_port=port,
                    to_port=port,
                    cidr_ipv4=cidr if family == "v4" else None,
                    cidr_ipv6=cidr if family == "v6" else None,
                    description=f"HTTP{'S' if port == 443 else ''} from the internet",
                    tags=tags,
                    opts=pulumi.ResourceOptions(parent=alb_sg),
                )
        aws.vpc.SecurityGroupEgressRule(
            f"{name}-alb-out-tasks",
            security_group_id=alb_sg.id,
            ip_protocol="tcp",
            from_port=cfg.port,
            to_port=cfg.port,
            referenced_security_group_id=task_sg.id,
            description="to the tasks' app port only",
            tags=tags,
            opts=pulumi.ResourceOptions(parent=alb_sg),
        )
        aws.vpc.SecurityGroupIngressRule(
            f"{name}-task-in-alb",
            security_group_id=task_sg.id,
            ip_protocol="tcp",
            from_port=cfg.port,
            to_port=cfg.port,
            referenced_security_group_id=alb_sg.id,
            description="app port from the ALB only",
            tags=tags,
            opts=pulumi.ResourceOptions(parent=task_sg),
        )
        # Egress: HTTPS anywhere (ECR, Secrets Manager, SSM, CloudWatch Logs, Sentry through the NAT),
        # PostgreSQL and Redis inside the VPC only.
        egress = [("https", 443, "0.0.0.0/0"), ("postgres", 5432, None), ("redis", 6379, None)]
        for label, port, fixed_cidr in egress:
            aws.vpc.SecurityGroupEgressRule(
                f"{name}-task-out-{label}",
                security_group_id=task_sg.id,
                ip_protocol="tcp",
                from_port=port,
                to_port=port,
                cidr_ipv4=fixed_cidr or vpc_cidr,
                description=f"{label} egress",
                tags=tags,
                opts=pulumi.ResourceOptions(parent=task_sg),
            )

        # ----------------------------------------------------------------------------------- ALB
        self.load_balancer = aws.lb.LoadBalancer(
            f"{name}-alb",
            name=lb_physical_name(name, "alb", "application", "internet-facing"),
            load_balancer_type="application",
            internal=False,
            security_groups=[alb_sg.id],
            subnets=public_subnets,
            # Must stay BELOW the server keepalive (tuning: 60 < 75) or the ALB reuses a connection
            # gunicorn just closed and the client gets a 502.
            idle_timeout=tuning.lb_idle_timeout_s,
            drop_invalid_header_fields=True,
            enable_deletion_protection=ecs_cfg.alb_deletion_protection,
            tags=tags,
            opts=child,
        )
        lbh = tuning.lb_health
        self.target_group = aws.lb.TargetGroup(
            f"{name}-tg",
            name=lb_physical_name(name, "tg", cfg.port, "HTTP", "ip", _vpc_key(ecs_cfg.vpc)),
            port=cfg.port,
            protocol="HTTP",
            target_type="ip",
            vpc_id=vpc_id,
            # ECS drains for this long BEFORE SIGTERM: covers the longest request (request_timeout_s + 5)
            # instead of the 300 s default that makes every rolling deploy wait 5 minutes per batch.
            deregistration_delay=tuning.deregistration_delay_s,
            health_check=aws.lb.TargetGroupHealthCheckArgs(
                enabled=True,
                # LIVENESS, not readiness: ECS replaces tasks the ALB reports unhealthy, so a /ready check
                # here would turn a database outage into a restart loop of every task.
                path=cfg.health.liveness_path,
                protocol="HTTP",
                port="traffic-port",
                matcher=lbh.matcher,
                interval=lbh.interval_s,
                timeout=lbh.timeout_s,
                healthy_threshold=lbh.healthy_threshold,
                unhealthy_threshold=lbh.unhealthy_threshold,
            ),
            tags=tags,
            opts=child,
        )
        lb_child = pulumi.ResourceOptions(parent=self.load_balancer)
        forward = [aws.lb.ListenerDefaultActionArgs(type="forward", target_group_arn=self.target_group.arn)]
        listeners: list[aws.lb.Listener] = []
        if ecs_cfg.certificate_arn:
            listeners.append(
                aws.lb.Listener(
                    f"{name}-https",
                    load_balancer_arn=self.load_balancer.arn,
                    port=443,
                    protocol="HTTPS",
                    ssl_policy=TLS_POLICY,
                    certificate_arn=ecs_cfg.certificate_arn,
                    default_actions=forward,
                    tags=tags,
                    opts=lb_child,
                )
            )
            listeners.append(
                aws.lb.Listener(
                    f"{name}-http",
                    load_balancer_arn=self.load_balancer.arn,
                    port=80,
                    protocol="HTTP",
                    default_actions=[
                        aws.lb.ListenerDefaultActionArgs(
                            type="redirect",
                            redirect=aws.lb.ListenerDefaultActionRedirectArgs(
                                protocol="HTTPS", port="443", status_code="HTTP_301"
                            ),
                        )
                    ],
                    tags=tags,
                    opts=lb_child,
                )
            )
        else:
            pulumi.log.warn(
                f"{name}: no app.ecs.certificate_arn; the ALB serves plain HTTP (credentials in clear)",
                resource=self,
            )
            listeners.append(
                aws.lb.Listener(
                    f"{name}-http",
                    load_balancer_arn=self.load_balancer.arn,
                    port=80,
                    protocol="HTTP",
                    default_actions=forward,
                    tags=tags,
                    opts=lb_child,
                )
            )

        # /metrics is for a collector sidecar on localhost (or a scraper the task security group is opened
        # to); from the internet the ALB answers 404 itself. The app also refuses /metrics to anything
        # carrying X-Forwarded-For, so an encoded path that slipped past this rule still gets nothing.
        self.metrics_block = aws.lb.ListenerRule(
            f"{name}-block-metrics",
            listener_arn=listeners[0].arn,
            priority=1,
            conditions=[
                aws.lb.ListenerRuleConditionArgs(
                    path_pattern=aws.lb.ListenerRuleConditionPathPatternArgs(values=list(METRICS_PATHS))
                )
            ],
            actions=[
                aws.lb.ListenerRuleActionArgs(
                    type="fixed-response",
                    fixed_response=aws.lb.ListenerRuleActionFixedResponseArgs(
                        content_type="text/plain", message_body="Not Found", status_code="404"
                    ),
                )
            ],
            tags=tags,
            opts=pulumi.ResourceOptions(parent=listeners[0]),
        )

        # --------------------------------------------------------------------- cluster, logs, IAM
        self.cluster = aws.ecs.Cluster(
            f"{name}-cluster",
            settings=[
                aws.ecs.ClusterSettingArgs(
                    name="containerInsights", value="enabled" if ecs_cfg.container_insights else "disabled"
                )
            ],
            tags=tags,
            opts=child,
        )
        self.log_group = aws.cloudwatch.LogGroup(
            f"{name}-logs",
            name=f"/ecs/{name}",
            retention_in_days=ecs_cfg.log_retention_days,
            tags=tags,
            opts=child,
        )
        assume = pulumi.Output.all(account, partition).apply(lambda a: assume_role_policy(a[0], a[1]))
        self.execution_role = aws.iam.Role(
            f"{name}-exec-role",
            description=f"{name}: ECS agent pulls the image, writes logs, reads the referenced secrets",
            assume_role_policy=assume,
            tags=tags,
            opts=child,
        )
        refs = cfg.secret_refs()
        repo_arn_in: pulumi.Input[str | None] = args.repository_arn
        exec_policy = pulumi.Output.all(
            account, region, partition, self.log_group.arn, repo_arn_in, pulumi.Output.from_input(args.image)
        ).apply(
            lambda a: json.dumps(
                task_execution_policy(
                    account=a[0],
                    region=a[1],
                    partition=a[2],
                    log_group_arn=a[3],
                    repository_arn=a[4] or ecr_repository_arn_from_ref(a[5] or "", a[2]),
                    secret_refs=refs,
                    kms_key_arns=list(cfg.secret_kms_key_arns),
                ),
                sort_keys=True,
            )
        )
        aws.iam.RolePolicy(
            f"{name}-exec-policy",
            role=self.execution_role.id,
            policy=exec_policy,
            opts=pulumi.ResourceOptions(parent=self.execution_role),
        )
        # The app itself calls no AWS API: the task role exists (so nothing falls back to broader
        # credentials) and has no permissions. Add statements here when the app needs S3, SQS, ...
        self.task_role = aws.iam.Role(
            f"{name}-task-role",
            description=f"{name}: identity of the running app (no permissions)",
            assume_role_policy=assume,
            tags=tags,
            opts=child,
        )

        # ------------------------------------------------------------------------ task definition
        containers = pulumi.Output.all(
            pulumi.Output.from_input(args.image), region, account, partition, self.log_group.name
        ).apply(
            lambda a: json.dumps(
                container_definitions(
                    cfg=cfg,
                    tuning=tuning,
                    image=a[0],
                    region=a[1],
                    account=a[2],
                    partition=a[3],
                    log_group=a[4],
                )
            )
        )
        self.task_definition = aws.ecs.TaskDefinition(
            f"{name}-task",
            family=name,
            cpu=str(ecs_cfg.cpu),
            memory=str(ecs_cfg.memory),
            network_mode="awsvpc",
            requires_compatibilities=["FARGATE"],
            runtime_platform=aws.ecs.TaskDefinitionRuntimePlatformArgs(
                operating_system_family="LINUX", cpu_architecture="X86_64"
            ),
            execution_role_arn=self.execution_role.arn,
            task_role_arn=self.task_role.arn,
            container_definitions=containers,
            volumes=[aws.ecs.TaskDefinitionVolumeArgs(name=TMP_VOLUME)],
            tags=tags,
            opts=child,
        )

        # --- issue 15 item 2 (release migrations, fastapi_deploy/release_migrate.py): wiring ---------
        release_deps: list[pulumi.Resource] = []
        if cfg.database.migrate_mode("ecs") == "release":
            release_deps.append(
                ecs_release_migration(
                    name,
                    cluster_arn=self.cluster.arn,
                    task_definition_arn=self.task_definition.arn,
                    subnets=private_subnets,
                    security_groups=[task_sg.id],
                    container_name=CONTAINER_NAME,
                    region=region,
                    log_group=self.log_group.name,
                    log_stream_prefix=CONTAINER_NAME,
                    opts=pulumi.ResourceOptions(parent=self),
                )
            )
        # --- end of issue 15 item 2 wiring ---------------------------------------------------------------

        # -------------------------------------------------------------------------------- alarms
        alarms_cfg = ecs_cfg.alarms
        actions = alert_actions(name, cfg.alerts, cfg.alert_topic_arn, tags, child)
        lb_dims = {"LoadBalancer": self.load_balancer.arn_suffix, "TargetGroup": self.target_group.arn_suffix}
        alarm_common: dict[str, Any] = dict(
            namespace="AWS/ApplicationELB",
            dimensions=lb_dims,
            period=60,
            evaluation_periods=alarms_cfg.evaluation_periods,
            datapoints_to_alarm=alarms_cfg.evaluation_periods,
            alarm_actions=actions,
            ok_actions=actions,
            tags=tags,
            opts=child,
        )
        self.alarm_5xx = aws.cloudwatch.MetricAlarm(
            f"{name}-5xx",
            alarm_description=f"{name}: target 5xx per minute above {alarms_cfg.http_5xx_per_minute}",
            metric_name="HTTPCode_Target_5XX_Count",
            statistic="Sum",
            comparison_operator="GreaterThanThreshold",
            threshold=alarms_cfg.http_5xx_per_minute,
            treat_missing_data="notBreaching",
            **alarm_common,
        )
        self.alarm_p95 = aws.cloudwatch.MetricAlarm(
            f"{name}-p95",
            alarm_description=f"{name}: p95 target response time above {alarms_cfg.p95_response_time_s} s",
            metric_name="TargetResponseTime",
            extended_statistic="p95",
            comparison_operator="GreaterThanThreshold",
            threshold=alarms_cfg.p95_response_time_s,
            treat_missing_data="notBreaching",
            **alarm_common,
        )
        self.alarm_unhealthy = aws.cloudwatch.MetricAlarm(
            f"{name}-unhealthy",
            alarm_description=f"{name}: at least {alarms_cfg.unhealthy_hosts} unhealthy target(s)",
            metric_name="UnHealthyHostCount",
            statistic="Maximum",
            comparison_operator="GreaterThanOrEqualToThreshold",
            threshold=alarms_cfg.unhealthy_hosts,
            treat_missing_data="notBreaching",
            **alarm_common,
        )

        # ------------------------------------------------------------------------------- service
        self.service = aws.ecs.Service(
            f"{name}-service",
            cluster=self.cluster.arn,
            task_definition=self.task_definition.arn,
            desired_count=cfg.scaling.initial,
            launch_type="FARGATE",
            platform_version="LATEST",
            network_configuration=aws.ecs.ServiceNetworkConfigurationArgs(
                subnets=private_subnets, security_groups=[task_sg.id], assign_public_ip=False
            ),
            load_balancers=[
                aws.ecs.ServiceLoadBalancerArgs(
                    target_group_arn=self.target_group.arn,
                    container_name=CONTAINER_NAME,
                    container_port=cfg.port,
                )
            ],
            # Keep full capacity during a deploy (100) and start the new tasks beside the old (200):
            # the tuning's connection budget counts max x 2 replicas for exactly this overlap.
            deployment_minimum_healthy_percent=100,
            deployment_maximum_percent=200,
            deployment_circuit_breaker=aws.ecs.ServiceDeploymentCircuitBreakerArgs(
                enable=True, rollback=True
            ),
            # A release that passes health checks but throws 5xx is rolled back too.
            alarms=aws.ecs.ServiceAlarmsArgs(alarm_names=[self.alarm_5xx.name], enable=True, rollback=True),
            health_check_grace_period_seconds=tuning.health_check_grace_s,
            propagate_tags="SERVICE",
            enable_ecs_managed_tags=True,
            # `pulumi up` waits for the rollout, so CI sees a rollback as a failed deploy.
            wait_for_steady_state=True,
            tags=tags,
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[*listeners, *release_deps],  # issue 15 item 2: release migration first
                # Autoscaling owns desiredCount after creation; resetting it on every `up` would undo a
                # scale-out in the middle of a traffic spike.
                ignore_changes=["desiredCount"],
            ),
        )

        # Alarms that need the service's name (created after it; none of them gates the rollback).
        svc_dims = {"ClusterName": self.cluster.name, "ServiceName": self.service.name}
        task_common: dict[str, Any] = {
            **alarm_common,
            "dimensions": svc_dims,
            "namespace": "AWS/ECS",
        }
        self.alarm_memory = aws.cloudwatch.MetricAlarm(
            f"{name}-memory",
            alarm_description=f"{name}: task memory utilization at or above {alarms_cfg.memory_percent:g} %",
            metric_name="MemoryUtilization",
            statistic="Maximum",
            comparison_operator="GreaterThanOrEqualToThreshold",
            threshold=alarms_cfg.memory_percent,
            treat_missing_data="notBreaching",
            **task_common,
        )
        # The app's embedded-metric-format metrics (EMF log lines CloudWatch turns into metrics). These
        # alarms stay INSUFFICIENT_DATA (missing data = not breaching) until the app emits them with the
        # dimension Service=<name> in the namespace alarms.emf_namespace.
        emf_common: dict[str, Any] = {
            **alarm_common,
            "dimensions": {"Service": name},
            "namespace": alarms_cfg.emf_namespace,
        }
        self.alarm_db_pool = aws.cloudwatch.MetricAlarm(
            f"{name}-dbpool",
            alarm_description=(
                f"{name}: DB pool usage at or above {alarms_cfg.db_pool_usage_ratio:g} "
                "(EMF db_pool_usage_ratio; needs the app's EMF metrics)"
            ),
            metric_name="db_pool_usage_ratio",
            statistic="Maximum",
            comparison_operator="GreaterThanOrEqualToThreshold",
            threshold=alarms_cfg.db_pool_usage_ratio,
            treat_missing_data="notBreaching",
            **emf_common,
        )
        self.alarm_restarts = aws.cloudwatch.MetricAlarm(
            f"{name}-restarts",
            alarm_description=(
                f"{name}: at least {alarms_cfg.worker_restarts} worker restarts per minute "
                "(EMF worker_restarts; needs the app's EMF metrics)"
            ),
            metric_name="worker_restarts",
            statistic="Sum",
            comparison_operator="GreaterThanOrEqualToThreshold",
            threshold=alarms_cfg.worker_restarts,
            treat_missing_data="notBreaching",
            **emf_common,
        )

        # --------------------------------------------------------------------------- autoscaling
        scaling_target = aws.appautoscaling.Target(
            f"{name}-scaling",
            service_namespace="ecs",
            scalable_dimension="ecs:service:DesiredCount",
            resource_id=pulumi.Output.concat("service/", self.cluster.name, "/", self.service.name),
            min_capacity=cfg.scaling.min,
            max_capacity=cfg.scaling.max,
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self.service),
        )
        auto = ecs_cfg.autoscaling
        scaling_child = pulumi.ResourceOptions(parent=scaling_target)
        aws.appautoscaling.Policy(
            f"{name}-scale-cpu",
            policy_type="TargetTrackingScaling",
            service_namespace=scaling_target.service_namespace,
            scalable_dimension=scaling_target.scalable_dimension,
            resource_id=scaling_target.resource_id,
            target_tracking_scaling_policy_configuration=aws.appautoscaling.PolicyTargetTrackingScalingPolicyConfigurationArgs(
                target_value=auto.cpu_target_percent,
                predefined_metric_specification=aws.appautoscaling.PolicyTargetTrackingScalingPolicyConfigurationPredefinedMetricSpecificationArgs(
                    predefined_metric_type="ECSServiceAverageCPUUtilization"
                ),
                scale_in_cooldown=auto.scale_in_cooldown_s,
                scale_out_cooldown=auto.scale_out_cooldown_s,
            ),
            opts=scaling_child,
        )
        if auto.requests_per_target is not None:
            aws.appautoscaling.Policy(
                f"{name}-scale-requests",
                policy_type="TargetTrackingScaling",
                service_namespace=scaling_target.service_namespace,
                scalable_dimension=scaling_target.scalable_dimension,
                resource_id=scaling_target.resource_id,
                target_tracking_scaling_policy_configuration=aws.appautoscaling.PolicyTargetTrackingScalingPolicyConfigurationArgs(
                    target_value=float(auto.requests_per_target),
                    predefined_metric_specification=aws.appautoscaling.PolicyTargetTrackingScalingPolicyConfigurationPredefinedMetricSpecificationArgs(
                        predefined_metric_type="ALBRequestCountPerTarget",
                        resource_label=pulumi.Output.concat(
                            self.load_balancer.arn_suffix, "/", self.target_group.arn_suffix
                        ),
                    ),
                    scale_in_cooldown=auto.scale_in_cooldown_s,
                    scale_out_cooldown=auto.scale_out_cooldown_s,
                ),
                opts=scaling_child,
            )

        # ------------------------------------------------------------------------------- outputs
        scheme = "https" if ecs_cfg.certificate_arn else "http"
        host: pulumi.Input[str] = cfg.domain if cfg.domain else self.load_balancer.dns_name
        self.url = pulumi.Output.concat(scheme, "://", host)
        self.region = region
        self.register_outputs(
            {
                "url": self.url,
                "cluster_name": self.cluster.name,
                "service_name": self.service.name,
                "log_group": self.log_group.name,
                "target_group_arn": self.target_group.arn,
                "load_balancer_dns": self.load_balancer.dns_name,
            }
        )

    def _network(
        self, name: str, vpc: NewVpc | ExistingVpc, tags: dict[str, str], child: pulumi.ResourceOptions
    ) -> tuple[pulumi.Input[str], pulumi.Input[str], list[pulumi.Input[str]], list[pulumi.Input[str]]]:
        if isinstance(vpc, ExistingVpc):
            existing = aws.ec2.get_vpc_output(id=vpc.vpc_id, opts=pulumi.InvokeOutputOptions(parent=self))
            return vpc.vpc_id, existing.cidr_block, list(vpc.public_subnet_ids), list(vpc.private_subnet_ids)

        azs = aws.get_availability_zones_output(
            state="available", opts=pulumi.InvokeOutputOptions(parent=self)
        )
        net = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=vpc.cidr,
            enable_dns_hostnames=True,
            enable_dns_support=True,
            tags={**tags, "Name": name},
            opts=child,
        )
        net_child = pulumi.ResourceOptions(parent=net)
        igw = aws.ec2.InternetGateway(
            f"{name}-igw", vpc_id=net.id, tags={**tags, "Name": name}, opts=net_child
        )
        public_rt = aws.ec2.RouteTable(
            f"{name}-public-rt",
            vpc_id=net.id,
            routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", gateway_id=igw.id)],
            tags={**tags, "Name": f"{name}-public"},
            opts=net_child,
        )
        public_cidrs, private_cidrs = subnet_cidrs(vpc.cidr, vpc.az_count)
        public: list[aws.ec2.Subnet] = []
        private: list[aws.ec2.Subnet] = []
        nat_ids: list[pulumi.Output[str]] = []
        for i in range(vpc.az_count):
            az = azs.names.apply(_nth(i))
            pub = aws.ec2.Subnet(
                f"{name}-public-{i}",
                vpc_id=net.id,
                cidr_block=public_cidrs[i],
                availability_zone=az,
                map_public_ip_on_launch=False,
                tags={**tags, "Name": f"{name}-public-{i}", "tier": "public"},
                opts=net_child,
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-public-{i}-rta", subnet_id=pub.id, route_table_id=public_rt.id, opts=net_child
            )
            public.append(pub)
            if i == 0 or vpc.nat_gateways == "per_az":
                eip = aws.ec2.Eip(
                    f"{name}-nat-{i}-eip",
                    domain="vpc",
                    tags={**tags, "Name": f"{name}-nat-{i}"},
                    opts=net_child,
                )
                nat = aws.ec2.NatGateway(
                    f"{name}-nat-{i}",
                    allocation_id=eip.allocation_id,
                    subnet_id=pub.id,
                    tags={**tags, "Name": f"{name}-nat-{i}"},
                    opts=pulumi.ResourceOptions(parent=net, depends_on=[igw]),
                )
                nat_ids.append(nat.id)
            priv = aws.ec2.Subnet(
                f"{name}-private-{i}",
                vpc_id=net.id,
                cidr_block=private_cidrs[i],
                availability_zone=az,
                tags={**tags, "Name": f"{name}-private-{i}", "tier": "private"},
                opts=net_child,
            )
            rt = aws.ec2.RouteTable(
                f"{name}-private-{i}-rt",
                vpc_id=net.id,
                routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", nat_gateway_id=nat_ids[-1])],
                tags={**tags, "Name": f"{name}-private-{i}"},
                opts=net_child,
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-private-{i}-rta", subnet_id=priv.id, route_table_id=rt.id, opts=net_child
            )
            private.append(priv)
        return net.id, net.cidr_block, [s.id for s in public], [s.id for s in private]


def _vpc_key(vpc: NewVpc | ExistingVpc) -> str:
    return vpc.vpc_id if isinstance(vpc, ExistingVpc) else f"new:{vpc.cidr}"


def _nth(i: int) -> Any:
    def pick(names: list[str]) -> str:
        return names[i]

    return pick


def deploy(ctx: DeployContext) -> dict[str, pulumi.Input[Any]]:
    """Registry entry point: create the FargateService and return the contract's stack outputs."""
    cfg = ctx.cfg
    assert isinstance(cfg, EcsConfig)
    svc = FargateService(
        ctx.name,
        FargateServiceArgs(
            config=cfg,
            tuning=ctx.tuning,
            image=ctx.image.ref,
            tags=ctx.tags,
            repository_arn=ctx.image.repository_arn,
        ),
        opts=ctx.opts,
    )
    return {
        "target": "ecs",
        "url": svc.url,
        "image": ctx.image.ref,
        "health_path": cfg.health.liveness_path,
        "ready_path": cfg.health.readiness_path,
        "region": svc.region,
        "cluster_name": svc.cluster.name,
        "service_name": svc.service.name,
        "log_group": svc.log_group.name,
        "target_group_arn": svc.target_group.arn,
        "load_balancer_dns": svc.load_balancer.dns_name,
    }
