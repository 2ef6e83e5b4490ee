"""``app.database.migrate: release``: the migration as a deploy step that really waits and fails the deploy.

- ECS: the dynamic provider's create/update against moto (run_task, the tasks_stopped waiter, describe_tasks).
  moto reports every container with exit code 0 and an empty stoppedReason; the failure cases set the exit
  code and stoppedReason on moto's own task model right after run_task (what a real stopped task reports).
- Cloud Run: the execution provider over the real google-cloud-run clients talking to an in-process gRPC
  fake (RunJob answers a long-running operation whose metadata is the Execution, GetExecution polls it).
- Lambda: the check on the Invocation's result; under the recording mocks a failing result stops the alias.
- Every target under the recording mocks with ``migrate: release``: what is registered, with which image /
  task definition / env, and what the traffic-taking resource waits for.
- The dynamic providers pickle with dill (as the engine stores them) and load in a fresh interpreter.
What only a real ``pulumi up`` shows: the engine's provider host running them, real ECS/Cloud Run/Lambda.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import grpc
import pulumi
import pytest
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID

from fastapi_deploy import release_migrate as rm
from fastapi_deploy.awslambda import migrate as lambda_migrate
from fastapi_deploy.cloudrun import component as cr
from fastapi_deploy.cloudrun import migrate as cloudrun_migrate
from fastapi_deploy.ecs import migrate as ecs_migrate
from fastapi_deploy.mocks import ProgramResult, RecordedResource, RecordingMocks, run_program, unwrap
from fastapi_deploy.vps import component as vps
from tests.infra._ops_fakes import GrpcFake
from tests.infra.conftest import ROOT, edited_config

with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)
    from google.cloud import run_v2
    from google.cloud.run_v2.services.executions.transports import ExecutionsGrpcTransport
    from google.cloud.run_v2.services.jobs.transports import JobsGrpcTransport
    from google.longrunning import operations_pb2
    from google.protobuf import any_pb2, timestamp_pb2

REGION = "eu-west-1"
DYNAMIC_ECS = "pulumi-python:dynamic:EcsReleaseMigration"
DYNAMIC_CR = "pulumi-python:dynamic:CloudRunReleaseMigration"
INVOCATION = "aws:lambda/invocation:Invocation"
JOB = "gcp:cloudrunv2/job:Job"


# =============================================================================================== ECS (moto)
@pytest.fixture
def ecs_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """A VPC, a private subnet, the task security group, a cluster and a FARGATE awsvpc task definition."""
    for k, v in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        ec2 = boto3.client("ec2", region_name=REGION)
        ecs = boto3.client("ecs", region_name=REGION)
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        # As the component's VPC (enable_dns_hostnames); moto's awsvpc task path needs it too.
        ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.16.0/20")["Subnet"]["SubnetId"]
        sg = ec2.create_security_group(GroupName="task", Description="task", VpcId=vpc)["GroupId"]
        cluster = ecs.create_cluster(clusterName="api")["cluster"]["clusterArn"]
        td = ecs.register_task_definition(
            family="api",
            requiresCompatibilities=["FARGATE"],
            networkMode="awsvpc",
            cpu="512",
            memory="1024",
            containerDefinitions=[
                {
                    "name": "app",
                    "image": f"{DEFAULT_ACCOUNT_ID}.dkr.ecr.{REGION}.amazonaws.com/api@sha256:{'a' * 64}",
                    "essential": True,
                    "memory": 1024,  # moto sums container memory (the real definition sets it per task)
                    "command": ["gunicorn", "app.main:create_app()"],
                }
            ],
        )["taskDefinition"]["taskDefinitionArn"]
        yield {
            "cluster_arn": cluster,
            "task_definition_arn": td,
            "subnets": [subnet],
            "security_groups": [sg],
            "container_name": "app",
            "region": REGION,
            "log_group": "/ecs/api",
            "log_stream_prefix": "app",
            "timeout_s": 30,
            "poll_s": 0,
        }


def _moto_task_ends(monkeypatch: pytest.MonkeyPatch, exit_code: int | None, reason: str) -> None:
    """Make moto's next run_task produce a task whose app container exits with ``exit_code``."""
    from moto.ecs import models

    original = models.EC2ContainerServiceBackend.run_task

    def run_task(self: Any, *args: Any, **kwargs: Any) -> Any:
        tasks = original(self, *args, **kwargs)
        for t in tasks:
            t.stopped_reason = reason
            for c in t.containers:
                c.exitCode = exit_code  # type: ignore[assignment]  # moto types it int; None = never ran
        return tasks

    monkeypatch.setattr(models.EC2ContainerServiceBackend, "run_task", run_task)


def test_ecs_create_runs_the_new_task_definition_with_the_migrate_command_and_waits(
    ecs_env: dict[str, Any],
) -> None:
    props = ecs_migrate.EcsMigrationProvider().check({}, ecs_env).inputs
    result = ecs_migrate.EcsMigrationProvider().create(props)
    outs = result.outs or {}
    assert outs["exit_code"] == 0
    assert result.id == outs["task_arn"]
    task_id = outs["task_arn"].rsplit("/", 1)[-1]
    assert outs["log_stream"] == f"CloudWatch Logs group /ecs/api, stream app/app/{task_id}"
    task = boto3.client("ecs", region_name=REGION).describe_tasks(
        cluster=ecs_env["cluster_arn"], tasks=[outs["task_arn"]]
    )["tasks"][0]
    assert task["lastStatus"] == "STOPPED"  # the create returned only after the waiter saw it stop
    assert task["taskDefinitionArn"] == ecs_env["task_definition_arn"]
    assert task["launchType"] == "FARGATE"
    assert task["startedBy"] == ecs_migrate.STARTED_BY
    [override] = task["overrides"]["containerOverrides"]
    assert override["name"] == "app"
    assert override["command"] == ["python", "-m", "app.migrate"]
    env = {e["name"]: e["value"] for e in override["environment"]}
    assert env == {"MIGRATE_TIMEOUT": "10", "MIGRATE_ON_START": "false"}  # 30 s bound - 120 s margin -> 10
    eni = {d["name"]: d["value"] for d in task["attachments"][0]["details"]}
    assert eni["subnetId"] == ecs_env["subnets"][0]


def test_ecs_non_zero_exit_fails_with_exit_code_reason_and_log_stream(
    ecs_env: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    _moto_task_ends(monkeypatch, 3, "Essential container in task exited")
    with pytest.raises(rm.ReleaseMigrationError) as ei:
        ecs_migrate.EcsMigrationProvider().create(dict(ecs_env))
    msg = str(ei.value)
    assert "exit code 3" in msg
    assert "stoppedReason: Essential container in task exited" in msg
    assert "CloudWatch Logs group /ecs/api, stream app/app/" in msg
    assert "NOT rolled out" in msg


def test_ecs_container_that_never_ran_fails_naming_that(
    ecs_env: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    _moto_task_ends(monkeypatch, None, "CannotPullContainerError: pull access denied")
    with pytest.raises(rm.ReleaseMigrationError, match=r"never ran.*CannotPullContainerError"):
        ecs_migrate.EcsMigrationProvider().create(dict(ecs_env))


@pytest.fixture
def moto_tasks_never_stop() -> Iterator[None]:
    from moto.moto_api import state_manager

    state_manager.set_transition(model_name="ecs::task", transition={"progression": "manual", "times": 10**6})
    try:
        yield
    finally:
        state_manager.unset_transition(model_name="ecs::task")


def test_ecs_timeout_is_bounded_stops_the_task_and_fails(
    ecs_env: dict[str, Any], moto_tasks_never_stop: None
) -> None:
    import time

    props = {**ecs_env, "timeout_s": 2, "poll_s": 1}
    start = time.monotonic()
    with pytest.raises(rm.ReleaseMigrationError, match=r"did not stop within 2s") as ei:
        ecs_migrate.EcsMigrationProvider().create(props)
    assert time.monotonic() - start < 10
    task_arn = str(ei.value).split("task ", 1)[1].split(" ", 1)[0]
    task = boto3.client("ecs", region_name=REGION).describe_tasks(
        cluster=ecs_env["cluster_arn"], tasks=[task_arn]
    )["tasks"][0]
    assert task["desiredStatus"] == "STOPPED"  # not left migrating behind a failed deploy
    assert task["stoppedReason"].startswith(ecs_migrate.STARTED_BY)


def test_ecs_reruns_only_when_the_task_definition_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    runs: list[str] = []

    def fake_run(props: dict[str, Any]) -> dict[str, Any]:
        runs.append(props["task_definition_arn"])
        return {**props, "task_arn": "arn:task/2", "exit_code": 0, "log_stream": "s"}

    monkeypatch.setattr(ecs_migrate, "run_ecs_migration", fake_run)
    p = ecs_migrate.EcsMigrationProvider()
    old = {
        "cluster_arn": "c",
        "task_definition_arn": "td:1",
        "subnets": ["s"],
        "security_groups": ["g"],
        "container_name": "app",
        "region": REGION,
        "timeout_s": 900,
        "poll_s": 6,
        "task_arn": "arn:task/1",
        "exit_code": 0,
        "log_stream": "s1",
    }
    assert p.diff("id", old, dict(old)).changes is False  # a plain `pulumi up`: nothing runs
    same = p.update("id", old, {**old, "timeout_s": 600})
    assert runs == []
    assert (same.outs or {})["task_arn"] == "arn:task/1"
    assert p.diff("id", old, {**old, "task_definition_arn": "td:2"}).changes is True
    new = p.update("id", old, {**old, "task_definition_arn": "td:2"})
    assert runs == ["td:2"]
    assert (new.outs or {})["task_arn"] == "arn:task/2"


def test_ecs_check_names_missing_and_bad_inputs() -> None:
    res = ecs_migrate.EcsMigrationProvider().check({}, {"cluster_arn": "c", "timeout_s": -1})
    failed = {f.property: f.reason for f in res.failures}
    assert {
        "task_definition_arn",
        "subnets",
        "security_groups",
        "container_name",
        "region",
        "timeout_s",
    } <= set(failed)
    assert "timeout_s must be a number of seconds in (0, 3600], got -1" in failed["timeout_s"]
    too_long = ecs_migrate.EcsMigrationProvider().check({}, {"cluster_arn": "c", "timeout_s": 86400})
    assert "got 86400" in {f.property: f.reason for f in too_long.failures}["timeout_s"]


# ================================================================================== Cloud Run (gRPC fake)
class _OperationType:
    """Adapter so GrpcFake can serialize a raw google.longrunning Operation (not a proto-plus type)."""

    @staticmethod
    def serialize(msg: operations_pb2.Operation) -> bytes:
        return msg.SerializeToString()

    @staticmethod
    def deserialize(data: bytes) -> operations_pb2.Operation:
        return operations_pb2.Operation.FromString(data)


EXEC = "projects/p1/locations/europe-west1/jobs/api-migrate/executions/api-migrate-x7k2p"
LOG_URI = "https://console.cloud.google.com/logs/viewer?project=p1&advancedFilter=exec"


def _execution(*, done: bool, succeeded: int = 0, failed: int = 0, message: str = "") -> run_v2.Execution:
    ex = run_v2.Execution(name=EXEC, log_uri=LOG_URI, succeeded_count=succeeded, failed_count=failed)
    if done:
        ex.completion_time = timestamp_pb2.Timestamp(seconds=1_800_000_000)
        state = (
            run_v2.Condition.State.CONDITION_FAILED if failed else run_v2.Condition.State.CONDITION_SUCCEEDED
        )
        ex.conditions.append(run_v2.Condition(type_="Completed", state=state, message=message))
    return ex


def _cloudrun_fake(answers: list[run_v2.Execution]) -> GrpcFake:
    fake = GrpcFake()
    seq = iter(answers)
    last: list[run_v2.Execution] = []

    def run_job(req: run_v2.RunJobRequest) -> Any:
        if req.name != "projects/p1/locations/europe-west1/jobs/api-migrate":
            return grpc.StatusCode.NOT_FOUND, f"Resource '{req.name}' was not found"
        meta = any_pb2.Any()
        meta.Pack(run_v2.Execution.pb(run_v2.Execution(name=EXEC)))
        return operations_pb2.Operation(name=f"{req.name}/operations/1", done=False, metadata=meta)

    def get_execution(req: run_v2.GetExecutionRequest) -> Any:
        last[:] = [next(seq, last[0] if last else answers[-1])]
        return last[0]

    def cancel_execution(req: run_v2.CancelExecutionRequest) -> Any:
        return operations_pb2.Operation(name=f"{req.name}/operations/cancel", done=True)

    fake.add("google.cloud.run.v2.Jobs", "RunJob", run_job, run_v2.RunJobRequest, _OperationType)
    fake.add(
        "google.cloud.run.v2.Executions",
        "GetExecution",
        get_execution,
        run_v2.GetExecutionRequest,
        run_v2.Execution,
    )
    fake.add(
        "google.cloud.run.v2.Executions",
        "CancelExecution",
        cancel_execution,
        run_v2.CancelExecutionRequest,
        _OperationType,
    )
    return fake


CR_PROPS = {
    "project": "p1",
    "region": "europe-west1",
    "job": "api-migrate",
    "generation": "2",
    "image": "europe-west1-docker.pkg.dev/p1/app/api@sha256:" + "b" * 64,
    "timeout_s": 5,
    "poll_s": 0.01,
}


def _run_cloudrun(monkeypatch: pytest.MonkeyPatch, fake: GrpcFake, props: dict[str, Any]) -> Any:
    with fake.serve() as channel:
        monkeypatch.setattr(
            cloudrun_migrate,
            "_cloudrun_clients",
            lambda: (
                run_v2.JobsClient(transport=JobsGrpcTransport(channel=channel)),
                run_v2.ExecutionsClient(transport=ExecutionsGrpcTransport(channel=channel)),
            ),
        )
        return cloudrun_migrate.CloudRunMigrationProvider().create(props)


def test_cloudrun_executes_the_job_and_waits_for_success(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _cloudrun_fake(
        [_execution(done=False), _execution(done=False), _execution(done=True, succeeded=1)]
    )
    res = _run_cloudrun(monkeypatch, fake, dict(CR_PROPS))
    assert res.id == EXEC
    assert (res.outs or {})["log_uri"] == LOG_URI
    methods = [m for _s, m, _r in fake.calls]
    assert methods[0] == "RunJob"
    assert methods.count("GetExecution") == 3  # polled until completion, not fire-and-forget


def test_cloudrun_failed_execution_fails_with_its_message(monkeypatch: pytest.MonkeyPatch) -> None:
    msg = "Task api-migrate-x7k2p-task0 failed with message: The container exited with an error."
    fake = _cloudrun_fake([_execution(done=True, failed=1, message=msg)])
    with pytest.raises(rm.ReleaseMigrationError) as ei:
        _run_cloudrun(monkeypatch, fake, dict(CR_PROPS))
    text = str(ei.value)
    assert "1 failed" in text
    assert msg in text
    assert LOG_URI in text
    assert "NOT created" in text


def test_cloudrun_timeout_cancels_the_execution_and_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _cloudrun_fake([_execution(done=False)])
    with pytest.raises(rm.ReleaseMigrationError, match=r"did not complete within 0.2s"):
        _run_cloudrun(monkeypatch, fake, {**CR_PROPS, "timeout_s": 0.2})
    assert "CancelExecution" in [m for _s, m, _r in fake.calls]


def test_cloudrun_reruns_when_the_job_generation_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    runs: list[str] = []

    def fake_run(props: dict[str, Any]) -> dict[str, Any]:
        runs.append(props["generation"])
        return {**props, "execution": "e2", "log_uri": ""}

    monkeypatch.setattr(cloudrun_migrate, "run_cloudrun_migration", fake_run)
    p = cloudrun_migrate.CloudRunMigrationProvider()
    old = {**CR_PROPS, "execution": "e1", "log_uri": ""}
    assert p.diff("e1", old, dict(old)).changes is False
    assert (p.update("e1", old, {**old, "poll_s": 5}).outs or {})["execution"] == "e1"
    assert runs == []
    assert (p.update("e1", old, {**old, "generation": "3"}).outs or {})["execution"] == "e2"
    assert runs == ["3"]


# ================================================================================================ Lambda
def test_lambda_result_check_passes_only_an_ok_migrate_result() -> None:
    ok = json.dumps({"fastapi_deploy": "migrate", "ok": True, "msg": "migrations applied"})
    assert lambda_migrate.require_lambda_migration_ok([ok, "7"]) == "7"
    for bad in (
        json.dumps({"fastapi_deploy": "migrate", "ok": False, "error": "OperationalError"}),
        json.dumps({"statusCode": 404, "body": "{}"}),  # an image without the migrate event (Mangum answered)
        "null",
        "not json",
    ):
        with pytest.raises(rm.ReleaseMigrationError, match=r"version 7.*alias was NOT moved"):
            lambda_migrate.require_lambda_migration_ok([bad, "7"])


# ==================================================================================== programs under mocks
def _mocks_for(raw: dict[str, Any]) -> RecordingMocks:
    if "gcp:project" in raw:
        return RecordingMocks(gcp_project=raw["gcp:project"], gcp_region=raw["gcp:region"])
    return RecordingMocks(region=str(raw.get("aws:region") or "us-east-1"))


def _run(stack: str, mocks: RecordingMocks | None = None, **db: Any) -> ProgramResult:
    raw = edited_config(stack, database=db)
    return run_program(stack, raw, mocks=mocks or _mocks_for(raw))


def _one(result: ProgramResult, typ: str, suffix: str = "") -> RecordedResource:
    [r] = [r for r in result.by_type(typ) if r.name.endswith(suffix)]
    return r


@pytest.fixture(scope="module")
def ecs_release() -> ProgramResult:
    return _run("prod-ecs", migrate="release")


def test_ecs_release_registers_the_one_off_with_the_new_task_definition(ecs_release: ProgramResult) -> None:
    mig = _one(ecs_release, DYNAMIC_ECS)
    td = _one(ecs_release, "aws:ecs/taskDefinition:TaskDefinition")
    svc = _one(ecs_release, "aws:ecs/service:Service")
    cluster = _one(ecs_release, "aws:ecs/cluster:Cluster")
    assert mig.inputs["task_definition_arn"] == td.outputs["arn"]
    assert mig.inputs["cluster_arn"] == cluster.outputs["arn"]
    assert mig.inputs["container_name"] == json.loads(td.inputs["containerDefinitions"])[0]["name"]
    # Same network as the service's tasks.
    net = svc.inputs["networkConfiguration"]
    assert mig.inputs["subnets"] == net["subnets"]
    assert mig.inputs["security_groups"] == net["securityGroups"]
    assert mig.inputs["region"] == "us-east-1"
    assert mig.inputs["log_group"] == "/ecs/items-api-prod-ecs"
    # The service (new tasks taking traffic) waits for the migration.
    assert mig.urn in svc.dependencies
    env = {e["name"]: e["value"] for e in json.loads(td.inputs["containerDefinitions"])[0]["environment"]}
    assert env["MIGRATE_ON_START"] == "false"
    assert "MIGRATE_TIMEOUT" not in env


def test_default_mode_registers_no_release_step(run_stack: Any) -> None:
    for stack, typ in (("prod-ecs", DYNAMIC_ECS), ("prod-cloudrun", DYNAMIC_CR), ("prod-lambda", INVOCATION)):
        assert run_stack(stack).by_type(typ) == [], stack


def _cr_env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueSource")) for e in container["envs"]}


@pytest.fixture(scope="module")
def cloudrun_release() -> ProgramResult:
    return _run("prod-cloudrun", migrate="release")


def test_cloudrun_release_job_mirrors_the_service_and_gates_it(cloudrun_release: ProgramResult) -> None:
    job = _one(cloudrun_release, JOB)
    run = _one(cloudrun_release, DYNAMIC_CR)
    svc = _one(cloudrun_release, "gcp:cloudrunv2/service:Service")
    jt, st = job.inputs["template"]["template"], svc.inputs["template"]
    [jc], [sc] = jt["containers"], st["containers"]
    assert jc["image"] == sc["image"] == run.inputs["image"]
    assert jc["commands"] == ["python", "-m", "app.migrate"]
    assert jt["serviceAccount"] == st["serviceAccount"]
    assert jt["volumes"] == st["volumes"]
    assert jc["volumeMounts"] == sc["volumeMounts"]
    assert jt["maxRetries"] == 0
    job_env, svc_env = _cr_env(jc), _cr_env(sc)
    assert job_env.pop("MIGRATE_TIMEOUT") == str(rm.app_migrate_timeout_s(rm.DEFAULT_TIMEOUT_S))
    assert job_env == svc_env  # same plain env and the same secretKeyRefs
    assert svc_env["MIGRATE_ON_START"] == "false"
    assert run.inputs["job"] == job.outputs["name"]
    assert run.inputs["generation"] == job.outputs["generation"]
    assert run.inputs["project"] == "items-api-prod"
    assert run.inputs["region"] == "europe-west1"
    assert run.urn in svc.dependencies
    assert job.urn in run.dependencies


def test_cloudrun_job_inputs_parse_as_the_admin_apis_job(cloudrun_release: ProgramResult) -> None:
    job = _one(cloudrun_release, JOB)
    body = cr.run_v2_service_body(unwrap(job.inputs), "items-api-prod", "europe-west1")
    body["name"] = body["name"].replace("/services/", "/jobs/")
    parsed = run_v2.Job.from_json(json.dumps(body))  # an unknown or misspelt field raises
    assert parsed.template.template.containers[0].command == ["python", "-m", "app.migrate"]
    assert parsed.template.task_count == 1


class _FailingMigrationMocks(RecordingMocks):
    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        rid, out = super().new_resource(args)
        if args.typ == INVOCATION:
            out["result"] = json.dumps({"fastapi_deploy": "migrate", "ok": False, "error": "boom"})
        return rid, out


@pytest.mark.parametrize("provisioned", [2, None], ids=["provisioned", "release-only-alias"])
def test_lambda_release_invokes_the_new_version_before_the_alias_moves(provisioned: int | None) -> None:
    raw = edited_config("prod-lambda", database={"migrate": "release"})
    raw["fastapi-deploy:app"]["lambda"]["provisioned_concurrency"] = provisioned
    result = run_program("prod-lambda", raw, mocks=_mocks_for(raw))
    provisioned_configs = result.by_type(
        "aws:lambda/provisionedConcurrencyConfig:ProvisionedConcurrencyConfig"
    )
    assert len(provisioned_configs) == (1 if provisioned else 0)
    fn = _one(result, "aws:lambda/function:Function")
    inv = _one(result, INVOCATION)
    alias = _one(result, "aws:lambda/alias:Alias")
    assert fn.inputs["publish"] is True  # a version to invoke and an alias to move
    assert inv.inputs["qualifier"] == fn.outputs["version"]
    assert json.loads(inv.inputs["input"]) == {"fastapi_deploy": "migrate"}
    assert inv.inputs["triggers"]["image"] == fn.inputs["imageUri"]
    assert inv.urn in alias.dependencies
    assert alias.inputs["functionVersion"] == fn.outputs["version"]
    assert fn.inputs["environment"]["variables"]["MIGRATE_ON_START"] == "false"


@pytest.fixture
def fresh_loop_after() -> Iterator[None]:
    """A failed program leaves tasks holding its exception on the loop; the next program must not see them."""
    import asyncio

    from pulumi.runtime import settings

    from fastapi_deploy.mocks import ensure_event_loop

    loop = ensure_event_loop()
    previous = loop.get_exception_handler()

    def handler(lp: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if "release migration failed" in str(context.get("exception", "")):
            return  # the failed run's Outputs, reported as "never retrieved" when collected
        if previous is not None:
            previous(lp, context)
        else:
            lp.default_exception_handler(context)

    loop.set_exception_handler(handler)
    yield
    with settings.SETTINGS.lock:
        settings.SETTINGS.outputs.clear()  # the failed program's Output tasks: not the next program's
    settings.SETTINGS.rpc_manager.clear()


def test_lambda_failed_migration_result_fails_the_program_and_the_alias_never_registers(
    fresh_loop_after: None,
) -> None:
    raw = edited_config("prod-lambda", database={"migrate": "release"})
    mocks = _FailingMigrationMocks(region=str(raw["aws:region"]))
    with pytest.raises(Exception, match="release migration failed"):
        run_program("prod-lambda", raw, mocks=mocks)
    types = {r.type for r in mocks.monitor.recorded}  # type: ignore[attr-defined]
    assert INVOCATION in types
    assert "aws:lambda/alias:Alias" not in types


def test_vps_release_gate_migrates_before_starting_the_server() -> None:
    result = _run("prod-vps", migrate="release")
    gate = _one(result, "docker:index/container:Container", "-gate")
    script = gate.inputs["command"][2]
    first, rest = script.split("\n", 1)
    assert "python -m app.migrate" in first
    assert "exit 1" in first
    assert "gunicorn" in rest
    envs = unwrap(gate.inputs["envs"])
    assert "MIGRATE_ON_START=false" in envs


def test_vps_gate_script_stops_on_a_failed_migration(tmp_path: Path) -> None:
    marker = tmp_path / "server-started"
    server = [sys.executable, "-c", f"open({str(marker)!r}, 'w').close()"]
    fail = [sys.executable, "-c", "import sys; sys.exit(1)"]
    ok = [sys.executable, "-c", "pass"]
    script = vps.gate_script(9, "/ready", 1, attempts=1, server=server, migrate=fail)
    proc = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 1
    assert "release gate: migration failed" in proc.stderr
    assert not marker.exists()  # the server never started on an unmigrated schema
    script = vps.gate_script(9, "/ready", 1, attempts=1, server=server, migrate=ok)
    subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=30, check=False)
    assert marker.exists()  # migration passed: the gate went on to start the server


# ====================================================================================== dill (the state)
def test_providers_pickle_with_dill_and_load_in_a_fresh_interpreter() -> None:
    from pulumi.dynamic.dynamic import serialize_provider

    providers = (ecs_migrate.EcsMigrationProvider(), cloudrun_migrate.CloudRunMigrationProvider())
    assert [type(p).__module__ for p in providers] == [
        "fastapi_deploy.ecs.migrate",
        "fastapi_deploy.cloudrun.migrate",
    ]
    for provider in providers:
        blob = serialize_provider(provider)
        assert vars(provider) == {}  # nothing captured: no client, no credentials, no config
        code = (
            "import base64, sys, dill\n"
            "p = dill.loads(base64.b64decode(sys.stdin.read()))\n"
            "r = p.check({}, {'timeout_s': 0})\n"
            "print(type(p).__module__, type(p).__name__, sorted(f.property for f in r.failures))\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", code],
            input=blob,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
            cwd=ROOT,
            env={**os.environ},
        ).stdout.split()
        assert out[:2] == [type(provider).__module__, type(provider).__name__]
        assert "timeout_s" in " ".join(out[2:])
        # By reference to the importable class: the stored provider is small and carries no module code.
        assert len(base64.b64decode(blob)) < 2_000


#: The ``__provider`` deployed stacks hold: serialize_provider(...) of the two providers while they lived in
#: fastapi_deploy/release_migrate.py, before they moved to their target packages.
PROVIDERS_BEFORE_THE_MOVE = {
    "EcsMigrationProvider": (
        "gASVPgAAAAAAAACMHmZhc3RhcGlfZGVwbG95LnJlbGVhc2VfbWlncmF0ZZSMFEVjc01pZ3JhdGlvblByb3ZpZGVylJOUKYGULg=="
    ),
    "CloudRunMigrationProvider": (
        "gASVQwAAAAAAAACMHmZhc3RhcGlfZGVwbG95LnJlbGVhc2VfbWlncmF0ZZSMGUNsb3VkUnVuTWlncmF0aW9uUHJvdmlkZXKUk5QpgZQu"
    ),
}


def test_stored_providers_from_before_the_move_still_load_as_the_moved_classes() -> None:
    """`pulumi destroy`/`refresh` (Delete/Read) unpickle the STORED ``__provider``: the old module path must
    keep resolving, in the engine's fresh provider process, to the class at its new home."""
    code = (
        "import base64, json, sys, dill\n"
        "for blob in json.loads(sys.stdin.read()):\n"
        "    p = dill.loads(base64.b64decode(blob))\n"
        "    p.delete('id', {})\n"
        "    print(type(p).__module__, type(p).__name__)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        input=json.dumps(list(PROVIDERS_BEFORE_THE_MOVE.values())),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=ROOT,
    ).stdout.splitlines()
    assert out == [
        "fastapi_deploy.ecs.migrate EcsMigrationProvider",
        "fastapi_deploy.cloudrun.migrate CloudRunMigrationProvider",
    ]
    with pytest.raises(AttributeError, match="no attribute 'NoSuchProvider'"):
        _ = rm.NoSuchProvider


def test_the_move_alone_reruns_no_migration(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first `pulumi up` after upgrading sends the same inputs with a NEW ``__provider`` (the module path
    changed): the engine asks the provider's diff (with the new pickle), which must see no change."""
    from pulumi.dynamic.dynamic import serialize_provider

    def no_run(props: dict[str, Any]) -> dict[str, Any]:
        raise AssertionError("the migration must not run again")

    monkeypatch.setattr(ecs_migrate, "run_ecs_migration", no_run)
    monkeypatch.setattr(cloudrun_migrate, "run_cloudrun_migration", no_run)
    ecs_inputs = {
        "cluster_arn": "arn:aws:ecs:eu-west-1:123456789012:cluster/prod",
        "task_definition_arn": "arn:aws:ecs:eu-west-1:123456789012:task-definition/api:7",
        "subnets": ["subnet-1"],
        "security_groups": ["sg-1"],
        "container_name": "app",
        "region": REGION,
        "log_group": "/ecs/api",
        "log_stream_prefix": "app",
    }
    cases = [
        (
            ecs_migrate.EcsMigrationProvider(),
            ecs_inputs,
            {"task_arn": "arn:task/1", "exit_code": 0, "log_stream": "s"},
        ),
        (
            cloudrun_migrate.CloudRunMigrationProvider(),
            dict(CR_PROPS),
            {"execution": EXEC, "log_uri": LOG_URI},
        ),
    ]
    for provider, inputs, outs in cases:
        name = type(provider).__name__
        old_blob, new_blob = PROVIDERS_BEFORE_THE_MOVE[name], serialize_provider(provider)
        assert old_blob != new_blob, "the move does change the stored value"
        stored = {**provider.check({}, inputs).inputs, **outs, "__provider": old_blob}  # the state's outputs
        news = {**provider.check(stored, inputs).inputs, "__provider": new_blob}
        diff = provider.diff("id", stored, news)
        assert diff.changes is False, name
        assert not diff.replaces
        # Even an update forced by something else keeps the last run's record instead of running again.
        kept = provider.update("id", stored, news).outs or {}
        assert {k: kept[k] for k in outs} == outs
        # A real change still runs it.
        changed_key = "task_definition_arn" if "task_definition_arn" in inputs else "generation"
        assert provider.diff("id", stored, {**news, changed_key: "new"}).changes is True


def test_plan_masks_credential_shaped_env_in_the_migration_job() -> None:
    from fastapi_deploy import plan as plan_mod

    url = "postgresql+asyncpg://app:pw-in-clear@db:5432/app"
    inputs = {
        "template": {
            "template": {
                "containers": [{"envs": [{"name": "LEGACY_DB", "value": url}, {"name": "A", "value": "1"}]}]
            }
        }
    }
    shown = plan_mod._mask_env_entries("gcp:cloudrunv2/job:Job", inputs)
    envs = shown["template"]["template"]["containers"][0]["envs"]
    assert envs == [{"name": "LEGACY_DB", "value": plan_mod.SECRET_MARK}, {"name": "A", "value": "1"}]


def test_unknown_migrate_mode_is_refused_naming_the_key_before_anything_registers() -> None:
    from tests.infra.conftest import run_raw

    mocks, exc, _ = run_raw("prod-ecs", edited_config("prod-ecs", database={"migrate": "before_deploy"}))
    assert exc is not None
    assert "database.migrate" in str(exc)
    assert "'release'" in str(exc)  # the allowed values are listed
    assert "Traceback" not in str(exc)
    recorded = [r for r in mocks.monitor.recorded if r.type != "pulumi:pulumi:Stack"]  # type: ignore[attr-defined]
    assert recorded == []
