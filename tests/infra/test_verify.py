"""`infra verify`: real boto3 clients against moto, real google-cloud-run clients over a loopback gRPC
fake, fake `ssh`/`pulumi` executables on PATH, and smoke tests against real HTTP servers on loopback
(including the real service with PostgreSQL and Redis)."""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
import threading
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

from fastapi_deploy.ops.rollout import Observation, wait_until_stable
from fastapi_deploy.verify import Clients, cli, run_verify
from tests.infra._ops_fakes import GrpcFake, HttpFake, calls_of, fake_executable, path_with

REGION = "eu-west-1"
NEW = "sha256:" + "1" * 64
OLD = "sha256:" + "0" * 64
REPO = f"{DEFAULT_ACCOUNT_ID}.dkr.ecr.{REGION}.amazonaws.com/app"


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


@pytest.fixture
def http() -> Iterator[HttpFake]:
    fake = HttpFake(
        routes={
            "/health": (200, '{"status":"ok"}'),
            "/ready": (200, '{"status":"ok","checks":{"postgres":"ok","redis":"ok"}}'),
        }
    )
    with fake.serve():
        yield fake


def _lines() -> tuple[list[str], Any]:
    out: list[str] = []
    return out, out.append


# ------------------------------------------------------------------------------------------------- ECS


def make_ecs(
    monkeypatch: pytest.MonkeyPatch,
    url: str,
    *,
    running: int = 2,
    desired: int = 2,
    task_image: str = f"{REPO}@{NEW}",
    target_kind: str = "ip",
) -> dict[str, Any]:
    """A cluster/service/tasks/target group in moto. moto derives runningCount and rolloutState of the
    service's deployment from MOTO_ECS_SERVICE_RUNNING at creation time (it runs no scheduler)."""
    monkeypatch.setenv("MOTO_ECS_SERVICE_RUNNING", str(running))
    ec2 = boto3.client("ec2", region_name=REGION)
    elbv2 = boto3.client("elbv2", region_name=REGION)
    ecs = boto3.client("ecs", region_name=REGION)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    tg = elbv2.create_target_group(
        Name="api-tg",
        Protocol="HTTP",
        Port=8000,
        VpcId=vpc,
        TargetType=target_kind,
        HealthCheckPath="/health",
    )["TargetGroups"][0]["TargetGroupArn"]
    if target_kind == "ip":
        elbv2.register_targets(
            TargetGroupArn=tg, Targets=[{"Id": f"10.0.1.{i + 10}", "Port": 8000} for i in range(running)]
        )
    else:
        # moto reports a stopped instance target as unused/Target.InvalidState: the one non-healthy
        # state it can represent.
        inst = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
        elbv2.register_targets(TargetGroupArn=tg, Targets=[{"Id": inst, "Port": 8000}])
        ec2.stop_instances(InstanceIds=[inst])
    ecs.create_cluster(clusterName="prod")
    # moto's awsvpc task path crashes (NetworkInterface.private_dns_name), so the fixture task definition
    # uses bridge mode; verify reads nothing network-related from tasks.
    ecs.register_task_definition(
        family="api",
        requiresCompatibilities=["EC2"],
        networkMode="bridge",
        containerDefinitions=[{"name": "app", "image": task_image, "memory": 512, "cpu": 256}],
    )
    ecs.create_service(cluster="prod", serviceName="api", taskDefinition="api", desiredCount=desired)
    if running:
        ecs.run_task(
            cluster="prod", taskDefinition="api", count=running, launchType="FARGATE", group="service:api"
        )
    return {
        "target": "ecs",
        "url": url,
        "image": f"{REPO}@{NEW}",
        "health_path": "/health",
        "ready_path": "/ready",
        "region": REGION,
        "cluster_name": "prod",
        "service_name": "api",
        "log_group": "/ecs/api",
        "target_group_arn": tg,
        "load_balancer_dns": "api-123.eu-west-1.elb.amazonaws.com",
    }


def test_ecs_settled_and_healthy_passes_smoke_and_reports_running_digest(aws, monkeypatch, http) -> None:
    outputs = make_ecs(monkeypatch, http.url)
    out, emit = _lines()
    rc = cli(["--outputs-json", json.dumps(outputs), "--timeout", "5", "--interval", "0.05"], out=emit)
    text = "\n".join(out)
    assert rc == 0, text
    assert "primary COMPLETED, running 2/2" in text
    assert "targets healthy=2" in text
    assert f"running image: {REPO}@{NEW} (= stack output)" in text
    assert http.hits == ["/health", "/ready"]


def test_ecs_stopped_task_reason_is_reported_when_rollout_never_settles(aws, monkeypatch, http) -> None:
    outputs = make_ecs(monkeypatch, http.url, running=0)
    ecs = boto3.client("ecs", region_name=REGION)
    deployment = ecs.describe_services(cluster="prod", services=["api"])["services"][0]["deployments"][0][
        "id"
    ]
    old = ecs.run_task(
        cluster="prod",
        taskDefinition="api",
        launchType="FARGATE",
        group="service:api",
        startedBy="ecs-svc/old",
    )["tasks"][0]
    ecs.stop_task(
        cluster="prod", task=old["taskArn"], reason="Scaling activity initiated by deployment ecs-svc/1"
    )
    task = ecs.run_task(
        cluster="prod", taskDefinition="api", launchType="FARGATE", group="service:api", startedBy=deployment
    )["tasks"][0]
    reason = (
        "ResourceInitializationError: unable to pull secrets or registry auth: execution resource "
        "retrieval failed: unable to retrieve secret from asm: AccessDeniedException: kms:Decrypt"
    )
    ecs.stop_task(cluster="prod", task=task["taskArn"], reason=reason)
    out, emit = _lines()
    start = time.monotonic()
    rc = run_verify(outputs, timeout_s=0.3, interval_s=0.05, out=emit)
    text = "\n".join(out)
    assert rc == 1
    assert time.monotonic() - start < 5, "the wait must be bounded by --timeout"
    assert "primary IN_PROGRESS, running 0/2" in text  # progress line while waiting
    assert "not stable after 0 s" in text
    new_task = task["taskArn"].rsplit("/", 1)[-1]
    assert f"stopped task {new_task} (new deployment): {reason}" in text
    # the new deployment's failure is listed before the old task the rollout stopped on purpose
    assert text.index(new_task) < text.index("Scaling activity initiated")
    assert http.hits == [], "no smoke test against a release that never became stable"


def test_ecs_rollback_by_circuit_breaker_is_a_failure_not_stable(aws, monkeypatch, http) -> None:
    # After a rollback the PRIMARY deployment is the OLD task definition and it completes normally.
    outputs = make_ecs(monkeypatch, http.url, task_image=f"{REPO}@{OLD}")
    out, emit = _lines()
    rc = run_verify(outputs, timeout_s=5, interval_s=0.05, out=emit)
    text = "\n".join(out)
    assert rc == 1
    assert "circuit breaker rolled back" in text
    assert f"running image: {REPO}@{OLD} (DIFFERS)" in text


def test_ecs_failed_rollout_state_fails_fast_with_ecs_reason(aws, monkeypatch, http) -> None:
    outputs = make_ecs(monkeypatch, http.url, running=0)
    # moto never moves a deployment to FAILED (it has no circuit breaker); set the state its model holds.
    svc = ecs_backends[DEFAULT_ACCOUNT_ID][REGION].services["prod:api"]
    svc.deployments[0]["rolloutState"] = "FAILED"
    svc.deployments[0]["rolloutStateReason"] = "ECS deployment circuit breaker: tasks failed to start."
    # ... nor writes service events; it returns the ones its model holds.
    event = (
        "(service api) is unable to consistently start tasks successfully. "
        "For more information, see the Troubleshooting section."
    )
    svc.events.append({"id": "e1", "createdAt": datetime.datetime.now(datetime.UTC), "message": event})
    out, emit = _lines()
    rc = run_verify(outputs, timeout_s=30, interval_s=0.05, out=emit)
    text = "\n".join(out)
    assert rc == 1
    assert "ECS deployment circuit breaker: tasks failed to start." in text
    assert f": {event}" in text
    assert "not stable after" not in text, "a FAILED rollout must not wait for the timeout"


def test_ecs_unhealthy_targets_keep_waiting_and_report_the_elb_reason(aws, monkeypatch, http) -> None:
    outputs = make_ecs(monkeypatch, http.url, running=1, desired=1, target_kind="instance")
    out, emit = _lines()
    rc = run_verify(outputs, timeout_s=0.3, interval_s=0.05, out=emit)
    text = "\n".join(out)
    assert rc == 1
    assert "targets unused=1" in text
    assert "Target.InvalidState" in text


def test_ecs_missing_service_names_the_service(aws, monkeypatch, http) -> None:
    outputs = make_ecs(monkeypatch, http.url)
    outputs["service_name"] = "nope"
    out, emit = _lines()
    assert run_verify(outputs, timeout_s=5, interval_s=0.05, out=emit) == 1
    assert "service nope not found in prod" in "\n".join(out)


def test_smoke_failure_after_stable_platform_fails_with_readiness_body(aws, monkeypatch, http) -> None:
    http.routes["/ready"] = (503, '{"status":"unavailable","failed":["postgres"]}')
    outputs = make_ecs(monkeypatch, http.url)
    out, emit = _lines()
    rc = run_verify(outputs, timeout_s=5, interval_s=0.05, smoke_attempts=2, smoke_backoff_s=0.01, out=emit)
    text = "\n".join(out)
    assert rc == 1
    assert "/ready -> 503" in text
    assert '"failed":["postgres"]' in text
    assert http.hits.count("/ready") == 2  # retried, bounded


# ---------------------------------------------------------------------------------------------- Lambda


def _lambda_outputs(alias: str | None) -> dict[str, Any]:
    return {
        "target": "lambda",
        "url": "",
        "image": f"{REPO}@{NEW}",
        "health_path": "/health",
        "ready_path": "/ready",
        "region": REGION,
        "function_name": "api",
        "function_arn": f"arn:aws:lambda:{REGION}:{DEFAULT_ACCOUNT_ID}:function:api",
        "alias_name": alias,
        "log_group": "/aws/lambda/api",
    }


def test_lambda_alias_active_reports_resolved_image(aws, monkeypatch, http) -> None:
    # moto resolves ImageUri against its own ECR only when the ECR stub is off.
    monkeypatch.setenv("MOTO_LAMBDA_STUB_ECR", "FALSE")
    ecr = boto3.client("ecr", region_name=REGION)
    ecr.create_repository(repositoryName="app")
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 7, "digest": OLD},
        "layers": [],
    }
    digest = ecr.put_image(repositoryName="app", imageManifest=json.dumps(manifest), imageTag="v1")["image"][
        "imageId"
    ]["imageDigest"]
    role = boto3.client("iam").create_role(RoleName="fn", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    lam = boto3.client("lambda", region_name=REGION)
    lam.create_function(
        FunctionName="api", Role=role, PackageType="Image", Code={"ImageUri": f"{REPO}@{digest}"}
    )
    version = lam.publish_version(FunctionName="api")["Version"]
    lam.create_alias(FunctionName="api", Name="live", FunctionVersion=version)
    outputs = _lambda_outputs("live") | {"image": f"{REPO}@{digest}", "url": http.url}
    out, emit = _lines()
    rc = run_verify(outputs, timeout_s=5, interval_s=0.05, out=emit)
    text = "\n".join(out)
    assert rc == 0, text
    assert f"Lambda api:{version} (alias live): State Active, LastUpdateStatus Successful" in text
    assert digest in text
    assert "(= stack output)" in text


def _stubbed_lambda(config: dict[str, Any]) -> Any:
    client = boto3.client("lambda", region_name=REGION)
    stub = Stubber(client)
    base = {
        "FunctionName": "api",
        "FunctionArn": f"arn:aws:lambda:{REGION}:{DEFAULT_ACCOUNT_ID}:function:api",
        "PackageType": "Image",
    }
    stub.add_response(
        "get_function",
        {
            "Configuration": base | config,
            "Code": {
                "RepositoryType": "ECR",
                "ImageUri": f"{REPO}@{NEW}",
                "ResolvedImageUri": f"{REPO}@{NEW}",
            },
        },
        {"FunctionName": "api"},
    )
    stub.activate()
    return client


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (
            {
                "State": "Failed",
                "StateReasonCode": "ImageAccessDenied",
                "StateReason": "Lambda does not have permission to access the ECR image.",
            },
            "ImageAccessDenied: Lambda does not have permission to access the ECR image.",
        ),
        (
            {
                "State": "Active",
                "LastUpdateStatus": "Failed",
                "LastUpdateStatusReasonCode": "InvalidImage",
                "LastUpdateStatusReason": "The image manifest or layer media type is not supported.",
            },
            "InvalidImage: The image manifest or layer media type is not supported.",
        ),
    ],
)
def test_lambda_failure_reports_lambdas_reason(config, expected, monkeypatch) -> None:
    # moto always reports Active/Successful; botocore's Stubber (validated against the Lambda API model)
    # plays the Failed states through a real client.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    client = _stubbed_lambda(config)
    out, emit = _lines()
    rc = run_verify(
        _lambda_outputs(None),
        clients=Clients(aws=lambda s, r: client),
        timeout_s=5,
        interval_s=0.05,
        out=emit,
    )
    assert rc == 1
    assert expected in "\n".join(out)


# ------------------------------------------------------------------------------------------- Cloud Run

SVC = "projects/p1/locations/europe-west1/services/api"
REV2 = f"{SVC}/revisions/api-00002-abc"
REV1 = f"{SVC}/revisions/api-00001-xyz"
CS = run_v2.Condition.State


def _service(
    *,
    ready: Any,
    created: str,
    ready_rev: str,
    percent: int = 100,
    reconciling: bool = False,
    message: str = "",
) -> run_v2.Service:
    return run_v2.Service(
        name=SVC,
        reconciling=reconciling,
        latest_created_revision=created,
        latest_ready_revision=ready_rev,
        terminal_condition=run_v2.Condition(type_="Ready", state=ready, message=message),
        traffic_statuses=[
            run_v2.TrafficTargetStatus(
                type_=run_v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST,
                percent=percent,
            )
        ],
    )


def _revision(name: str, image: str, failed_message: str | None = None) -> run_v2.Revision:
    conditions = []
    if failed_message:
        conditions.append(
            run_v2.Condition(type_="ContainerHealthy", state=CS.CONDITION_FAILED, message=failed_message)
        )
    return run_v2.Revision(name=name, containers=[run_v2.Container(image=image)], conditions=conditions)


def _cloudrun(services: list[run_v2.Service], revisions: dict[str, run_v2.Revision]) -> GrpcFake:
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


def _cr_outputs(url: str) -> dict[str, Any]:
    return {
        "target": "cloudrun",
        "url": url,
        "image": f"europe-west1-docker.pkg.dev/p1/app/api@{NEW}",
        "health_path": "/health",
        "ready_path": "/ready",
        "project": "p1",
        "region": "europe-west1",
        "service_name": "api",
        "revision": "api-00002-abc",
        "service_account": "api@p1.iam.gserviceaccount.com",
    }


def _cr_clients(channel: grpc.Channel) -> Clients:
    return Clients(
        cloudrun_services=run_v2.ServicesClient(transport=ServicesGrpcTransport(channel=channel)),
        cloudrun_revisions=run_v2.RevisionsClient(transport=RevisionsGrpcTransport(channel=channel)),
    )


def test_cloudrun_waits_through_reconciling_until_latest_revision_serves_100(http) -> None:
    image = f"europe-west1-docker.pkg.dev/p1/app/api@{NEW}"
    fake = _cloudrun(
        [
            _service(
                ready=CS.CONDITION_RECONCILING, created=REV2, ready_rev=REV1, percent=0, reconciling=True
            ),
            _service(ready=CS.CONDITION_SUCCEEDED, created=REV2, ready_rev=REV2, percent=100),
        ],
        {REV2: _revision(REV2, image), REV1: _revision(REV1, "old")},
    )
    out, emit = _lines()
    with fake.serve() as channel:
        rc = run_verify(
            _cr_outputs(http.url), clients=_cr_clients(channel), timeout_s=5, interval_s=0.05, out=emit
        )
    text = "\n".join(out)
    assert rc == 0, text
    assert "Ready CONDITION_RECONCILING, latest created api-00002-abc, latest ready api-00001-xyz" in text
    assert (
        "Ready CONDITION_SUCCEEDED, latest created api-00002-abc, latest ready api-00002-abc, serving 100%"
        in text
    )
    assert f"running image: {image} (= stack output)" in text


def test_cloudrun_private_service_needs_an_id_token(http, monkeypatch) -> None:
    monkeypatch.setenv("NO_GCE_CHECK", "true")  # no metadata-server probe: no ADC on this machine
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent.json")
    http.bearer = "id-t0k3n"
    image = f"europe-west1-docker.pkg.dev/p1/app/api@{NEW}"
    fake = _cloudrun(
        [_service(ready=CS.CONDITION_SUCCEEDED, created=REV2, ready_rev=REV2)], {REV2: _revision(REV2, image)}
    )
    with fake.serve() as channel:
        out, emit = _lines()
        rc = run_verify(
            _cr_outputs(http.url), clients=_cr_clients(channel), timeout_s=5, interval_s=0.05, out=emit
        )
        assert rc == 1
        assert "/health -> 403 (" in "\n".join(out)
        assert 'rerun with --id-token "$(gcloud auth print-identity-token)"' in "\n".join(out)
        assert http.hits.count("/health") == 1, "an auth failure is not retried"
        out, emit = _lines()
        rc = run_verify(
            _cr_outputs(http.url),
            clients=_cr_clients(channel),
            timeout_s=5,
            interval_s=0.05,
            id_token="id-t0k3n",
            out=emit,
        )
        assert rc == 0, "\n".join(out)


def test_cloudrun_failed_revision_reports_condition_message(http) -> None:
    msg = (
        "The user-provided container failed to start and listen on the port defined provided by the "
        "PORT=8080 environment variable within the allocated timeout."
    )
    fake = _cloudrun(
        [
            _service(
                ready=CS.CONDITION_FAILED,
                created=REV2,
                ready_rev=REV1,
                message="Revision 'api-00002-abc' is not ready and cannot serve traffic.",
            )
        ],
        {REV2: _revision(REV2, "x", failed_message=msg)},
    )
    out, emit = _lines()
    with fake.serve() as channel:
        rc = run_verify(
            _cr_outputs(http.url), clients=_cr_clients(channel), timeout_s=5, interval_s=0.05, out=emit
        )
    text = "\n".join(out)
    assert rc == 1
    assert "Revision 'api-00002-abc' is not ready and cannot serve traffic." in text
    assert f"revision api-00002-abc ContainerHealthy: {msg}" in text
    assert http.hits == []


def test_cloudrun_traffic_pinned_to_old_revision_times_out(http) -> None:
    fake = _cloudrun([_service(ready=CS.CONDITION_SUCCEEDED, created=REV2, ready_rev=REV2, percent=0)], {})
    out, emit = _lines()
    with fake.serve() as channel:
        rc = run_verify(
            _cr_outputs(http.url), clients=_cr_clients(channel), timeout_s=0.2, interval_s=0.05, out=emit
        )
    assert rc == 1
    assert "serving 0%" in "\n".join(out)


def test_cloudrun_unknown_service_reports_not_found(http) -> None:
    fake = _cloudrun([_service(ready=CS.CONDITION_SUCCEEDED, created=REV2, ready_rev=REV2)], {})
    outputs = _cr_outputs(http.url) | {"service_name": "other"}
    out, emit = _lines()
    with fake.serve() as channel:
        rc = run_verify(outputs, clients=_cr_clients(channel), timeout_s=5, interval_s=0.05, out=emit)
    assert rc == 1
    assert "services/other not found" in "\n".join(out)


# ------------------------------------------------------------------------------------------------- VPS


def _inspect(status: str, health: str, image: str, log: str = "") -> str:
    return json.dumps(
        [
            {
                "State": {
                    "Status": status,
                    "ExitCode": 0,
                    "OOMKilled": False,
                    "Health": {"Status": health, "Log": [{"ExitCode": 1, "Output": log}] if log else []},
                },
                "Config": {"Image": image},
                "RestartCount": 0,
            }
        ]
    )


def _vps_outputs(url: str) -> dict[str, Any]:
    return {
        "target": "vps",
        "url": url,
        "image": f"ghcr.io/acme/api@{NEW}",
        "health_path": "/health",
        "ready_path": "/ready",
        "host": "203.0.113.7",
        "container_name": "api",
        "domain": "api.example.com",
    }


def test_vps_healthy_container_over_ssh(tmp_path: Path, monkeypatch, http) -> None:
    bindir = tmp_path / "bin"
    fake_executable(bindir, "ssh", stdout=_inspect("running", "healthy", f"ghcr.io/acme/api@{NEW}"))
    monkeypatch.setenv("PATH", path_with(bindir))
    out, emit = _lines()
    rc = run_verify(_vps_outputs(http.url), timeout_s=5, interval_s=0.05, ssh_user="ops", out=emit)
    assert rc == 0, "\n".join(out)
    argv = calls_of(bindir, "ssh")[0]
    assert argv[:4] == ["-o", "BatchMode=yes", "-o", "ConnectTimeout=5"]
    assert argv[4:] == ["ops@203.0.113.7", "docker", "inspect", "api"]


def test_vps_unhealthy_container_reports_health_check_output(tmp_path: Path, monkeypatch, http) -> None:
    bindir = tmp_path / "bin"
    log = "curl: (7) Failed to connect to localhost port 8000: Connection refused"
    fake_executable(bindir, "ssh", stdout=_inspect("running", "unhealthy", f"ghcr.io/acme/api@{NEW}", log))
    monkeypatch.setenv("PATH", path_with(bindir))
    out, emit = _lines()
    assert run_verify(_vps_outputs(http.url), timeout_s=5, interval_s=0.05, out=emit) == 1
    assert log in "\n".join(out)


# --------------------------------------------------------------------------------------------- outputs


def test_outputs_from_pulumi_cli_when_present(tmp_path: Path, monkeypatch, http) -> None:
    bindir = tmp_path / "bin"
    outputs = _vps_outputs(http.url)
    fake_executable(bindir, "pulumi", stdout=json.dumps(outputs))
    fake_executable(bindir, "ssh", stdout=_inspect("running", "healthy", outputs["image"]))
    monkeypatch.setenv("PATH", path_with(bindir))
    stacks = tmp_path / "stacks"
    stacks.mkdir()
    app = {
        "target": "vps",
        "name": "items-api",
        "image": {"digest": outputs["image"]},
        "domain": "api.example.com",
        "vps": {"host": "203.0.113.7", "ssh_user": "ops", "ssh_port": 2222},
    }
    (stacks / "Pulumi.prod-vps.yaml").write_text(json.dumps({"config": {"fastapi-deploy:app": app}}))
    out, emit = _lines()
    rc = cli(
        [
            *("--stack", "prod-vps", "--stacks-dir", str(stacks), "--ssh-identity", "/keys/deploy"),
            *("--timeout", "5", "--interval", "0.05"),
        ],
        out=emit,
    )
    assert rc == 0, "\n".join(out)
    assert calls_of(bindir, "pulumi") == [
        ["stack", "output", "--json", "--show-secrets=false", "--stack", "prod-vps"]
    ]
    # The ssh login comes from the stack file (outputs carry only the host).
    assert calls_of(bindir, "ssh")[0][4:] == [
        "-p",
        "2222",
        "-i",
        "/keys/deploy",
        "-o",
        "IdentitiesOnly=yes",
        "ops@203.0.113.7",
        "docker",
        "inspect",
        "api",
    ]


def test_the_ssh_login_comes_from_the_stack_file_where_plan_finds_it(
    tmp_path: Path, monkeypatch, http
) -> None:
    """No --stacks-dir: the stack file beside Pulumi.yaml (no stackConfigDir), as `infra plan` reads it."""
    bindir = tmp_path / "bin"
    outputs = _vps_outputs(http.url)
    fake_executable(bindir, "ssh", stdout=_inspect("running", "healthy", outputs["image"]))
    monkeypatch.setenv("PATH", path_with(bindir))
    project = tmp_path / "shop"
    project.mkdir()
    (project / "Pulumi.yaml").write_text("name: shop\nruntime: python\n")
    app = {
        "target": "vps",
        "name": "items-api",
        "image": {"digest": outputs["image"]},
        "domain": "api.example.com",
        "vps": {"host": "203.0.113.7", "ssh_user": "ops", "ssh_port": 2222},
    }
    (project / "Pulumi.shop.yaml").write_text(json.dumps({"config": {"fastapi-deploy:app": app}}))
    monkeypatch.chdir(project)
    out, emit = _lines()
    rc = cli(
        ["--stack", "shop", "--outputs-json", json.dumps(outputs), "--timeout", "5", "--interval", "0.05"],
        out=emit,
    )
    assert rc == 0, "\n".join(out)
    argv = calls_of(bindir, "ssh")[0]
    assert argv[argv.index("-p") + 1] == "2222"
    assert "ops@203.0.113.7" in argv


def test_outputs_missing_contract_key_is_a_usage_error(capsys) -> None:
    outputs = _vps_outputs("https://api.example.com")
    del outputs["container_name"]
    assert cli(["--outputs-json", json.dumps(outputs)]) == 2
    assert "vps stack outputs lack container_name" in capsys.readouterr().err


def test_outputs_file_and_no_cli(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no pulumi anywhere
    assert cli(["--stack", "prod-ecs"]) == 2
    assert "no Pulumi CLI on PATH: pass the outputs with --outputs FILE" in capsys.readouterr().err
    assert cli(["--outputs", str(tmp_path / "missing.json")]) == 2
    assert "missing.json does not exist" in capsys.readouterr().err


# ------------------------------------------------------------------------------- the real service


@pytest.fixture(scope="module")
def real_service() -> Iterator[tuple[str, Any]]:
    """The real app (create_app) under uvicorn on loopback with throwaway PostgreSQL and Redis."""
    import uvicorn

    from app.main import create_app
    from app.settings import load_settings
    from devenv.services import free_port, postgres, redis

    with postgres() as pg, redis() as rd:
        # migrated, as a release is before it serves (/ready refuses a database behind the code)
        subprocess.run(
            [sys.executable, "-m", "app.migrate"],
            env={**os.environ, "DATABASE_URL": pg.url},
            check=True,
            capture_output=True,
            timeout=120,
        )
        app = create_app(load_settings(database_url=pg.url, redis_url=rd.url, app_env="development"))
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 20
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.started, "uvicorn did not start"
        try:
            yield f"http://127.0.0.1:{port}", rd
        finally:
            server.should_exit = True
            thread.join(timeout=10)


def test_smoke_against_the_real_service_and_its_readiness_failure(aws, monkeypatch, real_service) -> None:
    url, rd = real_service
    outputs = make_ecs(monkeypatch, url)
    out, emit = _lines()
    rc = run_verify(outputs, timeout_s=5, interval_s=0.05, out=emit)
    assert rc == 0, "\n".join(out)
    rd.stop()
    try:
        out, emit = _lines()
        rc = run_verify(outputs, timeout_s=5, interval_s=0.05, smoke_attempts=1, out=emit)
        text = "\n".join(out)
        assert rc == 1
        assert "/health -> 200" in text  # liveness does not depend on Redis
        assert "/ready -> 503" in text
        assert '"failed":["redis"]' in text
    finally:
        rd.start()


# ------------------------------------------------------------------------------------- waiting itself


class _StuckPoller:
    """A platform that never settles (what a stuck rollout looks like from the outside)."""

    def __init__(self) -> None:
        self.polls = 0

    def poll(self) -> Observation:
        self.polls += 1
        return Observation("progress", "primary IN_PROGRESS, running 1/2")

    def explain(self) -> str:
        return "stopped task abc: Essential container in task exited"


def test_wait_is_bounded_and_shows_a_heartbeat_while_nothing_changes() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    lines: list[str] = []
    poller = _StuckPoller()
    obs = wait_until_stable(
        poller, timeout_s=65, interval_s=10, progress=lines.append, clock=lambda: now[0], sleep=sleep
    )
    assert obs.state == "failed"
    assert obs.summary == "not stable after 65 s: primary IN_PROGRESS, running 1/2"
    assert obs.reason == "stopped task abc: Essential container in task exited"
    assert sum(slept) == 65, "never sleeps past the deadline"
    assert [line.split("]")[0] for line in lines] == ["[    0s", "[   30s", "[   60s"]
    assert poller.polls == 8  # t = 0, 10, ..., 60, 65


def test_verify_without_aws_credentials_is_one_line_and_exit_3(tmp_path, monkeypatch, capsys) -> None:
    """No traceback for the environment's problems (the CLI used to die in describe_services)."""
    import boto3

    from fastapi_deploy.verify import cli

    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    outputs = {
        "target": "ecs",
        "url": "https://api.example.com",
        "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/api@sha256:" + "a" * 64,
        "health_path": "/health",
        "ready_path": "/ready",
        "region": "us-east-1",
        "cluster_name": "c",
        "service_name": "s",
        "log_group": "/ecs/api",
        "target_group_arn": (
            "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/api/0123456789abcdef"
        ),
        "load_balancer_dns": "api-123.us-east-1.elb.amazonaws.com",
    }
    import json

    code = cli(["--outputs-json", json.dumps(outputs), "--timeout", "2", "--interval", "1", "--no-smoke"])
    err = capsys.readouterr().err
    assert code == 3
    assert "Traceback" not in err
    assert "AWS: no usable credentials" in err


def test_verify_and_doctor_document_their_exit_codes(capsys) -> None:
    from fastapi_deploy import doctor, verify

    for module in (verify, doctor):
        assert module.cli(["--help"]) == 0
        text = capsys.readouterr().out
        assert "exit codes:" in text
        assert "3  the run stopped early" in text
