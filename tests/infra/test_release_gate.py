"""The release gate (`fastapi_deploy/release_gate.py`): its dynamic provider's create/update called directly
against moto (ECS, Lambda), botocore's Stubber where moto cannot represent a state, and the real
google-cloud-run clients over a loopback gRPC fake; the provider pickled as `pulumi.dynamic` pickles it and
loaded in a fresh interpreter; the resource registered under the recording mocks, wired into the real
target components, through `infra plan`'s policy, cost and plan-diff code."""

from __future__ import annotations

import base64
import datetime
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import grpc
import pytest
from botocore.stub import Stubber
from google.cloud import run_v2
from google.cloud.run_v2.services.revisions.transports.grpc import RevisionsGrpcTransport
from google.cloud.run_v2.services.services.transports.grpc import ServicesGrpcTransport
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ecs.models import ecs_backends
from pulumi.dynamic.dynamic import serialize_provider
from pulumi.runtime import rpc

from fastapi_deploy import release_gate as rg
from fastapi_deploy.awslambda import gate as lambda_gate
from fastapi_deploy.cloudrun import gate as cloudrun_gate
from fastapi_deploy.ecs import gate as ecs_gate
from fastapi_deploy.release_gate import ReleaseGateProvider, ReleaseNotLive
from tests.infra._ops_fakes import GrpcFake

REGION = "eu-west-1"
NEW = "sha256:" + "1" * 64
OLD = "sha256:" + "0" * 64
REPO = f"{DEFAULT_ACCOUNT_ID}.dkr.ecr.{REGION}.amazonaws.com/app"
TD = f"arn:aws:ecs:{REGION}:{DEFAULT_ACCOUNT_ID}:task-definition/api"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for k, v in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        yield


def _props(target: str, **extra: Any) -> dict[str, Any]:
    """What the provider receives: the builder's inputs (plus the engine's `__provider`)."""
    return {
        "__provider": "opaque",
        "target": target,
        "stack": "prod",
        "stack_resource": f"app-prod-{'function' if target == 'lambda' else 'service'}",
        "timeout_s": 5,
        "poll_interval_s": 0.05,
        "region": REGION,
        "live_release": None,
        "running_images": None,
        "summary": None,
        **extra,
    }


# ------------------------------------------------------------------------------------------------- ECS


def make_ecs(monkeypatch: pytest.MonkeyPatch, *, running: int = 2, tasks_of: str = "new") -> dict[str, str]:
    """Two revisions of the task definition (api:1 OLD image, api:2 NEW image) and a service deploying
    api:2. moto derives the deployment's rolloutState from MOTO_ECS_SERVICE_RUNNING at creation time."""
    monkeypatch.setenv("MOTO_ECS_SERVICE_RUNNING", str(running))
    ecs = boto3.client("ecs", region_name=REGION)
    ecs.create_cluster(clusterName="prod")
    arns = {}
    for rev, digest in (("old", OLD), ("new", NEW)):
        # bridge mode: moto's awsvpc task path crashes (see test_verify); the gate reads nothing network.
        arns[rev] = ecs.register_task_definition(
            family="api",
            requiresCompatibilities=["EC2"],
            networkMode="bridge",
            containerDefinitions=[{"name": "app", "image": f"{REPO}@{digest}", "memory": 512, "cpu": 256}],
        )["taskDefinition"]["taskDefinitionArn"]
    ecs.create_service(cluster="prod", serviceName="api", taskDefinition=arns["new"], desiredCount=2)
    if running:
        ecs.run_task(
            cluster="prod",
            taskDefinition=arns[tasks_of],
            count=running,
            launchType="FARGATE",
            group="service:api",
        )
    return arns


def _ecs_props(arns: dict[str, str], **extra: Any) -> dict[str, Any]:
    return _props("ecs", **{"cluster": "prod", "service_name": "api", "release": arns["new"], **extra})


def test_ecs_release_live_returns_the_running_task_definition(aws, monkeypatch) -> None:
    arns = make_ecs(monkeypatch)
    assert arns["new"] == f"{TD}:2"
    result = ReleaseGateProvider().create(_ecs_props(arns))
    assert result.outs is not None
    assert result.outs["live_release"] == f"{TD}:2"
    assert result.outs["running_images"] == [f"{REPO}@{NEW}"]
    assert "primary COMPLETED, running 2/2" in result.outs["summary"]
    assert result.id == "ecs:app-prod-service"


def _roll_back(reason: str) -> str:
    """What ECS shows after the circuit breaker rolled api:2 back: a new PRIMARY deployment of api:1
    (completed), the failed one ACTIVE with rolloutState FAILED, and the service events. moto has no
    circuit breaker (and writes no events), so the test sets the state its ECS model holds."""
    svc = ecs_backends[DEFAULT_ACCOUNT_ID][REGION].services["prod:api"]
    failed = dict(svc.deployments[0])
    failed.update(status="ACTIVE", rolloutState="FAILED", rolloutStateReason=reason, runningCount=0)
    primary = dict(svc.deployments[0])
    primary.update(id="ecs-svc/rollback", taskDefinition=f"{TD}:1")
    primary["rolloutStateReason"] = "ECS deployment ecs-svc/rollback completed."
    svc.deployments[:] = [primary, failed]
    event = f"(service api) rolling back to deployment ecs-svc/rollback. {reason}"
    svc.events.append({"id": "e1", "createdAt": datetime.datetime.now(datetime.UTC), "message": event})
    return event


def test_ecs_rolled_back_release_fails_naming_both_task_definitions_and_the_reason(aws, monkeypatch) -> None:
    arns = make_ecs(monkeypatch, tasks_of="old")
    reason = "ECS deployment circuit breaker: tasks failed to start."
    event = _roll_back(reason)
    start = time.monotonic()
    with pytest.raises(ReleaseNotLive) as err:
        ReleaseGateProvider().update("ecs:app-prod-service", {}, _ecs_props(arns, timeout_s=30))
    text = str(err.value)
    assert time.monotonic() - start < 10, "a rollback is final: fail at once, not after the timeout"
    assert "release gate: app-prod-service (stack prod) did not go live on ECS service api" in text
    assert f"expected task definition: {TD}:2" in text
    assert f"serving task definition:  {TD}:1" in text
    assert f"running image(s): {REPO}@{OLD}" in text
    assert "ECS rolled the release back" in text
    assert f"rolloutState FAILED: {reason}" in text
    assert event in text
    assert "pulumi up --refresh" in text
    assert "timed out" not in text


def test_ecs_gate_waits_through_the_rollout_and_catches_the_rollback_when_it_happens(
    aws, monkeypatch
) -> None:
    # The new deployment is still IN_PROGRESS when the gate starts; between two polls the circuit breaker
    # gives up and ECS makes the old task definition PRIMARY again (applied to moto's model in `sleep`).
    arns = make_ecs(monkeypatch, running=0)
    reason = "ECS deployment circuit breaker: tasks failed to start."
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 2:
            _roll_back(reason)

    with pytest.raises(ReleaseNotLive) as err:
        rg.run_gate(_ecs_props(arns, timeout_s=30), sleep=sleep)
    text = str(err.value)
    assert len(sleeps) == 2, "kept polling while the rollout was in progress, stopped at the rollback"
    assert f"serving task definition:  {TD}:1" in text
    assert f"rolloutState FAILED: {reason}" in text


def test_ecs_primary_rollout_failed_without_rollback_reports_ecs_reason(aws, monkeypatch) -> None:
    arns = make_ecs(monkeypatch, running=0)
    svc = ecs_backends[DEFAULT_ACCOUNT_ID][REGION].services["prod:api"]
    svc.deployments[0]["rolloutState"] = "FAILED"
    svc.deployments[0]["rolloutStateReason"] = "ECS deployment circuit breaker: tasks failed to start."
    with pytest.raises(ReleaseNotLive) as err:
        ReleaseGateProvider().create(_ecs_props(arns, timeout_s=30))
    assert "ECS deployment circuit breaker: tasks failed to start." in str(err.value)
    assert f"serving task definition:  {TD}:2" in str(err.value)


def test_ecs_rollout_that_never_settles_times_out_with_what_it_saw_last(aws, monkeypatch) -> None:
    arns = make_ecs(monkeypatch, running=0)
    start = time.monotonic()
    with pytest.raises(ReleaseNotLive) as err:
        ReleaseGateProvider().create(_ecs_props(arns, timeout_s=0.3))
    text = str(err.value)
    assert time.monotonic() - start < 5, "the wait is bounded by timeout_s"
    assert "timed out after 0.3 s waiting for the rollout to settle" in text
    assert "last seen: ECS api: 1 deployment(s), primary IN_PROGRESS, running 0/2" in text
    assert f"expected task definition: {TD}:2" in text


def test_ecs_unknown_service_fails_naming_it(aws, monkeypatch) -> None:
    arns = make_ecs(monkeypatch)
    with pytest.raises(ReleaseNotLive, match="service nope not found in prod"):
        ReleaseGateProvider().create(_ecs_props(arns, service_name="nope"))


# ---------------------------------------------------------------------------------------------- Lambda


def make_lambda() -> tuple[str, str]:
    """Function `api` with versions 1 and 2 and the alias `live` still on 1."""
    role = boto3.client("iam").create_role(RoleName="fn", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    lam = boto3.client("lambda", region_name=REGION)
    lam.create_function(
        FunctionName="api", Role=role, PackageType="Image", Code={"ImageUri": f"{REPO}@{OLD}"}
    )
    v1 = lam.publish_version(FunctionName="api")["Version"]
    lam.create_alias(FunctionName="api", Name="live", FunctionVersion=v1)
    lam.update_function_code(FunctionName="api", ImageUri=f"{REPO}@{NEW}")
    v2 = lam.publish_version(FunctionName="api")["Version"]
    return v1, v2


def _lambda_props(version: str, **extra: Any) -> dict[str, Any]:
    # No `image`: moto's ResolvedImageUri is a digest it makes up, never the one deployed.
    return _props("lambda", **{"function_name": "api", "alias": "live", "release": version, **extra})


def test_lambda_alias_on_the_published_version_is_live(aws) -> None:
    _, v2 = make_lambda()
    boto3.client("lambda", region_name=REGION).update_alias(
        FunctionName="api", Name="live", FunctionVersion=v2
    )
    result = ReleaseGateProvider().create(_lambda_props(v2))
    assert result.outs is not None
    assert result.outs["live_release"] == "2"
    assert "Lambda api:2 (alias live): State Active, LastUpdateStatus Successful" in result.outs["summary"]


def test_lambda_alias_not_moved_fails_naming_both_versions(aws) -> None:
    v1, v2 = make_lambda()
    with pytest.raises(ReleaseNotLive) as err:
        ReleaseGateProvider().update("lambda:app-prod-function", {}, _lambda_props(v2, timeout_s=30))
    text = str(err.value)
    assert "did not go live on Lambda function api alias live" in text
    assert f"expected version: {v2}" in text
    assert f"serving version:  {v1}" in text
    assert f"alias live points at version {v1}, not {v2}" in text
    assert f"version {v2}: State Active LastUpdateStatus Successful" in text  # the version's own state


def _stub_lambda(monkeypatch: pytest.MonkeyPatch, config: dict[str, Any]) -> None:
    """moto always reports State Active: botocore's Stubber (checked against the Lambda API model) plays a
    Failed version through a real client; the gate's client factory returns it."""
    client = boto3.client("lambda", region_name=REGION)
    stub = Stubber(client)
    stub.add_response(
        "get_alias", {"Name": "live", "FunctionVersion": "2"}, {"FunctionName": "api", "Name": "live"}
    )
    base = {"FunctionName": "api", "PackageType": "Image", "Version": "2"}
    code = {"RepositoryType": "ECR", "ImageUri": f"{REPO}@{NEW}", "ResolvedImageUri": f"{REPO}@{NEW}"}
    stub.add_response(
        "get_function",
        {"Configuration": base | config, "Code": code},
        {"FunctionName": "api", "Qualifier": "2"},
    )
    stub.activate()
    monkeypatch.setattr(lambda_gate, "aws_client", lambda service, region: client)


def test_lambda_published_version_failed_reports_lambdas_reason(monkeypatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    _stub_lambda(
        monkeypatch,
        {
            "State": "Failed",
            "StateReasonCode": "ImageAccessDenied",
            "StateReason": "Lambda does not have permission to access the ECR image.",
        },
    )
    with pytest.raises(ReleaseNotLive) as err:
        ReleaseGateProvider().create(_lambda_props("2", image=f"{REPO}@{NEW}"))
    assert "ImageAccessDenied: Lambda does not have permission to access the ECR image." in str(err.value)
    assert "State Failed" in str(err.value)


# ------------------------------------------------------------------------------------------- Cloud Run

SVC = "projects/p1/locations/europe-west1/services/api"
REV2 = f"{SVC}/revisions/api-00002-abc"
REV1 = f"{SVC}/revisions/api-00001-xyz"
CS = run_v2.Condition.State
LATEST = run_v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST
PINNED = run_v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION
IMAGE = f"europe-west1-docker.pkg.dev/p1/app/api@{NEW}"


def _service(
    *,
    created: str = REV2,
    ready_rev: str = REV2,
    ready: Any = CS.CONDITION_SUCCEEDED,
    traffic: list[run_v2.TrafficTargetStatus] | None = None,
    reconciling: bool = False,
    message: str = "",
) -> run_v2.Service:
    return run_v2.Service(
        name=SVC,
        reconciling=reconciling,
        latest_created_revision=created,
        latest_ready_revision=ready_rev,
        terminal_condition=run_v2.Condition(type_="Ready", state=ready, message=message),
        traffic_statuses=traffic
        if traffic is not None
        else [run_v2.TrafficTargetStatus(type_=LATEST, percent=100)],
    )


def _cloudrun(
    monkeypatch: pytest.MonkeyPatch, services: list[run_v2.Service], revisions: dict[str, run_v2.Revision]
) -> GrpcFake:
    fake = GrpcFake()
    answers = iter(services)
    last: list[run_v2.Service] = []

    def get_service(req: run_v2.GetServiceRequest) -> Any:
        if req.name != SVC:
            return grpc.StatusCode.NOT_FOUND, f"Resource '{req.name}' was not found"
        last[:] = [next(answers, last[0] if last else services[-1])]
        return last[0]

    def get_revision(req: run_v2.GetRevisionRequest) -> Any:
        return revisions.get(req.name) or (grpc.StatusCode.NOT_FOUND, "no such revision")

    fake.add(
        "google.cloud.run.v2.Services", "GetService", get_service, run_v2.GetServiceRequest, run_v2.Service
    )
    fake.add(
        "google.cloud.run.v2.Revisions",
        "GetRevision",
        get_revision,
        run_v2.GetRevisionRequest,
        run_v2.Revision,
    )
    return fake


def _revision(name: str, image: str = IMAGE, failed_message: str | None = None) -> run_v2.Revision:
    conditions = []
    if failed_message:
        conditions.append(
            run_v2.Condition(type_="ContainerHealthy", state=CS.CONDITION_FAILED, message=failed_message)
        )
    return run_v2.Revision(name=name, containers=[run_v2.Container(image=image)], conditions=conditions)


def _run_cloudrun(monkeypatch: pytest.MonkeyPatch, fake: GrpcFake, props: dict[str, Any]) -> dict[str, Any]:
    with fake.serve() as channel:
        monkeypatch.setattr(
            cloudrun_gate,
            "cloudrun_clients",
            lambda region: (
                run_v2.ServicesClient(transport=ServicesGrpcTransport(channel=channel)),
                run_v2.RevisionsClient(transport=RevisionsGrpcTransport(channel=channel)),
            ),
        )
        result = ReleaseGateProvider().create(props)
    assert result.outs is not None
    return result.outs


def _cr_props(**extra: Any) -> dict[str, Any]:
    base = {"project": "p1", "service_name": "api", "release": REV2, "image": IMAGE}
    return _props("cloudrun", **{**base, "region": "europe-west1", **extra})


def test_cloudrun_new_revision_serving_100_is_live_after_reconciling(monkeypatch) -> None:
    fake = _cloudrun(
        monkeypatch,
        [
            _service(ready_rev=REV1, ready=CS.CONDITION_RECONCILING, reconciling=True),
            _service(),
        ],
        {REV2: _revision(REV2), REV1: _revision(REV1, "old")},
    )
    outs = _run_cloudrun(monkeypatch, fake, _cr_props())
    assert outs["live_release"] == "api-00002-abc"
    assert outs["running_images"] == [IMAGE]
    assert "serving 100%" in outs["summary"]


def test_cloudrun_traffic_kept_on_an_older_revision_fails_with_the_split(monkeypatch) -> None:
    traffic = [
        run_v2.TrafficTargetStatus(type_=PINNED, revision="api-00001-xyz", percent=100),
        run_v2.TrafficTargetStatus(type_=LATEST, percent=0),
    ]
    fake = _cloudrun(monkeypatch, [_service(traffic=traffic)], {REV2: _revision(REV2)})
    with pytest.raises(ReleaseNotLive) as err:
        _run_cloudrun(monkeypatch, fake, _cr_props(timeout_s=30))
    text = str(err.value)
    assert "did not go live on Cloud Run service api in p1/europe-west1" in text
    assert "expected revision: api-00002-abc" in text
    assert "serving revision:  api-00001-xyz" in text
    assert "traffic: 100% -> revision api-00001-xyz" in text
    assert "traffic: 0% -> the latest ready revision" in text
    assert "timed out" not in text, "a settled service serving another revision is final"


def test_cloudrun_revision_that_never_became_ready_reports_its_condition(monkeypatch) -> None:
    message = "The user-provided container failed the configured startup probe checks."
    fake = _cloudrun(
        monkeypatch,
        [
            _service(
                ready_rev=REV1, ready=CS.CONDITION_FAILED, message="Revision 'api-00002-abc' is not ready"
            )
        ],
        {REV2: _revision(REV2, failed_message=message), REV1: _revision(REV1, "old")},
    )
    with pytest.raises(ReleaseNotLive) as err:
        _run_cloudrun(monkeypatch, fake, _cr_props())
    text = str(err.value)
    assert "serving revision:  api-00001-xyz" in text
    assert f"revision api-00002-abc ContainerHealthy: {message}" in text
    assert "an older revision is still the one serving" in text


def test_cloudrun_tagged_release_is_live_when_its_tag_routes_to_it(monkeypatch) -> None:
    traffic = [
        run_v2.TrafficTargetStatus(type_=PINNED, revision="api-00001-xyz", percent=100),
        run_v2.TrafficTargetStatus(type_=PINNED, revision="api-00002-abc", percent=0, tag="candidate"),
    ]
    fake = _cloudrun(monkeypatch, [_service(traffic=traffic)], {REV2: _revision(REV2)})
    outs = _run_cloudrun(monkeypatch, fake, _cr_props(traffic_tag="candidate"))
    assert outs["live_release"] == "api-00002-abc"
    assert "tag candidate -> api-00002-abc" in outs["summary"]


def test_cloudrun_newer_revision_by_someone_else_fails(monkeypatch) -> None:
    rev3 = f"{SVC}/revisions/api-00003-new"
    fake = _cloudrun(monkeypatch, [_service(created=rev3, ready_rev=rev3)], {rev3: _revision(rev3)})
    with pytest.raises(ReleaseNotLive, match="latest created revision is api-00003-new, not api-00002-abc"):
        _run_cloudrun(monkeypatch, fake, _cr_props())


# ------------------------------------------------------------------------------------ provider contract


def test_diff_updates_only_when_the_release_identity_changes() -> None:
    p = ReleaseGateProvider()
    old = _props("ecs", cluster="prod", service_name="api", release=f"{TD}:1")
    assert p.diff("id", old, {**old, "release": f"{TD}:2"}).changes is True
    # preview: the new task definition's ARN is not known yet
    assert p.diff("id", old, {**old, "release": rpc.UNKNOWN}).changes is True
    # a new pickle of the provider, another timeout or interval: nothing to wait for
    same = {**old, "__provider": "other", "timeout_s": 900, "poll_interval_s": 1}
    assert p.diff("id", old, same).changes is False
    assert not p.diff("id", old, {**old, "release": f"{TD}:2"}).replaces


def test_check_refuses_unusable_inputs_but_not_unknown_ones() -> None:
    p = ReleaseGateProvider()
    bad = p.check({}, _props("ecs", cluster="prod", service_name="", release=f"{TD}:1", timeout_s=99999))
    reasons = {f.property: f.reason for f in bad.failures}
    assert reasons == {
        "service_name": "service_name is required for a ecs release gate",
        "timeout_s": f"timeout_s must be in (0, {rg.MAX_TIMEOUT_S}] seconds, not 99999",
    }
    unknown = p.check({}, _props("ecs", cluster=rpc.UNKNOWN, service_name="api", release=rpc.UNKNOWN))
    assert unknown.failures == []
    assert p.check({}, _props("vps", release="x")).failures[0].property == "target"


def test_delete_and_read_touch_nothing(monkeypatch) -> None:
    def no_client(*_: Any) -> Any:
        raise AssertionError("delete/read must not call the platform")

    monkeypatch.setattr(ecs_gate, "aws_client", no_client)
    monkeypatch.setattr(lambda_gate, "aws_client", no_client)
    monkeypatch.setattr(cloudrun_gate, "cloudrun_clients", no_client)
    p = ReleaseGateProvider()
    props = _props("ecs", cluster="prod", service_name="api", release=f"{TD}:1")
    p.delete("id", props)
    read = p.read("id", props)
    assert (read.id, read.outs) == ("id", props)


def test_provider_pickles_with_dill_and_loads_in_a_fresh_interpreter() -> None:
    # Exactly what pulumi.dynamic stores in the state, then what the dynamic provider process does with it.
    blob = serialize_provider(ReleaseGateProvider())
    assert len(base64.b64decode(blob)) < 200, "pickled by reference: no captured clients or closures"
    code = (
        "import base64, dill, sys\n"
        f"p = dill.loads(base64.b64decode({blob!r}))\n"
        "d = p.diff('id', {'release': 'a'}, {'release': 'b'})\n"
        "print(type(p).__module__, type(p).__name__, d.changes)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/", timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["fastapi_deploy.release_gate", "ReleaseGateProvider", "True"]


#: `__provider` of every gate in the stacks deployed before the platforms' pollers moved to their target
#: packages (fastapi_deploy/<target>/gate.py): serialize_provider(ReleaseGateProvider()) at that commit.
GATE_PROVIDER_BEFORE_THE_MOVE = (
    "gASVOgAAAAAAAACMG2Zhc3RhcGlfZGVwbG95LnJlbGVhc2VfZ2F0ZZSME1JlbGVhc2VHYXRlUHJvdmlkZXKUk5QpgZQu"
)


def test_deployed_gates_see_no_diff_after_the_pollers_moved() -> None:
    # The provider class stayed where it was: the stored pickle is byte for byte what a new one is, and
    # the platform-specific code it reaches through the registry is not part of it.
    assert serialize_provider(ReleaseGateProvider()) == GATE_PROVIDER_BEFORE_THE_MOVE
    old = {**_props("ecs", cluster="prod", service_name="api", release=f"{TD}:2")}
    old["__provider"] = GATE_PROVIDER_BEFORE_THE_MOVE
    stored = {**old, "live_release": f"{TD}:2", "running_images": [f"{REPO}@{NEW}"], "summary": "ok"}
    new = {**old, "__provider": serialize_provider(ReleaseGateProvider())}
    assert ReleaseGateProvider().diff("ecs:app-prod-service", stored, new).changes is False
    # A target-specific identity input still re-runs it (nothing is ignored but the timing and the pickle).
    assert ReleaseGateProvider().diff("id", stored, {**new, "target_group_arn": "tg-2"}).changes is True


def test_the_provider_finds_each_platform_through_the_registry() -> None:
    from fastapi_deploy import registry

    gated = {t.key: rg.platform(t.key) for t in registry.all_targets()}
    assert {k for k, p in gated.items() if p is not None} == {"ecs", "cloudrun", "lambda"}
    assert rg.gated_targets() == ("ecs", "cloudrun", "lambda")
    assert gated["ecs"] is ecs_gate.PLATFORM
    assert gated["lambda"] is lambda_gate.PLATFORM
    assert gated["cloudrun"] is cloudrun_gate.PLATFORM
    assert gated["vps"] is None  # the Docker provider itself waits for a healthy container there


@pytest.fixture
def moto_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """moto as a real HTTP endpoint (its backends are this process's, so tests can still set state)."""
    from moto.server import ThreadedMotoServer

    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(k, v)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", url)
    try:
        yield url
    finally:
        server.stop()
        ecs_backends.reset()


def _dynamic_provider_create(props: dict[str, Any], endpoint: str) -> Any:
    """Run the SDK's dynamic provider host (`python -m pulumi.dynamic`, what the CLI starts for dynamic
    resources) in a child process and send it the engine's Create: the pickled provider travels in
    `__provider`, is unpickled there, and its create polls the AWS endpoint with the child's credentials."""
    import asyncio
    import os

    from pulumi.runtime.proto import provider_pb2, provider_pb2_grpc

    env = {**os.environ, "AWS_ENDPOINT_URL": endpoint, "AWS_DEFAULT_REGION": REGION}
    proc = subprocess.Popen(
        [sys.executable, "-u", "-m", "pulumi.dynamic"], stdout=subprocess.PIPE, cwd="/", env=env
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        loop = asyncio.new_event_loop()
        try:
            struct = loop.run_until_complete(
                rpc.serialize_properties(
                    {**props, "__provider": serialize_provider(ReleaseGateProvider())}, {}
                )
            )
        finally:
            loop.close()
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = provider_pb2_grpc.ResourceProviderStub(channel)
            urn = "urn:pulumi:prod::fastapi-deploy::pulumi-python:dynamic:ReleaseGate::gate"
            try:
                resp = stub.Create(provider_pb2.CreateRequest(urn=urn, properties=struct), timeout=60)
            except grpc.RpcError as exc:
                return exc
            return resp.id, rpc.deserialize_properties(resp.properties)
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_the_sdks_dynamic_provider_process_runs_the_gate_live_and_rolled_back(
    moto_server, monkeypatch
) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    arns = make_ecs(monkeypatch)
    props = {k: v for k, v in _ecs_props(arns).items() if k != "__provider" and v is not None}
    gate_id, outs = _dynamic_provider_create(props, moto_server)
    assert gate_id == "ecs:app-prod-service"
    assert outs["live_release"] == f"{TD}:2"
    assert "primary COMPLETED, running 2/2" in outs["summary"]

    _roll_back("ECS deployment circuit breaker: tasks failed to start.")
    err = _dynamic_provider_create(props, moto_server)
    assert isinstance(err, grpc.RpcError)
    # The SDK returns the traceback; the gate's message is its last part.
    details = err.details()
    assert "ReleaseNotLive: release gate: app-prod-service (stack prod) did not go live" in details
    assert f"serving task definition:  {TD}:1" in details


def test_timeouts_follow_the_targets_own_timings() -> None:
    from fastapi_deploy.tuning import CLOUDRUN_STARTUP_BUDGET_S

    assert ecs_gate.ecs_timeout_s(60, 60, 15, 2) == ecs_gate.ECS_TASK_START_MARGIN_S + 60 + 60 + 30
    assert ecs_gate.ecs_timeout_s(100_000, 60) == rg.MAX_TIMEOUT_S
    assert cloudrun_gate.cloudrun_timeout_s() == CLOUDRUN_STARTUP_BUDGET_S + cloudrun_gate.CLOUDRUN_MARGIN_S


def test_builder_refuses_a_bad_plain_input_before_registering() -> None:
    with pytest.raises(ValueError, match=r"release gate g: timeout_s must be in \(0, 3600\] seconds, not 0"):
        rg.ReleaseGate("g", _props("ecs", cluster="prod", service_name="api", release="td", timeout_s=0))


# -------------------------------------------------------------- under the recording mocks / `infra plan`
#
# The components register the gate themselves (wait_for_release, default true). To compare a plan with and
# without it, the gate builder in the component's module is replaced by a no-op.
_BUILDERS = {
    "ecs": ("fastapi_deploy.ecs.component", "ecs_gate"),
    "cloudrun": ("fastapi_deploy.cloudrun.component", "cloudrun_gate"),
    "lambda": ("fastapi_deploy.awslambda.component", "lambda_gate"),
}


def _unwired(monkeypatch: pytest.MonkeyPatch, target: str) -> None:
    import importlib

    module, builder = _BUILDERS[target]
    monkeypatch.setattr(importlib.import_module(module), builder, lambda *a, **k: None)


GATE_TYPE = "pulumi-python:dynamic:ReleaseGate"


def test_ecs_gate_registers_with_the_task_definition_arn_after_the_service(monkeypatch) -> None:
    from fastapi_deploy.config import load_stack_file
    from fastapi_deploy.mocks import SECRET_MARK, mask_secrets, run_stack_file
    from fastapi_deploy.tuning import for_platform

    path = ROOT / "stacks" / "Pulumi.prod-ecs.yaml"
    result = run_stack_file(path)
    gate = result.one(GATE_TYPE)
    service = result.one("aws:ecs/service:Service")
    task_def = result.one("aws:ecs/taskDefinition:TaskDefinition")
    cluster = result.one("aws:ecs/cluster:Cluster")
    inputs = mask_secrets(gate.inputs)
    tuning = for_platform(load_stack_file(path))
    assert tuning.lb_health is not None
    assert tuning.deregistration_delay_s
    assert tuning.health_check_grace_s
    assert inputs == {
        "__provider": SECRET_MARK,
        "target": "ecs",
        "stack": "prod-ecs",
        "stack_resource": service.name,
        "timeout_s": ecs_gate.ECS_TASK_START_MARGIN_S
        + tuning.health_check_grace_s
        + tuning.lb_health.interval_s * tuning.lb_health.healthy_threshold
        + tuning.deregistration_delay_s,
        "poll_interval_s": 10,
        "region": "us-east-1",
        "cluster": cluster.outputs["arn"],
        "service_name": service.outputs["name"],
        "release": task_def.outputs["arn"],
        "target_group_arn": result.one("aws:lb/targetGroup:TargetGroup").outputs["arn"],
        "image": result.outputs["image"],
        # the outputs (live_release, running_images, summary) are registered unknown: not inputs
    }
    assert service.urn in gate.dependencies, "the gate must wait for the service update"
    assert gate.parent == service.parent, "a child of the component, like the service"


@pytest.mark.parametrize("target", ["cloudrun", "lambda"])
def test_cloudrun_and_lambda_gates_register_with_the_revision_or_version(monkeypatch, target) -> None:
    from fastapi_deploy.mocks import run_stack_file

    result = run_stack_file(ROOT / "stacks" / f"Pulumi.prod-{target}.yaml")
    gate = result.one(GATE_TYPE)
    if target == "cloudrun":
        service = result.one("gcp:cloudrunv2/service:Service")
        assert gate.inputs["release"] == service.outputs["latestCreatedRevision"]
        assert gate.inputs["project"] == service.inputs["project"]
        assert service.urn in gate.dependencies
    else:
        alias = result.one("aws:lambda/alias:Alias")
        fn = result.one("aws:lambda/function:Function")
        assert gate.inputs["release"] == fn.outputs["version"] == alias.inputs["functionVersion"]
        assert gate.inputs["alias"] == alias.inputs["name"]
        assert gate.inputs["image"] == fn.inputs["imageUri"]
        assert alias.urn in gate.dependencies
    assert 0 < gate.inputs["timeout_s"] <= rg.MAX_TIMEOUT_S


@pytest.mark.parametrize("stack", ["prod-ecs", "prod-cloudrun", "prod-lambda"])
def test_infra_plan_policy_cost_and_plan_diff_take_the_gate_in_stride(monkeypatch, stack) -> None:
    from fastapi_deploy import plandiff
    from fastapi_deploy.plan import plan_stack

    path = ROOT / "stacks" / f"Pulumi.{stack}.yaml"
    after = plan_stack(path)
    with monkeypatch.context() as m:
        _unwired(m, stack.split("-", 1)[1])
        before = plan_stack(path)
    assert before.error is None
    assert after.error is None, after.error
    gates = [r for r in after.resources if r["type"] == GATE_TYPE]
    assert len(gates) == 1
    assert "__provider" in gates[0]["inputs"]
    assert gates[0]["inputs"]["__provider"] == "[secret]"  # the pickled provider never shows in a plan
    # No policy finding and no cost line for it; nothing else changed.
    assert after.violations == before.violations
    assert after.cost["monthly_total"] == before.cost["monthly_total"]
    assert not any(GATE_TYPE in json.dumps(line) for line in after.cost.get("lines", []))
    doc = plandiff.diff_plans({stack: before.as_json()}, [after.as_json()], all_stacks=False)
    (diff,) = doc["stacks"]
    assert [r["type"] for r in diff["added"]] == [GATE_TYPE]
    assert diff["removed"] == []
    assert diff["changed"] == []
    assert doc["monthly_delta"] == 0
    assert f"`{GATE_TYPE}`" in plandiff.render_markdown(doc)
