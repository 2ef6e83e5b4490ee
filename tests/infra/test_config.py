"""Stack config: every stack file in stacks/ parses; bad input fails with the key path and the fix."""

# ruff: noqa: E501 - the tables below read best one case per line
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from fastapi_deploy import config as C
from fastapi_deploy.config import ConfigError, fargate_memory_choices, load_stack_file, parse

STACKS = Path(__file__).resolve().parents[2] / "stacks"
AWS = {"aws:region": "us-east-1"}


def ecs(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "target": "ecs",
        "name": "api",
        "image": {"build": {}},
        "scaling": {"min": 1, "max": 2},
        "secrets": {"DATABASE_URL": "ssm:/p/db"},
    }
    base.update(over)
    return base


def cloudrun(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "target": "cloudrun",
        "name": "api",
        "image": {"digest": "europe-docker.pkg.dev/p/r/api@sha256:" + "a" * 64},
        "scaling": {"min": 0, "max": 5},
        "cloudrun": {"project": "acme-prod", "region": "europe-west1"},
    }
    base.update(over)
    return base


def lam(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "target": "lambda",
        "name": "api",
        "image": {"build": {}},
        "lambda": {"reserved_concurrency": 20},
    }
    base.update(over)
    return base


def vps(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "target": "vps",
        "name": "api",
        "image": {"digest": "ghcr.io/acme/api@sha256:" + "b" * 64},
        "domain": "api.example.com",
        "vps": {"host": "203.0.113.5"},
    }
    base.update(over)
    return base


@pytest.mark.parametrize("path", sorted(STACKS.glob("Pulumi.*.yaml")), ids=lambda p: p.name)
def test_every_stack_file_in_the_repo_parses(path: Path) -> None:
    cfg = load_stack_file(path)
    assert cfg.stack == path.name.removeprefix("Pulumi.").removesuffix(".yaml")
    assert cfg.target in C.TARGETS


def test_prod_ecs_stack_parses_into_the_ecs_model() -> None:
    cfg = load_stack_file(STACKS / "Pulumi.prod-ecs.yaml")
    assert isinstance(cfg, C.EcsConfig)
    assert cfg.region == "us-east-1"
    assert cfg.ecs.vcpu == 1.0
    assert cfg.database.budget == 370
    assert cfg.secret_refs()["DATABASE_URL"].json_key == "url"
    assert cfg.resource_tags() == {"app": "items-api", "stack": "prod-ecs", "managed-by": "pulumi"}


@pytest.mark.parametrize("data", [ecs(), cloudrun(), lam(), vps()], ids=["ecs", "cloudrun", "lambda", "vps"])
def test_each_target_parses_into_its_own_model(data: dict[str, Any]) -> None:
    cfg = parse(data, providers=AWS)
    assert type(cfg).__name__.lower().startswith(data["target"].replace("lambda", "lambda"))


@pytest.mark.parametrize(
    ("cpu", "memory", "ok"),
    [
        (256, 512, True), (256, 1536, False), (256, 2048, True), (512, 4096, True), (512, 5120, False),
        (1024, 2048, True), (1024, 3000, False), (1024, 1024, False), (2048, 16384, True), (4096, 30720, True),
        (4096, 31744, False), (8192, 20480, True), (8192, 17408, False), (16384, 122880, True),
    ],
)  # fmt: skip
def test_fargate_cpu_memory_combinations(cpu: int, memory: int, ok: bool) -> None:
    data = ecs(ecs={"cpu": cpu, "memory": memory})
    if ok:
        assert parse(data, providers=AWS).ecs.memory == memory  # type: ignore[union-attr]
        assert memory in fargate_memory_choices(cpu)
    else:
        with pytest.raises(
            ConfigError, match=rf"app\.ecs\.memory: {memory} is not valid with cpu {cpu}; allowed: "
        ):
            parse(data, providers=AWS)


INVALID: list[tuple[dict[str, Any], str]] = [
    ({**ecs(), "target": None}, "app.target"),
    ({k: v for k, v in ecs().items() if k != "name"}, "app.name: required"),
    (ecs(name="My_App"), "app.name: 'My_App' must be 2-29 chars"),
    (ecs(image={}), "app.image: set image.build (build and push), image.digest"),
    (ecs(image={"digest": "repo/app:v1"}), "app.image.digest: 'repo/app:v1' is not a digest reference"),
    (ecs(image={"build": {"platform": "windows/amd64"}}), "app.image.build.platform: 'windows/amd64' is not supported"),
    (ecs(image={"build": {"tag": "latest"}}), "app.image.build.tag: 'latest' is mutable"),
    (ecs(scaling={"min": 3, "max": 2}), "app.scaling: min (3) is above max (2)"),
    (ecs(scaling={"min": 1, "max": 3, "desired": 4}), "app.scaling: desired (4) must be between"),
    (ecs(health={"readiness_path": "ready"}), "app.health.readiness_path: 'ready' must start with '/'"),
    (ecs(health={"liveness_path": "/health?x=1"}), "app.health.liveness_path:"),
    (ecs(database={"max_connections": 10, "reserved_connections": 10}), "app.database: reserved_connections (10)"),
    (ecs(secrets={"DATABASE_URL": "vault:kv/db"}), "app.secrets.DATABASE_URL: 'vault:…' (11 chars): unknown scheme 'vault'"),
    (ecs(secrets={"DATABASE_URL": "ssm:relative/path"}), "app.secrets.DATABASE_URL:"),
    (ecs(secrets={"database_url": "ssm:/p/db"}), "not a valid env var name"),
    (ecs(secrets={"DATABASE_URL": "gcp:db"}), "app.secrets.DATABASE_URL: scheme gcp: is not supported on target ecs"),
    (ecs(env={"JWT_SECRET_KEY": "x" * 40}), "app.env.JWT_SECRET_KEY: a credential, which in plain text would sit in the state"),
    (ecs(env={"DB_POOL_SIZE": "50"}), "app.env: DB_POOL_SIZE is computed by the deployer"),
    (ecs(env={"LOG_LEVEL": "info"}, secrets={"LOG_LEVEL": "ssm:/x"}), "app: env and secrets both set"),
    (ecs(cors_origins=["*"]), "app.cors_origins: '*' is refused in production"),
    (ecs(cors_origins=["https://a.example.com/path"]), "app.cors_origins:"),
    (ecs(domain="API.Example.com"), "app.domain:"),
    (ecs(secret_kms_key_arns=["alias/aws/ssm"]), "app.secret_kms_key_arns:"),
    (ecs(ecs={"cpu": 3}), "app.ecs.cpu: 3 is not a Fargate cpu"),
    (ecs(ecs={"log_retention_days": 31}), "app.ecs.log_retention_days: 31 is not accepted by CloudWatch"),
    (ecs(ecs={"certificate_arn": "arn:aws:iam::123:server-certificate/x"}), "app.ecs.certificate_arn:"),
    (ecs(ecs={"vpc": {"cidr": "10.0.0.0/8"}}), "app.ecs.vpc.cidr: '10.0.0.0/8' must be an IPv4 CIDR"),
    (ecs(ecs={"vpc": {"az_count": 1}}), "app.ecs.vpc.az_count:"),
    (ecs(ecs={"vpc": {"vpc_id": "vpc-0123456789abcdef0", "public_subnet_ids": ["subnet-0123456789abcdef0"] * 2,
                      "private_subnet_ids": ["subnet-0123456789abcdef1", "subnet-0123456789abcdef2"]}}),
     "app.ecs.vpc.public_subnet_ids: subnet ids repeat"),
    (ecs(ecs={"autoscaling": {"cpu_target_percent": 120}}), "app.ecs.autoscaling.cpu_target_percent:"),
    (ecs(ecs={"memroy": 2048}), "app.ecs.memroy: unknown key"),
    (ecs(image={"build": {"platform": "linux/arm64"}}), "app.image.build.platform: ECS tasks here run X86_64"),
    (cloudrun(cloudrun={"region": "europe-west1"}), "app.cloudrun.project: required"),
    (cloudrun(cloudrun={"project": "p1", "region": "europe-west1", "cpu": 3}), "app.cloudrun.cpu: 3.0 is not a Cloud Run cpu"),
    (cloudrun(cloudrun={"project": "p1", "region": "europe-west1", "cpu": 1, "memory": "8Gi"}), "app.cloudrun.memory: 8192 MiB"),
    (cloudrun(cloudrun={"project": "p1", "region": "europe-west1", "cpu": 0.5}), "app.cloudrun.concurrency: cpu 0.5"),
    # cloud.google.com/run/docs/configuring/cpu: what the Admin API refuses, caught before `pulumi up`.
    (cloudrun(cloudrun={"project": "p1", "region": "europe-west1", "cpu": 0.5, "concurrency": 1, "cpu_always_allocated": True}), "app.cloudrun.cpu_always_allocated: cpu 0.5 (< 1)"),
    (cloudrun(cloudrun={"project": "p1", "region": "europe-west1", "cpu": 0.25, "concurrency": 1, "memory": "1Gi"}), "app.cloudrun.memory: 1024 MiB is above 512 MiB allowed with cpu 0.25"),
    (cloudrun(cloudrun={"project": "p1", "region": "europe-west1", "cpu": 4, "memory": "1Gi"}), "app.cloudrun.memory: cpu 4.0 needs at least 2048 MiB"),
    (cloudrun(cloudrun={"project": "p1", "region": "europe-west1", "memory": "lots"}), "app.cloudrun.memory:"),
    (cloudrun(secrets={"DATABASE_URL": "ssm:/db"}), "app.secrets.DATABASE_URL: scheme ssm: is not supported on target cloudrun"),
    (cloudrun(request_timeout_s=4000), "app.request_timeout_s:"),
    (lam(**{"lambda": {"memory_mb": 64}}), "app.lambda.memory_mb:"),
    (lam(**{"lambda": {"timeout_s": 901, "front": "function_url"}}), "app.lambda.timeout_s:"),
    (lam(**{"lambda": {"timeout_s": 60}}), "app.lambda.timeout_s: 60 exceeds the API Gateway HTTP API"),
    (lam(request_timeout_s=45), "app.request_timeout_s: 45 exceeds the API Gateway HTTP API limit"),
    (lam(**{"lambda": {"reserved_concurrency": 5, "provisioned_concurrency": 10}}), "app.lambda: provisioned_concurrency (10)"),
    (lam(**{"lambda": {"architecture": "arm64"}}), "app.lambda.architecture: arm64 needs image.build.platform linux/arm64"),
    (lam(scaling={"min": 1, "max": 2}), "app.scaling: unknown key"),
    (lam(max_request_body_bytes=6 * 1024 * 1024 + 1), "app.max_request_body_bytes: 6291457 exceeds what Lambda accepts: a synchronous invocation payload is at most 6291456 bytes (6 MB)"),
    (ecs(max_request_body_bytes=100), "app.max_request_body_bytes: Input should be greater than or equal to 1024"),
    (ecs(max_request_body_bytes=2 * 1024**3), "app.max_request_body_bytes: Input should be less than or equal to 1073741824"),
    (ecs(env={"MAX_REQUEST_BODY_BYTES": "10"}), "MAX_REQUEST_BODY_BYTES is computed by the deployer"),
    (vps(domain=None), "app.domain: required for target vps"),
    (vps(scaling={"min": 1, "max": 3}), "app.scaling: a VPS runs one app container"),
    (vps(vps={"host": "bad host!"}), "app.vps.host:"),
    (vps(vps={"host": "h", "ssh_key_secret": "file:~/.ssh/id"}), "app.vps.ssh_key_secret:"),
    (ecs(alerts={"emails": ["oncall"]}), "app.alerts.emails: 'oncall' is not an email address"),
    (ecs(alerts={"emails": ["a@example.com", "a@example.com"]}), "app.alerts.emails: an address is listed twice"),
    (ecs(alerts={"webhook_url": "http://hooks.example.com/x"}), "app.alerts.webhook_url: 'http:…' (26 chars) is not an https:// URL"),
    (ecs(alerts={"sns_topic_arn": "arn:aws:sqs:us-east-1:123456789012:q"}), "app.alerts.sns_topic_arn: 'arn:aws:sqs:us-east-1:123456789012:q' is not an SNS topic ARN"),
    (ecs(alerts={"sns_topic_arn": "arn:aws:sns:eu-west-1:123456789012:t"}), "app.alerts.sns_topic_arn: the topic is in eu-west-1 but the stack deploys to us-east-1"),
    (ecs(alerts={"sns_topic_arn": "arn:aws-cn:sns:us-east-1:123456789012:t"}), "app.alerts.sns_topic_arn: partition 'aws-cn' does not match us-east-1's partition 'aws'"),
    (lam(alerts={"sns_topic_arn": "arn:aws:sns:eu-west-1:123456789012:t"}), "app.alerts.sns_topic_arn: the topic is in eu-west-1"),
    (ecs(ecs={"alarms": {"sns_topic_arn": "arn:aws:sns:eu-west-1:123456789012:t"}}), "app.ecs.alarms.sns_topic_arn: the topic is in eu-west-1"),
    (ecs(alerts={"sns_topic_arn": "arn:aws:sns:us-east-1:123456789012:a"}, ecs={"alarms": {"sns_topic_arn": "arn:aws:sns:us-east-1:123456789012:b"}}), "app.ecs.alarms.sns_topic_arn: names a different topic than alerts.sns_topic_arn"),
    (cloudrun(alerts={"gcp_notification_channels": ["notificationChannels/1"]}), "app.alerts.gcp_notification_channels: 'notificationChannels/1' is not a notification channel name"),
    (ecs(alerts={"email": ["a@example.com"]}), "app.alerts.email: unknown key"),
]  # fmt: skip


@pytest.mark.parametrize(("data", "fragment"), INVALID, ids=[f[1][:60] for f in INVALID])
def test_invalid_config_names_the_key(data: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse(data, providers=AWS)
    assert fragment in str(err.value)


@pytest.mark.parametrize(
    "url", ["https://u:S3CRET@hooks.example/x", "https://S3CRET@hooks.example/x", "http://u:S3CRET@hooks/x"]
)
def test_a_webhook_url_with_credentials_is_refused_without_echoing_them(url: str) -> None:
    """A password in app.alerts.webhook_url would sit in the state; the refusal says so, names the key,
    and shows only the scheme and length (what `infra plan` and `pulumi up` print is this message)."""
    with pytest.raises(ConfigError) as err:
        parse(ecs(alerts={"webhook_url": url}), providers=AWS)
    message = str(err.value)
    assert message.startswith(
        f"app.alerts.webhook_url: '{url.split(':')[0]}:…' ({len(url)} chars): credentials in the URL "
        "(user:password@host) are refused"
    ), message
    assert "S3CRET" not in message


def test_valid_alerts_parse() -> None:
    alerts = {
        "emails": ["oncall@example.com", "ops+api@sub.example.co.uk"],
        "webhook_url": "https://hooks.example.com/services/T0/B0",
        "sns_topic_arn": "arn:aws:sns:us-east-1:123456789012:oncall",
    }
    assert parse(ecs(alerts=alerts), providers=AWS).alerts.emails == alerts["emails"]
    channel = "projects/acme-prod/notificationChannels/1234567890"
    assert parse(cloudrun(alerts={"gcp_notification_channels": [channel]})).alerts.any_gcp
    legacy = parse(ecs(ecs={"alarms": {"sns_topic_arn": alerts["sns_topic_arn"]}}), providers=AWS)
    assert isinstance(legacy, C.EcsConfig)
    assert legacy.alert_topic_arn == alerts["sns_topic_arn"]


def test_certificate_must_be_in_the_stack_region() -> None:
    cert = "arn:aws:acm:eu-west-1:123456789012:certificate/0f6d1a4e-3b1c-4a2b-9e8f-1c2d3e4f5a6b"
    assert parse(ecs(ecs={"certificate_arn": cert}), providers={"aws:region": "eu-west-1"})
    with pytest.raises(ConfigError, match=r"app\.ecs\.certificate_arn: the certificate is in eu-west-1"):
        parse(ecs(ecs={"certificate_arn": cert}), providers=AWS)


def test_cloudrun_project_and_region_fall_back_to_provider_keys() -> None:
    cfg = parse(cloudrun(cloudrun={}), providers={"gcp:project": "acme-x", "gcp:region": "us-central1"})
    assert isinstance(cfg, C.CloudRunConfig)
    assert (cfg.gcp_project, cfg.gcp_region, cfg.port) == ("acme-x", "us-central1", 8080)
    assert cfg.cloudrun.memory == 512


def test_memory_strings_are_normalised_to_mib() -> None:
    cfg = parse(cloudrun(cloudrun={"project": "p1", "region": "europe-west1", "cpu": 2, "memory": "2Gi"}))
    assert cfg.cloudrun.memory == 2048  # type: ignore[union-attr]
    cfg = parse(vps(vps={"host": "h", "memory": "1536Mi"}))
    assert cfg.vps.memory == 1536  # type: ignore[union-attr]


def test_secure_values_are_placeholders_offline(tmp_path: Path) -> None:
    doc = yaml.safe_load((STACKS / "Pulumi.prod-ecs.yaml").read_text())
    doc["config"]["aws:profile"] = {"secure": "v1:abc"}
    path = tmp_path / "Pulumi.x-ecs.yaml"
    path.write_text(yaml.safe_dump(doc))
    cfg = load_stack_file(path)
    assert cfg.providers["aws:profile"] == C.SECRET_PLACEHOLDER
    assert cfg.stack == "x-ecs"


@pytest.mark.parametrize(
    ("name", "text", "fragment"),
    [
        ("stack.yaml", "config: {}", "stack files are named Pulumi.<stack>.yaml"),
        ("Pulumi.a.yaml", "config: {}", "missing the fastapi-deploy:app object"),
        ("Pulumi.b.yaml", "config: {fastapi-deploy:app: [1]}", "expected a mapping"),
        ("Pulumi.c.yaml", "config: [", "not valid YAML at line"),
    ],
)
def test_bad_stack_files(tmp_path: Path, name: str, text: str, fragment: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError, match=None) as err:
        load_stack_file(path)
    assert fragment in str(err.value)


def test_component_name_length_is_bounded_for_aws_name_limits() -> None:
    with pytest.raises(
        ConfigError, match=r"app\.name: 'abcdefghijklmnopqrstuvwxyz-a-rather-long-stack' .* shorten app\.name"
    ):
        parse(ecs(name="abcdefghijklmnopqrstuvwxyz"), stack="a-rather-long-stack", providers=AWS)


@pytest.mark.parametrize("stack", ["Prod", "prod_ecs", "prod.ecs"])
def test_stack_names_pulumi_accepts_but_cloud_names_refuse_are_errors(stack: str) -> None:
    """Pulumi stack names may hold A-Z, '_' and '.', but the component name is spliced into names that
    refuse them at `pulumi up` (ALB/target group: letters, digits, '-'; ECR repository: lowercase)."""
    with pytest.raises(ConfigError, match=rf"stack '{stack}' .*lowercase letters, digits and '-'"):
        parse(ecs(), stack=stack, providers=AWS)
    assert parse(ecs(), stack="prod-ecs-2", providers=AWS).stack == "prod-ecs-2"


def test_unknown_keys_are_errors_everywhere() -> None:
    """A typo must not silently fall back to a default (e.g. `max_conections` -> budget 100)."""
    with pytest.raises(ConfigError, match=r"app\.database\.max_conections: unknown key"):
        parse(ecs(database={"max_conections": 500}), providers=AWS)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("JWT_SECRET_KEY", "x" * 40),
        ("SENTRY_DSN", "https://k@o1.ingest.sentry.io/1"),
        ("CACHE_URL", "redis://u:hunter2@cache:6379/0"),
    ],
)
def test_app_env_and_the_components_env_arg_refuse_the_same_entries_in_the_same_words(
    name: str, value: str
) -> None:
    """One rule (contract.env_entry_problem) behind both: each message names its own field and where the
    secret reference goes, and says the same thing about the value."""
    from fastapi_deploy import contract
    from fastapi_deploy.component import ArgsError
    from fastapi_deploy.component import env as env_arg

    problem = contract.env_entry_problem(name, value)
    assert problem is not None
    assert "hunter2" not in problem  # a password in the value is never echoed
    with pytest.raises(ConfigError) as stack:
        parse(ecs(env={name: value}), providers=AWS)
    assert (
        f"app.env.{name}: {problem}; store it in a secret store and put the reference in app.secrets.{name}"
        in str(stack.value)
    )
    with pytest.raises(ArgsError) as arg:
        env_arg("FargateServiceArgs", {name: value})
    assert str(arg.value) == (
        f"FargateServiceArgs.env.{name}: {problem}; pass a secret reference in FargateServiceArgs.secrets.{name} "
        "instead"
    )
    assert contract.env_entry_problem("CACHE_URL", "redis://cache:6379/0") is None


ACM_ID = "12345678-1234-1234-1234-123456789012"


@pytest.mark.parametrize(
    ("arn", "kind", "region", "problem"),
    [
        (f"arn:aws:acm:us-east-1:123456789012:certificate/{ACM_ID}", C.ACM_CERTIFICATE, "us-east-1", None),
        (f"arn:aws:acm:us-east-1:123456789012:certificate/{ACM_ID}", C.ACM_CERTIFICATE, None, None),
        (
            f"arn:aws:acm:eu-west-1:123456789012:certificate/{ACM_ID}",
            C.ACM_CERTIFICATE,
            "us-east-1",
            "the certificate is in eu-west-1 but the stack deploys to us-east-1 (aws:region)",
        ),
        # Region unknown (an explicit provider): the ARN's partition must still be its own region's.
        (
            f"arn:aws:acm:cn-north-1:123456789012:certificate/{ACM_ID}",
            C.ACM_CERTIFICATE,
            None,
            "partition 'aws' does not match cn-north-1's partition 'aws-cn'",
        ),
        (
            f"arn:aws-us-gov:acm:us-gov-west-1:123456789012:certificate/{ACM_ID}",
            C.ACM_CERTIFICATE,
            "us-gov-west-1",
            None,
        ),
        ("arn:aws:iam::123456789012:role/app/runtime", C.IAM_ROLE, "eu-west-1", None),
        ("arn:aws:iam:eu-west-1:123456789012:role/runtime", C.IAM_ROLE, None, "ARN has no region"),
        (
            "arn:aws-cn:iam::123456789012:role/runtime",
            C.IAM_ROLE,
            "eu-west-1",
            "partition 'aws-cn' does not match",
        ),
        ("arn:aws:kms:us-east-1:123456789012:key/mrk-" + "a" * 32, C.KMS_KEY, "us-east-1", None),
        ("arn:aws:kms:us-east-1:123456789012:alias/app", C.KMS_KEY, "us-east-1", "is not a KMS key ARN"),
        ("arn:aws:sns:us-east-1:12345:ops", C.SNS_TOPIC, None, "is not an SNS topic ARN"),
    ],
)
def test_aws_arn_problem(arn: str, kind: C.ArnKind, region: str | None, problem: str | None) -> None:
    found = C.aws_arn_problem(arn, kind, region)
    if problem is None:
        assert found is None
    else:
        assert found is not None
        assert problem in found
