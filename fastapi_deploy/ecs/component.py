"""ECS Fargate behind an ALB: ``fastapi-deploy:ecs:FargateService``.

What a user gets: a VPC (or theirs) with tasks in private subnets, an internet-facing ALB with HTTPS
(HTTP redirects), a target group health-checking the liveness path, a task definition that runs the
image by digest as a non-root user on a read-only root filesystem with secrets injected by ECS, a
service that rolls back a bad release on its own (deployment circuit breaker + container health gate +
5xx alarm), target-tracking autoscaling, and alarms on 5xx, p95 latency and unhealthy hosts.
With ``listener_arn`` it joins an existing ALB's listener instead (target group + listener rules only;
docs/deployer.md).

Health design (see docs/deployer.md): the ALB and the container health check must never kill tasks for
a database outage, so they probe the LIVENESS path after start-up; a new task must pass READINESS once
before its container health check switches to liveness, so a release with a wrong DATABASE_URL never
becomes healthy and the circuit breaker rolls it back.
"""

import fnmatch
import hashlib
import ipaddress
import json
import re
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws
from pydantic import ValidationError

from fastapi_deploy import component as cargs
from fastapi_deploy import secret_refs as refs_mod
from fastapi_deploy.aws_alerts import alert_actions
from fastapi_deploy.component import ArgsError, NamedComponent
from fastapi_deploy.config import (
    ACM_CERTIFICATE,
    KMS_KEY,
    SNS_TOPIC,
    Alerts,
    AppConfigBase,
    ArnKind,
    Database,
    EcsSettings,
    Health,
    NewVpc,
    Scaling,
    TuningOverrides,
    aws_domain_problem,
)
from fastapi_deploy.ecs.args import FargateServiceArgs
from fastapi_deploy.ecs.config import security_group_ids_problem, subnet_ids_problem, vpc_id_problem
from fastapi_deploy.ecs.domain import EcsDomain, EcsDomainArgs
from fastapi_deploy.ecs.gate import ecs_gate, ecs_timeout_s
from fastapi_deploy.ecs.migrate import EcsReleaseMigration, ecs_release_migration
from fastapi_deploy.release_gate import ReleaseGate
from fastapi_deploy.tuning import (
    ALB_IDLE_TIMEOUT_S,
    DEFAULT_MAX_REQUEST_BODY_BYTES,
    DRAIN_MARGIN_S,
    METRICS_PATHS,
    METRICS_PRIVATELY_SCRAPABLE,
    RuntimeTuning,
    TuningInput,
    migrate_env,
    tune,
)

COMPONENT_TYPE = "fastapi-deploy:ecs:FargateService"
OWNER = "FargateServiceArgs"

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
    image: str,
    port: int,
    env: dict[str, str],
    secrets: dict[str, refs_mod.SecretRef],
    health: Health,
    tuning: RuntimeTuning,
    region: str,
    account: str,
    partition: str,
    log_group: str,
) -> list[dict[str, Any]]:
    """The ECS container definitions (RegisterTaskDefinition shape)."""
    hc = tuning.container_health
    assert hc is not None
    return [
        {
            "name": CONTAINER_NAME,
            "image": image,
            "essential": True,
            "user": CONTAINER_USER,
            "readonlyRootFilesystem": True,
            "portMappings": [{"containerPort": port, "hostPort": port, "protocol": "tcp", "name": "http"}],
            "environment": [{"name": k, "value": v} for k, v in env.items()],
            "secrets": refs_mod.ecs_secrets(secrets, account, region, partition),
            "mountPoints": [{"sourceVolume": TMP_VOLUME, "containerPath": "/tmp", "readOnly": False}],  # noqa: S108
            # tini as PID 1: forwards SIGTERM to gunicorn and reaps zombies.
            "linuxParameters": {"initProcessEnabled": True},
            # SIGTERM -> SIGKILL window; gunicorn's graceful timeout (tuning) is 10 s shorter.
            "stopTimeout": tuning.stop_timeout_s,
            "healthCheck": {
                "command": health_command(health.liveness_path, health.readiness_path, hc.timeout_s),
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


#: Listener rule priorities AWS accepts (CreateRule); the /metrics block rule takes ``priority - 1``.
RULE_PRIORITY_MIN, RULE_PRIORITY_MAX = 1, 50000
#: The ARN Args (checked before anything registers when plain; see fastapi_deploy.config.aws_arn_problem).
ALB_LISTENER = ArnKind(
    "an application load balancer listener", "elasticloadbalancing",
    r"listener/app/[A-Za-z0-9-]{1,32}/[0-9a-f]+/[0-9a-f]+",
    "arn:aws:elasticloadbalancing:REGION:ACCOUNT:listener/app/NAME/ID/ID", "listener",
    "the target group and the tasks are made in the component's region, and a listener forwards only to "
    "target groups of its own region",
)  # fmt: skip
ECS_CLUSTER = ArnKind(
    "an ECS cluster", "ecs", r"cluster/[A-Za-z0-9_-]{1,255}", "arn:aws:ecs:REGION:ACCOUNT:cluster/NAME",
    "cluster", "an ECS service runs in a cluster of its own region",
)  # fmt: skip
#: Any region of the partition: ECS pulls across regions (the execution role is granted this repository).
ECR_REPOSITORY = ArnKind(
    "an ECR repository", "ecr", r"repository/[a-z0-9][a-z0-9._/-]{0,255}",
    "arn:aws:ecr:REGION:ACCOUNT:repository/NAME", "repository",
)  # fmt: skip
_SG_ID = re.compile(r"sg-[0-9a-f]{8}([0-9a-f]{9})?")
#: ALB host-header condition values: letters, digits, -, ., * and ? (up to 128 characters).
_HOST_HEADER = re.compile(r"[A-Za-z0-9*?.-]{1,128}")
#: ALB path-pattern condition values (CreateRule: up to 128 characters of A-Z a-z 0-9 _ - . $ / ~ " ' @ : +
#: & * ?); this component wants them absolute.
_PATH_PATTERN = re.compile(r"/[A-Za-z0-9_.$/~\"'@:+&*?-]{0,127}")
#: The longest request an ALB with its default idle timeout carries (the tuning adds DRAIN_MARGIN_S).
ATTACHED_MAX_REQUEST_TIMEOUT_S = ALB_IDLE_TIMEOUT_S - DRAIN_MARGIN_S


@dataclass(frozen=True)
class EcsAttachment:
    """An existing ALB listener the service is added to (``listener_arn``)."""

    listener_arn: pulumi.Input[str]
    load_balancer_security_group_id: pulumi.Input[str]
    priority: int
    host_header: str | None
    path_pattern: str | None

    def metrics_paths(self) -> list[str]:
        """The /metrics paths the forwarding rule would send to the tasks (ALB path patterns are
        case-sensitive, ``*`` and ``?`` wildcards: fnmatchcase is the same match). Empty: the listener never
        forwards /metrics here, so no block rule is needed (and one would hide other services' paths)."""
        if self.path_pattern is None:
            return list(METRICS_PATHS)
        probes = {"/metrics": "/metrics", "/metrics/*": "/metrics/x"}
        return [p for p in METRICS_PATHS if fnmatch.fnmatchcase(probes.get(p, p), self.path_pattern)]


ATTACH_ONLY = ("load_balancer_security_group_id", "listener_rule_priority", "host_header", "path_pattern")


def attachment_from_args(a: dict[str, Any], region: cargs.KnownRegion | None = None) -> EcsAttachment | None:
    """Validate the ``listener_arn`` Args (and the Args that cannot go with them); registers nothing."""
    listener_arn = a.get("listener_arn")
    if listener_arn is None:
        for key in ATTACH_ONLY:
            if a.get(key) is not None:
                raise ArgsError(
                    f"{OWNER}.{key}: only with listener_arn (an existing listener to attach to); without "
                    "it the component creates its own ALB, listeners and rules"
                )
        return None
    cargs.arn(OWNER, "listener_arn", listener_arn, ALB_LISTENER, region)
    priority = a.get("listener_rule_priority")
    if priority is None:
        raise ArgsError(
            f"{OWNER}.listener_rule_priority: required with listener_arn ({RULE_PRIORITY_MIN + 1}.."
            f"{RULE_PRIORITY_MAX}, unused on that listener, and the one before it for the /metrics block "
            "rule): the listener's other rules belong to other stacks, so a free number read now can be "
            "taken by a concurrent deploy, would change between runs, and the priority decides which rule "
            "matches first - only you know where this service belongs"
        )
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise ArgsError(f"{OWNER}.listener_rule_priority: {priority!r} is not an integer")
    if not RULE_PRIORITY_MIN + 1 <= priority <= RULE_PRIORITY_MAX:
        raise ArgsError(
            f"{OWNER}.listener_rule_priority: {priority} is outside "
            f"{RULE_PRIORITY_MIN + 1}..{RULE_PRIORITY_MAX} (AWS accepts {RULE_PRIORITY_MIN}.."
            f"{RULE_PRIORITY_MAX}; the one before it is the /metrics block rule, which must match "
            "before the forwarding rule)"
        )
    sg = a.get("load_balancer_security_group_id")
    if sg is None or sg == "":
        raise ArgsError(
            f"{OWNER}.load_balancer_security_group_id: required with listener_arn (the tasks accept the "
            "container port from the load balancer's security group only)"
        )
    if isinstance(sg, str) and not _SG_ID.fullmatch(sg):
        raise ArgsError(
            f"{OWNER}.load_balancer_security_group_id: {sg!r} is not a security group id (sg-...)"
        )
    if a.get("vpc_id") is None:
        raise ArgsError(
            f"{OWNER}.vpc_id: required with listener_arn (the target group and the tasks must be in the "
            "load balancer's VPC; with private_subnet_ids there)"
        )
    refused = {
        "public_subnet_ids": "public subnets are for an ALB the component creates; the existing one has "
        "its own",
        "zone": "the existing listener serves its own certificate and the DNS record to its ALB is yours "
        "(add the domain's certificate to that listener)",
        "certificate_arn": "the certificate belongs to the existing listener (add it there)",
        "alb_deletion_protection": "the existing load balancer is not the component's",
    }
    for key, why in refused.items():
        if a.get(key) not in (None, [], False):
            raise ArgsError(f"{OWNER}.{key}: not with listener_arn: {why}")
    host = a.get("host_header") or a.get("domain")
    path = a.get("path_pattern")
    if host is None and path is None:
        raise ArgsError(
            f"{OWNER}.host_header: required with listener_arn unless domain or path_pattern is set: a rule "
            "without conditions would take every request the listener gets"
        )
    if host is not None and (not isinstance(host, str) or not _HOST_HEADER.fullmatch(host)):
        key = "host_header" if a.get("host_header") else "domain"
        raise ArgsError(f"{OWNER}.{key}: {host!r} is not a host name an ALB host-header condition accepts")
    if path is not None and (not isinstance(path, str) or not _PATH_PATTERN.fullmatch(path)):
        raise ArgsError(
            f"{OWNER}.path_pattern: {path!r} is not an ALB path pattern (starts with /, up to 128 of "
            "A-Z a-z 0-9 _ - . $ / ~ \" ' @ : + & * ?)"
        )
    timeout = a.get("request_timeout_s", 30)
    if isinstance(timeout, int) and timeout > ATTACHED_MAX_REQUEST_TIMEOUT_S:
        raise ArgsError(
            f"{OWNER}.request_timeout_s: {timeout} s is above {ATTACHED_MAX_REQUEST_TIMEOUT_S} s with "
            f"listener_arn: a request may not outlast the load balancer's idle timeout (default "
            f"{ALB_IDLE_TIMEOUT_S} s, minus {DRAIN_MARGIN_S} s), and the idle timeout of a load balancer the "
            "component does not own cannot be raised by it; lower it or let the component create its ALB"
        )
    return EcsAttachment(
        listener_arn=listener_arn,
        load_balancer_security_group_id=sg,
        priority=priority,
        host_header=host,
        path_pattern=path,
    )


@dataclass(frozen=True)
class EcsInputs:
    """The Args after validation (plain values checked with the stack config's own models)."""

    image: pulumi.Input[str]
    port: int
    app_env: str
    env: dict[str, pulumi.Input[str]]
    secrets: dict[str, refs_mod.SecretRef]
    secret_kms_key_arns: cargs.IdList
    health: Health
    scaling: Scaling
    database: Database
    request_timeout_s: int
    max_request_body_bytes: int
    overrides: TuningOverrides
    settings: EcsSettings
    certificate_arn: pulumi.Input[str] | None
    new_vpc: NewVpc | None
    vpc_id: pulumi.Input[str] | None
    public_subnet_ids: cargs.IdList
    """A plain list, or an Output of one (checked when it resolves); the same for the other id lists."""
    private_subnet_ids: cargs.IdList
    cluster_arn: pulumi.Input[str] | None
    task_security_group_ids: cargs.IdList
    repository_arn: pulumi.Input[str] | None
    domain: str | None
    zone: str | None
    wait_for_release: bool
    alert_emails: list[str]
    alert_webhook_url: str | None
    alert_topic_arn: str | None
    tags: dict[str, str]
    attach: EcsAttachment | None = None

    @property
    def https(self) -> bool:
        """The ALB serves HTTPS: a certificate is given, or one is made for ``domain`` in ``zone``
        (with ``listener_arn`` the listener's protocol decides; see FargateService.url)."""
        return bool(self.certificate_arn or (self.domain and self.zone))


#: With vpc_id, each subnet list needs two AZs (checked as soon as its length is known).
_TWO_SUBNETS = (2, "needs at least 2 subnets in different AZs with vpc_id")


def inputs_from_args(args: FargateServiceArgs, opts: pulumi.ResourceOptions | None = None) -> EcsInputs:
    """Validate the Args (raises :class:`ArgsError` naming the Arg); registers nothing. ``opts`` tells
    whether the default AWS provider (and so ``aws:region``) applies: ARN Args are then checked against
    that region too."""
    a = cargs.known_args(OWNER, args, FargateServiceArgs)
    region = cargs.aws_region_now(opts)
    image = cargs.image(OWNER, a)
    port = cargs.field(OWNER, "port", AppConfigBase, "port", a.get("port", 8000))
    app_env = cargs.field(
        OWNER, "environment", AppConfigBase, "environment", a.get("environment", "production")
    )
    settings_in = {
        k: a[k]
        for k in ("cpu", "memory", "log_retention_days", "autoscaling", "alarms", "container_insights",
                  "alb_deletion_protection")
        if k in a
    }  # fmt: skip
    try:
        settings = EcsSettings.model_validate(settings_in)
    except ValidationError as exc:
        raise ArgsError(cargs.pydantic_message(OWNER, exc)) from None
    attach = attachment_from_args(a, region)
    vpc_id = a.get("vpc_id")
    new_vpc: NewVpc | None = None
    # Id lists: plain, partly Outputs, or an Output of a whole list (awsx's vpc.private_subnet_ids).
    public = cargs.id_list(OWNER, "public_subnet_ids", a.get("public_subnet_ids"))
    private = cargs.id_list(OWNER, "private_subnet_ids", a.get("private_subnet_ids"))
    if vpc_id is None:
        if cargs.given(public) or cargs.given(private):
            raise ArgsError(f"{OWNER}.public_subnet_ids: subnets need vpc_id (the VPC they belong to)")
        new_vpc = cargs.section(OWNER, "vpc", NewVpc, a.get("vpc"))
    else:
        if isinstance(vpc_id, str):
            problem = vpc_id_problem(vpc_id)
            if problem:
                raise ArgsError(f"{OWNER}.vpc_id: {problem}")
        # The stack config's own checks (>= 2 subnets, id shapes, no repeats): now for a plain list, once
        # an Output list resolves otherwise (the length as soon as it is known).
        if attach is None:
            public = cargs.checked_ids(OWNER, "public_subnet_ids", public, subnet_ids_problem, _TWO_SUBNETS)
        private = cargs.checked_ids(OWNER, "private_subnet_ids", private, subnet_ids_problem, _TWO_SUBNETS)
    extra_groups = cargs.checked_ids(
        OWNER,
        "task_security_group_ids",
        cargs.id_list(OWNER, "task_security_group_ids", a.get("task_security_group_ids")),
        security_group_ids_problem,
    )
    kms_keys = cargs.id_list(OWNER, "secret_kms_key_arns", a.get("secret_kms_key_arns"))
    cargs.arn_list(OWNER, "secret_kms_key_arns", kms_keys, KMS_KEY, region)
    cert = a.get("certificate_arn")
    cargs.arn(OWNER, "certificate_arn", cert, ACM_CERTIFICATE, region)
    cargs.arn(OWNER, "cluster_arn", a.get("cluster_arn"), ECS_CLUSTER, region)
    cargs.arn(OWNER, "repository_arn", a.get("repository_arn"), ECR_REPOSITORY, region)
    domain_problem = aws_domain_problem(
        a.get("domain"), a.get("zone"), "given" if cert is not None or attach else None, OWNER
    )
    if domain_problem:
        raise ArgsError(domain_problem.replace("app.domain", f"{OWNER}.domain"))
    alerts = cargs.section(OWNER, "alerts", Alerts, {k: v for k, v in (a.get("alerts") or {}).items()})
    if alerts.gcp_notification_channels:
        raise ArgsError(
            f"{OWNER}.alerts.gcp_notification_channels: Google channels cannot receive CloudWatch alarms"
        )
    cargs.arn(OWNER, "alerts.sns_topic_arn", alerts.sns_topic_arn, SNS_TOPIC, region)
    return EcsInputs(
        image=image,
        port=port,
        app_env=app_env,
        env=cargs.env(OWNER, a.get("env")),
        secrets=cargs.secret_refs(OWNER, a.get("secrets"), ("ssm", "secretsmanager")),
        secret_kms_key_arns=kms_keys,
        health=cargs.section(OWNER, "health", Health, a.get("health")),
        scaling=cargs.section(OWNER, "scaling", Scaling, cargs.required(OWNER, a, "scaling")),
        database=cargs.section(OWNER, "database", Database, a.get("database")),
        request_timeout_s=cargs.field(
            OWNER, "request_timeout_s", AppConfigBase, "request_timeout_s", a.get("request_timeout_s", 30)
        ),
        max_request_body_bytes=cargs.field(
            OWNER,
            "max_request_body_bytes",
            AppConfigBase,
            "max_request_body_bytes",
            a.get("max_request_body_bytes", DEFAULT_MAX_REQUEST_BODY_BYTES),
        ),
        overrides=cargs.section(OWNER, "overrides", TuningOverrides, a.get("overrides")),
        settings=settings,
        certificate_arn=cert,
        new_vpc=new_vpc,
        vpc_id=vpc_id,
        public_subnet_ids=public,
        private_subnet_ids=private,
        cluster_arn=a.get("cluster_arn"),
        task_security_group_ids=extra_groups,
        repository_arn=a.get("repository_arn"),
        domain=a.get("domain"),
        zone=a.get("zone"),
        wait_for_release=bool(a.get("wait_for_release", True)),
        alert_emails=list(alerts.emails),
        alert_webhook_url=alerts.webhook_url,
        alert_topic_arn=alerts.sns_topic_arn,
        tags=cargs.tags(OWNER, a.get("tags")),
        attach=attach,
    )


def tuning_for(inp: EcsInputs) -> RuntimeTuning:
    """The runtime tuning computed from the Args (error messages name the Args)."""
    keys = cargs.tuning_keys(
        OWNER, max_replicas=f"{OWNER}.scaling.max", size=f"{OWNER}.cpu", memory=f"{OWNER}.memory"
    )
    o = inp.overrides
    return tune(
        TuningInput(
            "ecs",
            inp.settings.vcpu,
            inp.settings.memory,
            inp.scaling.max,
            db_budget=inp.database.budget,
            request_timeout_s=inp.request_timeout_s,
            app_env=inp.app_env,
            port=inp.port,
            workers=o.workers,
            pool_size=o.db_pool_size,
            max_overflow=o.db_max_overflow,
            pool_timeout_s=o.db_pool_timeout_s,
            max_request_body_bytes=inp.max_request_body_bytes,
            keys=keys,
        )
    )


def final_env(name: str, inp: EcsInputs, tuning: RuntimeTuning) -> dict[str, pulumi.Input[str]]:
    """The container's plain env: the Args' env, then the tuning's variables (they win), then what this
    component owns (the EMF service dimension its alarms read)."""
    env: dict[str, pulumi.Input[str]] = {**inp.env, **tuning.env()}
    env.update(migrate_env(inp.database.migrate_mode("ecs"), tuning))
    if not METRICS_PRIVATELY_SCRAPABLE["ecs"]:
        env.setdefault("METRICS_ENABLED", "false")
    if env.get("METRICS_EMF") == "true":
        env["METRICS_EMF_SERVICE"] = name
        env["METRICS_EMF_NAMESPACE"] = inp.settings.alarms.emf_namespace
    return dict(sorted(env.items()))


class FargateService(NamedComponent):
    """An ECS Fargate service behind an ALB, with its network, IAM, logs, autoscaling and alarms."""

    target: pulumi.Output[str]
    """Always ``ecs``."""
    url: pulumi.Output[str]
    """Public URL (``https://domain`` or the ALB's DNS name)."""
    image: pulumi.Output[str]
    """The image reference the tasks run."""
    health_path: pulumi.Output[str]
    """Liveness path."""
    ready_path: pulumi.Output[str]
    """Readiness path."""
    region: pulumi.Output[str]
    """AWS region."""
    cluster_name: pulumi.Output[str]
    """ECS cluster name."""
    service_name: pulumi.Output[str]
    """ECS service name."""
    log_group: pulumi.Output[str]
    """CloudWatch log group name."""
    target_group_arn: pulumi.Output[str]
    """ALB target group ARN."""
    load_balancer_dns: pulumi.Output[str]
    """ALB DNS name."""

    def __init__(
        self,
        name: str,
        args: FargateServiceArgs,
        opts: pulumi.ResourceOptions | None = None,
        *,
        tuning: RuntimeTuning | None = None,
    ) -> None:
        inp = inputs_from_args(args, opts)
        runtime = tuning if tuning is not None else tuning_for(inp)
        assert runtime.lb_health is not None
        assert runtime.deregistration_delay_s is not None
        # The runtime facts (contract.RUNTIME_FACTS) state the env and sizes the task definition gets.
        props = cargs.runtime_props(runtime, final_env(name, inp, runtime), min_replicas=inp.scaling.min)
        super().__init__(COMPONENT_TYPE, name, props, opts)
        # Children (attributes, not outputs: declared here, not on the class, so the schema has none).
        self.vpc: aws.ec2.Vpc | None
        # None / [] with listener_arn (the load balancer, its listeners and security group are not ours).
        self.alb_security_group: aws.ec2.SecurityGroup | None
        self.task_security_group: aws.ec2.SecurityGroup
        self.load_balancer: aws.lb.LoadBalancer | None
        self.target_group: aws.lb.TargetGroup
        self.listeners: list[aws.lb.Listener]
        #: The forwarding rule on ``listener_arn`` (None when the component owns the ALB).
        self.listener_rule: aws.lb.ListenerRule | None = None
        self.lb_arn_suffix: pulumi.Output[str]
        self.lb_dns_name: pulumi.Output[str]
        self.custom_domain: EcsDomain | None = None
        self.migration: EcsReleaseMigration | None
        self.release_gate: ReleaseGate | None
        #: None with listener_arn when the rule's path pattern never matches /metrics.
        self.metrics_block: aws.lb.ListenerRule | None
        self.cluster: aws.ecs.Cluster | None
        self.cluster_arn: pulumi.Output[str]
        self.cluster_name_out: pulumi.Output[str]
        self.logs: aws.cloudwatch.LogGroup
        self.execution_role: aws.iam.Role
        self.task_role: aws.iam.Role
        self.alarm_5xx: aws.cloudwatch.MetricAlarm
        self.alarm_p95: aws.cloudwatch.MetricAlarm
        self.alarm_unhealthy: aws.cloudwatch.MetricAlarm
        self.alarm_memory: aws.cloudwatch.MetricAlarm
        self.alarm_db_pool: aws.cloudwatch.MetricAlarm
        self.alarm_restarts: aws.cloudwatch.MetricAlarm
        self.scaling_target: aws.appautoscaling.Target
        self.tuning = runtime
        env = final_env(name, inp, runtime)
        tags = inp.tags

        invoke = self.invoke_opts()
        account = aws.get_caller_identity_output(opts=invoke).account_id
        region = aws.get_region_output(opts=invoke).region
        partition = aws.get_partition_output(opts=invoke).partition

        vpc_id, vpc_cidr, public_subnets, private_subnets = _network(self, name, inp, tags)
        task_sg = _security_groups(self, name, inp, vpc_id, vpc_cidr, tags)
        url_base: pulumi.Output[str]
        lb_ready: list[pulumi.Resource]
        if inp.attach is None:
            assert self.alb_security_group is not None
            lb_ready = list(
                _load_balancer(
                    self, name, inp, runtime, vpc_id, self.alb_security_group, public_subnets, tags
                )
            )
            scheme = "https" if inp.https else "http"
            host: pulumi.Input[str] = inp.domain if inp.domain else self.lb_dns_name
            url_base = pulumi.Output.concat(scheme, "://", host)
        else:
            url_base = _attach_to_listener(self, name, inp, runtime, vpc_id, tags)
            assert self.listener_rule is not None
            lb_ready = [self.listener_rule]
        _cluster_logs_iam(self, name, inp, account, region, partition, tags)

        containers = pulumi.Output.all(
            pulumi.Output.from_input(inp.image),
            region,
            account,
            partition,
            self.logs.name,
            pulumi.Output.from_input(env),
        ).apply(
            lambda a: json.dumps(
                container_definitions(
                    image=a[0],
                    port=inp.port,
                    env=a[5],
                    secrets=inp.secrets,
                    health=inp.health,
                    tuning=runtime,
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
            cpu=str(inp.settings.cpu),
            memory=str(inp.settings.memory),
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
            opts=self.child_opts(),
        )

        # migrate: release - one task of the NEW task definition runs `python -m app.migrate` and must exit 0
        # before the service moves to it (fastapi_deploy/ecs/migrate.py).
        self.migration = None
        if inp.database.migrate_mode("ecs") == "release":
            self.migration = ecs_release_migration(
                name,
                cluster_arn=self.cluster_arn,
                task_definition_arn=self.task_definition.arn,
                subnets=private_subnets,
                security_groups=cargs.join_ids([task_sg.id], inp.task_security_group_ids),
                container_name=CONTAINER_NAME,
                region=region,
                log_group=self.logs.name,
                log_stream_prefix=CONTAINER_NAME,
                opts=self.child_opts(),
            )
        alarm_common = _lb_alarms(self, name, inp, tags)
        self.service = aws.ecs.Service(
            f"{name}-service",
            cluster=self.cluster_arn,
            task_definition=self.task_definition.arn,
            desired_count=inp.scaling.initial,
            launch_type="FARGATE",
            platform_version="LATEST",
            network_configuration=aws.ecs.ServiceNetworkConfigurationArgs(
                subnets=private_subnets,
                security_groups=cargs.join_ids([task_sg.id], inp.task_security_group_ids),
                assign_public_ip=False,
            ),
            load_balancers=[
                aws.ecs.ServiceLoadBalancerArgs(
                    target_group_arn=self.target_group.arn,
                    container_name=CONTAINER_NAME,
                    container_port=inp.port,
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
            health_check_grace_period_seconds=runtime.health_check_grace_s,
            propagate_tags="SERVICE",
            enable_ecs_managed_tags=True,
            # `pulumi up` waits for the rollout, so CI sees a rollback as a failed deploy.
            wait_for_steady_state=True,
            tags=tags,
            opts=self.child_opts(
                depends_on=[*lb_ready, *([self.migration] if self.migration else [])],
                # Autoscaling owns desiredCount after creation; resetting it on every `up` would undo a
                # scale-out in the middle of a traffic spike.
                ignore_changes=["desiredCount"],
            ),
        )
        _service_alarms(self, name, inp, alarm_common)
        _autoscaling(self, name, inp)
        # `pulumi up` fails unless the service ends on THIS task definition: the circuit breaker's rollback
        # is otherwise reported as a successful update (fastapi_deploy/release_gate.py).
        self.release_gate = None
        if inp.wait_for_release:
            lbh = runtime.lb_health
            self.release_gate = ecs_gate(
                f"{name}-release",
                cluster=self.cluster_arn,
                service_name=self.service.name,
                task_definition_arn=self.task_definition.arn,
                region=region,
                target_group_arn=self.target_group.arn,
                image=inp.image,
                timeout_s=ecs_timeout_s(
                    runtime.deregistration_delay_s,
                    runtime.health_check_grace_s or 0,
                    lbh.interval_s,
                    lbh.healthy_threshold,
                ),
                stack_resource=f"{name}-service",
                opts=self.child_opts(depends_on=[self.service]),
            )

        self.outputs = self.finish(
            {
                "target": "ecs",
                "url": url_base,
                "image": inp.image,
                "health_path": inp.health.liveness_path,
                "ready_path": inp.health.readiness_path,
                "region": region,
                "cluster_name": self.cluster_name_out,
                "service_name": self.service.name,
                "log_group": self.logs.name,
                "target_group_arn": self.target_group.arn,
                "load_balancer_dns": self.lb_dns_name,
            }
        )


# ------------------------------------------------------------------------------------ pieces (same names,
# same parents as before the split: the URNs of shipped stacks do not change)
def _network(
    svc: FargateService, name: str, inp: EcsInputs, tags: dict[str, str]
) -> tuple[pulumi.Input[str], pulumi.Input[str], cargs.IdList, cargs.IdList]:
    """The VPC: the given one (its CIDR looked up), else a new one with public/private subnets and NAT."""
    if inp.vpc_id is not None:
        svc.vpc = None
        existing = aws.ec2.get_vpc_output(id=inp.vpc_id, opts=svc.invoke_opts())
        return inp.vpc_id, existing.cidr_block, inp.public_subnet_ids, inp.private_subnet_ids
    vpc = inp.new_vpc
    assert vpc is not None
    azs = aws.get_availability_zones_output(state="available", opts=svc.invoke_opts())
    net = aws.ec2.Vpc(
        f"{name}-vpc",
        cidr_block=vpc.cidr,
        enable_dns_hostnames=True,
        enable_dns_support=True,
        tags={**tags, "Name": name},
        opts=svc.child_opts(),
    )
    net_child = pulumi.ResourceOptions(parent=net)
    igw = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=net.id, tags={**tags, "Name": name}, opts=net_child)
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
                f"{name}-nat-{i}-eip", domain="vpc", tags={**tags, "Name": f"{name}-nat-{i}"}, opts=net_child
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
    svc.vpc = net
    return net.id, net.cidr_block, [s.id for s in public], [s.id for s in private]


def _security_groups(
    svc: FargateService,
    name: str,
    inp: EcsInputs,
    vpc_id: pulumi.Input[str],
    vpc_cidr: pulumi.Input[str],
    tags: dict[str, str],
) -> aws.ec2.SecurityGroup:
    """ALB group (HTTP(S) in from the internet, out to the tasks) and task group (app port from the ALB).

    With ``listener_arn`` only the task group: the app port from the given load balancer group."""
    task_description = f"{name} tasks: app port from the ALB only"
    if inp.attach is not None:
        svc.alb_security_group = None
        svc.task_security_group = aws.ec2.SecurityGroup(
            f"{name}-task-sg",
            vpc_id=vpc_id,
            description=task_description,
            tags={**tags, "Name": f"{name}-task"},
            opts=svc.child_opts(),
        )
        _task_rules(svc, name, inp, inp.attach.load_balancer_security_group_id, vpc_cidr, tags)
        return svc.task_security_group
    alb_sg = aws.ec2.SecurityGroup(
        f"{name}-alb-sg",
        vpc_id=vpc_id,
        description=f"{name} ALB: HTTP(S) from the internet, to the tasks only",
        tags={**tags, "Name": f"{name}-alb"},
        opts=svc.child_opts(),
    )
    task_sg = aws.ec2.SecurityGroup(
        f"{name}-task-sg",
        vpc_id=vpc_id,
        description=task_description,
        tags={**tags, "Name": f"{name}-task"},
        opts=svc.child_opts(),
    )
    listen_ports = [443, 80] if inp.https else [80]
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
        from_port=inp.port,
        to_port=inp.port,
        referenced_security_group_id=task_sg.id,
        description="to the tasks' app port only",
        tags=tags,
        opts=pulumi.ResourceOptions(parent=alb_sg),
    )
    svc.alb_security_group = alb_sg
    svc.task_security_group = task_sg
    _task_rules(svc, name, inp, alb_sg.id, vpc_cidr, tags)
    return task_sg


def _task_rules(
    svc: FargateService,
    name: str,
    inp: EcsInputs,
    lb_sg_id: pulumi.Input[str],
    vpc_cidr: pulumi.Input[str],
    tags: dict[str, str],
) -> None:
    """The task group's rules: the app port from the load balancer's group, HTTPS out, DB/Redis in the VPC."""
    task_sg = svc.task_security_group
    aws.vpc.SecurityGroupIngressRule(
        f"{name}-task-in-alb",
        security_group_id=task_sg.id,
        ip_protocol="tcp",
        from_port=inp.port,
        to_port=inp.port,
        referenced_security_group_id=lb_sg_id,
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


def _load_balancer(
    svc: FargateService,
    name: str,
    inp: EcsInputs,
    tuning: RuntimeTuning,
    vpc_id: pulumi.Input[str],
    alb_sg: aws.ec2.SecurityGroup,
    public_subnets: cargs.IdList,
    tags: dict[str, str],
) -> list[aws.lb.Listener]:
    """ALB, target group (liveness health check), listeners (HTTPS + redirect, or HTTP) and /metrics block."""
    svc.load_balancer = aws.lb.LoadBalancer(
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
        enable_deletion_protection=inp.settings.alb_deletion_protection,
        tags=tags,
        opts=svc.child_opts(),
    )
    svc.lb_arn_suffix = svc.load_balancer.arn_suffix
    svc.lb_dns_name = svc.load_balancer.dns_name
    _target_group(svc, name, inp, tuning, vpc_id, tags)
    return _listeners(svc, name, inp, tags)


def _target_group(
    svc: FargateService,
    name: str,
    inp: EcsInputs,
    tuning: RuntimeTuning,
    vpc_id: pulumi.Input[str],
    tags: dict[str, str],
) -> None:
    """The target group: IP targets on the app port, health-checking LIVENESS."""
    lbh = tuning.lb_health
    assert lbh is not None
    vpc_key = (
        pulumi.Output.from_input(inp.vpc_id).apply(str)
        if inp.vpc_id is not None
        else f"new:{inp.new_vpc.cidr if inp.new_vpc else ''}"
    )
    tg_name = pulumi.Output.from_input(vpc_key).apply(
        lambda key: lb_physical_name(name, "tg", inp.port, "HTTP", "ip", key)
    )
    svc.target_group = aws.lb.TargetGroup(
        f"{name}-tg",
        name=tg_name,
        port=inp.port,
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
            path=inp.health.liveness_path,
            protocol="HTTP",
            port="traffic-port",
            matcher=lbh.matcher,
            interval=lbh.interval_s,
            timeout=lbh.timeout_s,
            healthy_threshold=lbh.healthy_threshold,
            unhealthy_threshold=lbh.unhealthy_threshold,
        ),
        tags=tags,
        opts=svc.child_opts(),
    )


def _listeners(svc: FargateService, name: str, inp: EcsInputs, tags: dict[str, str]) -> list[aws.lb.Listener]:
    """The owned ALB's listeners (HTTPS + redirect, or HTTP), its domain and the /metrics block rule."""
    assert svc.load_balancer is not None
    lb_child = pulumi.ResourceOptions(parent=svc.load_balancer)
    # With a domain in a Route 53 zone: the certificate validated by DNS there (the HTTPS listener takes the
    # VALIDATED ARN, so it waits for issuance) and alias records to the ALB (ecs/domain.py).
    cert_arn: pulumi.Input[str] | None = inp.certificate_arn
    if inp.domain and inp.zone:
        svc.custom_domain = EcsDomain(
            f"{name}-domain",
            EcsDomainArgs(
                domain=inp.domain,
                zone=inp.zone,
                alb_dns_name=svc.load_balancer.dns_name,
                alb_zone_id=svc.load_balancer.zone_id,
                certificate_arn=inp.certificate_arn if isinstance(inp.certificate_arn, str) else None,
                ipv6=False,  # the ALB is IPv4-only (no ip_address_type): AAAA would answer nothing
                tags=tags,
            ),
            opts=svc.child_opts(),
        )
        cert_arn = svc.custom_domain.certificate_arn
    forward = [aws.lb.ListenerDefaultActionArgs(type="forward", target_group_arn=svc.target_group.arn)]
    listeners: list[aws.lb.Listener] = []
    if cert_arn:
        listeners.append(
            aws.lb.Listener(
                f"{name}-https",
                load_balancer_arn=svc.load_balancer.arn,
                port=443,
                protocol="HTTPS",
                ssl_policy=TLS_POLICY,
                certificate_arn=cert_arn,
                default_actions=forward,
                tags=tags,
                opts=lb_child,
            )
        )
        redirect = aws.lb.ListenerDefaultActionArgs(
            type="redirect",
            redirect=aws.lb.ListenerDefaultActionRedirectArgs(
                protocol="HTTPS", port="443", status_code="HTTP_301"
            ),
        )
        listeners.append(
            aws.lb.Listener(
                f"{name}-http",
                load_balancer_arn=svc.load_balancer.arn,
                port=80,
                protocol="HTTP",
                default_actions=[redirect],
                tags=tags,
                opts=lb_child,
            )
        )
    else:
        pulumi.log.warn(
            f"{name}: no certificate_arn nor domain + zone ({OWNER}; in a stack file app.ecs.certificate_arn "
            "or app.domain + app.ecs.zone): the ALB serves plain HTTP (credentials in clear)",
            resource=svc,
        )
        listeners.append(
            aws.lb.Listener(
                f"{name}-http",
                load_balancer_arn=svc.load_balancer.arn,
                port=80,
                protocol="HTTP",
                default_actions=forward,
                tags=tags,
                opts=lb_child,
            )
        )
    svc.listeners = listeners
    # /metrics is for a collector sidecar on localhost (or a scraper the task security group is opened
    # to); from the internet the ALB answers 404 itself. The app also refuses /metrics to anything
    # carrying X-Forwarded-For, so an encoded path that slipped past this rule still gets nothing.
    svc.metrics_block = aws.lb.ListenerRule(
        f"{name}-block-metrics",
        listener_arn=listeners[0].arn,
        priority=1,
        conditions=[
            aws.lb.ListenerRuleConditionArgs(
                path_pattern=aws.lb.ListenerRuleConditionPathPatternArgs(values=list(METRICS_PATHS))
            )
        ],
        actions=[_NOT_FOUND],
        tags=tags,
        opts=pulumi.ResourceOptions(parent=listeners[0]),
    )
    return listeners


_NOT_FOUND = aws.lb.ListenerRuleActionArgs(
    type="fixed-response",
    fixed_response=aws.lb.ListenerRuleActionFixedResponseArgs(
        content_type="text/plain", message_body="Not Found", status_code="404"
    ),
)


def _attach_to_listener(
    svc: FargateService,
    name: str,
    inp: EcsInputs,
    tuning: RuntimeTuning,
    vpc_id: pulumi.Input[str],
    tags: dict[str, str],
) -> pulumi.Output[str]:
    """``listener_arn``: the target group and the rules on the existing listener (no ALB, no listener,
    no ALB security group); the load balancer's attributes come from invokes. Returns the URL base."""
    att = inp.attach
    assert att is not None
    svc.load_balancer = None
    svc.listeners = []
    listener = aws.lb.get_listener_output(arn=att.listener_arn, opts=svc.invoke_opts())
    lb = aws.lb.get_load_balancer_output(arn=listener.load_balancer_arn, opts=svc.invoke_opts())
    svc.lb_arn_suffix = lb.arn_suffix
    svc.lb_dns_name = lb.dns_name
    _target_group(svc, name, inp, tuning, vpc_id, tags)
    host_condition = (
        [
            aws.lb.ListenerRuleConditionArgs(
                host_header=aws.lb.ListenerRuleConditionHostHeaderArgs(values=[att.host_header])
            )
        ]
        if att.host_header
        else []
    )
    path_condition = (
        [
            aws.lb.ListenerRuleConditionArgs(
                path_pattern=aws.lb.ListenerRuleConditionPathPatternArgs(values=[att.path_pattern])
            )
        ]
        if att.path_pattern
        else []
    )
    svc.listener_rule = aws.lb.ListenerRule(
        f"{name}-rule",
        listener_arn=att.listener_arn,
        priority=att.priority,
        conditions=[*host_condition, *path_condition],
        actions=[aws.lb.ListenerRuleActionArgs(type="forward", target_group_arn=svc.target_group.arn)],
        tags=tags,
        opts=svc.child_opts(),
    )
    # /metrics of THIS service only (same host condition), just before the forwarding rule; none when the
    # path pattern never sends /metrics here (a bare /metrics rule would hide other services' paths).
    svc.metrics_block = None
    metrics = att.metrics_paths()
    if metrics:
        svc.metrics_block = aws.lb.ListenerRule(
            f"{name}-block-metrics",
            listener_arn=att.listener_arn,
            priority=att.priority - 1,
            conditions=[
                *host_condition,
                aws.lb.ListenerRuleConditionArgs(
                    path_pattern=aws.lb.ListenerRuleConditionPathPatternArgs(values=metrics)
                ),
            ],
            actions=[_NOT_FOUND],
            tags=tags,
            opts=svc.child_opts(),
        )
    keepalive = tuning.keepalive_s

    def check(facts: list[Any]) -> None:
        protocol, idle, lb_type = facts
        if lb_type and lb_type != "application":
            pulumi.log.error(
                f"{name}: {OWNER}.listener_arn belongs to a {lb_type} load balancer; listener rules and "
                "these alarms need an application load balancer",
                resource=svc,
            )
        if idle is not None and int(idle) >= keepalive:
            pulumi.log.error(
                f"{name}: the load balancer of {OWNER}.listener_arn has an idle timeout of {idle} s, not "
                f"below the app's keepalive of {keepalive} s: it would reuse connections gunicorn closed "
                f"(502s); lower that idle timeout to {tuning.lb_idle_timeout_s} s (the component cannot)",
                resource=svc,
            )
        if protocol and str(protocol).upper() != "HTTPS":
            pulumi.log.warn(
                f"{name}: {OWNER}.listener_arn is a {protocol} listener: the service is served in clear",
                resource=svc,
            )

    pulumi.Output.all(listener.protocol, lb.idle_timeout, lb.load_balancer_type).apply(check)
    public_host = inp.domain or (
        att.host_header if att.host_header and not set("*?") & set(att.host_header) else None
    )

    def url(facts: list[Any]) -> str:
        protocol, port, dns = facts
        scheme = "https" if str(protocol).upper() == "HTTPS" else "http"
        default_port = 443 if scheme == "https" else 80
        suffix = "" if port is None or int(port) == default_port else f":{int(port)}"
        return f"{scheme}://{public_host or dns}{suffix}"

    return pulumi.Output.all(listener.protocol, listener.port, lb.dns_name).apply(url)


def _cluster_logs_iam(
    svc: FargateService,
    name: str,
    inp: EcsInputs,
    account: pulumi.Output[str],
    region: pulumi.Output[str],
    partition: pulumi.Output[str],
    tags: dict[str, str],
) -> None:
    """Cluster (unless given), log group, execution role (pull, logs, these secrets) and a bare task role."""
    settings = inp.settings
    if inp.cluster_arn is None:
        svc.cluster = aws.ecs.Cluster(
            f"{name}-cluster",
            settings=[
                aws.ecs.ClusterSettingArgs(
                    name="containerInsights", value="enabled" if settings.container_insights else "disabled"
                )
            ],
            tags=tags,
            opts=svc.child_opts(),
        )
        svc.cluster_arn = svc.cluster.arn
        svc.cluster_name_out = svc.cluster.name
    else:
        svc.cluster = None
        svc.cluster_arn = pulumi.Output.from_input(inp.cluster_arn)
        svc.cluster_name_out = svc.cluster_arn.apply(lambda arn: arn.rsplit("/", 1)[-1])
    svc.logs = aws.cloudwatch.LogGroup(
        f"{name}-logs",
        name=f"/ecs/{name}",
        retention_in_days=settings.log_retention_days,
        tags=tags,
        opts=svc.child_opts(),
    )
    assume = pulumi.Output.all(account, partition).apply(lambda a: assume_role_policy(a[0], a[1]))
    svc.execution_role = aws.iam.Role(
        f"{name}-exec-role",
        description=f"{name}: ECS agent pulls the image, writes logs, reads the referenced secrets",
        assume_role_policy=assume,
        tags=tags,
        opts=svc.child_opts(),
    )
    refs = inp.secrets
    repo_arn_in: pulumi.Input[str | None] = inp.repository_arn
    exec_policy = pulumi.Output.all(
        account,
        region,
        partition,
        svc.logs.arn,
        repo_arn_in,
        pulumi.Output.from_input(inp.image),
        pulumi.Output.from_input(inp.secret_kms_key_arns),
    ).apply(
        lambda a: json.dumps(
            task_execution_policy(
                account=a[0],
                region=a[1],
                partition=a[2],
                log_group_arn=a[3],
                repository_arn=a[4] or ecr_repository_arn_from_ref(a[5] or "", a[2]),
                secret_refs=refs,
                kms_key_arns=list(a[6] or []),
            ),
            sort_keys=True,
        )
    )
    aws.iam.RolePolicy(
        f"{name}-exec-policy",
        role=svc.execution_role.id,
        policy=exec_policy,
        opts=pulumi.ResourceOptions(parent=svc.execution_role),
    )
    # The app itself calls no AWS API: the task role exists (so nothing falls back to broader
    # credentials) and has no permissions. Add statements here when the app needs S3, SQS, ...
    svc.task_role = aws.iam.Role(
        f"{name}-task-role",
        description=f"{name}: identity of the running app (no permissions)",
        assume_role_policy=assume,
        tags=tags,
        opts=svc.child_opts(),
    )


def _lb_alarms(svc: FargateService, name: str, inp: EcsInputs, tags: dict[str, str]) -> dict[str, Any]:
    """Alert topic, then the ALB alarms (5xx gates the rollback, p95, unhealthy hosts)."""
    alarms = inp.settings.alarms
    actions = alert_actions(
        name, inp.alert_emails, inp.alert_webhook_url, inp.alert_topic_arn, tags, svc.child_opts()
    )
    lb_dims = {"LoadBalancer": svc.lb_arn_suffix, "TargetGroup": svc.target_group.arn_suffix}
    alarm_common: dict[str, Any] = dict(
        namespace="AWS/ApplicationELB",
        dimensions=lb_dims,
        period=60,
        evaluation_periods=alarms.evaluation_periods,
        datapoints_to_alarm=alarms.evaluation_periods,
        alarm_actions=actions,
        ok_actions=actions,
        tags=tags,
        opts=svc.child_opts(),
    )
    svc.alarm_5xx = aws.cloudwatch.MetricAlarm(
        f"{name}-5xx",
        alarm_description=f"{name}: target 5xx per minute above {alarms.http_5xx_per_minute}",
        metric_name="HTTPCode_Target_5XX_Count",
        statistic="Sum",
        comparison_operator="GreaterThanThreshold",
        threshold=alarms.http_5xx_per_minute,
        treat_missing_data="notBreaching",
        **alarm_common,
    )
    svc.alarm_p95 = aws.cloudwatch.MetricAlarm(
        f"{name}-p95",
        alarm_description=f"{name}: p95 target response time above {alarms.p95_response_time_s} s",
        metric_name="TargetResponseTime",
        extended_statistic="p95",
        comparison_operator="GreaterThanThreshold",
        threshold=alarms.p95_response_time_s,
        treat_missing_data="notBreaching",
        **alarm_common,
    )
    svc.alarm_unhealthy = aws.cloudwatch.MetricAlarm(
        f"{name}-unhealthy",
        alarm_description=f"{name}: at least {alarms.unhealthy_hosts} unhealthy target(s)",
        metric_name="UnHealthyHostCount",
        statistic="Maximum",
        comparison_operator="GreaterThanOrEqualToThreshold",
        threshold=alarms.unhealthy_hosts,
        treat_missing_data="notBreaching",
        **alarm_common,
    )
    return alarm_common


def _service_alarms(svc: FargateService, name: str, inp: EcsInputs, alarm_common: dict[str, Any]) -> None:
    """Alarms that need the service's name (none of them gates the rollback)."""
    alarms = inp.settings.alarms
    task_common: dict[str, Any] = {
        **alarm_common,
        "dimensions": {"ClusterName": svc.cluster_name_out, "ServiceName": svc.service.name},
        "namespace": "AWS/ECS",
    }
    svc.alarm_memory = aws.cloudwatch.MetricAlarm(
        f"{name}-memory",
        alarm_description=f"{name}: task memory utilization at or above {alarms.memory_percent:g} %",
        metric_name="MemoryUtilization",
        statistic="Maximum",
        comparison_operator="GreaterThanOrEqualToThreshold",
        threshold=alarms.memory_percent,
        treat_missing_data="notBreaching",
        **task_common,
    )
    # The app's embedded-metric-format metrics (EMF log lines CloudWatch turns into metrics). These
    # alarms stay INSUFFICIENT_DATA (missing data = not breaching) until the app emits them with the
    # dimension Service=<name> in the namespace alarms.emf_namespace.
    emf_common: dict[str, Any] = {
        **alarm_common,
        "dimensions": {"Service": name},
        "namespace": alarms.emf_namespace,
    }
    svc.alarm_db_pool = aws.cloudwatch.MetricAlarm(
        f"{name}-dbpool",
        alarm_description=(
            f"{name}: DB pool usage at or above {alarms.db_pool_usage_ratio:g} "
            "(EMF db_pool_usage_ratio; needs the app's EMF metrics)"
        ),
        metric_name="db_pool_usage_ratio",
        statistic="Maximum",
        comparison_operator="GreaterThanOrEqualToThreshold",
        threshold=alarms.db_pool_usage_ratio,
        treat_missing_data="notBreaching",
        **emf_common,
    )
    svc.alarm_restarts = aws.cloudwatch.MetricAlarm(
        f"{name}-restarts",
        alarm_description=(
            f"{name}: at least {alarms.worker_restarts} worker restarts per minute "
            "(EMF worker_restarts; needs the app's EMF metrics)"
        ),
        metric_name="worker_restarts",
        statistic="Sum",
        comparison_operator="GreaterThanOrEqualToThreshold",
        threshold=alarms.worker_restarts,
        treat_missing_data="notBreaching",
        **emf_common,
    )


def _autoscaling(svc: FargateService, name: str, inp: EcsInputs) -> None:
    """Target tracking on CPU and (optionally) ALB requests per target, between scaling.min and max."""
    scaling_target = aws.appautoscaling.Target(
        f"{name}-scaling",
        service_namespace="ecs",
        scalable_dimension="ecs:service:DesiredCount",
        resource_id=pulumi.Output.concat("service/", svc.cluster_name_out, "/", svc.service.name),
        min_capacity=inp.scaling.min,
        max_capacity=inp.scaling.max,
        tags=inp.tags,
        opts=pulumi.ResourceOptions(parent=svc.service),
    )
    svc.scaling_target = scaling_target
    auto = inp.settings.autoscaling
    scaling_child = pulumi.ResourceOptions(parent=scaling_target)
    tt = aws.appautoscaling.PolicyTargetTrackingScalingPolicyConfigurationArgs
    metric = (
        aws.appautoscaling.PolicyTargetTrackingScalingPolicyConfigurationPredefinedMetricSpecificationArgs
    )
    aws.appautoscaling.Policy(
        f"{name}-scale-cpu",
        policy_type="TargetTrackingScaling",
        service_namespace=scaling_target.service_namespace,
        scalable_dimension=scaling_target.scalable_dimension,
        resource_id=scaling_target.resource_id,
        target_tracking_scaling_policy_configuration=tt(
            target_value=auto.cpu_target_percent,
            predefined_metric_specification=metric(predefined_metric_type="ECSServiceAverageCPUUtilization"),
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
            target_tracking_scaling_policy_configuration=tt(
                target_value=float(auto.requests_per_target),
                predefined_metric_specification=metric(
                    predefined_metric_type="ALBRequestCountPerTarget",
                    resource_label=pulumi.Output.concat(svc.lb_arn_suffix, "/", svc.target_group.arn_suffix),
                ),
                scale_in_cooldown=auto.scale_in_cooldown_s,
                scale_out_cooldown=auto.scale_out_cooldown_s,
            ),
            opts=scaling_child,
        )


def _nth(i: int) -> Any:
    def pick(names: list[str]) -> str:
        return names[i]

    return pick
