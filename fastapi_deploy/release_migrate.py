"""``app.database.migrate: release``: the deploy runs ``python -m app.migrate`` once, with the NEW image,
secrets and network, before the new release takes traffic; a failed migration fails ``pulumi up``.

- ECS: :func:`ecs_release_migration` — a dynamic resource whose create/update call ``ecs.run_task`` with the
  new task definition (same cluster, subnets, security groups, FARGATE, the app container's command
  replaced by :data:`MIGRATE_COMMAND`), wait for the task to stop (bounded) and fail unless the container
  exited 0. It re-runs only when the task definition ARN changes (new image or env), not on every ``up``.
- Cloud Run: :func:`cloudrun_release_migration` — a ``cloudrunv2.Job`` (same image, env, secrets, service
  account and Cloud SQL volume as the service) plus a dynamic resource that executes it
  (``JobsClient.run_job``), polls the execution (bounded) and fails with the execution's message. It
  re-runs when the job's generation (image/env) changes.
- Lambda: :func:`lambda_release_migration` — ``aws.lambda_.Invocation`` of the NEW published version with
  ``{"fastapi_deploy": "migrate"}`` (app/lambda_handler.py) and the version the alias may move to, known
  only once the invocation's result says the migration succeeded.
- VPS: the release-gate container runs the migration first (fastapi_deploy/vps/component.py gate_script).

Dynamic providers are pickled (dill) into the Pulumi state and run in the engine's provider host: they
capture no client and no config; boto3 / google-cloud-run are imported inside the methods, and region,
project and timeouts are explicit inputs.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from typing import Any

import pulumi
from pulumi.dynamic import CheckFailure, CheckResult, CreateResult, DiffResult, ResourceProvider, UpdateResult

#: The one-off command (the image's own module; same as a hand-run migration).
MIGRATE_COMMAND = ["python", "-m", "app.migrate"]
#: The Lambda event app/lambda_handler.py answers with a migration (and only this exact shape).
LAMBDA_MIGRATE_EVENT = {"fastapi_deploy": "migrate"}
#: Default bound on the whole release step (start-up + migration), seconds.
DEFAULT_TIMEOUT_S = 900
#: The longest a release migration may hold `pulumi up` (an hour), whatever a caller passes.
MAX_TIMEOUT_S = 3600
#: Start-up budget inside the bound (Fargate provisioning + image pull; Cloud Run job start): the app's own
#: MIGRATE_TIMEOUT is the bound minus this, so app.migrate gives up with a readable error first.
STARTUP_MARGIN_S = 120
#: Seconds between status polls.
DEFAULT_POLL_S = 6.0
#: ``startedBy`` / label on what the deploy runs (<= 36 chars for ECS).
STARTED_BY = "fastapi-deploy-migrate"


class ReleaseMigrationError(Exception):
    """The release migration failed or did not finish in time; the message says where to look."""


def app_migrate_timeout_s(timeout_s: float) -> int:
    """MIGRATE_TIMEOUT for the one-off: the step's bound minus the start-up margin (at least 10 s)."""
    return max(10, int(timeout_s) - STARTUP_MARGIN_S)


def _common_checks(news: dict[str, Any], required: tuple[str, ...]) -> list[CheckFailure]:
    failures = [CheckFailure(k, f"{k} is required") for k in required if news.get(k) in (None, "", [])]
    timeout, poll = news.get("timeout_s"), news.get("poll_s")
    if not isinstance(timeout, int | float) or not 0 < timeout <= MAX_TIMEOUT_S:
        failures.append(
            CheckFailure(
                "timeout_s", f"timeout_s must be a number of seconds in (0, {MAX_TIMEOUT_S}], got {timeout!r}"
            )
        )
    if not isinstance(poll, int | float) or poll < 0:
        failures.append(CheckFailure("poll_s", f"poll_s must be a number of seconds >= 0, got {poll!r}"))
    return failures


# ------------------------------------------------------------------------------------------------- ECS
ECS_INPUTS = (
    "cluster_arn",
    "task_definition_arn",
    "subnets",
    "security_groups",
    "container_name",
    "region",
)


def run_ecs_migration(props: dict[str, Any]) -> dict[str, Any]:
    """Run the one-off task, wait until it stopped (bounded), return its outputs or raise."""
    import boto3
    from botocore.exceptions import WaiterError

    ecs = boto3.client("ecs", region_name=props["region"])
    cluster, container = props["cluster_arn"], props["container_name"]
    timeout_s, poll_s = float(props["timeout_s"]), float(props["poll_s"])
    resp = ecs.run_task(
        cluster=cluster,
        taskDefinition=props["task_definition_arn"],
        launchType="FARGATE",
        count=1,
        startedBy=STARTED_BY,
        networkConfiguration={
            "awsvpcConfiguration": {
                "subnets": list(props["subnets"]),
                "securityGroups": list(props["security_groups"]),
                "assignPublicIp": "DISABLED",
            }
        },
        overrides={
            "containerOverrides": [
                {
                    "name": container,
                    "command": list(MIGRATE_COMMAND),
                    "environment": [
                        {"name": "MIGRATE_TIMEOUT", "value": str(app_migrate_timeout_s(timeout_s))},
                        {"name": "MIGRATE_ON_START", "value": "false"},
                    ],
                }
            ]
        },
    )
    if not resp.get("tasks"):
        reasons = "; ".join(f"{f.get('arn', '?')}: {f.get('reason', '?')}" for f in resp.get("failures", []))
        raise ReleaseMigrationError(
            f"release migration: ecs.run_task started no task for {props['task_definition_arn']} "
            f"({reasons or 'no reason given'})"
        )
    task_arn = resp["tasks"][0]["taskArn"]
    task_id = task_arn.rsplit("/", 1)[-1]
    stream = _ecs_log_stream(props, task_id)
    delay = max(math.ceil(poll_s), 1)  # the waiter sleeps whole seconds; 0 would call the API back to back
    attempts = max(1, math.ceil(timeout_s / delay))
    try:
        ecs.get_waiter("tasks_stopped").wait(
            cluster=cluster, tasks=[task_arn], WaiterConfig={"Delay": delay, "MaxAttempts": attempts}
        )
    except WaiterError as exc:
        # Do not leave a migration running behind a failed deploy; PostgreSQL rolls back its open DDL.
        with contextlib.suppress(Exception):  # best effort; the error below is what matters
            ecs.stop_task(
                cluster=cluster, task=task_arn, reason=f"{STARTED_BY}: timed out after {timeout_s:g}s"
            )
        raise ReleaseMigrationError(
            f"release migration: task {task_arn} did not stop within {timeout_s:g}s ({exc}); it was "
            f"stopped and the deploy was halted before the new release took traffic. Logs: {stream}"
        ) from None
    described = ecs.describe_tasks(cluster=cluster, tasks=[task_arn]).get("tasks") or []
    if not described:  # ECS forgets stopped tasks after about an hour; not within a bounded wait
        raise ReleaseMigrationError(
            f"release migration: task {task_arn} stopped but ECS no longer describes it; check {stream}"
        )
    task = described[0]
    cont: Any = next((c for c in task.get("containers", []) if c.get("name") == container), {})
    exit_code = cont.get("exitCode")
    if exit_code != 0:
        reason = task.get("stoppedReason") or "none"
        detail = f"; container reason: {cont['reason']}" if cont.get("reason") else ""
        code = "no exit code (the container never ran)" if exit_code is None else f"exit code {exit_code}"
        raise ReleaseMigrationError(
            f"release migration failed: `{' '.join(MIGRATE_COMMAND)}` in task {task_arn} ended with {code}; "
            f"stoppedReason: {reason}{detail}. The new release was NOT rolled out. Logs: {stream}"
        )
    return {**props, "task_arn": task_arn, "exit_code": 0, "log_stream": stream}


def _ecs_log_stream(props: dict[str, Any], task_id: str) -> str:
    group, prefix = props.get("log_group"), props.get("log_stream_prefix")
    stream = (
        f"{prefix}/{props['container_name']}/{task_id}"
        if prefix
        else f"<prefix>/{props['container_name']}/{task_id}"
    )
    return f"CloudWatch Logs group {group or '<the task definition awslogs-group>'}, stream {stream}"


class EcsMigrationProvider(ResourceProvider):
    """Dynamic provider: the ECS one-off migration task (module docstring)."""

    serialize_as_secret_always = False

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        news = {"timeout_s": DEFAULT_TIMEOUT_S, "poll_s": DEFAULT_POLL_S, **news}
        return CheckResult(news, _common_checks(news, ECS_INPUTS))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        keys = [
            k
            for k in (*ECS_INPUTS, "timeout_s", "poll_s", "log_group", "log_stream_prefix")
            if olds.get(k) != news.get(k)
        ]
        return DiffResult(changes=bool(keys), replaces=[], stables=[], delete_before_replace=False)

    def create(self, props: dict[str, Any]) -> CreateResult:
        outs = run_ecs_migration(props)
        return CreateResult(id_=outs["task_arn"], outs=outs)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        if olds.get("task_definition_arn") != news.get("task_definition_arn"):
            return UpdateResult(outs=run_ecs_migration(news))
        # Same task definition (image + env): nothing new to migrate; keep the last run's record.
        return UpdateResult(
            outs={**news, **{k: olds.get(k) for k in ("task_arn", "exit_code", "log_stream")}}
        )


class EcsReleaseMigration(pulumi.dynamic.Resource, name="EcsReleaseMigration"):
    """The ECS one-off migration task of one release (re-run when the task definition changes)."""

    task_arn: pulumi.Output[str]
    exit_code: pulumi.Output[int]
    log_stream: pulumi.Output[str]

    def __init__(self, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(
            EcsMigrationProvider(),
            name,
            {**props, "task_arn": None, "exit_code": None, "log_stream": None},
            opts,
        )


def ecs_release_migration(
    name: str,
    *,
    cluster_arn: pulumi.Input[str],
    task_definition_arn: pulumi.Input[str],
    subnets: pulumi.Input[list[pulumi.Input[str]]] | list[pulumi.Input[str]],
    security_groups: pulumi.Input[list[pulumi.Input[str]]] | list[pulumi.Input[str]],
    container_name: str,
    region: pulumi.Input[str],
    log_group: pulumi.Input[str] | None = None,
    log_stream_prefix: str | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    poll_s: float = DEFAULT_POLL_S,
    opts: pulumi.ResourceOptions | None = None,
) -> EcsReleaseMigration:
    """The one-off ``python -m app.migrate`` task of this release; make the ECS service depend on it."""
    return EcsReleaseMigration(
        f"{name}-migrate",
        {
            "cluster_arn": cluster_arn,
            "task_definition_arn": task_definition_arn,
            "subnets": subnets,
            "security_groups": security_groups,
            "container_name": container_name,
            "region": region,
            "log_group": log_group,
            "log_stream_prefix": log_stream_prefix,
            "timeout_s": timeout_s,
            "poll_s": poll_s,
        },
        opts,
    )


# ------------------------------------------------------------------------------------------- Cloud Run
CLOUDRUN_INPUTS = ("project", "region", "job")


def _cloudrun_clients() -> tuple[Any, Any]:
    """(JobsClient, ExecutionsClient) with Application Default Credentials; tests replace this function."""
    from google.cloud import run_v2

    return run_v2.JobsClient(), run_v2.ExecutionsClient()


def run_cloudrun_migration(props: dict[str, Any]) -> dict[str, Any]:
    """Execute the job, wait for the execution to complete (bounded), return outputs or raise."""
    from google.cloud import run_v2

    jobs, executions = _cloudrun_clients()
    job = f"projects/{props['project']}/locations/{props['region']}/jobs/{props['job']}"
    timeout_s, poll_s = float(props["timeout_s"]), float(props["poll_s"])
    operation = jobs.run_job(request=run_v2.RunJobRequest(name=job))
    execution = operation.metadata
    name = getattr(execution, "name", "")
    if not name:
        raise ReleaseMigrationError(f"release migration: run_job on {job} returned no execution")
    deadline = time.monotonic() + timeout_s
    while True:
        execution = executions.get_execution(request=run_v2.GetExecutionRequest(name=name))
        if execution.completion_time:
            break
        if time.monotonic() >= deadline:
            with contextlib.suppress(Exception):  # best effort; the error below is what matters
                executions.cancel_execution(request=run_v2.CancelExecutionRequest(name=name))
            raise ReleaseMigrationError(
                f"release migration: execution {name} did not complete within {timeout_s:g}s; it was "
                f"cancelled and the deploy was halted before the new revision was created. "
                f"Logs: {execution.log_uri or 'Cloud Logging, resource cloud_run_job ' + props['job']}"
            )
        time.sleep(poll_s)
    ok = execution.succeeded_count >= 1 and not execution.failed_count and not execution.cancelled_count
    if not ok:
        messages = [
            f"{c.type_}: {c.message}"
            for c in execution.conditions
            if c.message and c.state != run_v2.Condition.State.CONDITION_SUCCEEDED
        ]
        raise ReleaseMigrationError(
            f"release migration failed: `{' '.join(MIGRATE_COMMAND)}` execution {name} ended with "
            f"{execution.failed_count} failed / {execution.cancelled_count} cancelled task(s)"
            f"{': ' + '; '.join(messages) if messages else ''}. The new revision was NOT created. "
            f"Logs: {execution.log_uri or 'Cloud Logging, resource cloud_run_job ' + props['job']}"
        )
    return {**props, "execution": name, "log_uri": execution.log_uri}


class CloudRunMigrationProvider(ResourceProvider):
    """Dynamic provider: one execution of the migration job per job generation (module docstring)."""

    serialize_as_secret_always = False

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        news = {"timeout_s": DEFAULT_TIMEOUT_S, "poll_s": DEFAULT_POLL_S, **news}
        return CheckResult(news, _common_checks(news, CLOUDRUN_INPUTS))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        keys = [
            k
            for k in (*CLOUDRUN_INPUTS, "generation", "image", "timeout_s", "poll_s")
            if olds.get(k) != news.get(k)
        ]
        return DiffResult(changes=bool(keys), replaces=[], stables=[], delete_before_replace=False)

    def create(self, props: dict[str, Any]) -> CreateResult:
        outs = run_cloudrun_migration(props)
        return CreateResult(id_=outs["execution"], outs=outs)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        if any(olds.get(k) != news.get(k) for k in ("project", "region", "job", "generation", "image")):
            return UpdateResult(outs=run_cloudrun_migration(news))
        return UpdateResult(outs={**news, "execution": olds.get("execution"), "log_uri": olds.get("log_uri")})


class CloudRunReleaseMigration(pulumi.dynamic.Resource, name="CloudRunReleaseMigration"):
    """One execution of the migration job per job generation (new image or env)."""

    execution: pulumi.Output[str]
    log_uri: pulumi.Output[str]

    def __init__(self, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(
            CloudRunMigrationProvider(), name, {**props, "execution": None, "log_uri": None}, opts
        )


def cloudrun_job_name(service_name: str) -> str:
    """The migration job's name: ``<service>-migrate`` within Cloud Run's 63 characters."""
    return f"{service_name[:55].rstrip('-')}-migrate"


def cloudrun_release_migration(
    name: str,
    *,
    project: str,
    region: str,
    service_name: str,
    image: pulumi.Input[str],
    service_account: pulumi.Input[str],
    env: dict[str, str],
    secret_env: dict[str, tuple[str, str]],
    cpu: str,
    memory: str,
    execution_environment: str,
    labels: dict[str, str],
    cloud_sql_instance: str | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    poll_s: float = DEFAULT_POLL_S,
    opts: pulumi.ResourceOptions | None = None,
) -> tuple[Any, CloudRunReleaseMigration]:
    """The migration job (same image/env/secrets/identity/Cloud SQL as the service) and its execution.

    ``secret_env``: env name -> (secret, version), as the service's ``secretKeyRef``s. Make the Cloud Run
    service depend on the returned execution resource, so no revision is created before it succeeded.
    """
    import pulumi_gcp as gcp

    envs = [gcp.cloudrunv2.JobTemplateTemplateContainerEnvArgs(name=k, value=v) for k, v in env.items()]
    envs.append(
        gcp.cloudrunv2.JobTemplateTemplateContainerEnvArgs(
            name="MIGRATE_TIMEOUT", value=str(app_migrate_timeout_s(timeout_s))
        )
    )
    for env_name, (secret, version) in sorted(secret_env.items()):
        envs.append(
            gcp.cloudrunv2.JobTemplateTemplateContainerEnvArgs(
                name=env_name,
                value_source=gcp.cloudrunv2.JobTemplateTemplateContainerEnvValueSourceArgs(
                    secret_key_ref=gcp.cloudrunv2.JobTemplateTemplateContainerEnvValueSourceSecretKeyRefArgs(
                        secret=secret, version=version
                    )
                ),
            )
        )
    volumes, mounts = None, None
    if cloud_sql_instance:
        volumes = [
            gcp.cloudrunv2.JobTemplateTemplateVolumeArgs(
                name="cloudsql",
                cloud_sql_instance=gcp.cloudrunv2.JobTemplateTemplateVolumeCloudSqlInstanceArgs(
                    instances=[cloud_sql_instance]
                ),
            )
        ]
        mounts = [
            gcp.cloudrunv2.JobTemplateTemplateContainerVolumeMountArgs(
                name="cloudsql", mount_path="/cloudsql"
            )
        ]
    job_name = cloudrun_job_name(service_name)
    parent = opts or pulumi.ResourceOptions()
    job = gcp.cloudrunv2.Job(
        f"{name}-migrate-job",
        name=job_name,
        project=project,
        location=region,
        labels=labels,
        deletion_protection=False,
        template=gcp.cloudrunv2.JobTemplateArgs(
            task_count=1,
            parallelism=1,
            labels=labels,
            template=gcp.cloudrunv2.JobTemplateTemplateArgs(
                service_account=service_account,
                execution_environment=execution_environment,
                # A failed migration is reported, not retried behind the deploy's back.
                max_retries=0,
                timeout=f"{int(timeout_s)}s",
                containers=[
                    gcp.cloudrunv2.JobTemplateTemplateContainerArgs(
                        name="app",
                        image=image,
                        commands=list(MIGRATE_COMMAND),
                        envs=envs,
                        resources=gcp.cloudrunv2.JobTemplateTemplateContainerResourcesArgs(
                            limits={"cpu": cpu, "memory": memory}
                        ),
                        volume_mounts=mounts,
                    )
                ],
                volumes=volumes,
            ),
        ),
        opts=parent,
    )
    run = CloudRunReleaseMigration(
        f"{name}-migrate",
        {
            "project": project,
            "region": region,
            "job": job.name,
            "generation": job.generation,
            "image": image,
            "timeout_s": timeout_s,
            "poll_s": poll_s,
        },
        pulumi.ResourceOptions.merge(parent, pulumi.ResourceOptions(depends_on=[job])),
    )
    return job, run


# ---------------------------------------------------------------------------------------------- Lambda
def require_lambda_migration_ok(values: list[Any]) -> str:
    """The version the alias may move to, once the invocation's result says the migration succeeded."""
    result, version = values
    try:
        parsed = json.loads(result) if isinstance(result, str) else result
    except ValueError:
        parsed = None
    if (
        not isinstance(parsed, dict)
        or parsed.get("fastapi_deploy") != "migrate"
        or parsed.get("ok") is not True
    ):
        shown = result if isinstance(result, str) else json.dumps(result, default=str)
        raise ReleaseMigrationError(
            f"release migration failed on Lambda version {version}: the migrate event returned "
            f"{shown[:500]}; "
            "the alias was NOT moved (see the function's log group for the `app.migrate` line)"
        )
    return str(version)


def lambda_release_migration(
    name: str,
    *,
    function_name: pulumi.Input[str],
    version: pulumi.Input[str],
    image: pulumi.Input[str],
    opts: pulumi.ResourceOptions | None = None,
) -> tuple[Any, pulumi.Output[str]]:
    """Invoke the NEW published version with the migrate event; return (invocation, checked version).

    Use the checked version as the alias's ``function_version`` (and ``depends_on`` the invocation): the
    alias can only move once the result said ``ok``. A migration that fails makes the handler raise, the
    invocation's create fails and nothing is recorded, so the next ``pulumi up`` retries it. A new version
    (new image or env) replaces the invocation (``triggers``), so every release migrates once.
    """
    import pulumi_aws as aws

    invocation = aws.lambda_.Invocation(
        f"{name}-migrate",
        function_name=function_name,
        qualifier=version,
        input=json.dumps(LAMBDA_MIGRATE_EVENT),
        triggers={"version": version, "image": image},
        opts=opts,
    )
    checked = pulumi.Output.all(invocation.result, version).apply(require_lambda_migration_ok)
    return invocation, checked
