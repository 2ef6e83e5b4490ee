"""Production rules for the fastapi-deploy stacks, as plain functions.

The same functions run in two places:

* under the real CLI, `policy/__main__.py` wraps them in a CrossGuard `PolicyPack`
  (`pulumi preview --policy-pack policy`), fed with the engine's resource properties;
* offline, `fastapi_deploy/plan.py` feeds them the resources recorded by the Pulumi mocks.

Both sources give a resource as (Pulumi type token, properties with the engine's camelCase names), so
a rule is written once. Resource rules look at one resource; stack rules look at the whole graph because
the failure they prevent is a relation between two resources (the gunicorn keepalive in the container
env vs. the ALB idle timeout, the pool in the env vs. the autoscaling maximum...). The runtime numbers
they check are read from the container environment the deployer injects (contract section 1), so the
rules see exactly what the process will see — not what a config file intended.

Runtime facts. For the four built-in platforms (``contract.RESOURCE_DERIVED_PLATFORMS``) :func:`app_runtimes`
reads the facts off the real resources (task definition + service + ALB + autoscaling, Cloud Run service,
Lambda function, Docker container). Any other target — a fifth one registered from outside the deployer —
publishes them on its component resource, as the prop ``contract.RUNTIME_FACTS`` (``runtimeFacts``:
``platform``, ``env``, ``memoryMib``, ``vcpu``, ``stopGraceS``, ``lbIdleTimeoutS``, ``maxReplicas`` incl.
the deploy surge, ``minReplicas``, ``maxInstances``, ``connectionBudget``; ``contract.RUNTIME_FACT_KEYS``
says what each means), and every stack rule judges it from those: keepalive vs LB idle timeout, graceful
timeout vs stop grace, workers per vCPU and memory, the connection budget, proxy headers (behind a proxy
when ``lbIdleTimeoutS`` is set), one instance in production, CORS, alarms. Facts that cannot be read are a
mandatory `runtime-facts-valid` violation naming the key, never a silently skipped service.

This module imports nothing outside the standard library but the service/deployer contract
(``app/contract.py``, itself standard library only): the policy pack must start fast and must not depend
on the deployer's code to judge the deployer's output. A standalone copy of the pack (``policy/`` alone,
without the project installed) uses ``policy/contract.py``, a byte-for-byte copy (tests/test_contract.py).
"""

from __future__ import annotations

import fnmatch
import json
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

try:  # the pack runs in the project's virtualenv (PulumiPolicy.yaml), where the deployer is installed
    from fastapi_deploy import contract
except ImportError:  # a standalone copy of policy/: the contract's copy sits next to this file
    import contract  # type: ignore[no-redef]

Enforcement = Literal["mandatory", "advisory"]

# --- type tokens -------------------------------------------------------------------------------------
ECS_TASK_DEFINITION = "aws:ecs/taskDefinition:TaskDefinition"
ECS_SERVICE = "aws:ecs/service:Service"
LB = "aws:lb/loadBalancer:LoadBalancer"
LB_LISTENER = "aws:lb/listener:Listener"
LB_TARGET_GROUP = "aws:lb/targetGroup:TargetGroup"
LB_LISTENER_RULE = "aws:lb/listenerRule:ListenerRule"
AUTOSCALING_TARGET = "aws:appautoscaling/target:Target"
IAM_POLICY = "aws:iam/policy:Policy"
IAM_ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
IAM_ROLE = "aws:iam/role:Role"
IAM_ROLE_POLICY_ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
LAMBDA_FUNCTION = "aws:lambda/function:Function"
METRIC_ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
ALERT_POLICY = "gcp:monitoring/alertPolicy:AlertPolicy"
CLOUD_RUN_SERVICE = "gcp:cloudrunv2/service:Service"
GCP_PROJECT_IAM = (
    "gcp:projects/iAMMember:IAMMember",
    "gcp:projects/iAMBinding:IAMBinding",
)
DOCKER_CONTAINER = "docker:index/container:Container"
# custom domains (issue 15)
ACM_CERTIFICATE = "aws:acm/certificate:Certificate"
ROUTE53_RECORD = "aws:route53/record:Record"
APIGW_DOMAIN = "aws:apigatewayv2/domainName:DomainName"
GCP_MANAGED_CERT = "gcp:compute/managedSslCertificate:ManagedSslCertificate"
GCP_URL_MAP = "gcp:compute/uRLMap:URLMap"
GCP_HTTP_PROXY = "gcp:compute/targetHttpProxy:TargetHttpProxy"
GCP_DNS_RECORD = "gcp:dns/recordSet:RecordSet"
#: Resources that mean "this stack serves a custom domain" (the VPS always does: Caddy needs one).
CUSTOM_DOMAIN_TYPES = frozenset(
    {ACM_CERTIFICATE, ROUTE53_RECORD, APIGW_DOMAIN, GCP_MANAGED_CERT, GCP_DNS_RECORD}
)
#: API Gateway custom-domain TLS policies that refuse TLS 1.0/1.1.
APIGW_MODERN_TLS = frozenset({"TLS_1_2"})

# --- platform facts (with the number each rule protects) --------------------------------------------
#: ALB idle timeout when `idleTimeout` is not set (AWS default).
ALB_DEFAULT_IDLE_TIMEOUT_S = 60
#: ECS sends SIGKILL this long after SIGTERM when the container sets no `stopTimeout`.
ECS_DEFAULT_STOP_TIMEOUT_S = 30
#: Cloud Run gives a container 10 s between SIGTERM and SIGKILL; not configurable.
CLOUD_RUN_STOP_GRACE_S = 10
#: `docker stop` default grace when the container sets no stop timeout.
DOCKER_DEFAULT_STOP_TIMEOUT_S = 10
#: Cloud Run's default `maxInstanceCount` when the template sets none.
CLOUD_RUN_DEFAULT_MAX_INSTANCES = 100
#: Target-group deregistration delay above which a deploy waits for nothing (AWS default is 300 s).
MAX_DEREGISTRATION_DELAY_S = 120
#: Resident memory one uvicorn worker of this app needs under load (FastAPI + SQLAlchemy + asyncpg +
#: prometheus ≈ 90-120 MiB; 150 leaves room for buffers) and the fixed part (gunicorn master, page cache,
#: the platform's agent). Same numbers as fastapi_deploy/tuning.py (a test keeps them equal).
WORKER_MEMORY_MIB = 150
MEMORY_HEADROOM_MIB = 256
#: Replicas alive at once during a deploy, per platform (ECS reads deploymentMaximumPercent instead):
#: Cloud Run keeps old-revision instances until they idle out; a VPS redeploy starts the new container
#: before stopping the old one.
DEPLOY_SURGE = {"cloudrun": 2.0, "vps": 2.0}
#: Async workers beyond 2 per vCPU only add context switches and tail latency (see bench/).
MAX_WORKERS_PER_VCPU = 2

SECRET_NAME_RE = re.compile(r"(SECRET|PASSWORD|PASSWD|TOKEN|PRIVATE_KEY|API_KEY|CREDENTIALS?)", re.I)
#: Env names that always carry credentials in this app (contract section 1).
SECRET_ENV_NAMES = contract.CREDENTIAL_ENV_NAMES
#: A URL with a password in its user-info part (`scheme://user:pass@host`).
URL_WITH_PASSWORD_RE = contract.URL_WITH_PASSWORD
#: Values that are references the platform or the Lambda handler resolves, not secrets themselves.
is_reference = contract.looks_like_reference

#: AWS actions that only accept `Resource: "*"` (IAM has no resource-level permission for them).
STAR_RESOURCE_ONLY_ACTIONS = frozenset(
    {
        "ecr:getauthorizationtoken",
        "xray:puttracesegments",
        "xray:puttelemetryrecords",
        "cloudwatch:putmetricdata",
        "ec2:createnetworkinterface",
        "ec2:describenetworkinterfaces",
        "ec2:deletenetworkinterface",
        "ec2:assignprivateipaddresses",
        "ec2:unassignprivateipaddresses",
        "sts:getcalleridentity",
    }
)
BROAD_MANAGED_POLICY_RE = re.compile(r":policy/(AdministratorAccess|PowerUserAccess|.*FullAccess)$")
BROAD_GCP_ROLES = frozenset({"roles/owner", "roles/editor", "roles/secretmanager.secretAccessor"})

APP_ENV_MARKERS = ("APP_ENV", "WEB_CONCURRENCY")
#: Docker label (name, value) the VPS target puts on its one-shot release gate: it runs the app's image and
#: env for a readiness check off the traffic path, so it is not a serving instance for the stack rules.
RELEASE_GATE_LABEL = ("fastapi-deploy.role", "release-gate")
READINESS_PATH_RE = re.compile(r"/(ready|readiness|readyz)\b")
LIVENESS_PATH_RE = re.compile(r"/(health|healthz|live|livez|liveness)\b")


# --- data the rules see ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Resource:
    """One resource as a rule sees it: engine type token, URN, name and camelCase properties."""

    type: str
    inputs: Mapping[str, Any]
    urn: str = ""
    name: str = ""
    parent: str | None = None


@dataclass(frozen=True)
class Violation:
    """One finding: which rule, how bad, on which resource (None = the stack), and what to do."""

    policy: str
    enforcement: Enforcement
    urn: str | None
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "enforcement": self.enforcement,
            "urn": self.urn,
            "message": self.message,
        }


ResourceCheck = Callable[[str, Mapping[str, Any]], list[str]]
StackCheck = Callable[[Sequence[Resource]], list[tuple[str | None, str]]]


@dataclass(frozen=True)
class Rule:
    """A named rule with its enforcement level; exactly one of `resource`/`stack` is set."""

    name: str
    description: str
    enforcement: Enforcement
    resource: ResourceCheck | None = None
    stack: StackCheck | None = None


# --- small helpers -----------------------------------------------------------------------------------
def _json(value: Any) -> Any:
    """Decode a JSON-string property (containerDefinitions, IAM policy); pass structures through."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return None
    return value


def _list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return list(value)
    return [value]


def _num(value: Any) -> float | None:
    """A finite number, or None (absent, not a number, NaN, infinite or beyond a float: never a crash - an
    input or env value the rules cannot read counts as unset)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def _port(value: Any) -> str:
    """The engine hands numbers over as floats: show port 80, not 80.0."""
    number = _num(value)
    return str(value) if number is None or not number.is_integer() else str(int(number))


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes"}
    return bool(value)


def container_definitions(inputs: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The ECS task definition's containers (the input is a JSON string, as the engine receives it)."""
    decoded = _json(inputs.get("containerDefinitions"))
    return [c for c in _list(decoded) if isinstance(c, dict)]


def _ecs_env(container: Mapping[str, Any]) -> dict[str, str]:
    return {
        str(e.get("name")): str(e.get("value", ""))
        for e in _list(container.get("environment"))
        if isinstance(e, dict)
    }


def _cloud_run_containers(inputs: Mapping[str, Any]) -> list[dict[str, Any]]:
    template = inputs.get("template") or {}
    return [c for c in _list(template.get("containers")) if isinstance(c, dict)]


def _cloud_run_env(container: Mapping[str, Any]) -> dict[str, str]:
    """Plain env values only: entries with a `valueSource` (secretKeyRef) carry no value."""
    return {
        str(e.get("name")): str(e.get("value"))
        for e in _list(container.get("envs"))
        if isinstance(e, dict) and e.get("value") is not None
    }


def _docker_env(inputs: Mapping[str, Any]) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in _list(inputs.get("envs")):
        if isinstance(item, str) and "=" in item:
            key, _, value = item.partition("=")
            env[key] = value
    return env


def _lambda_env(inputs: Mapping[str, Any]) -> dict[str, str]:
    environment = inputs.get("environment") or {}
    variables = environment.get("variables") if isinstance(environment, dict) else None
    return {str(k): str(v) for k, v in (variables or {}).items()}


def _docker_labels(inputs: Mapping[str, Any]) -> dict[str, str]:
    """Container labels: the engine's list of {label, value} (pulumi-docker) or a plain mapping."""
    raw = inputs.get("labels")
    if isinstance(raw, Mapping):
        return {str(k): str(v) for k, v in raw.items()}
    return {
        str(item.get("label")): str(item.get("value", "")) for item in _list(raw) if isinstance(item, Mapping)
    }


def _is_release_gate(inputs: Mapping[str, Any]) -> bool:
    name, value = RELEASE_GATE_LABEL
    return _docker_labels(inputs).get(name) == value


def _is_app_env(env: Mapping[str, str]) -> bool:
    return any(marker in env for marker in APP_ENV_MARKERS)


def _memory_mib(value: Any) -> float | None:
    """`512`, `"512"`, `"512Mi"`, `"1Gi"`, `"1G"` → MiB."""
    if value is None:
        return None
    number = _num(value)
    if number is not None:
        return number
    match = re.fullmatch(r"\s*([0-9.]+)\s*(Mi|Gi|M|G|Ki|K)?\s*", str(value))
    if not match:
        return None
    amount = float(match.group(1))
    unit = match.group(2) or "Mi"
    scale = {"Ki": 1 / 1024, "K": 1 / 1024, "Mi": 1.0, "M": 1.0, "Gi": 1024.0, "G": 1024.0}[unit]
    return amount * scale


def _cpu(value: Any) -> float | None:
    """Cloud Run `"1"`, `"2"`, `"1000m"` → vCPU."""
    if value is None:
        return None
    text = str(value).strip()
    if text.endswith("m"):
        number = _num(text[:-1])
        return None if number is None else number / 1000
    return _num(text)


def _secret_env_problems(env: Mapping[str, str], where: str) -> list[str]:
    problems = []
    for key, value in sorted(env.items()):
        if not value or is_reference(value):
            continue
        if key in SECRET_ENV_NAMES or SECRET_NAME_RE.search(key) or URL_WITH_PASSWORD_RE.match(value):
            # Never echo the value: the message lands in CI logs and PR comments.
            problems.append(
                f"{where}: env {key} holds a plaintext value; inject it from the secret store "
                "(ECS `secrets`/valueFrom, Cloud Run secretKeyRef, Lambda `ssm:`/`secretsmanager:` reference)"
            )
    return problems


# --- resource rules ----------------------------------------------------------------------------------
def _is_root_user(user: Any) -> bool:
    if user is None or str(user).strip() == "":
        return True
    name = str(user).split(":", 1)[0].strip()
    return name in {"root", "0"}


def check_non_root(type_token: str, inputs: Mapping[str, Any]) -> list[str]:
    """Containers run as a non-root user, stated explicitly (the policy cannot see the image's USER)."""
    problems = []
    if type_token == ECS_TASK_DEFINITION:
        for container in container_definitions(inputs):
            if _is_root_user(container.get("user")):
                problems.append(
                    f"container {container.get('name')!r} runs as root (user={container.get('user')!r}); "
                    "set `user` to the image's non-root uid, e.g. '10001:10001'"
                )
    elif (
        type_token == DOCKER_CONTAINER
        and _is_app_env(_docker_env(inputs))
        and _is_root_user(inputs.get("user"))
    ):
        problems.append(
            f"app container runs as root (user={inputs.get('user')!r}); set `user` to the image's uid"
        )
    return problems


def _http_path(probe: Any) -> str | None:
    if not isinstance(probe, dict):
        return None
    http = probe.get("httpGet") or {}
    return http.get("path") if isinstance(http, dict) else None


def check_health_checks(type_token: str, inputs: Mapping[str, Any]) -> list[str]:
    """Every target has health checks: ECS container + target group, Cloud Run probes, Docker healthcheck."""
    problems = []
    if type_token == ECS_TASK_DEFINITION:
        for container in container_definitions(inputs):
            if container.get("essential", True) and not (container.get("healthCheck") or {}).get("command"):
                problems.append(
                    f"essential container {container.get('name')!r} has no healthCheck.command; ECS cannot "
                    "tell a hung process from a healthy one"
                )
    elif type_token == LB_TARGET_GROUP:
        health = inputs.get("healthCheck") or {}
        if health.get("enabled") is False or not health.get("path"):
            problems.append(
                "target group has no HTTP health check path; set healthCheck.path to the liveness path"
            )
    elif type_token == CLOUD_RUN_SERVICE:
        for container in _cloud_run_containers(inputs):
            missing = [p for p in ("startupProbe", "livenessProbe") if not container.get(p)]
            if missing:
                problems.append(
                    f"Cloud Run container {container.get('name') or container.get('image')!r} lacks "
                    f"{' and '.join(missing)}"
                )
    elif type_token == DOCKER_CONTAINER and _is_app_env(_docker_env(inputs)):
        tests = _list((inputs.get("healthcheck") or {}).get("tests"))
        if not tests or tests[0] == "NONE":
            problems.append(
                "app container has no healthcheck; Docker and the proxy cannot route around a hang"
            )
    elif (
        type_token == ECS_SERVICE
        and _list(inputs.get("loadBalancers"))
        and not _num(inputs.get("healthCheckGracePeriodSeconds"))
    ):
        problems.append(
            "service behind a load balancer has no healthCheckGracePeriodSeconds; slow starts get killed"
        )
    return problems


def check_liveness_independent(type_token: str, inputs: Mapping[str, Any]) -> list[str]:
    """Liveness checks must not hit the readiness endpoint: a DB outage would restart every healthy task.

    Only checks whose failure restarts the instance: Cloud Run's livenessProbe and the ECS container
    healthCheck (ECS replaces a task whose essential container turns unhealthy). Docker does not restart
    an unhealthy container, so a VPS healthcheck on readiness is a gate, not a restart trigger.
    """
    paths: list[tuple[str, str]] = []
    if type_token == CLOUD_RUN_SERVICE:
        for container in _cloud_run_containers(inputs):
            path = _http_path(container.get("livenessProbe"))
            if path:
                paths.append(("Cloud Run livenessProbe", path))
    elif type_token == ECS_TASK_DEFINITION:
        for container in container_definitions(inputs):
            command = " ".join(str(c) for c in _list((container.get("healthCheck") or {}).get("command")))
            if command:
                paths.append((f"container {container.get('name')!r} healthCheck", command))
    return [
        f"{where} probes {' '.join(text.split())[:120]!r}, which looks like the readiness (dependency) "
        "check; a database outage "
        "would restart healthy instances in a loop — point it at the liveness path"
        for where, text in paths
        # A check that probes readiness only until the first success and liveness afterwards (both
        # paths present) is a release gate, not a restart trigger on dependency outages.
        if READINESS_PATH_RE.search(text) and not LIVENESS_PATH_RE.search(text)
    ]


def check_no_plaintext_secrets(type_token: str, inputs: Mapping[str, Any]) -> list[str]:
    """No credential in plain environment variables (they show up in consoles, describe calls and state)."""
    if type_token == ECS_TASK_DEFINITION:
        problems = []
        for container in container_definitions(inputs):
            problems += _secret_env_problems(_ecs_env(container), f"container {container.get('name')!r}")
        return problems
    if type_token == CLOUD_RUN_SERVICE:
        problems = []
        for container in _cloud_run_containers(inputs):
            problems += _secret_env_problems(_cloud_run_env(container), "Cloud Run container")
        return problems
    if type_token == LAMBDA_FUNCTION:
        return _secret_env_problems(_lambda_env(inputs), "Lambda function")
    facts = inputs.get(contract.RUNTIME_FACTS)
    if (
        isinstance(facts, Mapping)
        and not _resource_derived(facts.get("platform"))
        and isinstance(facts.get("env"), Mapping)
    ):
        # Another target's published env is, by the contract, what its container gets in plain text.
        env = {str(k): str(v) for k, v in facts["env"].items()}
        return _secret_env_problems(env, f"{facts.get('platform')} container (runtimeFacts.env)")
    # Docker on a VPS has no secret store: values arrive as Pulumi secrets (encrypted in state) and the
    # engine hands them to this rule unwrapped, so the rule cannot tell them apart. Not checked here.
    return []


def _statements(document: Any) -> list[dict[str, Any]]:
    decoded = _json(document)
    if not isinstance(decoded, dict):
        return []
    return [s for s in _list(decoded.get("Statement")) if isinstance(s, dict)]


def _star_resource_only(action: str) -> bool:
    # EC2 Describe* calls have no resource-level permissions at all: IAM only accepts "*" for them.
    lowered = action.lower()
    return lowered in STAR_RESOURCE_ONLY_ACTIONS or (
        lowered.startswith("ec2:describe") and "*" not in lowered
    )


def _iam_document_problems(document: Any, where: str) -> list[str]:
    problems = []
    for index, statement in enumerate(_statements(document)):
        if statement.get("Effect", "Allow") != "Allow":
            continue
        actions = [str(a) for a in _list(statement.get("Action"))]
        resources = [str(r) for r in _list(statement.get("Resource"))]
        if "NotAction" in statement or "NotResource" in statement:
            problems.append(f"{where} statement {index}: NotAction/NotResource grants everything else")
        wild_actions = [a for a in actions if a == "*" or a.endswith(":*")]
        if wild_actions:
            problems.append(
                f"{where} statement {index}: wildcard action(s) {wild_actions}; list the API calls"
            )
        if "*" in resources and not all(_star_resource_only(a) for a in actions):
            problems.append(
                f"{where} statement {index}: Resource '*' for {actions}; name the exact ARNs "
                "(the referenced secrets/parameters and their KMS key)"
            )
    return problems


def check_iam_least_privilege(type_token: str, inputs: Mapping[str, Any]) -> list[str]:
    """IAM without wildcard actions or resources; no broad managed policies; nothing project-wide on GCP."""
    if type_token in (IAM_POLICY, IAM_ROLE_POLICY):
        return _iam_document_problems(inputs.get("policy"), type_token.rsplit(":", 1)[-1])
    if type_token == IAM_ROLE:
        problems = []
        for inline in _list(inputs.get("inlinePolicies")):
            if isinstance(inline, dict):
                problems += _iam_document_problems(
                    inline.get("policy"), f"inline policy {inline.get('name')!r}"
                )
        for arn in _list(inputs.get("managedPolicyArns")):
            if BROAD_MANAGED_POLICY_RE.search(str(arn)):
                problems.append(f"role has the broad managed policy {arn}")
        return problems
    if type_token == IAM_ROLE_POLICY_ATTACHMENT:
        arn = str(inputs.get("policyArn") or "")
        return [f"attaches the broad managed policy {arn}"] if BROAD_MANAGED_POLICY_RE.search(arn) else []
    if type_token in GCP_PROJECT_IAM:
        role = str(inputs.get("role") or "")
        if role in BROAD_GCP_ROLES:
            return [f"project-wide {role}; grant it on the individual secret/resource instead"]
    return []


def check_alb_https(type_token: str, inputs: Mapping[str, Any]) -> list[str]:
    """An HTTP listener only redirects to HTTPS: tokens and passwords must not travel in clear."""
    if type_token != LB_LISTENER or str(inputs.get("protocol") or "").upper() != "HTTP":
        return []
    actions = [a for a in _list(inputs.get("defaultActions")) if isinstance(a, dict)]
    redirects = [
        a
        for a in actions
        if a.get("type") == "redirect"
        and str((a.get("redirect") or {}).get("protocol", "")).upper() == "HTTPS"
    ]
    if redirects:
        return []
    return [
        f"HTTP listener on port {_port(inputs.get('port'))} serves traffic in plain text; add a certificate "
        "(app.ecs.certificate_arn) so it only redirects to HTTPS"
    ]


def check_log_retention(type_token: str, inputs: Mapping[str, Any]) -> list[str]:
    """Log groups have a retention period (the default keeps — and bills — logs forever)."""
    if type_token == LOG_GROUP and not _num(inputs.get("retentionInDays")):
        return ["log group has no retentionInDays; CloudWatch keeps and bills its logs forever"]
    return []


def check_docker_log_rotation(type_token: str, inputs: Mapping[str, Any]) -> list[str]:
    """Docker's json-file logs grow without bound unless `max-size` is set; a full disk takes the VPS down."""
    if type_token != DOCKER_CONTAINER:
        return []
    driver = str(inputs.get("logDriver") or "json-file")
    if driver in {"json-file", "local"} and not (inputs.get("logOpts") or {}).get("max-size"):
        return [f"container logs ({driver}) have no logOpts max-size; the host disk fills up"]
    return []


def check_deployment_rollback(type_token: str, inputs: Mapping[str, Any]) -> list[str]:
    """ECS deployments roll back automatically when new tasks never become healthy."""
    if type_token != ECS_SERVICE:
        return []
    breaker = inputs.get("deploymentCircuitBreaker") or {}
    if not (_truthy(breaker.get("enable")) and _truthy(breaker.get("rollback"))):
        return [
            "deploymentCircuitBreaker must be {enable: true, rollback: true}; otherwise a bad release "
            "keeps replacing tasks forever and never returns to the last good one"
        ]
    return []


def check_deregistration_delay(type_token: str, inputs: Mapping[str, Any]) -> list[str]:
    """Deregistration delay well below AWS's 300 s default (each deploy would wait 5 min per task)."""
    if type_token != LB_TARGET_GROUP:
        return []
    delay = _num(inputs.get("deregistrationDelay"))
    delay = 300 if delay is None else delay
    if delay > MAX_DEREGISTRATION_DELAY_S:
        return [
            f"deregistrationDelay {delay:g}s; keep it >= the longest request and "
            f"<= {MAX_DEREGISTRATION_DELAY_S}s"
        ]
    return []


# --- runtime facts for the stack rules ---------------------------------------------------------------
@dataclass
class AppRuntime:
    """What the app process gets on its platform, reconstructed from the resources (built-in platforms) or
    read from the runtime facts a target's component publishes (any other)."""

    #: ``ecs``, ``cloudrun``, ``lambda``, ``vps`` (read off the resources) or another target's key (read
    #: from the runtime facts its component publishes)
    platform: str
    urn: str
    env: dict[str, str]
    memory_mib: float | None = None
    vcpu: float | None = None
    stop_grace_s: float | None = None
    lb_idle_timeout_s: float | None = None
    #: behind an ALB that is NOT in the stack (ECS service attached to an existing listener): its idle
    #: timeout is assumed to be the default and its listeners cannot be checked here
    lb_external: bool = False
    #: instances that can run at once, including the deploy surge; None = unbounded (Lambda without
    #: reserved concurrency)
    max_replicas: int | None = 1
    min_replicas: int | None = 1
    #: the configured maximum (no surge)
    max_instances: int | None = 1
    connection_budget: int | None = None
    notes: list[str] = field(default_factory=list)

    def int_env(self, key: str, default: int) -> int:
        value = _num(self.env.get(key))
        return default if value is None else int(value)

    def float_env(self, key: str, default: float) -> float:
        value = _num(self.env.get(key))
        return default if value is None else value


def _by_type(resources: Sequence[Resource], token: str) -> list[Resource]:
    return [r for r in resources if r.type == token]


def _connection_budget(resources: Sequence[Resource], env: Mapping[str, str]) -> int | None:
    """The database's connection budget: `DB_CONNECTION_BUDGET` in the env, or the target component's
    `dbConnectionBudget`/`connectionBudget` input (components are registered with the engine too)."""
    value = _num(env.get("DB_CONNECTION_BUDGET"))
    if value is not None:
        return int(value)
    for resource in resources:
        if not resource.type.startswith("fastapi-deploy:"):
            continue
        for holder in (resource.inputs, resource.inputs.get("tuning") or {}):
            if not isinstance(holder, Mapping):
                continue
            for key in (
                "dbConnectionBudget",
                "connectionBudget",
                "db_connection_budget",
                "connection_budget",
            ):
                value = _num(holder.get(key))
                if value is not None:
                    return int(value)
    return None


def _published(resources: Sequence[Resource]) -> Iterator[tuple[Resource, Any]]:
    """(resource, facts) for every resource that publishes runtime facts of a platform whose resources
    this pack does not read itself."""
    for resource in resources:
        facts = resource.inputs.get(contract.RUNTIME_FACTS)
        if facts is None:
            continue
        if not _resource_derived(facts.get("platform") if isinstance(facts, Mapping) else None):
            yield resource, facts


def _resource_derived(platform: Any) -> bool:
    """A built-in platform, whose runtime this pack reads off its resources (any other value - not a
    string, a list, a mapping - is a published one, reported by `runtime-facts-valid` when unusable)."""
    return isinstance(platform, str) and platform in contract.RESOURCE_DERIVED_PLATFORMS


def _whole(value: Any) -> int | None:
    number = _num(value)
    return None if number is None else int(number)


def published_runtimes(resources: Sequence[Resource]) -> list[AppRuntime]:
    """The app runtimes other targets publish as ``runtimeFacts`` on their component (unusable facts are
    skipped here and reported by the `runtime-facts-valid` rule)."""
    runtimes: list[AppRuntime] = []
    for resource, facts in _published(resources):
        if contract.runtime_facts_problems(facts):
            continue
        env = {str(k): str(v) for k, v in facts["env"].items()}
        from_env = _num(env.get("DB_CONNECTION_BUDGET"))  # the env wins, as for the built-in platforms
        budget = _whole(facts.get("connectionBudget")) if from_env is None else int(from_env)
        runtimes.append(
            AppRuntime(
                platform=str(facts["platform"]),
                urn=resource.urn,
                env=env,
                memory_mib=_num(facts.get("memoryMib")),
                vcpu=_num(facts.get("vcpu")),
                stop_grace_s=_num(facts.get("stopGraceS")),
                lb_idle_timeout_s=_num(facts.get("lbIdleTimeoutS")),
                max_replicas=_whole(facts.get("maxReplicas")),
                min_replicas=_whole(facts.get("minReplicas")),
                max_instances=_whole(facts.get("maxInstances")),
                connection_budget=budget,
            )
        )
    return runtimes


def check_runtime_facts(resources: Sequence[Resource]) -> list[tuple[str | None, str]]:
    """Published runtime facts the stack rules can read: otherwise the service would go unjudged."""
    return [
        (resource.urn or None, f"{problem}; the stack rules cannot judge this service")
        for resource, facts in _published(resources)
        for problem in contract.runtime_facts_problems(facts)
    ]


def app_runtimes(resources: Sequence[Resource]) -> list[AppRuntime]:
    """Find the app container(s) and the platform numbers around them: read off the resources for the
    built-in platforms, from the published runtime facts for any other target."""
    runtimes: list[AppRuntime] = []
    lbs = _by_type(resources, LB)
    idle = _num(lbs[0].inputs.get("idleTimeout")) if lbs else None
    scaling = _by_type(resources, AUTOSCALING_TARGET)
    services = _by_type(resources, ECS_SERVICE)
    external = not lbs and any(_list(s.inputs.get("loadBalancers")) for s in services)

    for task in _by_type(resources, ECS_TASK_DEFINITION):
        for container in container_definitions(task.inputs):
            env = _ecs_env(container)
            if not _is_app_env(env):
                continue
            cpu_units = _num(task.inputs.get("cpu"))
            stop = _num(container.get("stopTimeout"))
            max_replicas: int | None
            min_replicas: int | None
            if scaling:
                max_replicas = int(_num(scaling[0].inputs.get("maxCapacity")) or 1)
                min_replicas = int(_num(scaling[0].inputs.get("minCapacity")) or 1)
            elif services:
                desired = int(_num(services[0].inputs.get("desiredCount")) or 1)
                max_replicas = min_replicas = desired
            else:
                max_replicas = min_replicas = 1
            # ECS max 200 % during a deployment: old and new tasks hold connections at the same time.
            max_percent = _num(services[0].inputs.get("deploymentMaximumPercent")) if services else None
            surge = max(1.0, (max_percent or 200) / 100)
            runtimes.append(
                AppRuntime(
                    platform="ecs",
                    urn=task.urn,
                    env=env,
                    memory_mib=_memory_mib(container.get("memory")) or _memory_mib(task.inputs.get("memory")),
                    vcpu=None if cpu_units is None else cpu_units / 1024,
                    stop_grace_s=ECS_DEFAULT_STOP_TIMEOUT_S if stop is None else stop,
                    lb_idle_timeout_s=(ALB_DEFAULT_IDLE_TIMEOUT_S if idle is None else idle)
                    if lbs or external
                    else None,
                    lb_external=external,
                    max_replicas=math.ceil(max_replicas * surge),
                    min_replicas=min_replicas,
                    connection_budget=_connection_budget(resources, env),
                )
            )

    for service in _by_type(resources, CLOUD_RUN_SERVICE):
        template = service.inputs.get("template") or {}
        scaling_block = template.get("scaling") or service.inputs.get("scaling") or {}
        for container in _cloud_run_containers(service.inputs):
            env = _cloud_run_env(container)
            if not _is_app_env(env):
                continue
            limits = (container.get("resources") or {}).get("limits") or {}
            max_instances = _num(scaling_block.get("maxInstanceCount"))
            runtimes.append(
                AppRuntime(
                    platform="cloudrun",
                    urn=service.urn,
                    env=env,
                    memory_mib=_memory_mib(limits.get("memory", "512Mi")),
                    vcpu=_cpu(limits.get("cpu", "1")),
                    stop_grace_s=CLOUD_RUN_STOP_GRACE_S,
                    max_replicas=math.ceil(
                        (int(max_instances) if max_instances else CLOUD_RUN_DEFAULT_MAX_INSTANCES)
                        * DEPLOY_SURGE["cloudrun"]
                    ),
                    max_instances=int(max_instances) if max_instances else CLOUD_RUN_DEFAULT_MAX_INSTANCES,
                    min_replicas=int(_num(scaling_block.get("minInstanceCount")) or 0),
                    connection_budget=_connection_budget(resources, env),
                )
            )

    for function in _by_type(resources, LAMBDA_FUNCTION):
        env = _lambda_env(function.inputs)
        if not _is_app_env(env):
            continue
        reserved = _num(function.inputs.get("reservedConcurrentExecutions"))
        runtimes.append(
            AppRuntime(
                platform="lambda",
                urn=function.urn,
                env=env,
                memory_mib=_num(function.inputs.get("memorySize")) or 128,
                # Each concurrent execution is its own process; -1 / unset = bounded only by the account.
                max_replicas=int(reserved) if reserved is not None and reserved >= 0 else None,
                min_replicas=None,
                connection_budget=_connection_budget(resources, env),
            )
        )

    for docker in _by_type(resources, DOCKER_CONTAINER):
        env = _docker_env(docker.inputs)
        # The release gate exits before the new app starts: not an instance (resource rules still see it).
        if not _is_app_env(env) or _is_release_gate(docker.inputs):
            continue
        stop = _num(docker.inputs.get("stopTimeout"))
        memory = _num(docker.inputs.get("memory"))
        runtimes.append(
            AppRuntime(
                platform="vps",
                urn=docker.urn,
                env=env,
                memory_mib=memory,
                vcpu=_num(docker.inputs.get("cpus")),
                stop_grace_s=DOCKER_DEFAULT_STOP_TIMEOUT_S if stop is None else stop,
                max_replicas=math.ceil(DEPLOY_SURGE["vps"]),
                min_replicas=1,
                connection_budget=_connection_budget(resources, env),
            )
        )
    return runtimes + published_runtimes(resources)


# --- stack rules -------------------------------------------------------------------------------------
def check_keepalive_above_lb_idle(resources: Sequence[Resource]) -> list[tuple[str | None, str]]:
    """Server keepalive > LB idle timeout, or the ALB reuses a socket gunicorn just closed → 502."""
    findings: list[tuple[str | None, str]] = []
    for rt in app_runtimes(resources):
        if rt.lb_idle_timeout_s is None or rt.lb_external:  # an external ALB: external-load-balancer
            continue
        keepalive = rt.float_env("GUNICORN_KEEPALIVE", 2)  # gunicorn's own default is 2 s
        if keepalive <= rt.lb_idle_timeout_s:
            findings.append(
                (
                    rt.urn,
                    f"GUNICORN_KEEPALIVE={keepalive:g}s is not above the load balancer idle timeout "
                    f"{rt.lb_idle_timeout_s:g}s; the ALB will send requests on connections gunicorn has "
                    "closed and return 502s — keep it ≥ idle + 5 s",
                )
            )
    return findings


def check_graceful_below_stop_grace(resources: Sequence[Resource]) -> list[tuple[str | None, str]]:
    """Graceful drain < platform stop grace, or in-flight requests are SIGKILLed mid-response."""
    findings: list[tuple[str | None, str]] = []
    for rt in app_runtimes(resources):
        if rt.stop_grace_s is None or rt.platform == "lambda":
            continue
        graceful = rt.float_env("GUNICORN_GRACEFUL_TIMEOUT", 30)  # gunicorn default 30 s
        if graceful >= rt.stop_grace_s:
            findings.append(
                (
                    rt.urn,
                    f"GUNICORN_GRACEFUL_TIMEOUT={graceful:g}s is not below the {rt.platform} stop grace "
                    f"{rt.stop_grace_s:g}s; SIGKILL arrives before workers finish in-flight requests",
                )
            )
    return findings


def check_workers_per_platform(resources: Sequence[Resource]) -> list[tuple[str | None, str]]:
    """Worker count fits the platform: 1 on Lambda, ≤ 2 per vCPU and within memory elsewhere."""
    findings: list[tuple[str | None, str]] = []
    for rt in app_runtimes(resources):
        workers = rt.int_env("WEB_CONCURRENCY", 1)
        if rt.platform == "lambda":
            if workers != 1:
                findings.append(
                    (rt.urn, f"WEB_CONCURRENCY={workers} on Lambda; one execution serves one request, use 1")
                )
            if rt.env.get("DB_POOL_CLASS", "queue") != "null" and rt.int_env("DB_POOL_SIZE", 5) > 1:
                findings.append(
                    (
                        rt.urn,
                        "Lambda keeps a DB pool > 1 connection per execution; set DB_POOL_CLASS=null "
                        "or DB_POOL_SIZE=1 (a frozen execution environment holds them idle)",
                    )
                )
            continue
        if workers < 1:
            findings.append((rt.urn, f"WEB_CONCURRENCY={workers}; at least one worker is needed"))
            continue
        if rt.vcpu and workers > max(1, math.ceil(rt.vcpu * MAX_WORKERS_PER_VCPU)):
            findings.append(
                (
                    rt.urn,
                    f"WEB_CONCURRENCY={workers} on {rt.vcpu:g} vCPU; async workers ≈ cores "
                    f"(≤ {MAX_WORKERS_PER_VCPU}/vCPU) — 2xcores+1 is a sync-worker rule",
                )
            )
        if rt.memory_mib and MEMORY_HEADROOM_MIB + workers * WORKER_MEMORY_MIB > rt.memory_mib:
            findings.append(
                (
                    rt.urn,
                    f"WEB_CONCURRENCY={workers} needs ~{MEMORY_HEADROOM_MIB} + {workers} x "
                    f"{WORKER_MEMORY_MIB} MiB, more than the {rt.memory_mib:g} MiB limit; "
                    "workers would be OOM-killed under load",
                )
            )
    return findings


def check_connection_budget(resources: Sequence[Resource]) -> list[tuple[str | None, str]]:
    """(pool + overflow) x workers x max replicas ≤ the database's connection budget."""
    findings: list[tuple[str | None, str]] = []
    for rt in app_runtimes(resources):
        if rt.platform == "lambda" or rt.env.get("DB_POOL_CLASS") == "null":
            per_process = 1
        else:
            per_process = rt.int_env("DB_POOL_SIZE", 5) + rt.int_env("DB_MAX_OVERFLOW", 2)
        workers = 1 if rt.platform == "lambda" else rt.int_env("WEB_CONCURRENCY", 1)
        if rt.max_replicas is None:
            findings.append(
                (
                    rt.urn,
                    "Lambda has no reserved concurrency: up to the account limit (1000) executions can each "
                    "open a connection; set reservedConcurrentExecutions within the DB connection budget"
                    if rt.platform == "lambda"
                    else f"{rt.platform}: no bound on the instances (runtimeFacts.maxReplicas is null): each "
                    "can open its pool; bound the scaling maximum within the DB connection budget",
                )
            )
            continue
        if rt.connection_budget is None:
            continue
        peak = per_process * workers * rt.max_replicas
        if peak > rt.connection_budget:
            findings.append(
                (
                    rt.urn,
                    f"peak DB connections {per_process} per worker x {workers} workers x {rt.max_replicas} "
                    f"instances (incl. deployment surge) = {peak} > budget {rt.connection_budget}",
                )
            )
    return findings


def check_cors_production(resources: Sequence[Resource]) -> list[tuple[str | None, str]]:
    """CORS `*` in production lets any website script the API with the user's browser."""
    findings: list[tuple[str | None, str]] = []
    for rt in app_runtimes(resources):
        origins = [o.strip() for o in rt.env.get("CORS_ORIGINS", "").split(",")]
        if rt.env.get("APP_ENV") == "production" and "*" in origins:
            findings.append((rt.urn, "CORS_ORIGINS contains '*' in production; list the allowed origins"))
    return findings


def check_alarms_notify_production(resources: Sequence[Resource]) -> list[tuple[str | None, str]]:
    """In production an alarm must reach someone: a CloudWatch alarm with no ``alarmActions`` or a
    Monitoring alert policy with no ``notificationChannels`` changes state in a console nobody watches."""
    if not any(rt.env.get("APP_ENV") == "production" for rt in app_runtimes(resources)):
        return []
    findings: list[tuple[str | None, str]] = []
    for r in resources:
        if r.type == METRIC_ALARM and not _list(r.inputs.get("alarmActions")):
            findings.append(
                (
                    r.urn or None,
                    f"CloudWatch alarm {r.inputs.get('name') or r.name or r.urn} has no alarmActions; set "
                    "app.alerts (emails, webhook_url or sns_topic_arn) so it notifies someone",
                )
            )
        elif r.type == ALERT_POLICY and not _list(r.inputs.get("notificationChannels")):
            findings.append(
                (
                    r.urn or None,
                    f"alert policy {r.inputs.get('displayName') or r.name or r.urn} has no "
                    "notificationChannels; set app.alerts (emails or gcp_notification_channels)",
                )
            )
    return findings


def check_single_instance_production(resources: Sequence[Resource]) -> list[tuple[str | None, str]]:
    """A production service on one instance has no redundancy: one crash or host failure is an outage."""
    findings: list[tuple[str | None, str]] = []
    for rt in app_runtimes(resources):
        if rt.env.get("APP_ENV") != "production" or rt.platform == "lambda":
            continue
        if rt.platform == "cloudrun":
            single = rt.max_instances is not None and rt.max_instances <= 1
        else:
            single = rt.min_replicas is not None and rt.min_replicas <= 1
        if single:
            findings.append(
                (
                    rt.urn,
                    f"production on a single {rt.platform} instance: no redundancy during a crash or deploy",
                )
            )
    return findings


#: Values of FORWARDED_ALLOW_IPS that trust nobody but the process's own host (gunicorn's default).
LOOPBACK_ONLY = frozenset({"127.0.0.1", "::1", "localhost"})


def _trusted_hops(env: Mapping[str, str]) -> int:
    """FORWARDED_TRUSTED_HOPS as the app reads it (0 when unset or not a positive integer)."""
    raw = str(env.get("FORWARDED_TRUSTED_HOPS", "")).strip()
    return int(raw) if raw.isdigit() else 0


def check_proxy_headers_trusted(resources: Sequence[Resource]) -> list[tuple[str | None, str]]:
    """Behind a load balancer/proxy, the app takes the client address from the proxy's X-Forwarded-For:
    FORWARDED_ALLOW_IPS (the proxy's addresses: ECS, VPS) or FORWARDED_TRUSTED_HOPS (the count of entries
    the platform's proxies append: Cloud Run, whose proxies have no listable addresses).

    Without either the peer of every request is the proxy: all clients share the proxy's login limits
    (30 attempts/minute, 5 per username, for the whole world) and logs show the proxy's address. `*` is
    wrong everywhere: uvicorn then takes the LEFTMOST entry, which the client writes (the ALB and Google's
    front end append their own observation to the right) — unless FORWARDED_TRUSTED_HOPS is set, which
    turns uvicorn's rewriting off (app/gunicorn_conf.py). On Cloud Run FORWARDED_TRUSTED_HOPS is required.
    """
    findings: list[tuple[str | None, str]] = []
    for rt in app_runtimes(resources):
        # ECS and other targets: behind a proxy when a load balancer's idle timeout applies to it.
        behind_proxy = rt.platform in ("cloudrun", "vps") or (
            rt.platform != "lambda" and rt.lb_idle_timeout_s is not None
        )
        if not behind_proxy or _trusted_hops(rt.env) >= 1:
            continue
        raw = rt.env.get("FORWARDED_ALLOW_IPS", "")
        trusted = {part.strip() for part in raw.split(",") if part.strip()}
        if "*" in trusted:
            findings.append(
                (
                    rt.urn,
                    f"{rt.platform}: FORWARDED_ALLOW_IPS='*' makes uvicorn take the leftmost X-Forwarded-For "
                    "entry, which the client writes (the proxy appends), so a client picks its own "
                    "rate-limit key; "
                    + (
                        "set FORWARDED_TRUSTED_HOPS (1 on run.app, 2 behind the domain's load balancer)"
                        if rt.platform == "cloudrun"
                        else "trust the proxy's private ranges instead"
                    ),
                )
            )
        elif rt.platform == "cloudrun" or not trusted or trusted <= LOOPBACK_ONLY:
            findings.append(
                (
                    rt.urn,
                    f"{rt.platform}: neither FORWARDED_TRUSTED_HOPS nor a proxy in FORWARDED_ALLOW_IPS "
                    f"({raw or 'unset'}) behind a proxy; every client then shares one login rate-limit "
                    "bucket and logs show the proxy's address — "
                    + (
                        "set FORWARDED_TRUSTED_HOPS (Google's proxies have no listable addresses)"
                        if rt.platform == "cloudrun"
                        else "trust the proxy's addresses"
                    ),
                )
            )
    return findings


#: How pydantic reads METRICS_ENABLED=false (the app's setting is a bool).
_FALSE = frozenset({"0", "off", "f", "false", "n", "no"})


def _metrics_enabled(env: Mapping[str, str]) -> bool:
    return str(env.get("METRICS_ENABLED", "true")).strip().lower() not in _FALSE


def _alb_blocks_metrics(resources: Sequence[Resource]) -> bool:
    """A listener rule answers /metrics itself (fixed response / redirect), never forwarding it."""
    for rule in _by_type(resources, LB_LISTENER_RULE):
        paths = {
            str(value)
            for cond in _list(rule.inputs.get("conditions"))
            if isinstance(cond, Mapping)
            for value in _list((cond.get("pathPattern") or {}).get("values"))
        }
        actions = [a for a in _list(rule.inputs.get("actions")) if isinstance(a, Mapping)]
        if "/metrics" in paths and actions and all(a.get("type") != "forward" for a in actions):
            return True
    return False


def _forward_rules_skip_metrics(resources: Sequence[Resource]) -> bool:
    """On a listener the stack does not own, only its rules forward to the app: none of their path
    patterns matches /metrics (ALB patterns: case-sensitive, ``*``/``?`` wildcards, like fnmatchcase)."""
    forwarding = [
        rule
        for rule in _by_type(resources, LB_LISTENER_RULE)
        if any(
            isinstance(a, Mapping) and a.get("type") == "forward" for a in _list(rule.inputs.get("actions"))
        )
    ]
    if not forwarding:
        return False
    for rule in forwarding:
        patterns = [
            str(value)
            for cond in _list(rule.inputs.get("conditions"))
            if isinstance(cond, Mapping)
            for value in _list((cond.get("pathPattern") or {}).get("values"))
        ]
        if not patterns or any(fnmatch.fnmatchcase(probe, p) for p in patterns for probe in METRICS_PROBES):
            return False
    return True


#: Request paths that reach the app's /metrics handler.
METRICS_PROBES = ("/metrics", "/metrics/x")


def check_external_load_balancer(resources: Sequence[Resource]) -> list[tuple[str | None, str]]:
    """An ECS service attached to a load balancer outside the stack: what cannot be checked here."""
    findings: list[tuple[str | None, str]] = []
    for rt in app_runtimes(resources):
        if not rt.lb_external:
            continue
        keepalive = rt.float_env("GUNICORN_KEEPALIVE", 2)
        findings.append(
            (
                rt.urn,
                "ecs: the service is attached to a load balancer that is not in this stack; its idle timeout "
                f"must stay below GUNICORN_KEEPALIVE={keepalive:g}s (assumed: the default "
                f"{ALB_DEFAULT_IDLE_TIMEOUT_S:g}s) and its listener should be HTTPS with HTTP redirecting - "
                "check that load balancer's own stack",
            )
        )
    return findings


def _caddy_blocks_metrics(resources: Sequence[Resource]) -> bool:
    """A Caddyfile uploaded to a container answers /metrics with 404 before it proxies anything:
    ``@m path /metrics ...`` + ``respond @m 404``, or ``respond /metrics... 404``."""
    for docker in _by_type(resources, DOCKER_CONTAINER):
        for upload in _list(docker.inputs.get("uploads")):
            content = str((upload or {}).get("content") or "") if isinstance(upload, Mapping) else ""
            lines = [line.split("#", 1)[0].strip() for line in content.splitlines()]  # drop comments
            text = "\n".join(lines)
            if "reverse_proxy" not in text:
                continue
            head = text.split("reverse_proxy", 1)[0]
            matchers = {
                m.group(1)
                for m in re.finditer(r"^@(\w+)\s+path\s+(.*)$", head, re.MULTILINE)
                if "/metrics" in m.group(2).split()
            }
            for m in re.finditer(r"^respond\s+(\S+)\s+404\b", head, re.MULTILINE):
                target = m.group(1)
                if target.removeprefix("@") in matchers or target.startswith("/metrics"):
                    return True
    return False


def check_metrics_not_public(resources: Sequence[Resource]) -> list[tuple[str | None, str]]:
    """/metrics (request counts, route names) is not served to the internet.

    ECS: an ALB listener rule answers it; VPS: Caddy answers it; Cloud Run and Lambda, which have no
    private path an in-network scraper could use, switch it off (METRICS_ENABLED=false).
    """
    findings: list[tuple[str | None, str]] = []
    for rt in app_runtimes(resources):
        if not _metrics_enabled(rt.env):
            continue
        if (
            rt.platform == "ecs"
            and rt.lb_idle_timeout_s is not None
            and not _alb_blocks_metrics(resources)
            and not (rt.lb_external and _forward_rules_skip_metrics(resources))
        ):
            findings.append(
                (
                    rt.urn,
                    "ecs: /metrics is forwarded by the ALB to the internet; add a listener rule answering "
                    "/metrics with a fixed 404 (scrape tasks from a sidecar) or METRICS_ENABLED=false",
                )
            )
        elif rt.platform == "vps" and not _caddy_blocks_metrics(resources):
            findings.append(
                (
                    rt.urn,
                    "vps: the proxy serves /metrics to the internet; answer it in the Caddyfile "
                    "(respond 404) and scrape the container on its Docker network, or METRICS_ENABLED=false",
                )
            )
        elif rt.platform in ("cloudrun", "lambda"):
            findings.append(
                (
                    rt.urn,
                    f"{rt.platform}: /metrics is public (every request comes from the internet) and "
                    "per-instance counters are useless to a scraper; set METRICS_ENABLED=false",
                )
            )
    return findings


# --- custom domains: HTTPS only ----------------------------------------------------------------------
def _caddyfiles(resource: Resource) -> list[str]:
    return [
        str(u.get("content") or "")
        for u in _list(resource.inputs.get("uploads"))
        if isinstance(u, Mapping) and str(u.get("file") or "").endswith("Caddyfile")
    ]


def _serves_custom_domain(resources: Sequence[Resource]) -> bool:
    return any(r.type in CUSTOM_DOMAIN_TYPES for r in resources) or any(
        _caddyfiles(r) for r in _by_type(resources, DOCKER_CONTAINER)
    )


def _url_map_redirects_to_https(url_map: Resource) -> bool:
    """The URL map answers everything with a redirect to HTTPS and routes nothing to a backend."""
    redirect = url_map.inputs.get("defaultUrlRedirect") or {}
    return (
        isinstance(redirect, Mapping)
        and _truthy(redirect.get("httpsRedirect"))
        and not url_map.inputs.get("defaultService")
        and not _list(url_map.inputs.get("pathMatchers"))
    )


def custom_domain_plain_http(resources: Sequence[Resource]) -> list[tuple[str | None, str]]:
    """Where a stack with a custom domain still serves plain HTTP (empty when it is HTTPS-only).

    ECS: every port-80 (HTTP) listener only redirects to HTTPS. Cloud Run: every HTTP target proxy uses a
    URL map that only redirects to HTTPS (matched by the URL map's name, the last segment of the proxy's
    ``urlMap``; a reference still unknown in a preview is not judged). API Gateway custom domains are
    HTTPS-only by nature; their TLS policy must be TLS_1_2. VPS: Caddy redirects HTTP unless the Caddyfile
    turns automatic HTTPS off or serves an ``http://`` site.
    """
    if not _serves_custom_domain(resources):
        return []
    findings: list[tuple[str | None, str]] = []
    for listener in _by_type(resources, LB_LISTENER):
        for message in check_alb_https(listener.type, listener.inputs):
            findings.append((listener.urn or None, f"custom domain: {message}"))
    url_maps = {str(m.inputs.get("name") or m.name): m for m in _by_type(resources, GCP_URL_MAP)}
    for proxy in _by_type(resources, GCP_HTTP_PROXY):
        ref = str(proxy.inputs.get("urlMap") or "")
        url_map = url_maps.get(ref.rstrip("/").rsplit("/", 1)[-1]) if ref else None
        if url_map is not None and not _url_map_redirects_to_https(url_map):
            findings.append(
                (
                    proxy.urn or None,
                    f"custom domain: HTTP proxy {proxy.inputs.get('name') or proxy.name} serves URL map "
                    f"{url_map.inputs.get('name') or url_map.name}, which does not only redirect to HTTPS; "
                    "give port 80 a URL map with defaultUrlRedirect.httpsRedirect and nothing else",
                )
            )
    for domain in _by_type(resources, APIGW_DOMAIN):
        conf = domain.inputs.get("domainNameConfiguration") or {}
        policy = conf.get("securityPolicy") if isinstance(conf, Mapping) else None
        if policy is not None and str(policy) not in APIGW_MODERN_TLS:
            findings.append(
                (
                    domain.urn or None,
                    f"custom domain {domain.inputs.get('domainName')}: securityPolicy {policy} allows TLS "
                    "1.0/1.1; use TLS_1_2",
                )
            )
    for container in _by_type(resources, DOCKER_CONTAINER):
        for caddyfile in _caddyfiles(container):
            lines = [line.split("#", 1)[0].strip() for line in caddyfile.splitlines()]
            if any(re.match(r"^auto_https\s+(off|disable_redirects)\b", line) for line in lines) or any(
                re.match(r"^http://\S+.*\{$", line) for line in lines
            ):
                findings.append(
                    (
                        container.urn or None,
                        "custom domain: the Caddyfile turns off automatic HTTPS or its HTTP->HTTPS redirect "
                        "(auto_https off/disable_redirects or an http:// site); remove it",
                    )
                )
    return findings


def _production(resources: Sequence[Resource]) -> bool:
    return any(rt.env.get("APP_ENV") == "production" for rt in app_runtimes(resources))


def check_custom_domain_https_production(resources: Sequence[Resource]) -> list[tuple[str | None, str]]:
    """Production: a custom domain is served over HTTPS only (mandatory)."""
    return custom_domain_plain_http(resources) if _production(resources) else []


def check_custom_domain_https_elsewhere(resources: Sequence[Resource]) -> list[tuple[str | None, str]]:
    """Outside production: the same check, advisory (a staging stack may test over HTTP on purpose)."""
    return [] if _production(resources) else custom_domain_plain_http(resources)


RULES: tuple[Rule, ...] = (
    Rule("containers-non-root", "Containers run as an explicit non-root user", "mandatory", check_non_root),
    Rule("health-checks-present", "Every target has health checks", "mandatory", check_health_checks),
    Rule(
        "liveness-independent-of-dependencies",
        "Liveness checks do not probe the readiness (dependency) endpoint",
        "advisory",
        check_liveness_independent,
    ),
    Rule(
        "no-plaintext-secrets",
        "No secret values in plain environment",
        "mandatory",
        check_no_plaintext_secrets,
    ),
    Rule(
        "iam-least-privilege",
        "IAM without wildcard actions or resources",
        "mandatory",
        check_iam_least_privilege,
    ),
    Rule("alb-https-only", "The ALB serves HTTPS and only redirects HTTP", "advisory", check_alb_https),
    Rule("log-retention", "Log groups have a retention period", "mandatory", check_log_retention),
    Rule("docker-log-rotation", "Docker logs are rotated", "advisory", check_docker_log_rotation),
    Rule(
        "deployment-rollback", "ECS deployments roll back on failure", "mandatory", check_deployment_rollback
    ),
    Rule(
        "deregistration-delay",
        "Target-group deregistration delay well below the 300 s default",
        "advisory",
        check_deregistration_delay,
    ),
    Rule(
        "runtime-facts-valid",
        "A target's published runtime facts can be read by the stack rules",
        "mandatory",
        stack=check_runtime_facts,
    ),
    Rule(
        "keepalive-above-lb-idle",
        "Server keepalive above the load balancer idle timeout",
        "mandatory",
        stack=check_keepalive_above_lb_idle,
    ),
    Rule(
        "external-load-balancer",
        "An ECS service on a load balancer outside the stack: its idle timeout and listeners are unchecked",
        "advisory",
        stack=check_external_load_balancer,
    ),
    Rule(
        "graceful-below-stop-grace",
        "Graceful timeout below the platform's stop grace",
        "mandatory",
        stack=check_graceful_below_stop_grace,
    ),
    Rule(
        "workers-per-platform",
        "Worker count fits platform, CPU and memory",
        "mandatory",
        stack=check_workers_per_platform,
    ),
    Rule(
        "db-connection-budget",
        "DB pool x workers x max instances within the connection budget",
        "mandatory",
        stack=check_connection_budget,
    ),
    Rule(
        "cors-not-wildcard-in-production",
        "CORS is not '*' in production",
        "mandatory",
        stack=check_cors_production,
    ),
    Rule(
        "alarms-notify-in-production",
        "In production every alarm / alert policy notifies someone",
        "mandatory",
        stack=check_alarms_notify_production,
    ),
    Rule(
        "single-instance-production",
        "Production runs more than one instance",
        "advisory",
        stack=check_single_instance_production,
    ),
    Rule(
        "proxy-headers-trusted",
        "Proxy headers trusted behind a load balancer",
        "advisory",
        stack=check_proxy_headers_trusted,
    ),
    Rule(
        "metrics-not-public",
        "/metrics is not served to the internet",
        "advisory",
        stack=check_metrics_not_public,
    ),
    Rule(
        "custom-domain-https-only",
        "A custom domain is served over HTTPS only (production)",
        "mandatory",
        stack=check_custom_domain_https_production,
    ),
    Rule(
        "custom-domain-https-only-nonprod",
        "A custom domain is served over HTTPS only (outside production)",
        "advisory",
        stack=check_custom_domain_https_elsewhere,
    ),
)


def evaluate(resources: Iterable[Resource], rules: Sequence[Rule] = RULES) -> list[Violation]:
    """Run every rule over a recorded resource graph (what `infra plan` does offline)."""
    graph = list(resources)
    violations: list[Violation] = []
    for rule in rules:
        if rule.resource is not None:
            for resource in graph:
                for message in rule.resource(resource.type, resource.inputs):
                    violations.append(Violation(rule.name, rule.enforcement, resource.urn or None, message))
        if rule.stack is not None:
            for urn, message in rule.stack(graph):
                violations.append(Violation(rule.name, rule.enforcement, urn, message))
    return violations


def iter_rules(kind: Literal["resource", "stack"]) -> Iterator[Rule]:
    """Rules of one kind, for the CrossGuard adapter."""
    for rule in RULES:
        if (rule.resource if kind == "resource" else rule.stack) is not None:
            yield rule
