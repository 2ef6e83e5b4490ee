"""`infra status | logs | rollback`: what an operator sees.

Real boto3 clients against moto (ECS, Lambda, ECR, CloudWatch Logs), real google-cloud-run clients over a
loopback gRPC fake, the Cloud Logging REST API served by a loopback HTTP fake, and a scripted fake `ssh`
on PATH for the VPS. moto runs no ECS scheduler: where a test needs the service's deployment to move to
the new task definition (what ECS does after UpdateService), an `after-call` hook on the client sets it.
"""

from __future__ import annotations

import contextlib
import json
import stat
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import grpc
import pytest
import requests
from google.cloud import run_v2
from google.cloud.run_v2.services.revisions.transports.grpc import RevisionsGrpcTransport
from google.cloud.run_v2.services.services.transports.grpc import ServicesGrpcTransport
from google.longrunning import operations_pb2
from google.protobuf import any_pb2, timestamp_pb2
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ecs.models import ecs_backends

from fastapi_deploy import cli as infra_cli
from fastapi_deploy import operate
from fastapi_deploy.operate import OpsClients, logs_cli, parse_since, rollback_cli, status_cli
from fastapi_deploy.ops.findings import blocking, ok
from tests.infra._ops_fakes import GrpcFake, path_with

REGION = "eu-west-1"
REPO = f"{DEFAULT_ACCOUNT_ID}.dkr.ecr.{REGION}.amazonaws.com/app"
UNKNOWN = "sha256:" + "f" * 64


def _lines() -> tuple[list[str], Any]:
    out: list[str] = []
    return out, out.append


def _no_sleep(_: float) -> None:
    return None


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


def _push(ecr: Any, tag: str) -> str:
    """Push a distinct manifest to the ECR repository `app`; return its digest."""
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "size": 7,
            "digest": "sha256:" + tag.encode().hex().ljust(64, "0")[:64],
        },
        # moto derives the digest from the layer digests: one distinct layer per tag
        "layers": [
            {
                "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                "size": 1,
                "digest": "sha256:" + tag.encode().hex().rjust(64, "a")[-64:],
            }
        ],
    }
    image = ecr.put_image(repositoryName="app", imageManifest=json.dumps(manifest), imageTag=tag)["image"]
    return str(image["imageId"]["imageDigest"])


# ------------------------------------------------------------------------------------------------- ECS


def make_ecs(monkeypatch: pytest.MonkeyPatch, *, serving: int = 2, revisions: int = 2) -> dict[str, Any]:
    """ECR repo `app` with v1, v2 (v3...); task definition revisions api:1..N naming them; the service on
    api:`serving`; the stack outputs say the newest image was deployed."""
    monkeypatch.setenv("MOTO_ECS_SERVICE_RUNNING", "2")
    ecr = boto3.client("ecr", region_name=REGION)
    ecr.create_repository(repositoryName="app")
    digests = [_push(ecr, f"v{i + 1}") for i in range(revisions)]
    ec2, elbv2 = boto3.client("ec2", region_name=REGION), boto3.client("elbv2", region_name=REGION)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    tg = elbv2.create_target_group(
        Name="api-tg", Protocol="HTTP", Port=8000, VpcId=vpc, TargetType="ip", HealthCheckPath="/health"
    )["TargetGroups"][0]["TargetGroupArn"]
    elbv2.register_targets(TargetGroupArn=tg, Targets=[{"Id": f"10.0.1.{i}", "Port": 8000} for i in (10, 11)])
    ecs = boto3.client("ecs", region_name=REGION)
    ecs.create_cluster(clusterName="prod")
    for d in digests:
        # bridge mode: moto's awsvpc task path crashes (see test_verify.py)
        ecs.register_task_definition(
            family="api",
            requiresCompatibilities=["EC2"],
            networkMode="bridge",
            containerDefinitions=[{"name": "app", "image": f"{REPO}@{d}", "memory": 512, "cpu": 256}],
        )
    ecs.create_service(cluster="prod", serviceName="api", taskDefinition=f"api:{serving}", desiredCount=2)
    ecs.run_task(
        cluster="prod", taskDefinition=f"api:{serving}", count=2, launchType="FARGATE", group="service:api"
    )
    return {
        "target": "ecs",
        "url": "https://api.example.com",
        "image": f"{REPO}@{digests[-1]}",
        "health_path": "/health",
        "ready_path": "/ready",
        "region": REGION,
        "cluster_name": "prod",
        "service_name": "api",
        "log_group": "/ecs/api",
        "target_group_arn": tg,
        "load_balancer_dns": "api-123.eu-west-1.elb.amazonaws.com",
        "_digests": digests,
    }


def _ecs_clients() -> OpsClients:
    """Real clients; after UpdateService the PRIMARY deployment moves to the new task definition, as
    ECS's scheduler does (moto only records the service's taskDefinition)."""
    ecs = boto3.client("ecs", region_name=REGION)

    def scheduler(parsed: dict[str, Any], **_: Any) -> None:
        svc = ecs_backends[DEFAULT_ACCOUNT_ID][REGION].services["prod:api"]
        svc.deployments[0]["taskDefinition"] = parsed["service"]["taskDefinition"]

    ecs.meta.events.register("after-call.ecs.UpdateService", scheduler)
    cache = {"ecs": ecs}
    return OpsClients(aws=lambda s, r: cache.get(s) or boto3.client(s, region_name=r))


def _args(outputs: dict[str, Any], *extra: str) -> list[str]:
    clean = {k: v for k, v in outputs.items() if not k.startswith("_")}
    return ["--outputs-json", json.dumps(clean), *extra]


def test_ecs_status_in_sync_shows_counts_deployment_and_digests(aws, monkeypatch) -> None:
    outputs = make_ecs(monkeypatch)
    out, emit = _lines()
    rc = status_cli(_args(outputs), clients=_ecs_clients(), out=emit)
    text = "\n".join(out)
    assert rc == 0, text
    assert "tasks:           desired 2, running 2, pending 0" in text
    assert "last deployment: ecs-svc/" in text
    assert "COMPLETED (ECS deployment" in text
    assert "task definition api:2" in text
    assert f"running image:   {REPO}@{outputs['_digests'][1]} (= deployed)" in text
    assert "ROLLBACK" not in text


def test_ecs_status_detects_a_rollback(aws, monkeypatch) -> None:
    # The circuit breaker (or someone) put the service back on api:1 while the stack deployed v2.
    outputs = make_ecs(monkeypatch, serving=1)
    out, emit = _lines()
    rc = status_cli(_args(outputs), clients=_ecs_clients(), out=emit)
    text = "\n".join(out)
    assert rc == 1
    assert f"running image:   {REPO}@{outputs['_digests'][0]} (DIFFERS)" in text
    assert f"ROLLBACK DETECTED: the PRIMARY deployment (api:1) runs {outputs['_digests'][0][:19]}" in text
    assert f"not the deployed {outputs['_digests'][1][:19]}" in text


@pytest.mark.parametrize(
    ("draining", "rc", "expected"),
    [
        (True, 0, "rollout in progress: tasks of the previous deployment are still running"),
        (False, 1, "ROLLBACK DETECTED: a running task runs"),
    ],
)
def test_ecs_status_old_tasks_during_a_rollout_are_not_a_rollback(
    aws, monkeypatch, draining, rc, expected
) -> None:
    outputs = make_ecs(monkeypatch)
    ecs = boto3.client("ecs", region_name=REGION)
    for task in ecs.list_tasks(cluster="prod")["taskArns"]:
        ecs.stop_task(cluster="prod", task=task)
    ecs.run_task(cluster="prod", taskDefinition="api:1", count=2, launchType="FARGATE", group="service:api")
    if draining:  # the previous deployment (moto keeps only one: add it to moto's model) still has tasks
        svc = ecs_backends[DEFAULT_ACCOUNT_ID][REGION].services["prod:api"]
        svc.deployments.append(
            dict(svc.deployments[0], id="ecs-svc/old", status="ACTIVE", taskDefinition="api:1")
        )
    out, emit = _lines()
    assert status_cli(_args(outputs), clients=_ecs_clients(), out=emit) == rc
    text = "\n".join(out)
    assert f"running image:   {REPO}@{outputs['_digests'][0]} (DIFFERS)" in text
    assert expected in text


def test_ecs_rollback_moves_the_service_to_the_previous_revision_and_waits(aws, monkeypatch) -> None:
    outputs = make_ecs(monkeypatch, revisions=3, serving=3)
    out, emit = _lines()
    rc = rollback_cli(
        _args(outputs, "--timeout", "5", "--interval", "0.01"), clients=_ecs_clients(), out=emit
    )
    text = "\n".join(out)
    assert rc == 0, text
    assert "rolling back service api: api:3" in text
    assert "-> api:2" in text
    svc = boto3.client("ecs", region_name=REGION).describe_services(cluster="prod", services=["api"])
    assert svc["services"][0]["taskDefinition"].endswith("api:2")
    assert "rolled back: service api runs api:2 and is stable" in text
    assert "pulumi up --refresh" in text  # the drift warning


def test_ecs_rollback_to_a_digest_picks_that_revision(aws, monkeypatch) -> None:
    outputs = make_ecs(monkeypatch, revisions=3, serving=3)
    first = outputs["_digests"][0]
    out, emit = _lines()
    rc = rollback_cli(
        _args(outputs, "--to", first, "--timeout", "5", "--interval", "0.01"),
        clients=_ecs_clients(),
        out=emit,
    )
    assert rc == 0, "\n".join(out)
    svc = boto3.client("ecs", region_name=REGION).describe_services(cluster="prod", services=["api"])
    assert svc["services"][0]["taskDefinition"].endswith("api:1")


def test_ecs_rollback_to_an_unknown_digest_is_refused_and_changes_nothing(aws, monkeypatch, capsys) -> None:
    outputs = make_ecs(monkeypatch)
    rc = rollback_cli(_args(outputs, "--to", UNKNOWN), clients=_ecs_clients(), out=_lines()[1])
    err = capsys.readouterr().err
    assert rc == 2
    assert f"no ACTIVE revision of task definition family api runs {UNKNOWN}" in err
    assert "Traceback" not in err
    svc = boto3.client("ecs", region_name=REGION).describe_services(cluster="prod", services=["api"])
    assert svc["services"][0]["taskDefinition"].endswith("api:2")


def test_ecs_rollback_refuses_an_image_the_registry_no_longer_holds(aws, monkeypatch, capsys) -> None:
    outputs = make_ecs(monkeypatch)
    old = outputs["_digests"][0]
    boto3.client("ecr", region_name=REGION).batch_delete_image(
        repositoryName="app", imageIds=[{"imageDigest": old}]
    )
    rc = rollback_cli(_args(outputs), clients=_ecs_clients(), out=_lines()[1])
    err = capsys.readouterr().err
    assert rc == 2
    assert f"refusing to roll back to {REPO}@{old}: digest {old} is not in repository app" in err
    svc = boto3.client("ecs", region_name=REGION).describe_services(cluster="prod", services=["api"])
    assert svc["services"][0]["taskDefinition"].endswith("api:2")


def test_ecs_rollback_with_no_older_revision_says_so(aws, monkeypatch, capsys) -> None:
    outputs = make_ecs(monkeypatch, revisions=1, serving=1)
    rc = rollback_cli(_args(outputs), clients=_ecs_clients(), out=_lines()[1])
    assert rc == 1
    assert "nothing to roll back to: api:1 is the oldest ACTIVE revision" in capsys.readouterr().err


def test_ecs_status_without_credentials_is_one_line_and_exit_3(tmp_path, monkeypatch, capsys) -> None:
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    outputs = {
        "target": "ecs",
        "url": "https://api.example.com",
        "image": f"{REPO}@{UNKNOWN}",
        "health_path": "/health",
        "ready_path": "/ready",
        "region": REGION,
        "cluster_name": "prod",
        "service_name": "api",
        "log_group": "/ecs/api",
        "target_group_arn": "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/api/0123",
        "load_balancer_dns": "api-123.eu-west-1.elb.amazonaws.com",
    }
    for command in (status_cli, logs_cli, rollback_cli):
        rc = command(_args(outputs))
        err = capsys.readouterr().err
        assert rc == 3, err
        assert "Traceback" not in err
        assert len(err.strip().splitlines()) == 1
        assert "AWS: no usable credentials" in err


# ---------------------------------------------------------------------------------------------- Lambda


def make_lambda(monkeypatch: pytest.MonkeyPatch, *, alias_version: str = "2") -> dict[str, Any]:
    """Function `api` with versions 1 (image v1) and 2 (image v2); alias `live` on `alias_version`."""
    monkeypatch.setenv("MOTO_LAMBDA_STUB_ECR", "FALSE")  # resolve ImageUri against moto's ECR
    ecr = boto3.client("ecr", region_name=REGION)
    ecr.create_repository(repositoryName="app")
    digests = [_push(ecr, "v1"), _push(ecr, "v2")]
    role = boto3.client("iam").create_role(RoleName="fn", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    lam = boto3.client("lambda", region_name=REGION)
    lam.create_function(
        FunctionName="api", Role=role, PackageType="Image", Code={"ImageUri": f"{REPO}@{digests[0]}"}
    )
    lam.publish_version(FunctionName="api")
    lam.update_function_code(FunctionName="api", ImageUri=f"{REPO}@{digests[1]}")
    lam.publish_version(FunctionName="api")
    lam.create_alias(FunctionName="api", Name="live", FunctionVersion=alias_version)
    return {
        "target": "lambda",
        "url": "https://abc.lambda-url.eu-west-1.on.aws/",
        "image": f"{REPO}@{digests[1]}",
        "health_path": "/health",
        "ready_path": "/ready",
        "region": REGION,
        "function_name": "api",
        "function_arn": f"arn:aws:lambda:{REGION}:{DEFAULT_ACCOUNT_ID}:function:api",
        "alias_name": "live",
        "log_group": "/aws/lambda/api",
        "_digests": digests,
    }


def test_lambda_status_in_sync_and_after_a_rollback(aws, monkeypatch) -> None:
    outputs = make_lambda(monkeypatch)
    out, emit = _lines()
    rc = status_cli(_args(outputs), out=emit)
    text = "\n".join(out)
    assert rc == 0, text
    assert "alias live -> version 2" in text
    assert "last deployment: version 2 State Active, LastUpdateStatus Successful" in text
    assert "concurrency:     on demand" in text
    boto3.client("lambda", region_name=REGION).update_alias(
        FunctionName="api", Name="live", FunctionVersion="1"
    )
    out, emit = _lines()
    rc = status_cli(_args(outputs), out=emit)
    text = "\n".join(out)
    assert rc == 1
    assert f"running image:   {REPO}@{outputs['_digests'][0]} (DIFFERS)" in text
    assert "ROLLBACK DETECTED: alias live (version 1)" in text


def test_lambda_rollback_points_the_alias_at_the_previous_version(aws, monkeypatch) -> None:
    outputs = make_lambda(monkeypatch)
    out, emit = _lines()
    rc = rollback_cli(_args(outputs, "--timeout", "5", "--interval", "0.01"), out=emit)
    text = "\n".join(out)
    assert rc == 0, text
    assert "rolling back alias live of api: version 2" in text
    assert "-> version 1" in text
    alias = boto3.client("lambda", region_name=REGION).get_alias(FunctionName="api", Name="live")
    assert alias["FunctionVersion"] == "1"
    assert "rolled back: alias live points at version 1" in text


def test_lambda_rollback_to_digest_and_unknown_digest(aws, monkeypatch, capsys) -> None:
    outputs = make_lambda(monkeypatch, alias_version="1")
    rc = rollback_cli(_args(outputs, "--to", UNKNOWN), out=_lines()[1])
    err = capsys.readouterr().err
    assert rc == 2
    assert f"no published version of api runs {UNKNOWN}" in err
    rc = rollback_cli(_args(outputs, "--to", "not-a-digest"), out=_lines()[1])
    assert rc == 2
    assert "--to 'not-a-digest': expected an image digest sha256:" in capsys.readouterr().err
    # rolling "back" to the newer digest by name is allowed (it is an earlier release of this alias)
    out, emit = _lines()
    rc = rollback_cli(
        _args(outputs, "--to", outputs["_digests"][1], "--timeout", "5", "--interval", "0.01"), out=emit
    )
    assert rc == 0, "\n".join(out)
    assert (
        boto3.client("lambda", region_name=REGION).get_alias(FunctionName="api", Name="live")[
            "FunctionVersion"
        ]
        == "2"
    )


# ------------------------------------------------------------------------------------- CloudWatch Logs


def _put_events(group: str, events: list[tuple[datetime, str]], stream: str = "app/1") -> None:
    logs = boto3.client("logs", region_name=REGION)
    with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
        logs.create_log_group(logGroupName=group)
    with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
        logs.create_log_stream(logGroupName=group, logStreamName=stream)
    logs.put_log_events(
        logGroupName=group,
        logStreamName=stream,
        logEvents=[{"timestamp": int(t.timestamp() * 1000), "message": m} for t, m in events],
    )


def _stamp(t: datetime) -> str:
    return operate.log_line(t, "").rstrip()


def test_cloudwatch_logs_since_and_grep(aws, monkeypatch, capsys) -> None:
    outputs = make_lambda(monkeypatch)
    now = datetime.now(UTC).replace(microsecond=0)
    old, mid, new = now - timedelta(hours=2), now - timedelta(minutes=5), now - timedelta(minutes=1)
    _put_events(
        "/aws/lambda/api",
        [(old, "GET /health 200"), (mid, "ERROR database unreachable\n"), (new, "GET /items 200")],
    )
    out, emit = _lines()
    assert logs_cli(_args(outputs, "--since", "10m"), out=emit) == 0
    assert out == [f"{_stamp(mid)} ERROR database unreachable", f"{_stamp(new)} GET /items 200"]
    out, emit = _lines()
    assert logs_cli(_args(outputs, "--since", "3h", "--grep", "ERROR"), out=emit) == 0
    assert out == [f"{_stamp(mid)} ERROR database unreachable"]
    out, emit = _lines()
    iso = (now - timedelta(minutes=3)).isoformat().replace("+00:00", "Z")
    assert logs_cli(_args(outputs, "--since", iso), out=emit) == 0
    assert out == [f"{_stamp(new)} GET /items 200"]
    assert logs_cli(_args(outputs, "--since", "yesterday"), out=emit) == 2
    assert "--since 'yesterday': expected a duration such as 10m" in capsys.readouterr().err


def test_cloudwatch_grep_is_a_server_side_filter_pattern(aws, monkeypatch) -> None:
    outputs = make_lambda(monkeypatch)
    _put_events("/aws/lambda/api", [(datetime.now(UTC), "hello")])
    client = boto3.client("logs", region_name=REGION)
    seen: list[dict[str, Any]] = []
    client.meta.events.register(
        "provide-client-params.logs.FilterLogEvents", lambda params, **_: seen.append(dict(params))
    )
    clients = OpsClients(aws=lambda s, r: client if s == "logs" else boto3.client(s, region_name=r))
    assert logs_cli(_args(outputs, "--grep", 'say "hi"'), clients=clients, out=_lines()[1]) == 0
    assert seen[0]["filterPattern"] == '"say \\"hi\\""'
    assert seen[0]["logGroupName"] == "/aws/lambda/api"


def test_cloudwatch_follow_prints_new_events_once(aws, monkeypatch) -> None:
    outputs = make_ecs(monkeypatch)
    now = datetime.now(UTC).replace(microsecond=0)
    _put_events("/ecs/api", [(now - timedelta(seconds=30), "first")])
    later = [(now - timedelta(seconds=10), "second"), (now - timedelta(seconds=5), "third")]

    def sleep(_: float) -> None:  # a new event arrives between polls
        if later:
            _put_events("/ecs/api", [later.pop(0)])

    out, emit = _lines()
    rc = logs_cli(_args(outputs, "--follow", "--interval", "0.01"), out=emit, sleep=sleep, max_polls=3)
    assert rc == 0
    assert [line.split(" ", 1)[1] for line in out] == ["first", "second", "third"]


def test_logs_of_a_missing_log_group_say_which(aws, monkeypatch, capsys) -> None:
    outputs = make_lambda(monkeypatch)
    assert logs_cli(_args(outputs), out=_lines()[1]) == 1
    assert "log group /aws/lambda/api does not exist" in capsys.readouterr().err


def test_parse_since_units_and_iso() -> None:
    now = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)
    assert parse_since("10m", now) == now - timedelta(minutes=10)
    assert parse_since("2h", now) == now - timedelta(hours=2)
    assert parse_since("1d", now) == now - timedelta(days=1)
    assert parse_since("2026-01-31T11:00:00", now) == datetime(2026, 1, 31, 11, tzinfo=UTC)
    assert operate.parse_digest(f"{REPO}@{UNKNOWN}") == UNKNOWN
    assert operate.parse_digest(UNKNOWN) == UNKNOWN


# ------------------------------------------------------------------------------------------- Cloud Run

SVC = "projects/p1/locations/europe-west1/services/api"
AR = "europe-west1-docker.pkg.dev/p1/app/api"
D1, D2, D3 = ("sha256:" + c * 64 for c in "123")
CS = run_v2.Condition.State
REVISION = run_v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION
LATEST = run_v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST


def _rev(n: int, digest: str, *, ready: bool = True) -> run_v2.Revision:
    state = CS.CONDITION_SUCCEEDED if ready else CS.CONDITION_FAILED
    return run_v2.Revision(
        name=f"{SVC}/revisions/api-0000{n}-x",
        create_time=timestamp_pb2.Timestamp(seconds=1_700_000_000 + n * 60),
        containers=[run_v2.Container(image=f"{AR}@{digest}")],
        conditions=[run_v2.Condition(type_="Ready", state=state, message="" if ready else "boom")],
    )


class _Pb:
    """serialize/deserialize for a raw protobuf type (GrpcFake expects proto-plus's classmethods)."""

    def __init__(self, pb: Any) -> None:
        self.pb = pb

    def serialize(self, msg: Any) -> bytes:
        return bytes(msg.SerializeToString())

    def deserialize(self, data: bytes) -> Any:
        return self.pb.FromString(data)


class CloudRunFake:
    """Services.GetService/UpdateService and Revisions.GetRevision/ListRevisions over loopback gRPC."""

    def __init__(self, revisions: list[run_v2.Revision], serving: int | None) -> None:
        self.revisions = {r.name: r for r in revisions}
        latest = max(revisions, key=lambda r: r.create_time).name
        traffic = (
            [run_v2.TrafficTargetStatus(type_=LATEST, percent=100)]
            if serving is None
            else [run_v2.TrafficTargetStatus(type_=REVISION, revision=f"api-0000{serving}-x", percent=100)]
        )
        self.service = run_v2.Service(
            name=SVC,
            latest_created_revision=latest,
            latest_ready_revision=latest,
            terminal_condition=run_v2.Condition(type_="Ready", state=CS.CONDITION_SUCCEEDED),
            traffic_statuses=traffic,
            template=run_v2.RevisionTemplate(
                scaling=run_v2.RevisionScaling(min_instance_count=1, max_instance_count=4)
            ),
        )
        self.updates: list[run_v2.UpdateServiceRequest] = []
        self.deny = False
        self.grpc = GrpcFake()
        svc, rev = "google.cloud.run.v2.Services", "google.cloud.run.v2.Revisions"
        self.grpc.add(svc, "GetService", self._get, run_v2.GetServiceRequest, run_v2.Service)
        self.grpc.add(
            svc, "UpdateService", self._update, run_v2.UpdateServiceRequest, _Pb(operations_pb2.Operation)
        )
        self.grpc.add(rev, "GetRevision", self._get_rev, run_v2.GetRevisionRequest, run_v2.Revision)
        self.grpc.add(
            rev, "ListRevisions", self._list, run_v2.ListRevisionsRequest, run_v2.ListRevisionsResponse
        )

    def _get(self, req: run_v2.GetServiceRequest) -> Any:
        if self.deny:
            return grpc.StatusCode.PERMISSION_DENIED, "Permission 'run.services.get' denied on resource"
        if req.name != SVC:
            return grpc.StatusCode.NOT_FOUND, f"Resource '{req.name}' was not found"
        return self.service

    def _update(self, req: run_v2.UpdateServiceRequest) -> Any:
        self.updates.append(req)
        self.service.traffic_statuses = [
            run_v2.TrafficTargetStatus(type_=t.type_, revision=t.revision, percent=t.percent)
            for t in req.service.traffic
        ]
        done = any_pb2.Any()
        done.Pack(run_v2.Service.pb(self.service))
        return operations_pb2.Operation(name="operations/rollback", done=True, response=done)

    def _get_rev(self, req: run_v2.GetRevisionRequest) -> Any:
        return self.revisions.get(req.name) or (grpc.StatusCode.NOT_FOUND, "no such revision")

    def _list(self, req: run_v2.ListRevisionsRequest) -> Any:
        assert req.parent == SVC
        return run_v2.ListRevisionsResponse(revisions=list(self.revisions.values()))


def _cr_outputs() -> dict[str, Any]:
    return {
        "target": "cloudrun",
        "url": "https://api-xyz.a.run.app",
        "image": f"{AR}@{D3}",
        "health_path": "/health",
        "ready_path": "/ready",
        "project": "p1",
        "region": "europe-west1",
        "service_name": "api",
        "revision": "api-00003-x",
        "service_account": "api@p1.iam.gserviceaccount.com",
    }


def _registry(missing: set[str] | None = None) -> Any:
    def check(ref: str, where: str) -> Any:
        digest = ref.rsplit("@", 1)[-1]
        if digest in (missing or set()):
            return blocking(
                "image", f"digest {digest} is not in europe-west1-docker.pkg.dev/p1/app/api", where
            )
        return ok("image", "exists", where)

    return check


def _cr_clients(channel: grpc.Channel, missing: set[str] | None = None) -> OpsClients:
    return OpsClients(
        cloudrun_services=run_v2.ServicesClient(transport=ServicesGrpcTransport(channel=channel)),
        cloudrun_revisions=run_v2.RevisionsClient(transport=RevisionsGrpcTransport(channel=channel)),
        oci_image_check=_registry(missing),
    )


def test_cloudrun_status_in_sync_then_traffic_pinned_to_an_older_revision() -> None:
    fake = CloudRunFake([_rev(1, D1), _rev(2, D2), _rev(3, D3)], serving=None)
    with fake.grpc.serve() as channel:
        out, emit = _lines()
        rc = status_cli(_args(_cr_outputs()), clients=_cr_clients(channel), out=emit)
        text = "\n".join(out)
        assert rc == 0, text
        assert "traffic:         api-00003-x 100%" in text
        assert "instances:       min 1, max 4" in text
        assert "last deployment: revision api-00003-x, service Ready CONDITION_SUCCEEDED" in text
        assert f"running image:   {AR}@{D3} (= deployed)" in text
        fake.service.traffic_statuses = [
            run_v2.TrafficTargetStatus(type_=REVISION, revision="api-00002-x", percent=100)
        ]
        out, emit = _lines()
        rc = status_cli(_args(_cr_outputs()), clients=_cr_clients(channel), out=emit)
    text = "\n".join(out)
    assert rc == 1
    assert f"running image:   {AR}@{D2} (DIFFERS)" in text
    assert f"ROLLBACK DETECTED: the revision serving traffic runs {D2[:19]}..." in text


def test_cloudrun_status_reports_a_latest_revision_that_failed() -> None:
    fake = CloudRunFake([_rev(1, D1), _rev(2, D2), _rev(3, D3, ready=False)], serving=None)
    fake.service.latest_ready_revision = f"{SVC}/revisions/api-00002-x"
    out, emit = _lines()
    with fake.grpc.serve() as channel:
        rc = status_cli(_args(_cr_outputs()), clients=_cr_clients(channel), out=emit)
    text = "\n".join(out)
    assert rc == 1
    assert (
        "last deployment: revision api-00003-x, service Ready CONDITION_SUCCEEDED; FAILED: Ready: boom"
        in text
    )
    assert f"running image:   {AR}@{D2} (DIFFERS)" in text


def test_cloudrun_rollback_moves_all_traffic_to_the_previous_ready_revision() -> None:
    # api-00002 failed to become ready: the previous READY revision is api-00001
    fake = CloudRunFake([_rev(1, D1), _rev(2, D2, ready=False), _rev(3, D3)], serving=None)
    out, emit = _lines()
    with fake.grpc.serve() as channel:
        rc = rollback_cli(
            _args(_cr_outputs(), "--timeout", "5", "--interval", "0.01"),
            clients=_cr_clients(channel),
            out=emit,
        )
    text = "\n".join(out)
    assert rc == 0, text
    [update] = fake.updates
    assert [(t.type_, t.revision, t.percent) for t in update.service.traffic] == [
        (REVISION, "api-00001-x", 100)
    ]
    assert "rolling back service api: api-00003-x" in text
    assert "-> api-00001-x" in text
    assert "rolled back: api-00001-x serves 100% of traffic" in text
    assert "pulumi up --refresh" in text


def test_cloudrun_rollback_to_digest_unknown_or_gone_from_the_registry_is_refused(capsys) -> None:
    fake = CloudRunFake([_rev(1, D1), _rev(2, D2), _rev(3, D3)], serving=None)
    with fake.grpc.serve() as channel:
        rc = rollback_cli(
            _args(_cr_outputs(), "--to", UNKNOWN), clients=_cr_clients(channel), out=_lines()[1]
        )
        err = capsys.readouterr().err
        assert rc == 2
        assert f"no revision of api runs {UNKNOWN}" in err
        rc = rollback_cli(
            _args(_cr_outputs(), "--to", D1), clients=_cr_clients(channel, missing={D1}), out=_lines()[1]
        )
        err = capsys.readouterr().err
        assert rc == 2
        assert f"refusing to roll back to {AR}@{D1}: digest {D1} is not in" in err
        out, emit = _lines()
        rc = rollback_cli(
            _args(_cr_outputs(), "--to", D1, "--timeout", "5", "--interval", "0.01"),
            clients=_cr_clients(channel),
            out=emit,
        )
        assert rc == 0, "\n".join(out)
    assert len(fake.updates) == 1, "refusals change nothing"
    assert fake.updates[0].service.traffic[0].revision == "api-00001-x"


def test_cloudrun_permission_denied_is_one_line_and_exit_3(capsys) -> None:
    fake = CloudRunFake([_rev(1, D1)], serving=None)
    fake.deny = True
    with fake.grpc.serve() as channel:
        rc = status_cli(_args(_cr_outputs()), clients=_cr_clients(channel), out=_lines()[1])
    err = capsys.readouterr().err
    assert rc == 3
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert "Google Cloud: refused (PermissionDenied" in err


# ------------------------------------------------------------------------------------- Cloud Logging


class LoggingFake:
    """`POST /v2/entries:list` on loopback: records request bodies, answers pages or an error status."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.pages: list[dict[str, Any]] = []
        self.status = 200
        self.url = ""

    def serve(self) -> Any:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                fake.bodies.append(body)
                if fake.status != 200:
                    status, data = (
                        fake.status,
                        {"error": {"code": fake.status, "message": "caller lacks logging.logEntries.list"}},
                    )
                else:
                    status, data = 200, (fake.pages.pop(0) if fake.pages else {})
                raw = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        return server


@pytest.fixture
def cloud_logging() -> Iterator[LoggingFake]:
    fake = LoggingFake()
    server = fake.serve()
    yield fake
    server.shutdown()
    server.server_close()


def test_cloud_logging_filter_carries_service_since_and_grep(cloud_logging) -> None:
    cloud_logging.pages = [
        {
            "entries": [
                {
                    "insertId": "a",
                    "timestamp": "2026-01-31T11:55:00.123456789Z",
                    "textPayload": "ERROR db down",
                },
                {
                    "insertId": "b",
                    "timestamp": "2026-01-31T11:56:00Z",
                    "jsonPayload": {"message": "ERROR retry", "level": "error"},
                },
            ],
            "nextPageToken": "p2",
        },
        {
            "entries": [
                {
                    "insertId": "c",
                    "timestamp": "2026-01-31T11:57:00Z",
                    "httpRequest": {
                        "requestMethod": "GET",
                        "requestUrl": "/items?ERROR",
                        "status": 500,
                        "latency": "0.2s",
                    },
                }
            ]
        },
    ]
    clients = OpsClients(logging_session=requests.Session(), logging_endpoint=cloud_logging.url)
    out, emit = _lines()
    rc = logs_cli(
        _args(_cr_outputs(), "--since", "2026-01-31T11:50:00Z", "--grep", "ERROR"), clients=clients, out=emit
    )
    assert rc == 0
    assert out == [
        "2026-01-31T11:55:00.123Z ERROR db down",
        "2026-01-31T11:56:00.000Z ERROR retry",
        "2026-01-31T11:57:00.000Z GET /items?ERROR 500 0.2s",
    ]
    first = cloud_logging.bodies[0]
    assert first["resourceNames"] == ["projects/p1"]
    assert first["filter"] == (
        'resource.type="cloud_run_revision" AND resource.labels.service_name="api" AND '
        'resource.labels.location="europe-west1" AND timestamp>="2026-01-31T11:50:00Z" AND "ERROR"'
    )
    assert cloud_logging.bodies[1]["pageToken"] == "p2"


def test_cloud_logging_follow_asks_from_the_newest_entry_and_prints_each_once(cloud_logging) -> None:
    entry = {"insertId": "a", "timestamp": "2026-01-31T11:55:00Z", "textPayload": "one"}
    cloud_logging.pages = [
        {"entries": [entry]},
        {"entries": [entry, {"insertId": "b", "timestamp": "2026-01-31T11:56:00Z", "textPayload": "two"}]},
    ]
    clients = OpsClients(logging_session=requests.Session(), logging_endpoint=cloud_logging.url)
    out, emit = _lines()
    rc = logs_cli(
        _args(_cr_outputs(), "--since", "2026-01-31T11:00:00Z", "--follow"),
        clients=clients,
        out=emit,
        sleep=_no_sleep,
        max_polls=2,
    )
    assert rc == 0
    assert [line.split(" ", 1)[1] for line in out] == ["one", "two"]
    assert 'timestamp>="2026-01-31T11:55:00Z"' in cloud_logging.bodies[1]["filter"]


def test_cloud_logging_forbidden_is_exit_3(cloud_logging, capsys) -> None:
    cloud_logging.status = 403
    clients = OpsClients(logging_session=requests.Session(), logging_endpoint=cloud_logging.url)
    assert logs_cli(_args(_cr_outputs()), clients=clients, out=_lines()[1]) == 3
    err = capsys.readouterr().err
    assert "Google Cloud: refused (Forbidden" in err
    assert "caller lacks logging.logEntries.list" in err
    assert "Traceback" not in err


# ------------------------------------------------------------------------------------------------- VPS

GH = "ghcr.io/acme/api"
V_NEW, V_OLD, V_OLDER = ("sha256:" + c * 64 for c in "abc")
APP = "api-3f2a"
RB = f"{APP}-rollback-{'b' * 12}"

_SSH = r"""#!/usr/bin/env python3
import json, pathlib, sys
d = pathlib.Path(__file__).parent
argv = sys.argv[1:]
line = " ".join(argv)
calls = d / "ssh.calls"
previous = [json.loads(x)["line"] for x in calls.read_text().splitlines()] if calls.exists() else []
stdin = sys.stdin.read() if "cat >" in line else None
with open(calls, "a") as f:
    f.write(json.dumps({"argv": argv, "line": line, "stdin": stdin}) + "\n")
for rule in json.loads((d / "ssh.rules").read_text()):
    if not all(m in line for m in rule["match"]):
        continue
    if rule.get("after") and not any(rule["after"] in p for p in previous):
        continue
    sys.stdout.write(rule.get("stdout", ""))
    sys.stderr.write(rule.get("stderr", ""))
    sys.exit(rule.get("rc", 0))
sys.stderr.write("fake ssh: no rule for " + line)
sys.exit(1)
"""


def scripted_ssh(bindir: Path, rules: list[dict[str, Any]]) -> None:
    """An `ssh` on PATH answering each remote command by the first rule whose substrings all match
    (a rule with `after` applies only once an earlier call contained that text); records argv and stdin."""
    bindir.mkdir(parents=True, exist_ok=True)
    (bindir / "ssh.rules").write_text(json.dumps(rules))
    script = bindir / "ssh"
    script.write_text(_SSH.replace("/usr/bin/env python3", sys.executable, 1))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)


def ssh_calls(bindir: Path) -> list[dict[str, Any]]:
    path = bindir / "ssh.calls"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def _container(name: str, image_ref: str, image_id: str, *, running: bool = True) -> str:
    info = {
        "Id": "abc123def4567890",
        "Name": f"/{name}",
        "Image": image_id,
        "RestartCount": 0,
        "State": {
            "Status": "running" if running else "exited",
            "Running": running,
            "ExitCode": 0,
            "OOMKilled": False,
            "StartedAt": "2026-01-31T10:00:00Z",
            "Health": {"Status": "healthy" if running else "unhealthy", "Log": []},
        },
        "Config": {
            "Image": image_ref,
            "User": "10001",
            "Env": [
                "PATH=/usr/local/bin:/usr/bin",
                "APP_ENV=production",
                "DATABASE_URL=postgresql://u:s3cret@db/app",
            ],
            "Labels": {"app": "api", "stack": "prod-vps"},
            "Healthcheck": {
                "Test": [
                    "CMD",
                    "python",
                    "-c",
                    "import urllib.request as u; u.urlopen('http://127.0.0.1:8000/ready')",
                ],
                "Interval": 10_000_000_000,
                "Timeout": 5_000_000_000,
                "StartPeriod": 30_000_000_000,
                "Retries": 3,
            },
            "StopSignal": "SIGTERM",
            "StopTimeout": 35,
        },
        "HostConfig": {
            "RestartPolicy": {"Name": "unless-stopped"},
            "NanoCpus": 1_000_000_000,
            "Memory": 536870912,
            "MemorySwap": 536870912,
            "ReadonlyRootfs": True,
            "Tmpfs": {"/tmp": "rw,noexec,nosuid,size=64m"},
            "SecurityOpt": ["no-new-privileges:true"],
            "CapDrop": ["ALL"],
            "LogConfig": {"Type": "json-file", "Config": {"max-file": "5", "max-size": "10m"}},
        },
        "NetworkSettings": {"Networks": {"api-net-1a2b": {"Aliases": ["app", "abc123def456"]}}},
    }
    return json.dumps([info])


def _vps_rules(*, rolled_back: bool = False) -> list[dict[str, Any]]:
    images = "".join(
        json.dumps({"Repository": GH, "Tag": "<none>", "Digest": d, "ID": f"sha256:id{i}", "CreatedAt": c})
        + "\n"
        for i, (d, c) in enumerate(
            [
                (V_NEW, "2026-01-30 10:00:00 +0000 UTC"),
                (V_OLD, "2026-01-20 10:00:00 +0000 UTC"),
                (V_OLDER, "2026-01-10 10:00:00 +0000 UTC"),
            ]
        )
    )
    rollback_running = _container(RB, f"{GH}@{V_OLD}", "sha256:id1")
    return [
        {"match": ["inspect", RB], "after": "docker run", "stdout": rollback_running},
        {"match": ["inspect", RB], "stdout": rollback_running}
        if rolled_back
        else {"match": ["inspect", RB], "rc": 1, "stderr": f"Error: No such container: {RB}"},
        {
            "match": ["inspect", "--type container", APP],
            "stdout": _container(APP, "sha256:id0", "sha256:id0", running=not rolled_back),
        },
        {"match": ["docker ps -a --filter"], "after": "docker run", "stdout": f"{RB}\n"},
        {"match": ["docker ps -a --filter"], "stdout": f"{RB}\n" if rolled_back else ""},
        {
            "match": ["docker image inspect sha256:id0"],
            "stdout": json.dumps(
                [{"RepoDigests": [f"{GH}@{V_NEW}"], "Config": {"Env": ["PATH=/usr/local/bin:/usr/bin"]}}]
            ),
        },
        {
            "match": ["docker image inspect sha256:id1"],
            "stdout": json.dumps(
                [{"RepoDigests": [f"{GH}@{V_OLD}"], "Config": {"Env": ["PATH=/usr/local/bin:/usr/bin"]}}]
            ),
        },
        {"match": ["docker image ls --digests"], "stdout": images},
        {"match": ["docker run --detach"], "stdout": "f00dcafe\n"},
        {"match": ["docker stop"], "stdout": f"{APP}\n"},
        {"match": ["docker rm --force"], "stdout": ""},
        {
            "match": ["docker logs --timestamps --since"],
            "stdout": (
                "2026-01-31T11:55:00.123456789Z GET /health 200\n2026-01-31T11:56:00.000000001Z ERROR boom\n"
            ),
        },
    ]


def _vps_outputs() -> dict[str, Any]:
    return {
        "target": "vps",
        "url": "https://api.example.com",
        "image": f"{GH}@{V_NEW}",
        "health_path": "/health",
        "ready_path": "/ready",
        "host": "203.0.113.7",
        "container_name": APP,
        "domain": "api.example.com",
    }


def test_vps_status_in_sync_and_after_a_rollback(tmp_path, monkeypatch) -> None:
    bindir = tmp_path / "bin"
    monkeypatch.setenv("PATH", path_with(bindir))
    scripted_ssh(bindir, _vps_rules())
    out, emit = _lines()
    rc = status_cli(_args(_vps_outputs(), "--ssh-user", "ops"), out=emit)
    text = "\n".join(out)
    assert rc == 0, text
    assert f"last deployment: {APP} running, health healthy, restarts 0" in text
    assert "containers:      desired 1, running 1" in text
    assert f"running image:   {GH}@{V_NEW} (= deployed)" in text
    assert ssh_calls(bindir)[0]["argv"][4] == "ops@203.0.113.7"
    scripted_ssh(bindir, _vps_rules(rolled_back=True))
    out, emit = _lines()
    rc = status_cli(_args(_vps_outputs()), out=emit)
    text = "\n".join(out)
    assert rc == 1
    assert f"rollback:        {RB} running, health healthy (started by `infra rollback`)" in text
    assert f"running image:   {GH}@{V_OLD} (DIFFERS)" in text
    assert "ROLLBACK DETECTED: the host runs" in text


def test_vps_status_reads_the_ssh_login_from_the_stack_file_where_plan_finds_it(
    tmp_path, monkeypatch
) -> None:
    """No --stacks-dir: the stack file beside Pulumi.yaml (no stackConfigDir), as `infra plan` reads it."""
    bindir = tmp_path / "bin"
    monkeypatch.setenv("PATH", path_with(bindir))
    scripted_ssh(bindir, _vps_rules())
    project = tmp_path / "shop"
    project.mkdir()
    (project / "Pulumi.yaml").write_text("name: shop\nruntime: python\n")
    app = {
        "target": "vps",
        "name": "items-api",
        "image": {"digest": f"{GH}@{V_NEW}"},
        "domain": "api.example.com",
        "vps": {"host": "203.0.113.7", "ssh_user": "alice", "ssh_port": 2222},
    }
    (project / "Pulumi.shop.yaml").write_text(json.dumps({"config": {"fastapi-deploy:app": app}}))
    monkeypatch.chdir(project)
    out, emit = _lines()
    rc = status_cli(_args(_vps_outputs(), "--stack", "shop"), out=emit)
    assert rc == 0, "\n".join(out)
    argv = ssh_calls(bindir)[0]["argv"]
    assert argv[argv.index("-p") + 1] == "2222"
    assert "alice@203.0.113.7" in argv


def test_vps_rollback_starts_the_previous_image_with_the_same_settings_then_stops_the_old(
    tmp_path, monkeypatch
) -> None:
    bindir = tmp_path / "bin"
    monkeypatch.setenv("PATH", path_with(bindir))
    scripted_ssh(bindir, _vps_rules())
    out, emit = _lines()
    rc = rollback_cli(_args(_vps_outputs(), "--timeout", "5", "--interval", "0.01"), out=emit)
    text = "\n".join(out)
    assert rc == 0, text
    calls = ssh_calls(bindir)
    [run] = [c for c in calls if "docker run" in c["line"]]
    remote = run["argv"][-1]
    # the previous image (newest other than the running one), the container's own settings, the alias
    for part in (
        f"--name {RB}",
        f"--label fastapi-deploy.rollback-of={APP}",
        "--user 10001",
        "--restart unless-stopped",
        "--cpus 1",
        "--memory 536870912",
        "--read-only",
        "--cap-drop ALL",
        "--network api-net-1a2b --network-alias app",
        "--health-interval 10s",
        "--stop-timeout 35",
        f'--env-file "$f" {GH}@{V_OLD}',
    ):
        assert part in remote, part
    assert "abc123def456" not in remote.split("--network-alias app")[1]  # the old container's own alias
    # the env travels over stdin into a 0600 file, never on a command line; the image's own ENV is left out
    assert "s3cret" not in json.dumps([c["argv"] for c in calls])
    assert run["stdin"] == "APP_ENV=production\nDATABASE_URL=postgresql://u:s3cret@db/app\n"
    assert "umask 077" in remote
    lines = [c["line"] for c in calls]
    stop = next(i for i, line in enumerate(lines) if "docker stop" in line)
    assert stop > next(i for i, line in enumerate(lines) if "docker run" in line)
    assert lines[stop].endswith(f"docker stop --time 35 {APP}")
    assert f"rolled back: {RB} serves {GH}@{V_OLD}; {APP} is stopped" in text
    assert "s3cret" not in text


def test_vps_second_rollback_goes_further_back_and_stops_the_first_rollback_container(
    tmp_path, monkeypatch
) -> None:
    bindir = tmp_path / "bin"
    monkeypatch.setenv("PATH", path_with(bindir))
    rb2 = f"{APP}-rollback-{'c' * 12}"
    rules = [
        {
            "match": ["inspect", rb2],
            "after": "docker run",
            "stdout": _container(rb2, f"{GH}@{V_OLDER}", "sha256:id2"),
        },
        {"match": ["inspect", rb2], "rc": 1, "stderr": f"Error: No such container: {rb2}"},
        *_vps_rules(rolled_back=True),
    ]
    scripted_ssh(bindir, rules)
    out, emit = _lines()
    rc = rollback_cli(_args(_vps_outputs(), "--timeout", "5", "--interval", "0.01"), out=emit)
    text = "\n".join(out)
    assert rc == 0, text
    assert f"rolling back on 203.0.113.7: {RB} ({V_OLD[:19]}...) -> {rb2} ({V_OLDER[:19]}...)" in text
    lines = [c["line"] for c in ssh_calls(bindir)]
    assert any(line.endswith(f"docker stop --time 35 {RB}") for line in lines)


def test_vps_rollback_with_no_older_image_on_the_host_says_so(tmp_path, monkeypatch, capsys) -> None:
    bindir = tmp_path / "bin"
    monkeypatch.setenv("PATH", path_with(bindir))
    only_new = json.dumps({"Repository": GH, "Tag": "<none>", "Digest": V_NEW, "CreatedAt": "2026-01-30"})
    scripted_ssh(bindir, [{"match": ["docker image ls --digests"], "stdout": only_new + "\n"}, *_vps_rules()])
    assert rollback_cli(_args(_vps_outputs()), out=_lines()[1]) == 1
    assert f"nothing to roll back to: 203.0.113.7 holds no older image of {GH}" in capsys.readouterr().err


def test_vps_rollback_to_a_digest_the_host_does_not_hold_is_refused(tmp_path, monkeypatch, capsys) -> None:
    bindir = tmp_path / "bin"
    monkeypatch.setenv("PATH", path_with(bindir))
    scripted_ssh(bindir, _vps_rules())
    rc = rollback_cli(_args(_vps_outputs(), "--to", UNKNOWN), out=_lines()[1])
    err = capsys.readouterr().err
    assert rc == 2
    assert f"image {GH}@{UNKNOWN} is not on 203.0.113.7" in err
    assert not any("docker run" in c["line"] or "docker stop" in c["line"] for c in ssh_calls(bindir))


def test_vps_logs_over_ssh_with_grep(tmp_path, monkeypatch) -> None:
    bindir = tmp_path / "bin"
    monkeypatch.setenv("PATH", path_with(bindir))
    scripted_ssh(bindir, _vps_rules())
    out, emit = _lines()
    rc = logs_cli(_args(_vps_outputs(), "--since", "2026-01-31T11:00:00Z", "--grep", "ERROR"), out=emit)
    assert rc == 0
    assert out == ["2026-01-31T11:56:00.000Z ERROR boom"]
    [logs_call] = [c for c in ssh_calls(bindir) if "docker logs" in c["line"]]
    assert logs_call["argv"][-1] == f"docker logs --timestamps --since 2026-01-31T11:00:00Z {APP}"
    out, emit = _lines()
    assert logs_cli(_args(_vps_outputs(), "--since", "2026-01-31T11:00:00Z", "--follow"), out=emit) == 0
    assert out == ["2026-01-31T11:55:00.123Z GET /health 200", "2026-01-31T11:56:00.000Z ERROR boom"]
    assert ssh_calls(bindir)[-1]["argv"][-1].endswith(f"--since 2026-01-31T11:00:00Z --follow {APP}")


def test_vps_unreachable_host_is_one_line(tmp_path, monkeypatch, capsys) -> None:
    bindir = tmp_path / "bin"
    monkeypatch.setenv("PATH", path_with(bindir))
    scripted_ssh(
        bindir,
        [
            {
                "match": [""],
                "rc": 255,
                "stderr": "ssh: connect to host 203.0.113.7 port 22: Connection timed out\n",
            }
        ],
    )
    rc = status_cli(_args(_vps_outputs()), out=_lines()[1])
    err = capsys.readouterr().err
    assert rc == 3
    assert "ssh to 203.0.113.7 failed: ssh: connect to host 203.0.113.7 port 22: Connection timed out" in err
    assert "Traceback" not in err


# ------------------------------------------------------------------------------------------------- CLI


def test_infra_dispatches_the_three_commands_and_documents_exit_codes(capsys) -> None:
    for command in ("status", "logs", "rollback"):
        assert infra_cli.main([command, "--help"]) == 0
        text = capsys.readouterr().out
        assert f"usage: infra {command}" in text
        assert "exit codes:" in text
        assert "3  missing or expired credentials" in text
    assert infra_cli.main(["--help"]) == 0
    usage = capsys.readouterr().out
    for command in ("status", "logs", "rollback"):
        assert f"  {command} " in usage


def test_unknown_stack_without_pulumi_is_a_usage_error(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no pulumi
    assert infra_cli.main(["status", "--stack", "nope"]) == 2
    assert "no Pulumi CLI on PATH" in capsys.readouterr().err


def test_every_target_module_has_the_same_three_functions() -> None:
    import inspect

    signatures = {}
    from fastapi_deploy import registry

    for target in ("ecs", "cloudrun", "lambda", "vps"):
        assert registry.get(target).operations_module, target
        module = operate.target_module(target)
        signatures[target] = [
            str(inspect.signature(getattr(module, f))) for f in ("status", "logs", "rollback")
        ]
    assert len({tuple(s) for s in signatures.values()}) == 1, signatures
