"""The public component API: each component built from its Args in a few lines (no stack file, no
StackConfig), bad Args refused naming the Arg before anything registers, outputs declared once, the
schema the Pulumi component-provider analyzer infers from the annotations, child-name enforcement."""

from __future__ import annotations

from typing import Any

import pulumi
import pytest

from fastapi_deploy import contract, registry
from fastapi_deploy.component import ArgsError, ChildNameError, NamedComponent, output_names
from fastapi_deploy.mocks import ProgramResult, RecordingMocks, run_callable

DIGEST = "123456789012.dkr.ecr.us-east-1.amazonaws.com/shop@sha256:" + "c" * 64
GAR = "europe-west1-docker.pkg.dev/acme-prod/shop/shop@sha256:" + "d" * 64
CERT = "arn:aws:acm:us-east-1:123456789012:certificate/12345678-1234-1234-1234-123456789012"
CERT_EU = "arn:aws:acm:eu-west-1:123456789012:certificate/12345678-1234-1234-1234-123456789012"
KMS = "arn:aws:kms:us-east-1:123456789012:key/0f6d1a4e-3b1c-4a2b-9e8f-1c2d3e4f5a6b"
VPC = "vpc-0123456789abcdef0"
PUBLIC = ["subnet-0aaaaaaaaaaaaaaa1", "subnet-0aaaaaaaaaaaaaaa2"]
PRIVATE = ["subnet-0bbbbbbbbbbbbbbb1", "subnet-0bbbbbbbbbbbbbbb2"]
SG = "sg-0123456789abcdef0"
LISTENER_EU = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:listener/app/edge/0a1b2c3d/4e5f6a7b"


class Out:
    """An Output of ``value``, made when the test runs (:func:`live`). One made at import, in a table, would
    be a task of the collection's event loop: Pulumi tracks it until a program awaits it, and after the
    app tests replaced that loop the first program of the session would wait for it forever."""

    def __init__(self, value: Any) -> None:
        self.value = value


def live(value: Any) -> Any:
    """``value`` with every :class:`Out` turned into its Output."""
    if isinstance(value, Out):
        return pulumi.Output.from_input(value.value)
    if isinstance(value, dict):
        return {k: live(v) for k, v in value.items()}
    if isinstance(value, list):
        return [live(v) for v in value]
    return value


def ecs_args(**extra: Any) -> dict[str, Any]:
    return {"image": DIGEST, "port": 9000, "scaling": {"min": 1, "max": 4}, **extra}


def cloudrun_args(**extra: Any) -> dict[str, Any]:
    return {
        "image": GAR,
        "project": "acme-prod",
        "region": "europe-west1",
        "scaling": {"min": 0, "max": 5},
        **extra,
    }


def lambda_args(**extra: Any) -> dict[str, Any]:
    return {"image": DIGEST, "reserved_concurrency": 20, "region": "us-east-1", **extra}


def vps_args(**extra: Any) -> dict[str, Any]:
    return {"image": GAR, "host": "203.0.113.10", "domain": "shop.example.org", **extra}


@pytest.fixture(autouse=True)
def _no_region_from_the_shell(monkeypatch: pytest.MonkeyPatch) -> None:
    """The default AWS provider reads AWS_REGION / AWS_DEFAULT_REGION when aws:region is unset, and so do
    the ARN checks: a developer's shell must not decide these tests (each sets aws:region when it needs
    one)."""
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)


def build(
    target: str,
    args: dict[str, Any],
    mocks: RecordingMocks | None = None,
    config: dict[str, Any] | None = None,
    opts: Any = None,
    name: str = "shop",
) -> ProgramResult:
    """Create one component from Args under the recording mocks and export its outputs dict
    (``opts``: a callable returning the component's ResourceOptions, made inside the program)."""

    def program() -> None:
        options = opts() if opts is not None else None
        if target == "ecs":
            from fastapi_deploy.ecs import FargateService

            comp: Any = FargateService(name, args, options)  # type: ignore[arg-type]
        elif target == "cloudrun":
            from fastapi_deploy.cloudrun import CloudRunService

            comp = CloudRunService(name, args, options)  # type: ignore[arg-type]
        elif target == "lambda":
            from fastapi_deploy.awslambda import LambdaService

            comp = LambdaService(name, args, options)  # type: ignore[arg-type]
        else:
            from fastapi_deploy.vps import VpsService

            comp = VpsService(name, args, options)  # type: ignore[arg-type]
        for key, value in comp.outputs.items():
            pulumi.export(key, value)

    return run_callable(program, stack="direct", mocks=mocks, config=config)


# ------------------------------------------------------------------------------------- direct use
def test_ecs_from_args() -> None:
    """FargateService from six Args: a new VPC, ALB, service on port 9000, outputs of the contract."""
    result = build("ecs", ecs_args(certificate_arn=CERT, domain="shop.example.org", env={"FEATURE_X": "on"}))
    td = result.one("aws:ecs/taskDefinition:TaskDefinition").inputs
    assert (td["cpu"], td["memory"]) == ("512", "1024")  # defaults
    import json

    container = json.loads(td["containerDefinitions"])[0]
    env = {e["name"]: e["value"] for e in container["environment"]}
    assert env["FEATURE_X"] == "on"
    assert env["PORT"] == "9000"  # the tuning's variables are added by the component
    assert env["METRICS_EMF_SERVICE"] == "shop"  # the dimension its alarms read
    assert result.one("aws:lb/targetGroup:TargetGroup").inputs["port"] == 9000
    assert result.one("aws:ecs/service:Service").inputs["desiredCount"] == 1
    assert len(result.by_type("aws:ec2/vpc:Vpc")) == 1
    assert result.outputs["url"] == "https://shop.example.org"
    assert result.outputs["target"] == "ecs"
    assert set(result.outputs) == {*contract.COMMON_OUTPUTS, *registry.get("ecs").outputs}
    for r in result.resources:
        assert r.name == "shop" or r.name.startswith("shop-"), r.name


def test_ecs_attaches_to_existing_vpc_cluster_and_security_groups() -> None:
    """awsx-style: an existing VPC + subnets (Outputs of another resource are fine), cluster, extra SG."""
    vpc_id = pulumi.Output.from_input("vpc-0123456789abcdef0")
    args = ecs_args(
        vpc_id=vpc_id,
        public_subnet_ids=["subnet-0aaaaaaaaaaaaaaa1", "subnet-0aaaaaaaaaaaaaaa2"],
        private_subnet_ids=["subnet-0bbbbbbbbbbbbbbb1", "subnet-0bbbbbbbbbbbbbbb2"],
        cluster_arn="arn:aws:ecs:us-east-1:123456789012:cluster/platform",
        task_security_group_ids=["sg-0123456789abcdef0"],
    )
    result = build("ecs", args)
    assert result.by_type("aws:ec2/vpc:Vpc") == []
    assert result.by_type("aws:ecs/cluster:Cluster") == []
    svc = result.one("aws:ecs/service:Service").inputs
    assert svc["cluster"] == "arn:aws:ecs:us-east-1:123456789012:cluster/platform"
    net = svc["networkConfiguration"]
    assert net["subnets"] == ["subnet-0bbbbbbbbbbbbbbb1", "subnet-0bbbbbbbbbbbbbbb2"]
    assert "sg-0123456789abcdef0" in net["securityGroups"]
    assert result.one("aws:lb/targetGroup:TargetGroup").inputs["vpcId"] == "vpc-0123456789abcdef0"
    assert result.outputs["cluster_name"] == "platform"
    scaling = result.one("aws:appautoscaling/target:Target").inputs
    assert scaling["resourceId"].startswith("service/platform/")


def test_cloudrun_from_args() -> None:
    result = build(
        "cloudrun",
        cloudrun_args(
            secrets={"DATABASE_URL": "gcp:shop-db"},
            service_account_email="runner@acme-prod.iam.gserviceaccount.com",
            vpc_network="default",
            vpc_subnetwork="run-egress",
        ),
    )
    assert result.by_type("gcp:serviceaccount/account:Account") == []  # the given one is used
    svc = result.one("gcp:cloudrunv2/service:Service").inputs
    tmpl = svc["template"]
    assert tmpl["serviceAccount"] == "runner@acme-prod.iam.gserviceaccount.com"
    assert tmpl["vpcAccess"]["networkInterfaces"] == [{"network": "default", "subnetwork": "run-egress"}]
    assert tmpl["containers"][0]["ports"]["containerPort"] == 8080
    member = result.one("gcp:secretmanager/secretIamMember:SecretIamMember").inputs
    assert member["member"] == "serviceAccount:runner@acme-prod.iam.gserviceaccount.com"
    assert result.outputs["service_account"] == "runner@acme-prod.iam.gserviceaccount.com"
    assert set(result.outputs) == {*contract.COMMON_OUTPUTS, *registry.get("cloudrun").outputs}


def test_lambda_from_args() -> None:
    result = build(
        "lambda",
        lambda_args(
            secrets={"DATABASE_URL": "ssm:/shop/db"},
            subnet_ids=["subnet-0aaaaaaaaaaaaaaa1", "subnet-0aaaaaaaaaaaaaaa2"],
            security_group_ids=["sg-0123456789abcdef0"],
        ),
    )
    fn = result.one("aws:lambda/function:Function").inputs
    assert fn["reservedConcurrentExecutions"] == 20
    assert fn["environment"]["variables"]["DATABASE_URL"] == "ssm:/shop/db"
    assert fn["vpcConfig"]["subnetIds"] == ["subnet-0aaaaaaaaaaaaaaa1", "subnet-0aaaaaaaaaaaaaaa2"]
    names = {r.name for r in result.by_type("aws:iam/rolePolicy:RolePolicy")}
    assert names == {"shop-logs-policy", "shop-secrets-policy", "shop-vpc-policy"}
    assert result.outputs["function_name"] == "shop"
    assert set(result.outputs) == {*contract.COMMON_OUTPUTS, *registry.get("lambda").outputs}


def test_lambda_with_an_existing_role_creates_none() -> None:
    role = "arn:aws:iam::123456789012:role/shop-runtime"
    result = build("lambda", lambda_args(role_arn=role))
    assert result.by_type("aws:iam/role:Role") == []
    assert result.one("aws:lambda/function:Function").inputs["role"] == role


def test_vps_from_args() -> None:
    result = build("vps", vps_args(port=9000, health={"readiness_path": "/healthz/ready"}))
    app = next(r for r in result.by_type("docker:index/container:Container") if r.name == "shop-app")
    assert app.inputs["healthcheck"]["tests"][-1].count("9000") >= 1
    assert result.outputs["url"] == "https://shop.example.org"
    assert result.outputs["ready_path"] == "/healthz/ready"
    assert set(result.outputs) == {*contract.COMMON_OUTPUTS, *registry.get("vps").outputs}


def test_a_passed_tuning_is_used_as_is() -> None:
    """``tuning=`` skips the computation (the program passes the one it computed from the stack)."""
    import dataclasses

    from fastapi_deploy.ecs.component import inputs_from_args, tuning_for

    computed = tuning_for(inputs_from_args(ecs_args()))  # type: ignore[arg-type]
    mine = dataclasses.replace(computed, workers=1)

    def program() -> None:
        from fastapi_deploy.ecs import FargateService

        svc = FargateService("shop", ecs_args(), tuning=mine)  # type: ignore[arg-type]
        assert svc.tuning is mine

    result = run_callable(program)
    import json

    env = json.loads(result.one("aws:ecs/taskDefinition:TaskDefinition").inputs["containerDefinitions"])[0]
    assert {"name": "WEB_CONCURRENCY", "value": "1"} in env["environment"]


# -------------------------------------------------------------------------------- bad Args, nothing made
BAD: list[tuple[str, dict[str, Any], str]] = [
    ("ecs", ecs_args(image=None), r"FargateServiceArgs\.image: required"),
    ("ecs", ecs_args(cpu=256, memory=4096), r"FargateServiceArgs\.memory: 4096 is not valid with cpu 256"),
    ("ecs", ecs_args(cpu=300), r"FargateServiceArgs\.cpu: .*not a Fargate cpu"),
    ("ecs", ecs_args(port=80), r"FargateServiceArgs\.port: .*1024"),
    (
        "ecs",
        ecs_args(scaling={"min": 5, "max": 2}),
        r"FargateServiceArgs\.scaling: .*min \(5\) is above max \(2\)",
    ),
    ("ecs", ecs_args(scaling={"min": -1, "max": 2}), r"FargateServiceArgs\.scaling\.min: "),
    ("ecs", ecs_args(secrets={"DB": "ssm:no-slash"}), r"FargateServiceArgs\.secrets\.DB: "),
    ("ecs", ecs_args(secrets={"DB": "gcp:shop-db"}), r"FargateServiceArgs\.secrets\.DB: scheme gcp"),
    ("ecs", ecs_args(health={"liveness_path": "health"}), r"FargateServiceArgs\.health\.liveness_path: "),
    ("ecs", ecs_args(certificate_arn="arn:nope"), r"FargateServiceArgs\.certificate_arn: "),
    ("ecs", ecs_args(vpc_id="vpc-0123456789abcdef0"), r"FargateServiceArgs\.public_subnet_ids: "),
    ("ecs", ecs_args(imgae="x"), r"FargateServiceArgs\.imgae: unknown Arg"),
    (
        "ecs",
        ecs_args(listener_arn="arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/edge/0a/0b"),
        r"FargateServiceArgs\.listener_rule_priority: required with listener_arn",
    ),
    ("ecs", ecs_args(listener_rule_priority=10), r"FargateServiceArgs\.listener_rule_priority: only with"),
    (
        "ecs",
        ecs_args(scaling={"min": 1, "max": 200}),
        r"FargateServiceArgs\.scaling\.max.*FargateServiceArgs\.database",
    ),
    ("cloudrun", cloudrun_args(project=None), r"CloudRunServiceArgs\.project: required"),
    ("cloudrun", cloudrun_args(cpu=3), r"CloudRunServiceArgs\.cpu: "),
    ("cloudrun", cloudrun_args(secrets={"DB": "ssm:/x"}), r"CloudRunServiceArgs\.secrets\.DB: scheme ssm"),
    ("cloudrun", cloudrun_args(ingress="public"), r"CloudRunServiceArgs\.ingress: "),
    ("lambda", lambda_args(reserved_concurrency=None), r"LambdaServiceArgs\.reserved_concurrency: required"),
    ("lambda", lambda_args(memory_mb=64), r"LambdaServiceArgs\.memory_mb: "),
    (
        "lambda",
        lambda_args(env={"AWS_REGION": "x"}),
        r"LambdaServiceArgs\.env: \['AWS_REGION'\] are reserved",
    ),
    ("lambda", lambda_args(env={"BIG": "x" * 5000}), r"LambdaServiceArgs\.env: .* bytes"),
    ("lambda", lambda_args(subnet_ids=["subnet-0aaaaaaaaaaaaaaa1"]), r"LambdaServiceArgs\.subnet_ids: "),
    ("vps", vps_args(host="bad host!"), r"VpsServiceArgs\.host: "),
    ("vps", vps_args(domain=None), r"VpsServiceArgs\.domain: required"),
    ("vps", vps_args(ssh_key_secret="file:/id"), r"VpsServiceArgs\.ssh_key_secret: "),
    # env and tags: a credential in plain text, a password URL, wrong types, a whole Output
    (
        "ecs",
        ecs_args(env={"JWT_SECRET_KEY": "hunter2hunter2"}),
        r"FargateServiceArgs\.env\.JWT_SECRET_KEY: a credential",
    ),
    (
        "vps",
        vps_args(env={"CACHE": "redis://u:hunter2@cache:6379/0"}),
        r"VpsServiceArgs\.env\.CACHE: the URL carries a password \('redis:…' \(30 chars\)\), which in "
        r"plain text would sit in the state and the console; pass a secret reference in "
        r"VpsServiceArgs\.secrets\.CACHE",
    ),
    ("ecs", ecs_args(env={"A": 1}), r"FargateServiceArgs\.env\.A: a string \(or an Output of one\), not int"),
    ("lambda", lambda_args(env={"1BAD": "x"}), r"LambdaServiceArgs\.env: '1BAD' is not an environment"),
    ("cloudrun", cloudrun_args(env=["A=1"]), r"CloudRunServiceArgs\.env: a mapping"),
    ("cloudrun", cloudrun_args(tags={"team": 1}), r"CloudRunServiceArgs\.tags: a mapping of plain strings"),
    ("ecs", ecs_args(tags=["a"]), r"FargateServiceArgs\.tags: a mapping of plain strings"),
    # id lists: a lone string is not a list; a count known now is checked now, Outputs in it or not
    (
        "ecs",
        ecs_args(vpc_id=VPC, public_subnet_ids=PUBLIC, private_subnet_ids="subnet-0bbbbbbbbbbbbbbb1"),
        r"FargateServiceArgs\.private_subnet_ids: a list of ids .* not str",
    ),
    (
        "ecs",
        ecs_args(vpc_id=VPC, public_subnet_ids=PUBLIC, private_subnet_ids=[Out(PRIVATE[0])]),
        r"FargateServiceArgs\.private_subnet_ids: needs at least 2 subnets in different AZs with vpc_id",
    ),
    (
        "ecs",
        ecs_args(vpc_id=VPC, public_subnet_ids=PUBLIC, private_subnet_ids=[PRIVATE[0], PRIVATE[0]]),
        r"FargateServiceArgs\.private_subnet_ids: subnet ids repeat",
    ),
    (
        "ecs",
        ecs_args(vpc_id="vpc-main", public_subnet_ids=PUBLIC, private_subnet_ids=PRIVATE),
        r"FargateServiceArgs\.vpc_id: 'vpc-main' is not a VPC id",
    ),
    (
        "ecs",
        ecs_args(public_subnet_ids=Out(PUBLIC)),
        r"FargateServiceArgs\.public_subnet_ids: subnets need vpc_id",
    ),
    (
        "ecs",
        ecs_args(task_security_group_ids=["default"]),
        r"FargateServiceArgs\.task_security_group_ids: 'default' is not a security group id",
    ),
    (
        "lambda",
        lambda_args(subnet_ids=Out(PRIVATE)),
        r"LambdaServiceArgs\.subnet_ids: subnet_ids and security_group_ids go together",
    ),
    (
        "lambda",
        lambda_args(subnet_ids=PRIVATE, security_group_ids=[]),
        r"LambdaServiceArgs\.subnet_ids: subnet_ids and security_group_ids go together",
    ),
    (
        "lambda",
        lambda_args(subnet_ids=[Out(PRIVATE[0])], security_group_ids=[SG]),
        r"LambdaServiceArgs\.subnet_ids: needs at least 2 subnets",
    ),
    (
        "cloudrun",
        cloudrun_args(alerts={"gcp_notification_channels": ["oncall"]}),
        r"CloudRunServiceArgs\.alerts\.gcp_notification_channels: 'oncall' is not a notification channel",
    ),
    (
        "cloudrun",
        cloudrun_args(alerts={"webhook_url": "https://hooks.example.org/x"}),
        r"CloudRunServiceArgs\.alerts\.webhook_url: unknown Arg; known: emails, gcp_notification_channels",
    ),
    (
        "cloudrun",
        cloudrun_args(alerts={"emails": ["oncall"]}),
        r"CloudRunServiceArgs\.alerts\.emails: 'oncall' is not an email address",
    ),
    # ARNs given as plain strings: service, resource, partition (and region: the table below)
    (
        "ecs",
        ecs_args(certificate_arn="arn:aws:sqs:us-east-1:123456789012:certificate/" + "0" * 36),
        r"FargateServiceArgs\.certificate_arn: '.*' is not an ACM certificate ARN",
    ),
    (
        "ecs",
        ecs_args(cluster_arn="arn:aws-cn:ecs:us-east-1:123456789012:cluster/platform"),
        r"FargateServiceArgs\.cluster_arn: partition 'aws-cn' does not match us-east-1's partition 'aws'",
    ),
    (
        "ecs",
        ecs_args(repository_arn="arn:aws:s3:::shop-images"),
        r"FargateServiceArgs\.repository_arn: 'arn:aws:s3:::shop-images' is not an ECR repository ARN",
    ),
    (
        "ecs",
        ecs_args(secret_kms_key_arns=[KMS, "alias/shop"]),
        r"FargateServiceArgs\.secret_kms_key_arns\[1\]: 'alias/shop' is not a KMS key ARN",
    ),
    (
        "lambda",
        lambda_args(role_arn="arn:aws:iam:us-east-1:123456789012:role/shop"),
        r"LambdaServiceArgs\.role_arn: .*an IAM role ARN has no region",
    ),
    (
        "lambda",
        lambda_args(domain="api.example.org", certificate_arn=CERT_EU),
        r"LambdaServiceArgs\.certificate_arn: the certificate is in eu-west-1 but the component deploys to "
        r"us-east-1 \(LambdaServiceArgs\.region\); a load balancer or regional API serves only a certificate",
    ),
    (
        "lambda",
        lambda_args(alerts={"sns_topic_arn": "arn:aws:sns:eu-west-1:123456789012:ops"}),
        r"LambdaServiceArgs\.alerts\.sns_topic_arn: the topic is in eu-west-1 but the component deploys to "
        r"us-east-1",
    ),
    (
        "lambda",
        lambda_args(secret_kms_key_arns=["arn:aws:kms:eu-west-1:123456789012:key/" + "1" * 36]),
        r"LambdaServiceArgs\.secret_kms_key_arns\[0\]: the key is in eu-west-1",
    ),
    (
        "cloudrun",
        cloudrun_args(region="europe-west99"),
        r"CloudRunServiceArgs\.region: 'europe-west99' is not",
    ),
    (
        "cloudrun",
        cloudrun_args(region=Out("europe-west1")),
        r"CloudRunServiceArgs\.region: a plain string, not an Output",
    ),
]


@pytest.mark.parametrize(("target", "args", "message"), BAD, ids=[m for _, _, m in BAD])
def test_bad_args_fail_naming_the_arg_before_anything_registers(
    target: str, args: dict[str, Any], message: str
) -> None:
    mocks = RecordingMocks()
    with pytest.raises(ValueError, match=message) as info:
        build(target, live({k: v for k, v in args.items() if v is not None}), mocks=mocks)
    assert isinstance(info.value, (ArgsError, ValueError))
    assert mocks.monitor.recorded == []  # type: ignore[attr-defined]


HOOK_WITH_PASSWORD = "https://u:S3CRET@hooks.example/x"

# Args of the wrong shape: each refused as an ArgsError naming it, nothing registered (not deployed one
# character at a time, not a TypeError from inside the component, not a truthy string taken as true).
BAD_SHAPE: list[tuple[str, dict[str, Any], str]] = [
    # a lone string where a list goes
    (
        "ecs",
        ecs_args(task_security_group_ids=SG),
        r"FargateServiceArgs\.task_security_group_ids: a list of ids .* not str",
    ),
    (
        "ecs",
        ecs_args(secret_kms_key_arns=KMS),
        r"FargateServiceArgs\.secret_kms_key_arns: a list of ids .* not str",
    ),
    (
        "ecs",
        ecs_args(alerts={"emails": "ops@example.org"}),
        r"FargateServiceArgs\.alerts\.emails: a list, not str",
    ),
    (
        "ecs",
        ecs_args(alerts={"emails": Out(["ops@example.org"])}),
        r"FargateServiceArgs\.alerts\.emails: a list, not an Output",
    ),
    (
        "cloudrun",
        cloudrun_args(alerts={"emails": "ops@example.org"}),
        r"CloudRunServiceArgs\.alerts\.emails: a list, not str",
    ),
    (
        "cloudrun",
        cloudrun_args(alerts={"gcp_notification_channels": "projects/acme-prod/notificationChannels/1"}),
        r"CloudRunServiceArgs\.alerts\.gcp_notification_channels: a list of ids .* not str",
    ),
    (
        "lambda",
        lambda_args(alerts={"emails": "ops@example.org"}),
        r"LambdaServiceArgs\.alerts\.emails: a list, not str",
    ),
    (
        "lambda",
        lambda_args(subnet_ids=PRIVATE[0], security_group_ids=[SG]),
        r"LambdaServiceArgs\.subnet_ids: a list of ids .* not str",
    ),
    (
        "lambda",
        lambda_args(subnet_ids=PRIVATE, security_group_ids=SG),
        r"LambdaServiceArgs\.security_group_ids: a list of ids .* not str",
    ),
    (
        "lambda",
        lambda_args(secret_kms_key_arns=KMS),
        r"LambdaServiceArgs\.secret_kms_key_arns: a list of ids",
    ),
    # a key a nested Args dict does not declare, in every target
    (
        "cloudrun",
        cloudrun_args(alerts={"emials": ["ops@example.org"]}),
        r"CloudRunServiceArgs\.alerts\.emials: unknown Arg; known: emails, gcp_notification_channels",
    ),
    (
        "ecs",
        ecs_args(alerts={"emials": ["ops@example.org"]}),
        r"FargateServiceArgs\.alerts\.emials: unknown Arg",
    ),
    ("lambda", lambda_args(throttling={"burts": 1}), r"LambdaServiceArgs\.throttling\.burts: unknown Arg"),
    (
        "vps",
        vps_args(registry={"server": "ghcr.io", "username": "u", "password": "hunter2"}),
        r"VpsServiceArgs\.registry\.password: unknown Arg; known: server, username, password_secret",
    ),
    # image: a reference string or an Output of one, in every target
    ("ecs", ecs_args(image=123), r"FargateServiceArgs\.image: a string \(or an Output of one\), not int"),
    (
        "cloudrun",
        cloudrun_args(image=123),
        r"CloudRunServiceArgs\.image: a string \(or an Output of one\), not int",
    ),
    (
        "lambda",
        lambda_args(image=123),
        r"LambdaServiceArgs\.image: a string \(or an Output of one\), not int",
    ),
    ("vps", vps_args(image=123), r"VpsServiceArgs\.image: a string \(or an Output of one\), not int"),
    (
        "ecs",
        ecs_args(image="shop app:v1"),
        r"FargateServiceArgs\.image: 'shop app:v1' is not an image reference",
    ),
    (
        "vps",
        vps_args(image="ghcr.io/Acme/API@sha256:xyz"),
        r"VpsServiceArgs\.image: .* is not an image reference",
    ),
    ("lambda", lambda_args(image=""), r"LambdaServiceArgs\.image: required"),
    # other wrong types: a clean ArgsError naming the Arg
    (
        "ecs",
        ecs_args(secrets=["ssm:/shop/db"]),
        r"FargateServiceArgs\.secrets: a mapping of ENV_NAME .*not list",
    ),
    (
        "ecs",
        ecs_args(secrets={"DATABASE_URL": Out("ssm:/shop/db")}),
        r"FargateServiceArgs\.secrets\.DATABASE_URL: a secret reference is a plain string .*not an Output",
    ),
    (
        "vps",
        vps_args(secrets={"DATABASE_URL": 5}),
        r"VpsServiceArgs\.secrets\.DATABASE_URL: a secret reference .*not int",
    ),
    (
        "ecs",
        ecs_args(domain=Out("shop.example.org"), zone="example.org"),
        r"FargateServiceArgs\.domain: a plain string, not an Output",
    ),
    ("vps", vps_args(host=Out("203.0.113.10")), r"VpsServiceArgs\.host: a plain string, not an Output"),
    (
        "ecs",
        ecs_args(wait_for_release="no"),
        r"FargateServiceArgs\.wait_for_release: true or false \(a bool\), not str",
    ),
    (
        "cloudrun",
        cloudrun_args(wait_for_release="no"),
        r"CloudRunServiceArgs\.wait_for_release: true or false",
    ),
    (
        "lambda",
        lambda_args(wait_for_release=0),
        r"LambdaServiceArgs\.wait_for_release: true or false .*not int",
    ),
    ("cloudrun", cloudrun_args(public="yes"), r"CloudRunServiceArgs\.public: true or false"),
    (
        "ecs",
        ecs_args(container_insights=Out(True)),
        r"FargateServiceArgs\.container_insights: true or false \(a bool\), not an Output",
    ),
    # a password in the alert webhook: refused, saying so, without echoing it
    (
        "ecs",
        ecs_args(alerts={"webhook_url": HOOK_WITH_PASSWORD}),
        r"FargateServiceArgs\.alerts\.webhook_url: 'https:…' \(32 chars\): credentials in the URL .* refused",
    ),
    (
        "lambda",
        lambda_args(alerts={"webhook_url": HOOK_WITH_PASSWORD}),
        r"LambdaServiceArgs\.alerts\.webhook_url: 'https:…' \(32 chars\): credentials in the URL",
    ),
]


@pytest.mark.parametrize(("target", "args", "message"), BAD_SHAPE, ids=[m for _, _, m in BAD_SHAPE])
def test_args_of_the_wrong_shape_fail_naming_the_arg_before_anything_registers(
    target: str, args: dict[str, Any], message: str
) -> None:
    mocks = RecordingMocks()
    with pytest.raises(ArgsError, match=message) as info:
        build(target, live(args), mocks=mocks)
    assert "S3CRET" not in str(info.value)
    assert mocks.monitor.recorded == []  # type: ignore[attr-defined]


@pytest.mark.parametrize("args", ["notadict", None, ["image"]], ids=["str", "None", "list"])
@pytest.mark.parametrize("target", ["ecs", "cloudrun", "lambda", "vps"])
def test_args_that_are_not_a_dict_fail_naming_the_args_type(target: str, args: Any) -> None:
    owner = {"ecs": "FargateServiceArgs", "cloudrun": "CloudRunServiceArgs"}.get(
        target, "LambdaServiceArgs" if target == "lambda" else "VpsServiceArgs"
    )
    mocks = RecordingMocks()
    with pytest.raises(ArgsError, match=rf"^{owner}: a dict with the keys of {owner}, not "):
        build(target, args, mocks=mocks)
    assert mocks.monitor.recorded == []  # type: ignore[attr-defined]


BAD_NAMES = [
    ("x" * 41, r"'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx' must be 2-40 chars"),
    ("Shop_API!", r"'Shop_API!' must be 2-40 chars of lowercase letters, digits and '-'"),
    ("shop-", r"'shop-' must be .* not ending with '-'"),
    ("9shop", r"'9shop' must be .* starting with a letter"),
]


@pytest.mark.parametrize(("name", "message"), BAD_NAMES, ids=[n[:12] for n, _ in BAD_NAMES])
@pytest.mark.parametrize("target", ["ecs", "cloudrun", "lambda", "vps"])
def test_a_component_name_the_clouds_would_refuse_fails_before_anything_registers(
    target: str, name: str, message: str
) -> None:
    """The stack path's rule for ``<app.name>-<stack>`` (config.AppConfigBase) holds for a component built
    directly: over 40 chars the IAM role names pass AWS's 64, and '_', '!' or capitals the ALB or ECR."""
    cls = {"ecs": "FargateService", "cloudrun": "CloudRunService", "lambda": "LambdaService"}.get(
        target, "VpsService"
    )
    args = {"ecs": ecs_args, "cloudrun": cloudrun_args, "lambda": lambda_args, "vps": vps_args}[target]()
    mocks = RecordingMocks()
    with pytest.raises(ArgsError, match=rf"{cls}\.name: {message}"):
        build(target, args, mocks=mocks, name=name)
    assert mocks.monitor.recorded == []  # type: ignore[attr-defined]


def test_the_longest_allowed_name_deploys_within_the_iam_limit() -> None:
    name = "a" + "b" * 39  # 40 chars: the limit
    result = build("ecs", ecs_args(), name=name)
    roles = result.by_type("aws:iam/role:Role")
    assert roles
    # Auto-named: the engine appends '-' and 7 random characters to the logical name; IAM allows 64.
    assert all(len(r.name) + 8 <= 64 for r in roles), [r.name for r in roles]


def test_an_image_given_as_an_output_or_by_tag_is_taken() -> None:
    """A built image's reference is an Output (taken as is); a tag reference is a valid reference too."""
    ref = "123456789012.dkr.ecr.us-east-1.amazonaws.com/shop:v1.2.3"
    result = build("ecs", ecs_args(image=pulumi.Output.from_input(DIGEST)))
    assert result.outputs["image"] == DIGEST
    assert build("ecs", ecs_args(image=ref)).outputs["image"] == ref


def test_an_args_error_is_a_run_error_so_pulumi_prints_the_message_alone() -> None:
    """The Python language host prints a pulumi.RunError's message and no traceback; a library user's
    misspelt Arg is then one line naming it (it stays a ValueError for callers catching that)."""
    mocks = RecordingMocks()
    with pytest.raises(pulumi.RunError, match=r"^FargateServiceArgs\.cpuu: unknown Arg") as info:
        build("ecs", ecs_args(cpuu=512), mocks=mocks)
    assert isinstance(info.value, ArgsError)
    assert isinstance(info.value, ValueError)


# ARNs against the region the default AWS provider deploys to (aws:region), before anything registers.
BAD_IN_REGION: list[tuple[str, dict[str, Any], str]] = [
    (
        "ecs",
        ecs_args(certificate_arn=CERT_EU),
        r"FargateServiceArgs\.certificate_arn: the certificate is in eu-west-1 but the component deploys to "
        r"us-east-1 \(aws:region\)",
    ),
    (
        "ecs",
        ecs_args(listener_arn=LISTENER_EU),
        r"FargateServiceArgs\.listener_arn: the listener is in eu-west-1 but the component deploys to "
        r"us-east-1",
    ),
    (
        "ecs",
        ecs_args(cluster_arn="arn:aws:ecs:eu-west-1:123456789012:cluster/platform"),
        r"FargateServiceArgs\.cluster_arn: the cluster is in eu-west-1 .*cluster of its own region",
    ),
    (
        "ecs",
        ecs_args(alerts={"sns_topic_arn": "arn:aws:sns:eu-west-1:123456789012:ops"}),
        r"FargateServiceArgs\.alerts\.sns_topic_arn: the topic is in eu-west-1 .*notify a topic in their own",
    ),
    (
        "ecs",
        ecs_args(secret_kms_key_arns=["arn:aws:kms:eu-west-1:123456789012:key/" + "1" * 36]),
        r"FargateServiceArgs\.secret_kms_key_arns\[0\]: the key is in eu-west-1",
    ),
    (
        "lambda",
        lambda_args(region="eu-west-1"),
        r"LambdaServiceArgs\.region: eu-west-1 but the AWS provider deploys to us-east-1 \(aws:region\)",
    ),
    (
        "lambda",
        {
            k: v
            for k, v in lambda_args(domain="api.example.org", certificate_arn=CERT_EU).items()
            if k != "region"
        },
        r"LambdaServiceArgs\.certificate_arn: the certificate is in eu-west-1 .*\(aws:region\)",
    ),
]


@pytest.mark.parametrize(("target", "args", "message"), BAD_IN_REGION, ids=[m for _, _, m in BAD_IN_REGION])
def test_plain_arns_in_another_region_fail_naming_the_arg_before_anything_registers(
    target: str, args: dict[str, Any], message: str
) -> None:
    mocks = RecordingMocks()
    with pytest.raises(ArgsError, match=message):
        build(target, args, mocks=mocks, config={"aws:region": "us-east-1"})
    assert mocks.monitor.recorded == []  # type: ignore[attr-defined]


def test_an_arn_given_as_an_output_is_taken_unchecked_and_the_region_only_when_known() -> None:
    """An Output ARN (another resource's) is not checked; with an explicit AWS provider the region is not
    known before deploy, so a plain ARN is checked for everything but its region."""
    result = build(
        "ecs", ecs_args(certificate_arn=pulumi.Output.from_input(CERT_EU)), config={"aws:region": "us-east-1"}
    )
    https = next(r for r in result.by_type("aws:lb/listener:Listener") if r.name == "shop-https")
    assert https.inputs["certificateArn"] == CERT_EU

    def explicit_provider() -> pulumi.ResourceOptions:
        import pulumi_aws as aws

        return pulumi.ResourceOptions(provider=aws.Provider("eu", region="eu-west-1"))

    result = build(
        "ecs", ecs_args(certificate_arn=CERT_EU), config={"aws:region": "us-east-1"}, opts=explicit_provider
    )
    https = next(r for r in result.by_type("aws:lb/listener:Listener") if r.name == "shop-https")
    assert https.inputs["certificateArn"] == CERT_EU
    with pytest.raises(ArgsError, match=r"certificate_arn: .* is not an ACM certificate ARN"):
        build("ecs", ecs_args(certificate_arn="arn:aws:acm:eu-west-1:1:x"), opts=explicit_provider)


def test_an_ecr_repository_in_another_region_is_accepted() -> None:
    """ECS pulls across regions: the repository ARN is checked for its partition, not its region."""
    repo = "arn:aws:ecr:eu-west-1:123456789012:repository/shop"
    result = build("ecs", ecs_args(repository_arn=repo), config={"aws:region": "us-east-1"})
    policy = next(r for r in result.by_type("aws:iam/rolePolicy:RolePolicy") if r.name == "shop-exec-policy")
    assert repo in policy.inputs["policy"]


# ------------------------------------------------------------- id lists as Outputs of whole lists (awsx)
def _as(kind: str, ids: list[str]) -> Any:
    return pulumi.Output.from_input(ids) if kind == "output" else list(ids)


@pytest.mark.parametrize("kind", ["plain", "output"])
def test_ecs_takes_subnet_security_group_and_kms_lists_as_outputs(kind: str) -> None:
    """``vpc.private_subnet_ids`` (an Output of a list) where a list goes: the ALB, the service and the
    execution policy get the ids, exactly as with a plain list."""
    result = build(
        "ecs",
        ecs_args(
            vpc_id=VPC,
            public_subnet_ids=_as(kind, PUBLIC),
            private_subnet_ids=_as(kind, PRIVATE),
            task_security_group_ids=_as(kind, [SG]),
            secret_kms_key_arns=_as(kind, [KMS]),
            secrets={"DATABASE_URL": "ssm:/shop/db"},
            database={"migrate": "release"},
        ),
    )
    assert result.one("aws:lb/loadBalancer:LoadBalancer").inputs["subnets"] == PUBLIC
    net = result.one("aws:ecs/service:Service").inputs["networkConfiguration"]
    assert net["subnets"] == PRIVATE
    assert len(net["securityGroups"]) == 2
    assert net["securityGroups"][1] == SG
    import json

    policy = json.loads(
        next(
            r for r in result.by_type("aws:iam/rolePolicy:RolePolicy") if r.name == "shop-exec-policy"
        ).inputs["policy"]
    )
    assert any(KMS in json.dumps(st) for st in policy["Statement"])
    migration = next(r for r in result.resources if r.name == "shop-migrate")
    assert migration.inputs["subnets"] == PRIVATE
    assert migration.inputs["security_groups"][1] == SG


@pytest.mark.parametrize("kind", ["plain", "output"])
def test_lambda_takes_vpc_and_kms_lists_as_outputs(kind: str) -> None:
    result = build(
        "lambda",
        lambda_args(
            subnet_ids=_as(kind, PRIVATE),
            security_group_ids=_as(kind, [SG]),
            secret_kms_key_arns=_as(kind, [KMS]),
            secrets={"DATABASE_URL": "ssm:/shop/db"},
        ),
    )
    vpc = result.one("aws:lambda/function:Function").inputs["vpcConfig"]
    assert (vpc["subnetIds"], vpc["securityGroupIds"]) == (PRIVATE, [SG])
    policies = {r.name: r.inputs["policy"] for r in result.by_type("aws:iam/rolePolicy:RolePolicy")}
    assert f"subnet/{PRIVATE[1]}" in policies["shop-vpc-policy"]
    assert f"security-group/{SG}" in policies["shop-vpc-policy"]
    assert KMS in policies["shop-secrets-policy"]


def test_cloudrun_takes_notification_channels_as_an_output() -> None:
    channel = "projects/acme-prod/notificationChannels/123"
    result = build(
        "cloudrun",
        cloudrun_args(
            alerts={
                "emails": ["ops@example.org"],
                "gcp_notification_channels": pulumi.Output.from_input([channel]),
            }
        ),
    )
    for policy in result.by_type("gcp:monitoring/alertPolicy:AlertPolicy"):
        channels = policy.inputs["notificationChannels"]
        assert len(channels) == 2
        assert channels[0] == channel  # the given one, then the email channel made


def test_lambda_takes_its_certificate_as_an_output() -> None:
    result = build(
        "lambda",
        lambda_args(domain="api.example.org", certificate_arn=pulumi.Output.from_input(CERT)),
    )
    assert result.by_type("aws:acm/certificate:Certificate") == []
    domain = result.one("aws:apigatewayv2/domainName:DomainName").inputs
    assert domain["domainNameConfiguration"]["certificateArn"] == CERT


OUTPUT_LIST_AT_DEPLOY: list[tuple[str, dict[str, Any], str, str]] = [
    (
        "ecs",
        ecs_args(vpc_id=VPC, public_subnet_ids=PUBLIC, private_subnet_ids=Out(PRIVATE[:1])),
        "private_subnet_ids",
        r"FargateServiceArgs\.private_subnet_ids: needs at least 2 subnets",
    ),
    (
        "ecs",
        ecs_args(
            vpc_id=VPC,
            public_subnet_ids=Out(["subnet-1", "subnet-2"]),
            private_subnet_ids=PRIVATE,
        ),
        "public_subnet_ids",
        r"FargateServiceArgs\.public_subnet_ids: 'subnet-1' is not a subnet id",
    ),
    (
        "ecs",
        ecs_args(task_security_group_ids=Out([SG, SG])),
        "task_security_group_ids",
        r"FargateServiceArgs\.task_security_group_ids: security group ids repeat",
    ),
    (
        "lambda",
        lambda_args(subnet_ids=Out(PRIVATE), security_group_ids=Out([])),
        "security_group_ids",
        r"LambdaServiceArgs\.security_group_ids: needs at least one security group id",
    ),
    (
        "cloudrun",
        cloudrun_args(alerts={"gcp_notification_channels": Out(["oncall"])}),
        "notification_channels",
        r"CloudRunServiceArgs\.alerts\.gcp_notification_channels: 'oncall' is not a notification channel",
    ),
]


@pytest.mark.parametrize(
    ("target", "args", "field", "message"), OUTPUT_LIST_AT_DEPLOY, ids=[m for *_, m in OUTPUT_LIST_AT_DEPLOY]
)
def test_an_output_list_is_checked_when_it_resolves_naming_the_arg(
    target: str, args: dict[str, Any], field: str, message: str
) -> None:
    """The same checks as for a plain list, once the Output is known: what the component hands its
    resources for that Arg fails with the Arg's name, so the resources taking it (the ALB, the service, the
    function...) fail with it and ``pulumi up`` stops there. (Checked on the validated Arg: under the mocks
    a failed registration leaves the other waiting ones to fail in the next test's run.)"""
    import importlib

    module = {"ecs": "fastapi_deploy.ecs.component", "lambda": "fastapi_deploy.awslambda.component"}.get(
        target, "fastapi_deploy.cloudrun.component"
    )
    inputs_from_args = importlib.import_module(module).inputs_from_args

    def program() -> None:
        pulumi.export("ids", getattr(inputs_from_args(live(args)), field))

    with pytest.raises(ArgsError, match=message):
        run_callable(program)


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (123, r"image: an image reference \(a string or an Output of one\), not int"),
        ("Not A Ref", "image: 'Not A Ref' is not an image reference"),
    ],
)
@pytest.mark.parametrize("target", ["ecs", "cloudrun", "lambda", "vps"])
def test_an_image_output_is_checked_when_it_resolves_naming_the_arg(
    target: str, image: Any, message: str
) -> None:
    """An image given as an Output (a build's reference) is checked once known: what the resources take
    fails naming the Arg (checked on the validated Arg, as the id lists above)."""
    import importlib

    package = {"lambda": "awslambda"}.get(target, target)
    inputs_from_args = importlib.import_module(f"fastapi_deploy.{package}.component").inputs_from_args
    args = {"ecs": ecs_args, "cloudrun": cloudrun_args, "lambda": lambda_args, "vps": vps_args}[target]()

    def program() -> None:
        pulumi.export("image", inputs_from_args({**args, "image": pulumi.Output.from_input(image)}).image)

    with pytest.raises(ArgsError, match=rf"ServiceArgs\.{message}"):
        run_callable(program)


# ------------------------------------------------------------------------- outputs written once, schema
COMPONENTS = {
    "ecs": ("fastapi_deploy.ecs", "FargateService", "fastapi-deploy:ecs:FargateService"),
    "cloudrun": ("fastapi_deploy.cloudrun", "CloudRunService", "fastapi-deploy:cloudrun:CloudRunService"),
    "lambda": ("fastapi_deploy.awslambda", "LambdaService", "fastapi-deploy:lambda:LambdaService"),
    "vps": ("fastapi_deploy.vps", "VpsService", "fastapi-deploy:vps:VpsService"),
}


def _component(target: str) -> type:
    import importlib

    module, cls, _ = COMPONENTS[target]
    return getattr(importlib.import_module(module), cls)  # type: ignore[no-any-return]


@pytest.mark.parametrize("target", list(COMPONENTS))
def test_declared_outputs_are_the_contracts_keys(target: str) -> None:
    """One list: the class's Output annotations are exactly contract section 2 for the target (the
    component registers that dict once and the program exports the same dict)."""
    assert output_names(_component(target)) == [*contract.COMMON_OUTPUTS, *registry.get(target).outputs]


@pytest.mark.parametrize("target", list(COMPONENTS))
def test_type_tokens_are_unchanged(target: str) -> None:
    import importlib

    module, _, token = COMPONENTS[target]
    assert token == importlib.import_module(f"{module}.component").COMPONENT_TYPE


ANALYZE = """
import json, sys
from pulumi.provider.experimental.analyzer import Analyzer
from fastapi_deploy.ecs import FargateService
from fastapi_deploy.cloudrun import CloudRunService
from fastapi_deploy.awslambda import LambdaService
from fastapi_deploy.vps import VpsService

result = Analyzer("fastapi-deploy").analyze([FargateService, CloudRunService, LambdaService, VpsService])
prop = lambda p: {"type": p.type.value if p.type else None, "ref": p.ref, "plain": p.plain,
                  "optional": p.optional, "description": p.description}
json.dump({
    "components": {n: {"inputs": {k: prop(v) for k, v in c.inputs.items()},
                       "outputs": {k: prop(v) for k, v in c.outputs.items()}}
                   for n, c in result["component_definitions"].items()},
    "types": sorted(result["type_definitions"]),
}, sys.stdout)
"""


def test_the_provider_analyzer_infers_every_component_and_field() -> None:
    """The SDK's own analyzer reads the Args TypedDicts and the Output annotations: plain numbers for
    what the tuning needs at construction, Inputs for what may come from another resource. (In a
    subprocess: the provider package's protobufs clash with googleapis' in the test process.)"""
    import json
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", ANALYZE], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    schema = json.loads(done.stdout)
    defs = schema["components"]
    assert set(defs) == {"FargateService", "CloudRunService", "LambdaService", "VpsService"}
    ecs = defs["FargateService"]["inputs"]
    for plain in ("cpu", "memory", "port", "requestTimeoutS"):
        assert ecs[plain]["plain"] is True, plain
        assert ecs[plain]["type"] == "integer"
    for wired in ("image", "vpcId", "clusterArn", "certificateArn"):
        assert ecs[wired]["plain"] is None, wired
        assert ecs[wired]["type"] == "string"
    assert ecs["image"]["optional"] is False
    assert ecs["cpu"]["optional"] is True
    assert ecs["privateSubnetIds"]["type"] == "array"
    assert ecs["scaling"]["ref"] == "#/types/fastapi-deploy:index:ScalingArgs"
    assert "CPU units" in (ecs["cpu"]["description"] or "")
    assert set(defs["FargateService"]["outputs"]) == {
        "target", "url", "image", "healthPath", "readyPath", "region", "clusterName", "serviceName",
        "logGroup", "targetGroupArn", "loadBalancerDns",
    }  # fmt: skip
    assert defs["CloudRunService"]["inputs"]["serviceAccountEmail"]["plain"] is None
    assert defs["LambdaService"]["inputs"]["subnetIds"]["type"] == "array"
    assert defs["VpsService"]["inputs"]["host"]["optional"] is False
    for name, comp in defs.items():
        for key, p in {**comp["inputs"], **comp["outputs"]}.items():
            assert p["description"], f"{name}.{key} has no docstring"
    assert {"ScalingArgs", "HealthArgs", "EcsAlarmsArgs", "LambdaAlarmsArgs", "VpsRegistryArgs"} <= set(
        schema["types"]
    )


# ------------------------------------------------------------------------------------ child names
class _Demo(NamedComponent):
    def __init__(self, name: str, child: str) -> None:
        super().__init__("fastapi-deploy:test:Demo", name, {}, None)
        import pulumi_aws as aws

        aws.sns.Topic(child, opts=self.child_opts())


def test_a_child_without_the_components_name_is_refused() -> None:
    mocks = RecordingMocks()
    with pytest.raises(ChildNameError, match=r"'alerts'.*must be named 'shop-\.\.\.'"):
        run_callable(lambda: _Demo("shop", "alerts"), mocks=mocks)
    recorded = [r.name for r in mocks.monitor.recorded]  # type: ignore[attr-defined]
    assert "alerts" not in recorded
    ok = run_callable(lambda: _Demo("shop", "shop-alerts"))
    assert [r.name for r in ok.resources] == ["shop", "shop-alerts"]


def test_invokes_are_parented_the_same_way_in_every_target() -> None:
    """One helper gives the invoke options (parent=the component, so its provider applies)."""
    import inspect

    from fastapi_deploy.awslambda import component as lam
    from fastapi_deploy.ecs import component as ecs
    from fastapi_deploy.vps import component as vps

    for module in (ecs, lam, vps):
        src = inspect.getsource(module)
        assert "InvokeOutputOptions(" not in src, module.__name__
        assert "InvokeOptions(" not in src, module.__name__
        assert "invoke_opts()" in src, module.__name__


# ------------------------------------------------------------------- one-way flow: stack -> spec -> Args
@pytest.mark.parametrize("stack", ["prod-ecs", "staging-ecs", "prod-cloudrun", "prod-lambda", "prod-vps"])
def test_spec_is_frozen_and_its_args_rebuild_the_same_env(stack: str) -> None:
    """The spec carries parsed secret references and the final env; the adapter's Args, validated by the
    component, give back exactly that env (the component adds nothing the program did not decide)."""
    import dataclasses
    import importlib

    from fastapi_deploy import spec as spec_mod
    from fastapi_deploy import targets, tuning
    from fastapi_deploy.config import load_stack_file
    from fastapi_deploy.secret_refs import SecretRef
    from tests.infra.conftest import STACKS

    cfg = load_stack_file(STACKS / f"Pulumi.{stack}.yaml")
    runtime = tuning.for_platform(cfg)
    spec = spec_mod.build(cfg, runtime, "r.example/x@sha256:" + "e" * 64)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.port = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        spec.env["X"] = "y"  # type: ignore[index]
    assert spec.secrets
    assert all(isinstance(ref, SecretRef) for ref in spec.secrets.values())
    package = {"ecs": "ecs", "cloudrun": "cloudrun", "lambda": "awslambda", "vps": "vps"}[cfg.target]
    adapter = importlib.import_module(f"fastapi_deploy.{package}.adapter")
    component = importlib.import_module(f"fastapi_deploy.{package}.component")
    args = adapter.args_from(spec, targets.config_section(cfg))
    inp = component.inputs_from_args(args)
    assert dict(inp.secrets) == dict(spec.secrets)
    if cfg.target == "ecs":
        env = component.final_env(spec.name, inp, runtime)
    else:
        env = component.final_env(inp, runtime)
    if cfg.target == "lambda":
        env = {k: v for k, v in env.items() if k not in spec.secrets}
    expected = {
        k: v for k, v in spec.env.items() if not (cfg.target == "cloudrun" and k in component.RESERVED_ENV)
    }
    assert env == expected


@pytest.mark.parametrize("pkg", ["ecs", "cloudrun", "awslambda", "vps"])
def test_component_modules_never_read_the_stack_config_or_call_back_into_the_tuning(pkg: str) -> None:
    """One-way flow: the stack config is read by the target's adapter (``<pkg>/adapter.py``: Args from the
    spec and the section, the pre-deploy checks, the registry entry point); ``<pkg>/component.py`` builds
    from its Args alone and computes the tuning from them (``tune``), never from a stack config."""
    import ast
    from pathlib import Path

    import fastapi_deploy

    source = (Path(fastapi_deploy.__file__).parent / pkg / "component.py").read_text()
    tree = ast.parse(source)
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    used |= {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    used |= {a.asname or a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
    forbidden = {
        "StackConfigType",  # a whole stack config
        "DeployContext",  # the program's hand-over (spec + section): the adapter's business
        "RegistryContext",
        "config_section",
        "load_stack_file",
        "for_platform",  # the tuning from a stack config
        "container_environment",  # the env from a stack config
        "args_from",  # the adapter
    }
    assert sorted(used & forbidden) == []
    assert "def deploy(" not in source
    assert "def validate(" not in source


def test_the_program_passes_an_args_error_on_as_the_run_error_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    """infra/__main__.py re-raises a stack's config error as a RunError of the same type; an ArgsError (an
    adapter handing its component a bad Arg) is one already and reaches the language host unchanged, its
    message alone (no new class that could not be made: RunError is among its bases)."""
    from fastapi_deploy.ecs import adapter
    from fastapi_deploy.mocks import run_program
    from tests.infra.conftest import edited_config

    real = adapter.args_from
    monkeypatch.setattr(adapter, "args_from", lambda spec, section: {**real(spec, section), "cpuu": 512})
    raw = edited_config("prod-ecs", image={"digest": DIGEST})  # nothing to build: nothing registered first
    mocks = RecordingMocks()
    with pytest.raises(pulumi.RunError, match=r"^FargateServiceArgs\.cpuu: unknown Arg") as info:
        run_program("prod-ecs", raw, mocks=mocks)
    assert isinstance(info.value, ArgsError)
    assert mocks.monitor.recorded == []  # type: ignore[attr-defined]
