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

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_gcp as gcp

from fastapi_deploy.config import CloudRunConfig, ConfigError, StackConfigType
from fastapi_deploy.image import Registry
from fastapi_deploy.release_migrate import cloudrun_release_migration  # issue 15 item 2
from fastapi_deploy.secret_refs import gcp_secret_id
from fastapi_deploy.targets import DeployContext, RegistryContext
from fastapi_deploy.tuning import RuntimeTuning, container_environment

COMPONENT_TYPE = "fastapi-deploy:cloudrun:CloudRunService"

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


@dataclass(frozen=True)
class CloudRunServiceArgs:
    """Everything the component needs: validated config, the tuning result and the image digest ref."""

    config: CloudRunConfig
    tuning: RuntimeTuning
    #: ``REGISTRY/REPO@sha256:...`` — Cloud Run pulls by digest, so a re-pushed tag cannot change a revision.
    image: pulumi.Input[str]


def _label(value: str) -> str:
    # GCP labels: lowercase letters, digits, '_' and '-', at most 63 chars.
    return re.sub(r"[^a-z0-9_-]", "-", value.lower())[:63]


def gcp_labels(config: CloudRunConfig) -> dict[str, str]:
    """``app``/``stack``/``managed-by`` plus user tags, sanitised to GCP's label rules."""
    return {_label(k): _label(v) for k, v in config.resource_tags().items()}


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


def plain_env(config: CloudRunConfig, tuning: RuntimeTuning) -> dict[str, str]:
    """Non-secret env (app.env, CORS, tuning numbers) minus the names Cloud Run reserves (PORT...)."""
    return {k: v for k, v in container_environment(config, tuning).items() if k not in RESERVED_ENV}


def validate(cfg: StackConfigType, tuning: RuntimeTuning) -> None:
    """Checks run before anything is registered (also by the program, before the registry and image)."""
    assert isinstance(cfg, CloudRunConfig)
    if tuning.graceful_timeout_s >= CLOUDRUN_SIGTERM_GRACE_S:
        # A drain longer than the grace ends in SIGKILL mid-request.
        raise ConfigError(
            f"GUNICORN_GRACEFUL_TIMEOUT {tuning.graceful_timeout_s}s must be below Cloud Run's "
            f"{CLOUDRUN_SIGTERM_GRACE_S}s SIGTERM grace"
        )


class CloudRunService(pulumi.ComponentResource):
    """A Cloud Run v2 service with its own least-privilege service account (see the module docstring)."""

    service: gcp.cloudrunv2.Service
    service_account: gcp.serviceaccount.Account
    secret_access: list[gcp.secretmanager.SecretIamMember]
    invoker: gcp.cloudrunv2.ServiceIamMember | None
    url: pulumi.Output[str]
    revision: pulumi.Output[str]
    service_account_email: pulumi.Output[str]
    service_name: pulumi.Output[str]

    def __init__(
        self, name: str, args: CloudRunServiceArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        validate(args.config, args.tuning)
        super().__init__(COMPONENT_TYPE, name, args.tuning.component_props(), opts)
        cfg = args.config
        cr = cfg.cloudrun
        project = cfg.gcp_project
        region = cfg.gcp_region
        assert project
        assert region
        labels = gcp_labels(cfg)
        child = pulumi.ResourceOptions(parent=self)

        self.service_account = gcp.serviceaccount.Account(
            f"{name}-sa",
            account_id=service_account_id(name),
            display_name=f"Cloud Run runtime identity of {name}",
            description="Reads only the Secret Manager secrets this service references (managed by Pulumi).",
            project=project,
            opts=child,
        )
        member = self.service_account.email.apply(lambda e: f"serviceAccount:{e}")

        # One secret-level IAM member per referenced secret: the runtime identity can read exactly these,
        # never every secret in the project (which roles/secretmanager.secretAccessor at project level would).
        env_secrets: list[gcp.cloudrunv2.ServiceTemplateContainerEnvArgs] = []
        self.secret_access = []
        granted: dict[tuple[str, str], gcp.secretmanager.SecretIamMember] = {}
        for env_name, ref in sorted(cfg.secret_refs().items()):
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
            for k, v in plain_env(cfg, args.tuning).items()
        ]

        # Startup probe = readiness: a revision that cannot reach its database (wrong DATABASE_URL, secret
        # missing) never turns ready, so Cloud Run keeps 100 % of traffic on the previous ready revision and
        # `pulumi up` fails. 5 s x 24 = 120 s of start budget (Cloud Run caps startup probing at 240 s).
        startup_period, startup_timeout = 5, 3
        startup_failures = min(24, math.floor(STARTUP_BUDGET_S / startup_period))
        startup_probe = gcp.cloudrunv2.ServiceTemplateContainerStartupProbeArgs(
            http_get=gcp.cloudrunv2.ServiceTemplateContainerStartupProbeHttpGetArgs(
                path=cfg.health.readiness_path, port=cfg.port
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
                path=cfg.health.liveness_path, port=cfg.port
            ),
            initial_delay_seconds=0,
            period_seconds=10,
            timeout_seconds=3,
            failure_threshold=3,
        )

        container = gcp.cloudrunv2.ServiceTemplateContainerArgs(
            name="app",
            image=args.image,
            ports=gcp.cloudrunv2.ServiceTemplateContainerPortsArgs(container_port=cfg.port, name="http1"),
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
        # --- issue 15 item 2 (release migrations, fastapi_deploy/release_migrate.py): wiring ---------
        if cfg.database.migrate_mode("cloudrun") == "release":
            _job, migration = cloudrun_release_migration(
                name,
                project=project,
                region=region,
                service_name=svc_name,
                image=args.image,
                service_account=self.service_account.email,
                env=plain_env(cfg, args.tuning),
                secret_env={k: gcp_secret_id(ref, project) for k, ref in cfg.secret_refs().items()},
                cpu=cpu_limit(cr.cpu),
                memory=f"{cr.memory}Mi",
                execution_environment=execution_environment(cr.memory, cr.cpu),
                labels=labels,
                cloud_sql_instance=cr.cloud_sql_instance,
                opts=pulumi.ResourceOptions(parent=self, depends_on=list(depends)),
            )
            depends.append(migration)  # no revision before the migration succeeded
        # --- end of issue 15 item 2 wiring ---------------------------------------------------------------
        self.service = gcp.cloudrunv2.Service(
            f"{name}-service",
            name=svc_name,
            project=project,
            location=region,
            description=f"{cfg.name} ({cfg.stack}) managed by Pulumi",
            ingress=_INGRESS[cr.ingress],
            labels=labels,
            # Production services refuse `pulumi destroy` until this is turned off on purpose.
            deletion_protection=cfg.environment == "production",
            template=gcp.cloudrunv2.ServiceTemplateArgs(
                service_account=self.service_account.email,
                labels=labels,
                execution_environment=execution_environment(cr.memory, cr.cpu),
                max_instance_request_concurrency=cr.concurrency,
                timeout=f"{cfg.request_timeout_s}s",
                scaling=gcp.cloudrunv2.ServiceTemplateScalingArgs(
                    min_instance_count=cfg.scaling.min, max_instance_count=cfg.scaling.max
                ),
                containers=[container],
                volumes=volumes or None,
            ),
            traffics=[
                gcp.cloudrunv2.ServiceTrafficArgs(type="TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", percent=100)
            ],
            # The revision must not start before its identity can read the secrets it mounts.
            opts=pulumi.ResourceOptions(parent=self, depends_on=depends),
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

        self._alert_policies(name, cfg, project, svc_name, child)

        self.url = self.service.uri
        self.revision = self.service.latest_ready_revision
        self.service_account_email = self.service_account.email
        self.service_name = self.service.name
        self.register_outputs(
            {
                "url": self.url,
                "revision": self.revision,
                "service_account": self.service_account_email,
                "service_name": self.service_name,
            }
        )

    def _alert_policies(
        self, name: str, cfg: CloudRunConfig, project: str, svc_name: str, child: pulumi.ResourceOptions
    ) -> None:
        """Alert policies on 5xx ratio, p95 latency and instances at the maximum, notifying the email
        channels made for ``alerts.emails`` and the existing ``alerts.gcp_notification_channels``."""
        alarms = cfg.cloudrun.alarms
        channels: list[Any] = list(cfg.alerts.gcp_notification_channels)
        for i, email in enumerate(cfg.alerts.emails):
            channel = gcp.monitoring.NotificationChannel(
                f"{name}-alerts-email-{i}",
                project=project,
                display_name=f"{name} alerts: {email}",
                type="email",
                labels={"email_address": email},
                user_labels=gcp_labels(cfg),
                opts=child,
            )
            channels.append(channel.name)
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
                user_labels=gcp_labels(cfg),
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
            f"instance count at the maximum ({cfg.scaling.max})",
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
                threshold_value=cfg.scaling.max - 0.5,  # >= max instances
                duration=duration,
            ),
        )


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
def _repo_id(name: str) -> str:
    # Artifact Registry repository ids: lowercase letters, digits, '-', start with a letter, <= 63 chars.
    base = re.sub(r"[^a-z0-9-]", "-", name.lower()).strip("-")[:63].rstrip("-")
    return base if base[:1].isalpha() else f"r-{base}"[:63]


def image_registry(ctx: RegistryContext) -> Registry:
    """An Artifact Registry Docker repository in the service's region (immutable tags, cleanup policies).

    Cloud Run pulls from Artifact Registry in the same project without extra grants (the Cloud Run
    service agent has reader access), so no cross-cloud pull credentials are needed.
    """
    cfg = ctx.cfg
    assert isinstance(cfg, CloudRunConfig)
    project, region = cfg.gcp_project, cfg.gcp_region
    repo_id = _repo_id(ctx.name)
    repo = gcp.artifactregistry.Repository(
        f"{ctx.name}-repo",
        project=project,
        location=region,
        repository_id=repo_id,
        format="DOCKER",
        description=f"Images of {cfg.name}, deployed by digest (managed by Pulumi)",
        docker_config=gcp.artifactregistry.RepositoryDockerConfigArgs(immutable_tags=True),
        # Delete images older than 30 days unless they are among the newest keep_images (the running digest
        # always is), so the repository does not grow forever ($0.10/GB-month).
        cleanup_policy_dry_run=False,
        cleanup_policies=[
            gcp.artifactregistry.RepositoryCleanupPolicyArgs(
                id="keep-recent",
                action="KEEP",
                most_recent_versions=gcp.artifactregistry.RepositoryCleanupPolicyMostRecentVersionsArgs(
                    keep_count=cfg.image.keep_images
                ),
            ),
            gcp.artifactregistry.RepositoryCleanupPolicyArgs(
                id="delete-old",
                action="DELETE",
                condition=gcp.artifactregistry.RepositoryCleanupPolicyConditionArgs(
                    tag_state="ANY", older_than=f"{30 * 86400}s"
                ),
            ),
        ],
        labels={_label(k): _label(v) for k, v in ctx.tags.items()},
    )
    host = f"{region}-docker.pkg.dev"
    token = gcp.organizations.get_client_config_output().access_token
    return Registry(
        repository_url=repo.repository_id.apply(lambda rid: f"{host}/{project}/{rid}/{cfg.name}"),
        server=host,
        username="oauth2accesstoken",
        password=pulumi.Output.secret(token),
        repository_arn=repo.id,
    )


def deploy(ctx: DeployContext) -> dict[str, pulumi.Input[Any]]:
    """Create the Cloud Run component and return the stack outputs of contract section 2."""
    cfg = ctx.cfg
    assert isinstance(cfg, CloudRunConfig)
    svc = CloudRunService(
        ctx.name, CloudRunServiceArgs(config=cfg, tuning=ctx.tuning, image=ctx.image.ref), opts=ctx.opts
    )
    return {
        "target": "cloudrun",
        "url": svc.url,
        "image": ctx.image.ref,
        "health_path": cfg.health.liveness_path,
        "ready_path": cfg.health.readiness_path,
        "project": cfg.gcp_project,
        "region": cfg.gcp_region,
        "service_name": svc.service_name,
        "revision": svc.revision,
        "service_account": svc.service_account_email,
    }
