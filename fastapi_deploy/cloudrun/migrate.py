"""The Cloud Run release migration (``app.database.migrate: release``; fastapi_deploy/release_migrate.py):
:func:`cloudrun_release_migration` registers a ``cloudrunv2.Job`` (same image, env, secrets, service
account and Cloud SQL volume as the service) plus a dynamic resource that executes it
(``JobsClient.run_job``), polls the execution (bounded) and fails with the execution's message. It re-runs
when the job's generation (image/env) changes.

The provider is pickled (dill, by reference to this module) into the Pulumi state: it captures no client
and no config; google-cloud-run is imported inside the methods.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import pulumi
from pulumi.dynamic import CheckResult, CreateResult, DiffResult, ResourceProvider, UpdateResult

from fastapi_deploy.release_migrate import (
    DEFAULT_POLL_S,
    DEFAULT_TIMEOUT_S,
    MIGRATE_COMMAND,
    ReleaseMigrationError,
    app_migrate_timeout_s,
    common_checks,
)

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
        return CheckResult(news, common_checks(news, CLOUDRUN_INPUTS))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        keys = [
            k
            for k in (*CLOUDRUN_INPUTS, "generation", "image", "timeout_s", "poll_s")
            if olds.get(k) != news.get(k)
        ]
        # Not ``__provider``: a new pickle of this class (it moved here from release_migrate) is no
        # reason to execute the job again.
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
