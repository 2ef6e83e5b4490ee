"""The ECS release migration (``app.database.migrate: release``; fastapi_deploy/release_migrate.py):
:func:`ecs_release_migration` is a dynamic resource whose create/update call ``ecs.run_task`` with the new
task definition (same cluster, subnets, security groups, FARGATE, the app container's command replaced by
:data:`~fastapi_deploy.release_migrate.MIGRATE_COMMAND`), wait for the task to stop (bounded) and fail
unless the container exited 0. It re-runs only when the task definition ARN changes (new image or env),
not on every ``up``.

The provider is pickled (dill, by reference to this module) into the Pulumi state: it captures no client
and no config; boto3 is imported inside the methods.
"""

from __future__ import annotations

import contextlib
import math
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

#: ``startedBy`` of the one-off task (<= 36 chars).
STARTED_BY = "fastapi-deploy-migrate"
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
        return CheckResult(news, common_checks(news, ECS_INPUTS))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        keys = [
            k
            for k in (*ECS_INPUTS, "timeout_s", "poll_s", "log_group", "log_stream_prefix")
            if olds.get(k) != news.get(k)
        ]
        # Not ``__provider``: a new pickle of this class (it moved here from release_migrate) is no
        # reason to run a migration again.
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
