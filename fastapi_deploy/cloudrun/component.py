"""Google Cloud Run (v2 service): the same image, secrets injected natively, probes that gate releases.

What a user gets from :class:`CloudRunService`:

- a dedicated service account that may read exactly the referenced Secret Manager secrets (one
  secret-level ``roles/secretmanager.secretAccessor`` member per secret, nothing project-wide);
- a ``cloudrunv2.Service`` whose secrets arrive as ``valueSource.secretKeyRef`` env vars (the value is
  never in the service spec, in Pulumi state or in the console), sized from ``app.cloudrun`` and
  ``app.scaling``, with the runtime numbers from the tuning module (``RuntimeTuning.env()``);
- a startup probe on the readiness path: a revision with a wrong ``DATABASE_URL`` or a missing secret
  never passes it, so it never becomes ready and 100 % of traffic stays on the last ready revision;
- a liveness probe on the liveness path (no dependency checks): a database outage makes ``/ready``
  fail but never restarts healthy instances;
- ``roles/run.invoker`` for ``allUsers`` only when ``app.cloudrun.public`` is true;
- optionally the Cloud SQL connector volume (``/cloudsql``) with ``roles/cloudsql.client`` conditioned
  on that one instance.

:func:`run_v2_service_body` translates the registered inputs into the Cloud Run Admin API's JSON
field names, so tests (and the plan) can parse them with ``google.cloud.run_v2.Service`` and fail on
any unknown field.
"""

import hashlib
import math
import re
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_gcp as gcp

from fastapi_deploy import component as cargs
from fastapi_deploy.cloudrun.args import CloudRunServiceArgs
from fastapi_deploy.cloudrun.config import gcp_region_problem
from fastapi_deploy.cloudrun.domain import CloudRunDomain, CloudRunDomainArgs
from fastapi_deploy.cloudrun.gate import cloudrun_gate
from fastapi_deploy.cloudrun.migrate import cloudrun_release_migration
from fastapi_deploy.cloudrun.tuning import forwarded_trusted_hops
from fastapi_deploy.component import ArgsError, NamedComponent
from fastapi_deploy.config import (
    Alerts,
    AppConfigBase,
    CloudRunConfig,
    CloudRunSettings,
    Database,
    Health,
    Scaling,
    TuningOverrides,
    gcp_channels_problem,
)
from fastapi_deploy.secret_refs import SecretRef, gcp_secret_id
from fastapi_deploy.tuning import (
    DEFAULT_MAX_REQUEST_BODY_BYTES,
    METRICS_PRIVATELY_SCRAPABLE,
    RuntimeTuning,
    TuningInput,
    migrate_env,
    tune,
)

COMPONENT_TYPE = "fastapi-deploy:cloudrun:CloudRunService"
OWNER = "CloudRunServiceArgs"

#: Cloud Run sends SIGTERM and kills the instance 10 s later; gunicorn must finish draining first.
#: Source: https://cloud.google.com/run/docs/container-contract#instance-shutdown
CLOUDRUN_SIGTERM_GRACE_S = 10
#: Env names Cloud Run sets itself and refuses in a service spec ("reserved env names").
#: Source: https://cloud.google.com/run/docs/container-contract#env-vars
RESERVED_ENV = frozenset({"PORT", "K_SERVICE", "K_REVISION", "K_CONFIGURATION"})
#: Startup probes may run at most 240 s in total (initialDelay + period x failureThreshold).
STARTUP_BUDGET_S = 240
#: The second-generation execution environment refuses less memory than this.
#: Source: https://cloud.google.com/run/docs/about-execution-environments
GEN2_MIN_MEMORY_MIB = 512

_INGRESS = {
    "all": "INGRESS_TRAFFIC_ALL",
    "internal": "INGRESS_TRAFFIC_INTERNAL_ONLY",
    "internal-and-cloud-load-balancing": "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER",
}


def _label(value: str) -> str:
    # GCP labels: lowercase letters, digits, '_' and '-', at most 63 chars.
    return re.sub(r"[^a-z0-9_-]", "-", value.lower())[:63]


def gcp_labels(tags: dict[str, str]) -> dict[str, str]:
    """Tags (``app``/``stack``/``managed-by`` plus user tags) sanitised to GCP's label rules."""
    return {_label(k): _label(v) for k, v in tags.items()}


def cpu_limit(cpu: float) -> str:
    """Cloud Run cpu quantity: whole vCPUs as ``"1"``, fractions as millicores (``"500m"``)."""
    return str(int(cpu)) if cpu >= 1 and cpu == int(cpu) else f"{round(cpu * 1000)}m"


def execution_environment(memory_mib: int, cpu: float = 1.0) -> str:
    """Gen2 (full Linux compatibility, faster CPU and network) whenever it is allowed: it needs >= 512 MiB
    and a whole CPU (cpu < 1 "must use the first generation", cloud.google.com/run/docs/configuring/cpu)."""
    if memory_mib >= GEN2_MIN_MEMORY_MIB and cpu >= 1:
        return "EXECUTION_ENVIRONMENT_GEN2"
    return "EXECUTION_ENVIRONMENT_GEN1"


def service_account_id(name: str) -> str:
    """A valid account id (6-30 chars, ``[a-z][-a-z0-9]*[a-z0-9]``) derived from the component name.

    Names over 25 characters keep a hash of the full name: plain truncation gave two stacks in one project
    that share their first 25 characters the same account ("already exists" on the second `pulumi up`).
    """
    base = re.sub(r"[^a-z0-9-]", "-", name.lower()).strip("-")
    if len(base) > 25:
        base = base[:18].rstrip("-") + "-" + hashlib.sha256(name.encode()).hexdigest()[:6]
    return f"{base}-run" if len(base) >= 2 else f"svc-{base}-run"


def service_name(name: str) -> str:
    """Cloud Run service names: lowercase letters, digits, '-', at most 49 chars, start with a letter."""
    base = re.sub(r"[^a-z0-9-]", "-", name.lower()).strip("-")[:49].rstrip("-")
    return base if base[:1].isalpha() else f"s-{base}"[:49]


def plain_env(env: dict[str, Any]) -> dict[str, Any]:
    """Non-secret env minus the names Cloud Run reserves (PORT...)."""
    return {k: v for k, v in env.items() if k not in RESERVED_ENV}


@dataclass(frozen=True)
class CloudRunInputs:
    """The Args after validation."""

    image: pulumi.Input[str]
    project: str
    region: str
    port: int
    app_env: str
    env: dict[str, pulumi.Input[str]]
    secrets: dict[str, SecretRef]
    health: Health
    scaling: Scaling
    database: Database
    request_timeout_s: int
    max_request_body_bytes: int
    overrides: TuningOverrides
    settings: CloudRunSettings
    service_account_email: pulumi.Input[str] | None
    vpc_network: pulumi.Input[str] | None
    vpc_subnetwork: pulumi.Input[str] | None
    vpc_connector: pulumi.Input[str] | None
    vpc_egress: str | None
    alert_emails: list[str]
    notification_channels: cargs.IdList
    description: str | None
    domain: str | None
    wait_for_release: bool
    tags: dict[str, str]

    @property
    def service_ingress(self) -> str:
        """``ingress``; with a domain and no explicit ingress, load-balancer traffic only."""
        if self.domain and "ingress" not in self.settings.model_fields_set:
            return "internal-and-cloud-load-balancing"
        return self.settings.ingress


_SETTINGS_KEYS = (
    "cpu", "memory", "concurrency", "startup_cpu_boost", "cpu_always_allocated", "ingress", "public",
    "cloud_sql_instance", "alarms", "project", "region", "zone",
)  # fmt: skip


def inputs_from_args(args: CloudRunServiceArgs) -> CloudRunInputs:
    """Validate the Args (raises :class:`ArgsError` naming the Arg); registers nothing."""
    a = cargs.known_args(OWNER, args, CloudRunServiceArgs)
    image = cargs.image(OWNER, a)
    project = cargs.required(OWNER, a, "project")
    region = cargs.required(OWNER, a, "region")
    if not isinstance(region, str):
        raise ArgsError(
            f"{OWNER}.region: a plain region name such as 'europe-west1', not {type(region).__name__} "
            "(it is checked before anything registers; see the Arg's description)"
        )
    region_problem = gcp_region_problem(region)
    if region_problem:
        raise ArgsError(f"{OWNER}.region: {region_problem}")
    settings = cargs.settings(OWNER, a, CloudRunSettings, _SETTINGS_KEYS)
    domain = a.get("domain")
    if domain is not None:
        cargs.field(OWNER, "domain", AppConfigBase, "domain", domain)
        if settings.ingress == "internal":
            raise ArgsError(
                f"{OWNER}.ingress: 'internal' refuses the load balancer that serves the domain; use "
                "internal-and-cloud-load-balancing (the default with a domain) or all"
            )
        if not settings.public:
            raise ArgsError(
                f"{OWNER}.public: the domain is served to the internet by a load balancer that does not "
                "authenticate; set public: true (ingress stays limited to the load balancer)"
            )
    elif settings.zone:
        raise ArgsError(f"{OWNER}.zone: set domain too (the hostname to create in this managed zone)")
    # A dict of GcpAlertsArgs' keys, emails a list: known_args checked its shape.
    alerts = a.get("alerts") or {}
    # The emails with the stack config's own check (the channels may be Outputs: checked below).
    alert_emails = cargs.section(OWNER, "alerts", Alerts, {"emails": alerts.get("emails") or []}).emails
    channels = cargs.checked_ids(
        OWNER,
        "alerts.gcp_notification_channels",
        cargs.id_list(OWNER, "alerts.gcp_notification_channels", alerts.get("gcp_notification_channels")),
        gcp_channels_problem,
    )
    egress = a.get("vpc_egress")
    if egress is not None and egress not in ("PRIVATE_RANGES_ONLY", "ALL_TRAFFIC"):
        raise ArgsError(f"{OWNER}.vpc_egress: {egress!r} is not PRIVATE_RANGES_ONLY or ALL_TRAFFIC")
    if a.get("vpc_connector") is not None and (a.get("vpc_network") or a.get("vpc_subnetwork")):
        raise ArgsError(
            f"{OWNER}.vpc_connector: use either a connector or vpc_network/vpc_subnetwork, not both"
        )
    return CloudRunInputs(
        image=image,
        project=project,
        region=region,
        port=cargs.field(OWNER, "port", CloudRunConfig, "port", a.get("port", 8080)),
        app_env=cargs.field(
            OWNER, "environment", AppConfigBase, "environment", a.get("environment", "production")
        ),
        env=cargs.env(OWNER, a.get("env")),
        secrets=cargs.secret_refs(OWNER, a.get("secrets"), ("gcp",)),
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
        service_account_email=a.get("service_account_email"),
        vpc_network=a.get("vpc_network"),
        vpc_subnetwork=a.get("vpc_subnetwork"),
        vpc_connector=a.get("vpc_connector"),
        vpc_egress=egress,
        alert_emails=list(alert_emails),
        notification_channels=channels,
        description=a.get("description"),
        domain=domain,
        wait_for_release=bool(a.get("wait_for_release", True)),
        tags=cargs.tags(OWNER, a.get("tags")),
    )


def tuning_for(inp: CloudRunInputs) -> RuntimeTuning:
    """The runtime tuning computed from the Args (error messages name the Args)."""
    o = inp.overrides
    t = tune(
        TuningInput(
            "cloudrun",
            inp.settings.cpu,
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
            keys=cargs.tuning_keys(
                OWNER, max_replicas=f"{OWNER}.scaling.max", size=f"{OWNER}.cpu", memory=f"{OWNER}.memory"
            ),
        )
    )
    from dataclasses import replace

    return replace(t, container_concurrency=inp.settings.concurrency)


def final_env(inp: CloudRunInputs, tuning: RuntimeTuning) -> dict[str, pulumi.Input[str]]:
    """The Args' env, then the tuning's variables (they win) and the migrate/metrics switches; minus the
    names Cloud Run reserves."""
    env: dict[str, pulumi.Input[str]] = {**inp.env, **tuning.env()}
    env.update(migrate_env(inp.database.migrate_mode("cloudrun"), tuning))
    if not METRICS_PRIVATELY_SCRAPABLE["cloudrun"]:
        env.setdefault("METRICS_ENABLED", "false")
    # The client address by hop count: 2 behind the domain's load balancer, else 1 (cloudrun/tuning.py).
    env["FORWARDED_TRUSTED_HOPS"] = str(forwarded_trusted_hops(inp.domain, inp.service_ingress))
    return plain_env(dict(sorted(env.items())))


class CloudRunService(NamedComponent):
    """A Cloud Run v2 service with its own least-privilege service account (see the module docstring)."""

    target: pulumi.Output[str]
    """Always ``cloudrun``."""
    url: pulumi.Output[str]
    """The service's ``https://...run.app`` URL."""
    image: pulumi.Output[str]
    """The image reference the revision runs."""
    health_path: pulumi.Output[str]
    """Liveness path."""
    ready_path: pulumi.Output[str]
    """Readiness path."""
    project: pulumi.Output[str]
    """Google Cloud project."""
    region: pulumi.Output[str]
    """Cloud Run region."""
    service_name: pulumi.Output[str]
    """Cloud Run service name."""
    revision: pulumi.Output[str]
    """Latest ready revision."""
    service_account: pulumi.Output[str]
    """Email of the runtime service account."""

    def __init__(
        self,
        name: str,
        args: CloudRunServiceArgs,
        opts: pulumi.ResourceOptions | None = None,
        *,
        tuning: RuntimeTuning | None = None,
    ) -> None:
        inp = inputs_from_args(args)
        runtime = tuning if tuning is not None else tuning_for(inp)
        if runtime.graceful_timeout_s >= CLOUDRUN_SIGTERM_GRACE_S:
            raise ArgsError(
                f"{OWNER}.request_timeout_s: GUNICORN_GRACEFUL_TIMEOUT {runtime.graceful_timeout_s}s must be "
                f"below Cloud Run's {CLOUDRUN_SIGTERM_GRACE_S}s SIGTERM grace"
            )
        # The runtime facts (contract.RUNTIME_FACTS) state the plain env and sizes the service gets.
        props = cargs.runtime_props(runtime, final_env(inp, runtime), min_replicas=inp.scaling.min)
        super().__init__(COMPONENT_TYPE, name, props, opts)
        self.tuning = runtime
        cr = inp.settings
        project = inp.project
        region = inp.region
        labels = gcp_labels(inp.tags)
        child = self.child_opts()

        if inp.service_account_email is not None:
            self.account: gcp.serviceaccount.Account | None = None
            email: pulumi.Output[str] = pulumi.Output.from_input(inp.service_account_email)
        else:
            self.account = _service_account(self, name, project)
            email = self.account.email
        member = email.apply(lambda e: f"serviceAccount:{e}")
        # One secret-level IAM member per referenced secret: the runtime identity can read exactly these,
        # never every secret in the project (which roles/secretmanager.secretAccessor at project level would).
        env_secrets: list[gcp.cloudrunv2.ServiceTemplateContainerEnvArgs] = []
        self.secret_access = []
        granted: dict[tuple[str, str], gcp.secretmanager.SecretIamMember] = {}
        for env_name, ref in sorted(inp.secrets.items()):
            secret, version = gcp_secret_id(ref, project)
            secret_project = ref.project or project
            key = (secret_project, ref.name)
            if key not in granted:
                granted[key] = gcp.secretmanager.SecretIamMember(
                    f"{name}-secret-{_label(ref.name)}",
                    project=secret_project,
                    secret_id=ref.name,
                    role="roles/secretmanager.secretAccessor",
                    member=member,
                    opts=child,
                )
                self.secret_access.append(granted[key])
            env_secrets.append(
                gcp.cloudrunv2.ServiceTemplateContainerEnvArgs(
                    name=env_name,
                    value_source=gcp.cloudrunv2.ServiceTemplateContainerEnvValueSourceArgs(
                        secret_key_ref=gcp.cloudrunv2.ServiceTemplateContainerEnvValueSourceSecretKeyRefArgs(
                            secret=secret, version=version
                        )
                    ),
                )
            )

        depends: list[pulumi.Resource] = list(self.secret_access)
        volumes: list[gcp.cloudrunv2.ServiceTemplateVolumeArgs] = []
        mounts: list[gcp.cloudrunv2.ServiceTemplateContainerVolumeMountArgs] = []
        if cr.cloud_sql_instance:
            sql_project = cr.cloud_sql_instance.split(":")[0]
            instance = cr.cloud_sql_instance.split(":")[-1]
            # roles/cloudsql.client has no per-instance binding; an IAM condition narrows it to this instance.
            depends.append(
                gcp.projects.IAMMember(
                    f"{name}-cloudsql",
                    project=sql_project,
                    role="roles/cloudsql.client",
                    member=member,
                    condition=gcp.projects.IAMMemberConditionArgs(
                        title=f"only {instance}"[:100],
                        expression=f'resource.name == "projects/{sql_project}/instances/{instance}"',
                    ),
                    opts=child,
                )
            )
            volumes.append(
                gcp.cloudrunv2.ServiceTemplateVolumeArgs(
                    name="cloudsql",
                    cloud_sql_instance=gcp.cloudrunv2.ServiceTemplateVolumeCloudSqlInstanceArgs(
                        instances=[cr.cloud_sql_instance]
                    ),
                )
            )
            mounts.append(
                gcp.cloudrunv2.ServiceTemplateContainerVolumeMountArgs(
                    name="cloudsql", mount_path="/cloudsql"
                )
            )

        envs = [
            gcp.cloudrunv2.ServiceTemplateContainerEnvArgs(name=k, value=v)
            for k, v in final_env(inp, runtime).items()
        ]

        # Startup probe = readiness: a revision that cannot reach its database (wrong DATABASE_URL, secret
        # missing) never turns ready, so Cloud Run keeps 100 % of traffic on the previous ready revision and
        # `pulumi up` fails. 5 s x 24 = 120 s of start budget (Cloud Run caps startup probing at 240 s).
        startup_period, startup_timeout = 5, 3
        startup_failures = min(24, math.floor(STARTUP_BUDGET_S / startup_period))
        startup_probe = gcp.cloudrunv2.ServiceTemplateContainerStartupProbeArgs(
            http_get=gcp.cloudrunv2.ServiceTemplateContainerStartupProbeHttpGetArgs(
                path=inp.health.readiness_path, port=inp.port
            ),
            initial_delay_seconds=0,
            period_seconds=startup_period,
            timeout_seconds=startup_timeout,
            failure_threshold=startup_failures,
        )
        # Liveness = the dependency-free path: only a wedged process (3 misses x 10 s) gets restarted; a
        # database outage fails /ready but not this, so healthy instances are not killed in a loop.
        liveness_probe = gcp.cloudrunv2.ServiceTemplateContainerLivenessProbeArgs(
            http_get=gcp.cloudrunv2.ServiceTemplateContainerLivenessProbeHttpGetArgs(
                path=inp.health.liveness_path, port=inp.port
            ),
            initial_delay_seconds=0,
            period_seconds=10,
            timeout_seconds=3,
            failure_threshold=3,
        )

        container = gcp.cloudrunv2.ServiceTemplateContainerArgs(
            name="app",
            image=inp.image,
            ports=gcp.cloudrunv2.ServiceTemplateContainerPortsArgs(container_port=inp.port, name="http1"),
            envs=envs + env_secrets,
            resources=gcp.cloudrunv2.ServiceTemplateContainerResourcesArgs(
                limits={"cpu": cpu_limit(cr.cpu), "memory": f"{cr.memory}Mi"},
                cpu_idle=not cr.cpu_always_allocated,
                startup_cpu_boost=cr.startup_cpu_boost,
            ),
            startup_probe=startup_probe,
            liveness_probe=liveness_probe,
            volume_mounts=mounts or None,
        )

        svc_name = service_name(name)
        # migrate: release - a Cloud Run Job with this release's image, env, secrets and identity runs
        # `python -m app.migrate`; no revision is created before its execution succeeded.
        self.migration_job = None
        if inp.database.migrate_mode("cloudrun") == "release":
            self.migration_job, migration = cloudrun_release_migration(
                name,
                project=project,
                region=region,
                service_name=svc_name,
                image=inp.image,
                service_account=email,
                env={k: str(v) for k, v in final_env(inp, runtime).items()},
                secret_env={k: gcp_secret_id(ref, project) for k, ref in sorted(inp.secrets.items())},
                cpu=cpu_limit(cr.cpu),
                memory=f"{cr.memory}Mi",
                execution_environment=execution_environment(cr.memory, cr.cpu),
                labels=labels,
                cloud_sql_instance=cr.cloud_sql_instance,
                opts=self.child_opts(depends_on=list(depends)),
            )
            depends.append(migration)
        self.service = gcp.cloudrunv2.Service(
            f"{name}-service",
            name=svc_name,
            project=project,
            location=region,
            description=inp.description or f"{name} managed by Pulumi",
            ingress=_INGRESS[inp.service_ingress],
            labels=labels,
            # Production services refuse `pulumi destroy` until this is turned off on purpose.
            deletion_protection=inp.app_env == "production",
            template=gcp.cloudrunv2.ServiceTemplateArgs(
                service_account=email,
                labels=labels,
                execution_environment=execution_environment(cr.memory, cr.cpu),
                max_instance_request_concurrency=cr.concurrency,
                timeout=f"{inp.request_timeout_s}s",
                scaling=gcp.cloudrunv2.ServiceTemplateScalingArgs(
                    min_instance_count=inp.scaling.min, max_instance_count=inp.scaling.max
                ),
                containers=[container],
                volumes=volumes or None,
                vpc_access=_vpc_access(inp),
            ),
            traffics=[
                gcp.cloudrunv2.ServiceTrafficArgs(type="TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", percent=100)
            ],
            # The revision must not start before its identity can read the secrets it mounts.
            opts=self.child_opts(depends_on=depends),
        )

        self.invoker = None
        if cr.public:
            self.invoker = gcp.cloudrunv2.ServiceIamMember(
                f"{name}-invoker",
                project=project,
                location=region,
                name=self.service.name,
                role="roles/run.invoker",
                member="allUsers",
                opts=child,
            )

        self._alert_policies(name, inp, project, svc_name, labels, child)
        # `pulumi up` fails unless this release's revision ends up serving (fastapi_deploy/release_gate.py).
        self.release_gate = None
        if inp.wait_for_release:
            self.release_gate = cloudrun_gate(
                f"{name}-release",
                project=project,
                region=region,
                service_name=self.service.name,
                revision=self.service.latest_created_revision,
                image=inp.image,
                stack_resource=f"{name}-service",
                opts=self.child_opts(depends_on=[self.service]),
            )

        url: pulumi.Input[str] = self.service.uri
        self.custom_domain = None
        if inp.domain:
            # Global external ALB + Google-managed certificate (+ the Cloud DNS record): cloudrun/domain.py.
            self.custom_domain = CloudRunDomain(
                f"{name}-domain",
                CloudRunDomainArgs(
                    domain=inp.domain,
                    service_name=self.service.name,
                    project=project,
                    region=region,
                    managed_zone=cr.zone,
                    labels=labels,
                ),
                opts=child,
            )
            url = self.custom_domain.url

        self.outputs = self.finish(
            {
                "target": "cloudrun",
                "url": url,
                "image": inp.image,
                "health_path": inp.health.liveness_path,
                "ready_path": inp.health.readiness_path,
                "project": project,
                "region": region,
                "service_name": self.service.name,
                "revision": self.service.latest_ready_revision,
                "service_account": email,
            }
        )

    def _alert_policies(
        self,
        name: str,
        inp: CloudRunInputs,
        project: str,
        svc_name: str,
        labels: dict[str, str],
        child: pulumi.ResourceOptions,
    ) -> None:
        """Alert policies on 5xx ratio, p95 latency and instances at the maximum, notifying the email
        channels made for ``alerts.emails`` and the existing ``alerts.gcp_notification_channels``."""
        alarms = inp.settings.alarms
        created: list[Any] = []
        for i, email in enumerate(inp.alert_emails):
            channel = gcp.monitoring.NotificationChannel(
                f"{name}-alerts-email-{i}",
                project=project,
                display_name=f"{name} alerts: {email}",
                type="email",
                labels={"email_address": email},
                user_labels=labels,
                opts=child,
            )
            created.append(channel.name)
        channels = cargs.join_ids(inp.notification_channels, created)
        revision = f'resource.type = "cloud_run_revision" AND resource.labels.service_name = "{svc_name}"'
        requests = f'{revision} AND metric.type = "run.googleapis.com/request_count"'
        duration = f"{alarms.duration_s}s"

        def policy(key: str, display: str, condition: Any) -> gcp.monitoring.AlertPolicy:
            return gcp.monitoring.AlertPolicy(
                f"{name}-{key}",
                project=project,
                display_name=f"{name}: {display}",
                combiner="OR",
                conditions=[
                    gcp.monitoring.AlertPolicyConditionArgs(
                        display_name=display, condition_threshold=condition
                    )
                ],
                notification_channels=channels,
                # Notify on close too (the "recovered" message, like ok_actions on CloudWatch).
                alert_strategy=gcp.monitoring.AlertPolicyAlertStrategyArgs(
                    auto_close="1800s", notification_prompts=["OPENED", "CLOSED"]
                ),
                severity="ERROR",
                user_labels=labels,
                opts=child,
            )

        rate = gcp.monitoring.AlertPolicyConditionConditionThresholdAggregationArgs(
            alignment_period="60s", per_series_aligner="ALIGN_RATE", cross_series_reducer="REDUCE_SUM"
        )
        self.alert_5xx = policy(
            "5xx",
            f"5xx ratio above {alarms.http_5xx_ratio:g}",
            gcp.monitoring.AlertPolicyConditionConditionThresholdArgs(
                filter=f'{requests} AND metric.labels.response_code_class = "5xx"',
                aggregations=[rate],
                denominator_filter=requests,
                denominator_aggregations=[
                    gcp.monitoring.AlertPolicyConditionConditionThresholdDenominatorAggregationArgs(
                        alignment_period="60s",
                        per_series_aligner="ALIGN_RATE",
                        cross_series_reducer="REDUCE_SUM",
                    )
                ],
                comparison="COMPARISON_GT",
                threshold_value=alarms.http_5xx_ratio,
                duration=duration,
            ),
        )
        self.alert_latency = policy(
            "latency",
            f"p95 latency above {alarms.p95_latency_s:g} s",
            gcp.monitoring.AlertPolicyConditionConditionThresholdArgs(
                filter=f'{revision} AND metric.type = "run.googleapis.com/request_latencies"',
                aggregations=[
                    gcp.monitoring.AlertPolicyConditionConditionThresholdAggregationArgs(
                        alignment_period="60s",
                        per_series_aligner="ALIGN_PERCENTILE_95",
                        cross_series_reducer="REDUCE_MAX",
                    )
                ],
                comparison="COMPARISON_GT",
                threshold_value=alarms.p95_latency_s * 1000,  # request_latencies is in milliseconds
                duration=duration,
            ),
        )
        self.alert_instances = policy(
            "instances",
            f"instance count at the maximum ({inp.scaling.max})",
            gcp.monitoring.AlertPolicyConditionConditionThresholdArgs(
                filter=f'{revision} AND metric.type = "run.googleapis.com/container/instance_count"',
                aggregations=[
                    gcp.monitoring.AlertPolicyConditionConditionThresholdAggregationArgs(
                        alignment_period="60s",
                        per_series_aligner="ALIGN_MAX",
                        cross_series_reducer="REDUCE_SUM",
                    )
                ],
                comparison="COMPARISON_GT",
                threshold_value=inp.scaling.max - 0.5,  # >= max instances
                duration=duration,
            ),
        )


def _service_account(svc: CloudRunService, name: str, project: str) -> gcp.serviceaccount.Account:
    """The runtime identity (created unless the Args name one)."""
    return gcp.serviceaccount.Account(
        f"{name}-sa",
        account_id=service_account_id(name),
        display_name=f"Cloud Run runtime identity of {name}",
        description="Reads only the Secret Manager secrets this service references (managed by Pulumi).",
        project=project,
        opts=svc.child_opts(),
    )


def _vpc_access(inp: CloudRunInputs) -> gcp.cloudrunv2.ServiceTemplateVpcAccessArgs | None:
    """Direct VPC egress (network/subnetwork) or a Serverless VPC Access connector, when the Args ask."""
    if inp.vpc_connector is not None:
        return gcp.cloudrunv2.ServiceTemplateVpcAccessArgs(
            connector=inp.vpc_connector, egress=inp.vpc_egress or "PRIVATE_RANGES_ONLY"
        )
    if inp.vpc_network is not None or inp.vpc_subnetwork is not None:
        return gcp.cloudrunv2.ServiceTemplateVpcAccessArgs(
            network_interfaces=[
                gcp.cloudrunv2.ServiceTemplateVpcAccessNetworkInterfaceArgs(
                    network=inp.vpc_network, subnetwork=inp.vpc_subnetwork
                )
            ],
            egress=inp.vpc_egress or "PRIVATE_RANGES_ONLY",
        )
    return None


# ----------------------------------------------------------------------------------------- API check
# Pulumi (Terraform) spells a few Cloud Run fields differently from the Admin API; everything else is the
# API's own lowerCamelCase JSON name, so an unknown/misspelt field fails run_v2.Service parsing.
_RENAME = {"envs": "env", "traffics": "traffic", "commands": "command", "dependsOns": "dependsOn"}
_PULUMI_ONLY = {"location", "project", "deletionProtection", "name", "__defaults"}


def _to_api(value: Any) -> Any:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if k == "__defaults":
                continue
            key = _RENAME.get(k) or k
            v = _to_api(v)
            if k == "ports" and isinstance(v, dict):
                v = [v]  # Pulumi models the single container port as an object; the API has a list
            out[key] = v
        return out
    if isinstance(value, list):
        return [_to_api(v) for v in value]
    return value


def run_v2_service_body(inputs: dict[str, Any], project: str, region: str) -> dict[str, Any]:
    """Recorded ``gcp:cloudrunv2/service:Service`` inputs -> a Cloud Run Admin API v2 ``Service`` body."""
    body = _to_api({k: v for k, v in inputs.items() if k not in _PULUMI_ONLY})
    if "name" in inputs:
        body["name"] = f"projects/{project}/locations/{region}/services/{inputs['name']}"
    return body


# --------------------------------------------------------------------------------------- registry API
