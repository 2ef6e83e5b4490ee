"""`infra doctor`: real boto3 clients against moto (botocore's Stubber where moto cannot represent a
state, e.g. KMS denial), the real Secret Manager client over a loopback gRPC fake, a fake `ssh` first on
PATH, and a real OCI registry endpoint on loopback."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import grpc
import pytest
import yaml
from botocore.stub import Stubber
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from google.cloud import secretmanager_v1
from google.cloud.secretmanager_v1.services.secret_manager_service.transports.grpc import (
    SecretManagerServiceGrpcTransport,
)
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID

from fastapi_deploy.doctor import DoctorClients, cli
from fastapi_deploy.ops.aws_checks import (
    certificate_covers,
    check_acm_certificate,
    check_secretsmanager_secret,
    check_ssm_parameter,
)
from tests.infra._ops_fakes import GrpcFake, calls_of, fake_executable, path_with

REGION = "eu-west-1"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        yield


def self_signed(*names: str) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
        .sign(key, hashes.SHA256())
    )
    pem_key = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), pem_key


def push_image(repo: str = "items-api") -> str:
    ecr = boto3.client("ecr", region_name=REGION)
    ecr.create_repository(repositoryName=repo)
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "size": 7,
            "digest": "sha256:" + "c" * 64,
        },
        "layers": [],
    }
    image_id = ecr.put_image(repositoryName=repo, imageManifest=json.dumps(manifest), imageTag="v1")["image"][
        "imageId"
    ]
    return f"{DEFAULT_ACCOUNT_ID}.dkr.ecr.{REGION}.amazonaws.com/{repo}@{image_id['imageDigest']}"


def write_stack(tmp_path: Path, name: str, app: dict[str, Any], providers: dict[str, Any]) -> Path:
    stacks = tmp_path / "stacks"
    stacks.mkdir(exist_ok=True)
    (stacks / f"Pulumi.{name}.yaml").write_text(
        yaml.safe_dump({"config": {**providers, "fastapi-deploy:app": app}})
    )
    return stacks


def ecs_app(image: str, cert_arn: str | None, **over: Any) -> dict[str, Any]:
    app: dict[str, Any] = {
        "target": "ecs",
        "name": "items-api",
        "image": {"digest": image},
        "scaling": {"min": 2, "max": 4, "desired": 2},
        "database": {"max_connections": 200, "reserved_connections": 20},
        "secrets": {
            "DATABASE_URL": "secretsmanager:prod/items-api/db:url",
            "JWT_SECRET_KEY": "ssm:/prod/items-api/jwt",
        },
        # The service refuses to start without REDIS_URL; a password-less URL may be a plain value.
        "env": {"REDIS_URL": "redis://cache.internal:6379/0"},
        "domain": "api.example.com",
        "ecs": {"cpu": 1024, "memory": 2048, "certificate_arn": cert_arn},
    }
    app.update(over)
    return app


def good_account() -> tuple[str, str]:
    """Everything the ECS stack references, present and readable. Returns (image, certificate ARN)."""
    ssm = boto3.client("ssm", region_name=REGION)
    ssm.put_parameter(Name="/prod/items-api/jwt", Type="SecureString", Value="x" * 48)
    sm = boto3.client("secretsmanager", region_name=REGION)
    sm.create_secret(
        Name="prod/items-api/db", SecretString=json.dumps({"url": "postgresql+asyncpg://u:p@h/db"})
    )
    cert, key = self_signed("*.example.com", "example.com")
    arn = boto3.client("acm", region_name=REGION).import_certificate(Certificate=cert, PrivateKey=key)[
        "CertificateArn"
    ]
    return push_image(), arn


def run(stacks: Path, stack: str, clients: DoctorClients | None = None) -> tuple[int, str]:
    out: list[str] = []
    rc = cli(["--stack", stack, "--stacks-dir", str(stacks)], clients=clients, out=out.append)
    return rc, "\n".join(out)


# --------------------------------------------------------------------------------------------- ECS/AWS


def test_ecs_stack_with_everything_in_place_passes(aws, tmp_path: Path) -> None:
    image, arn = good_account()
    stacks = write_stack(tmp_path, "prod-ecs", ecs_app(image, arn), {"aws:region": REGION})
    rc, text = run(stacks, "prod-ecs")
    assert rc == 0, text
    assert "parameter /prod/items-api/jwt exists and decrypts" in text
    assert "secret prod/items-api/db exists, decrypts and holds key 'url'" in text
    assert f"certificate ISSUED in {REGION}, covers api.example.com" in text
    assert "exists in items-api (v1)" in text
    assert "0 blocking" in text


def test_managed_domain_is_not_reported_as_plain_http(aws, tmp_path: Path) -> None:
    """app.domain + app.ecs.zone: the deploy requests and validates the certificate itself (issue 15)."""
    image, _arn = good_account()
    app = ecs_app(image, None, ecs={"cpu": 1024, "memory": 2048, "zone": "example.com"})
    rc, text = run(write_stack(tmp_path, "prod-ecs", app, {"aws:region": REGION}), "prod-ecs")
    assert "plain HTTP" not in text, text
    assert rc == 0, text
    _rc, text = run(
        write_stack(tmp_path, "prod-ecs", ecs_app(image, None, domain=None), {"aws:region": REGION}),
        "prod-ecs",
    )
    assert "no certificate: the load balancer serves plain HTTP only" in text


def test_missing_secrets_are_blocking_with_create_commands(aws, tmp_path: Path) -> None:
    image, arn = good_account()
    app = ecs_app(image, arn)
    app["secrets"] = {
        "REDIS_URL": "ssm:/prod/items-api/redis",
        "SENTRY_DSN": "secretsmanager:prod/items-api/sentry",
    }
    app.pop("env")
    stacks = write_stack(tmp_path, "prod-ecs", app, {"aws:region": REGION})
    rc, text = run(stacks, "prod-ecs")
    assert rc == 1
    assert "parameter /prod/items-api/redis does not exist in eu-west-1" in text
    assert "where: app.secrets.REDIS_URL" in text
    assert (
        "aws ssm put-parameter --name /prod/items-api/redis --type SecureString --value '<value>' "
        "--region eu-west-1"
    ) in text
    assert "aws secretsmanager create-secret --name prod/items-api/sentry --secret-string '<value>'" in text


def test_secret_problems_each_have_their_own_message(aws, tmp_path: Path) -> None:
    image, arn = good_account()
    ssm = boto3.client("ssm", region_name=REGION)
    ssm.put_parameter(Name="/prod/items-api/plain", Type="String", Value="v")
    sm = boto3.client("secretsmanager", region_name=REGION)
    sm.create_secret(Name="prod/items-api/nokey", SecretString=json.dumps({"dsn": "x"}))
    sm.create_secret(Name="prod/items-api/gone", SecretString="x")
    sm.delete_secret(SecretId="prod/items-api/gone", RecoveryWindowInDays=7)
    app = ecs_app(image, arn)
    app["secrets"] = {
        "A": "ssm:/prod/items-api/plain",
        "B": "secretsmanager:prod/items-api/nokey:url",
        "C": "secretsmanager:prod/items-api/gone",
    }
    stacks = write_stack(tmp_path, "prod-ecs", app, {"aws:region": REGION})
    rc, text = run(stacks, "prod-ecs")
    assert rc == 1
    assert "[WARNING ] ssm-parameter: parameter /prod/items-api/plain is a String, stored unencrypted" in text
    assert "secret prod/items-api/nokey has no JSON key 'url' (keys: ['dsn'])" in text
    assert "secret prod/items-api/gone is scheduled for deletion" in text
    assert "aws secretsmanager restore-secret --secret-id prod/items-api/gone --region eu-west-1" in text
    assert '"x"' not in text, "secret values never appear in the output"


def test_ssm_kms_denial_names_the_key_and_the_grant(monkeypatch) -> None:
    # moto does not enforce KMS permissions; the Stubber plays SSM's answer through a real client,
    # validated against the SSM API model.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    ssm = boto3.client("ssm", region_name=REGION)
    stub = Stubber(ssm)
    stub.add_client_error(
        "get_parameter",
        service_error_code="AccessDeniedException",
        service_message="User: arn:aws:iam::123456789012:user/dev is not authorized to perform: kms:Decrypt",
        expected_params={"Name": "/prod/jwt", "WithDecryption": True},
    )
    stub.add_response(
        "describe_parameters",
        {"Parameters": [{"Name": "/prod/jwt", "Type": "SecureString", "KeyId": "alias/prod-secrets"}]},
    )
    with stub:
        finding = check_ssm_parameter(ssm, "/prod/jwt", REGION, "app.secrets.JWT_SECRET_KEY")
    assert finding.severity == "blocking"
    assert "cannot be decrypted (KMS)" in finding.what
    assert finding.fix is not None
    assert "aws kms create-grant --key-id alias/prod-secrets --grantee-principal <role arn>" in finding.fix


def test_secretsmanager_decryption_failure_names_the_key(monkeypatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    sm = boto3.client("secretsmanager", region_name=REGION)
    key = f"arn:aws:kms:{REGION}:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    stub = Stubber(sm)
    stub.add_response("describe_secret", {"Name": "prod/db", "KmsKeyId": key}, {"SecretId": "prod/db"})
    stub.add_client_error(
        "get_secret_value",
        service_error_code="DecryptionFailure",
        service_message="Secrets Manager can't decrypt the protected secret text using the provided KMS key.",
    )
    with stub:
        finding = check_secretsmanager_secret(sm, "prod/db", REGION, "app.secrets.DATABASE_URL")
    assert finding.severity == "blocking"
    assert "can't decrypt the protected secret text" in finding.what
    assert finding.fix is not None
    assert f"aws kms describe-key --key-id {key} --region {REGION}" in finding.fix


def test_certificate_in_another_region_is_blocking(aws, tmp_path: Path, capsys) -> None:
    image, _ = good_account()
    cert, key = self_signed("api.example.com")
    arn = boto3.client("acm", region_name="us-east-1").import_certificate(Certificate=cert, PrivateKey=key)[
        "CertificateArn"
    ]
    # The stack config already refuses this offline (exit 2) ...
    stacks = write_stack(tmp_path, "prod-ecs", ecs_app(image, arn), {"aws:region": REGION})
    assert cli(["--stack", "prod-ecs", "--stacks-dir", str(stacks)]) == 2
    assert "app.ecs.certificate_arn: the certificate is in us-east-1" in capsys.readouterr().err
    # ... and the check itself says the same for any caller.
    findings = check_acm_certificate(boto3.client, arn, "api.example.com", REGION, "app.ecs.certificate_arn")
    assert [f.severity for f in findings] == ["blocking"]
    assert "certificate is in us-east-1 but the load balancer is in eu-west-1" in findings[0].what
    assert findings[0].fix == (
        "aws acm request-certificate --domain-name api.example.com --validation-method DNS --region eu-west-1"
    )


def test_pending_certificate_shows_the_validation_record(aws, tmp_path: Path) -> None:
    image, _ = good_account()
    arn = boto3.client("acm", region_name=REGION).request_certificate(
        DomainName="api.example.com", ValidationMethod="DNS"
    )["CertificateArn"]
    stacks = write_stack(tmp_path, "prod-ecs", ecs_app(image, arn), {"aws:region": REGION})
    rc, text = run(stacks, "prod-ecs")
    assert rc == 1
    assert "certificate is PENDING_VALIDATION, not ISSUED" in text
    assert "CNAME _" in text  # moto's validation record, as ACM returns it
    assert f"aws acm wait certificate-validated --certificate-arn {arn}" in text


def test_certificate_not_covering_the_domain(aws, tmp_path: Path) -> None:
    image, arn = good_account()  # *.example.com + example.com
    app = ecs_app(image, arn, domain="v1.api.example.com")
    stacks = write_stack(tmp_path, "prod-ecs", app, {"aws:region": REGION})
    rc, text = run(stacks, "prod-ecs")
    assert rc == 1
    assert "do not cover v1.api.example.com (a wildcard covers exactly one label)" in text


@pytest.mark.parametrize(
    ("names", "domain", "covered"),
    [
        (["*.example.com"], "api.example.com", True),
        (["*.example.com"], "API.Example.com.", True),
        (["*.example.com"], "example.com", False),
        (["*.example.com"], "a.b.example.com", False),
        (["*.example.com", "example.com"], "example.com", True),
        (["api.example.com"], "api.example.com", True),
        (["api.example.com"], "www.example.com", False),
        (["*.example.com"], "api.example.co", False),
    ],
)
def test_certificate_name_matching(names, domain, covered) -> None:
    assert certificate_covers(names, domain) is covered


def test_image_digest_not_in_repository(aws, tmp_path: Path) -> None:
    _, arn = good_account()
    missing = f"{DEFAULT_ACCOUNT_ID}.dkr.ecr.{REGION}.amazonaws.com/items-api@sha256:" + "d" * 64
    no_repo = f"{DEFAULT_ACCOUNT_ID}.dkr.ecr.{REGION}.amazonaws.com/other@sha256:" + "d" * 64
    stacks = write_stack(tmp_path, "a", ecs_app(missing, arn), {"aws:region": REGION})
    write_stack(tmp_path, "b", ecs_app(no_repo, arn), {"aws:region": REGION})
    rc, text = run(stacks, "a")
    assert rc == 1
    assert "digest sha256:dddd" in text
    assert "is not in repository items-api" in text
    assert "docker buildx build --platform linux/amd64" in text
    rc, text = run(stacks, "b")
    assert rc == 1
    assert "repository other does not exist" in text
    assert "aws ecr create-repository --repository-name other --image-tag-mutability IMMUTABLE" in text


def test_connection_budget_refused_by_tuning_is_blocking(aws, tmp_path: Path) -> None:
    image, arn = good_account()
    app = ecs_app(image, arn, database={"max_connections": 30, "reserved_connections": 10})
    app["scaling"] = {"min": 2, "max": 10, "desired": 2}
    stacks = write_stack(tmp_path, "prod-ecs", app, {"aws:region": REGION})
    rc, text = run(stacks, "prod-ecs")
    assert rc == 1
    assert "[BLOCKING] db-budget: connection budget exceeded" in text
    assert "app.database.max_connections" in text


def test_default_max_connections_is_a_warning_with_the_psql_command(aws, tmp_path: Path) -> None:
    image, arn = good_account()
    app = ecs_app(image, arn)
    del app["database"]
    stacks = write_stack(tmp_path, "prod-ecs", app, {"aws:region": REGION})
    rc, text = run(stacks, "prod-ecs")
    assert rc == 0, text
    assert "app.database.max_connections is not set; assuming PostgreSQL's default 100" in text
    assert "SHOW max_connections" in text


def test_invalid_config_and_missing_stack_are_usage_errors(tmp_path: Path, capsys) -> None:
    stacks = write_stack(tmp_path, "bad", {"target": "ecs", "name": "x"}, {"aws:region": REGION})
    assert cli(["--stack", "bad", "--stacks-dir", str(stacks)]) == 2
    assert "app.image: required" in capsys.readouterr().err
    assert cli(["--stack", "nope", "--stacks-dir", str(stacks)]) == 2
    assert "Pulumi.nope.yaml does not exist" in capsys.readouterr().err


def test_the_stack_file_is_found_where_plan_finds_it(tmp_path: Path, monkeypatch, capsys) -> None:
    """No --stacks-dir: the project's stackConfigDir (default: beside Pulumi.yaml), like `infra plan`."""
    project = tmp_path.resolve() / "shop"
    project.mkdir()
    (project / "Pulumi.yaml").write_text("name: shop\nruntime: python\n")
    (project / "Pulumi.shop.yaml").write_text(
        yaml.safe_dump(
            {"config": {"aws:region": REGION, "fastapi-deploy:app": {"target": "ecs", "name": "x"}}}
        )
    )
    monkeypatch.chdir(project)
    assert cli(["--stack", "shop"]) == 2
    err = capsys.readouterr().err
    assert f"infra doctor: {project / 'Pulumi.shop.yaml'}: " in err  # read: its config is what is refused
    assert "app.image: required" in err

    (project / "Pulumi.yaml").write_text("name: shop\nruntime: python\nstackConfigDir: deploy\n")
    assert cli(["--stack", "shop"]) == 2
    assert (
        f"infra doctor: {project / 'deploy' / 'Pulumi.shop.yaml'} does not exist" in capsys.readouterr().err
    )


# ------------------------------------------------------------------------------------------------- VPS


#: What the service refuses to start without, stored in (moto's) Parameter Store by put_service_secrets().
VPS_SECRETS = {
    "DATABASE_URL": "ssm:/prod/vps/database-url",
    "REDIS_URL": "ssm:/prod/vps/redis-url",
    "JWT_SECRET_KEY": "ssm:/prod/vps/jwt",
}


def put_service_secrets() -> None:
    ssm = boto3.client("ssm", region_name=REGION)
    for name, value in (
        ("/prod/vps/database-url", "postgresql+asyncpg://u:p@db:5432/items"),
        ("/prod/vps/redis-url", "redis://cache:6379/0"),
        ("/prod/vps/jwt", "j" * 48),
    ):
        ssm.put_parameter(Name=name, Type="SecureString", Value=value, Overwrite=True)


def vps_app(image: str) -> dict[str, Any]:
    put_service_secrets()
    return {
        "target": "vps",
        "name": "items-api",
        "image": {"digest": image},
        "secrets": dict(VPS_SECRETS),
        "database": {"max_connections": 100, "reserved_connections": 10},
        "domain": "api.example.net",
        "vps": {"host": "203.0.113.10", "ssh_user": "deploy", "ssh_port": 2222, "cpus": 2, "memory": "2Gi"},
    }


@pytest.mark.parametrize(
    ("stdout", "stderr", "rc", "what", "fix"),
    [
        ("24.0.7\n", "", 0, "answers over SSH; Docker server 24.0.7", None),
        (
            "",
            "deploy@203.0.113.10: Permission denied (publickey).",
            255,
            "SSH login as deploy refused",
            "ssh-copy-id -p 2222 deploy@203.0.113.10",
        ),
        (
            "",
            "Host key verification failed.",
            255,
            "host key of 203.0.113.10 is unknown or changed",
            "ssh-keyscan -p 2222 -H 203.0.113.10 >> ~/.ssh/known_hosts",
        ),
        (
            "",
            "ssh: connect to host 203.0.113.10 port 2222: Connection refused",
            255,
            "cannot connect to 203.0.113.10:2222",
            "nc -vz 203.0.113.10 2222",
        ),
        (
            "",
            "bash: line 1: docker: command not found",
            127,
            "Docker is not installed on 203.0.113.10",
            "sudo apt-get install -y docker.io",
        ),
        (
            "",
            "permission denied while trying to connect to the Docker daemon socket at unix:///var/run/docker.sock",
            1,
            "deploy may not use the Docker socket",
            "sudo usermod -aG docker deploy",
        ),
        (
            "",
            "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. "
            "Is the docker daemon running?",
            1,
            "daemon is not running",
            "sudo systemctl enable --now docker",
        ),
        ("19.03.8\n", "", 0, "Docker 19.03.8 on deploy@203.0.113.10:2222 is older than 20.10", None),
    ],
)
def test_vps_host_over_ssh(aws, tmp_path: Path, monkeypatch, stdout, stderr, rc, what, fix) -> None:
    bindir = tmp_path / "bin"
    fake_executable(bindir, "ssh", stdout=stdout, stderr=stderr, rc=rc)
    monkeypatch.setenv("PATH", path_with(bindir))
    stacks = write_stack(tmp_path, "prod-vps", vps_app(push_image()), {"aws:region": REGION})
    code, text = run(stacks, "prod-vps")
    assert what in text
    if fix:
        assert fix in text
    assert code == (0 if rc == 0 else 1)
    argv = calls_of(bindir, "ssh")[0]
    assert argv == [
        "-o",
        "BatchMode=yes",
        "-o",
        "ConnectTimeout=5",
        "-p",
        "2222",
        "deploy@203.0.113.10",
        "docker",
        "version",
        "--format",
        "{{.Server.Version}}",
    ]


# ----------------------------------------------------------------------------------- OCI registries


class _Registry(BaseHTTPRequestHandler):
    """Just enough of the OCI Distribution API: bearer challenge, anonymous token, HEAD manifests."""

    digests: set[str] = set()

    def do_HEAD(self) -> None:
        if self.headers.get("Authorization") != "Bearer t0k3n":
            realm = f"http://{self.headers['Host']}/token"
            self.send_response(401)
            self.send_header(
                "WWW-Authenticate", f'Bearer realm="{realm}",service="reg",scope="repository:acme/api:pull"'
            )
            self.end_headers()
            return
        digest = self.path.rsplit("/", 1)[-1]
        self.send_response(
            200 if self.path.startswith("/v2/acme/api/manifests/") and digest in self.digests else 404
        )
        self.end_headers()

    def do_GET(self) -> None:
        ok = self.path.startswith("/token?") and "scope=repository%3Aacme%2Fapi%3Apull" in self.path
        body = json.dumps({"token": "t0k3n"} if ok else {}).encode()
        self.send_response(200 if ok else 400)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def oci_registry() -> Iterator[str]:
    _Registry.digests = {"sha256:" + "e" * 64}
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Registry)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_non_ecr_image_checked_over_the_oci_distribution_api(
    aws, tmp_path: Path, monkeypatch, oci_registry
) -> None:
    bindir = tmp_path / "bin"
    fake_executable(bindir, "ssh", stdout="27.1.1\n")
    monkeypatch.setenv("PATH", path_with(bindir))
    present = f"{oci_registry}/acme/api@sha256:" + "e" * 64
    missing = f"{oci_registry}/acme/api@sha256:" + "f" * 64
    stacks = write_stack(tmp_path, "ok", vps_app(present), {"aws:region": REGION})
    write_stack(tmp_path, "missing", vps_app(missing), {"aws:region": REGION})
    rc, text = run(stacks, "ok")
    assert rc == 0, text
    assert f"exists in {oci_registry}/acme/api" in text
    rc, text = run(stacks, "missing")
    assert rc == 1
    assert f"digest sha256:{'f' * 64} is not in {oci_registry}/acme/api" in text


# ---------------------------------------------------------------------------------------- Cloud Run/GCP


def cloudrun_app() -> dict[str, Any]:
    return {
        "target": "cloudrun",
        "name": "items-api",
        "image": {"build": {"context": "."}},
        "scaling": {"min": 0, "max": 10},
        "database": {"max_connections": 200, "reserved_connections": 20},
        "secrets": {
            "DATABASE_URL": "gcp:items-api-database-url",
            "JWT_SECRET_KEY": "gcp:projects/shared-secrets/secrets/items-api-jwt/versions/3",
            "REDIS_URL": "gcp:items-api-redis-url",
        },
        "cloudrun": {"cpu": 1, "memory": "1Gi"},
    }


def test_cloudrun_secrets_via_secret_manager(tmp_path: Path) -> None:
    fake = GrpcFake()
    existing = {
        "projects/items-prod/secrets/items-api-database-url/versions/latest": "ok",
        "projects/shared-secrets/secrets/items-api-jwt/versions/3": "denied",
    }

    def access(req: secretmanager_v1.AccessSecretVersionRequest) -> Any:
        state = existing.get(req.name)
        if state is None:
            return grpc.StatusCode.NOT_FOUND, f"Secret [{req.name}] not found or has no versions."
        if state == "denied":
            return (
                grpc.StatusCode.PERMISSION_DENIED,
                f"Permission 'secretmanager.versions.access' denied for {req.name}",
            )
        return secretmanager_v1.AccessSecretVersionResponse(
            name=req.name, payload=secretmanager_v1.SecretPayload(data=b"value")
        )

    fake.add(
        "google.cloud.secretmanager.v1.SecretManagerService",
        "AccessSecretVersion",
        access,
        secretmanager_v1.AccessSecretVersionRequest,
        secretmanager_v1.AccessSecretVersionResponse,
    )
    stacks = write_stack(
        tmp_path, "prod-cloudrun", cloudrun_app(), {"gcp:project": "items-prod", "gcp:region": "europe-west1"}
    )
    with fake.serve() as channel:
        client = secretmanager_v1.SecretManagerServiceClient(
            transport=SecretManagerServiceGrpcTransport(channel=channel)
        )
        rc, text = run(stacks, "prod-cloudrun", DoctorClients(gcp_secrets=client))
    assert rc == 1
    assert (
        "projects/items-prod/secrets/items-api-database-url/versions/latest exists and is accessible" in text
    )
    assert "gcloud secrets add-iam-policy-binding items-api-jwt --project shared-secrets" in text
    assert "--role roles/secretmanager.secretAccessor" in text
    assert (
        "gcloud secrets create items-api-redis-url --project items-prod --replication-policy automatic"
        in text
    )
    assert "image is built and pushed by `pulumi up`" in text
    names = [req.name for _, _, req in fake.calls]
    assert (
        "projects/shared-secrets/secrets/items-api-jwt/versions/3" in names
    )  # the pinned version, not latest


def test_no_aws_credentials_is_one_finding_not_one_per_check(tmp_path: Path, monkeypatch) -> None:
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no 1 s IMDS probe
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # boto3 caches credentials other tests resolved
    image = f"{DEFAULT_ACCOUNT_ID}.dkr.ecr.{REGION}.amazonaws.com/items-api@sha256:" + "d" * 64
    arn = f"arn:aws:acm:{REGION}:{DEFAULT_ACCOUNT_ID}:certificate/0f6d1a4e-3b1c-4a2b-9e8f-1c2d3e4f5a6b"
    stacks = write_stack(tmp_path, "prod-ecs", ecs_app(image, arn), {"aws:region": REGION})
    rc, text = run(stacks, "prod-ecs")
    assert rc == 1
    assert "no usable AWS credentials: Unable to locate credentials" in text
    assert "aws sso login" in text
    assert text.count("[BLOCKING]") == 1, text


def test_console_script_dispatch_and_json_output(aws, tmp_path: Path, capsys) -> None:
    from fastapi_deploy.cli import main

    image, arn = good_account()
    app = ecs_app(image, arn)
    app["secrets"]["REDIS_URL"] = "ssm:/prod/items-api/missing"
    app.pop("env")
    stacks = write_stack(tmp_path, "prod-ecs", app, {"aws:region": REGION})
    capsys.readouterr()
    assert main(["doctor", "--stack", "prod-ecs", "--stacks-dir", str(stacks), "--json"]) == 1
    findings = json.loads(capsys.readouterr().out)
    blocking = [f for f in findings if f["severity"] == "blocking"]
    assert blocking == [
        {
            "severity": "blocking",
            "check": "ssm-parameter",
            "what": "parameter /prod/items-api/missing does not exist in eu-west-1",
            "where": "app.secrets.REDIS_URL",
            "fix": "aws ssm put-parameter --name /prod/items-api/missing --type SecureString "
            "--value '<value>' --region eu-west-1",
        }
    ]
    assert {f["check"] for f in findings} >= {
        "aws-credentials",
        "secretsmanager-secret",
        "acm-certificate",
        "image",
    }


KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----"


def _recording_ssh(bindir: Path) -> None:
    """An ssh that records argv plus the mode and content of the `-i` file, then answers a version."""
    bindir.mkdir(parents=True, exist_ok=True)
    script = bindir / "ssh"
    script.write_text(
        "#!/usr/bin/env python3\n"
        "import json, os, sys\n"
        "a = sys.argv[1:]\n"
        "key = a[a.index('-i') + 1] if '-i' in a else None\n"
        "rec = {'argv': a, 'mode': oct(os.stat(key).st_mode & 0o777) if key else None,\n"
        "       'content': open(key).read() if key else None}\n"
        f"open({str(bindir / 'rec.json')!r}, 'w').write(json.dumps(rec))\n"
        "print('27.3.1')\n"
    )
    script.chmod(0o755)


def test_vps_ssh_uses_the_deploy_key_from_the_secret_store(aws, tmp_path: Path, monkeypatch) -> None:
    bindir = tmp_path / "bin"
    _recording_ssh(bindir)
    monkeypatch.setenv("PATH", path_with(bindir))
    boto3.client("ssm", region_name=REGION).put_parameter(
        Name="/prod/vps/ssh-key", Type="SecureString", Value=KEY
    )
    app = vps_app(push_image())
    app["vps"]["ssh_key_secret"] = "ssm:/prod/vps/ssh-key"
    stacks = write_stack(tmp_path, "prod-vps", app, {"aws:region": REGION})
    rc, text = run(stacks, "prod-vps")
    assert rc == 0, text
    rec = json.loads((bindir / "rec.json").read_text())
    key_path = rec["argv"][rec["argv"].index("-i") + 1]
    assert rec["argv"][rec["argv"].index("-i") + 2 : rec["argv"].index("-i") + 4] == [
        "-o",
        "IdentitiesOnly=yes",
    ]
    assert rec["mode"] == "0o600"
    assert rec["content"] == KEY + "\n"
    assert not Path(key_path).exists(), "the key file is removed after the check"
    assert "b3BlbnNzaC1rZXktdjEAAAAA" not in text


def test_vps_ssh_not_tried_when_the_deploy_key_is_unreadable(aws, tmp_path: Path, monkeypatch) -> None:
    bindir = tmp_path / "bin"
    fake_executable(bindir, "ssh", stdout="27.3.1\n")
    monkeypatch.setenv("PATH", path_with(bindir))
    app = vps_app(push_image())
    app["vps"]["ssh_key_secret"] = "ssm:/prod/vps/ssh-key"
    stacks = write_stack(tmp_path, "prod-vps", app, {"aws:region": REGION})
    rc, text = run(stacks, "prod-vps")
    assert rc == 1
    assert "parameter /prod/vps/ssh-key does not exist" in text
    assert "not tried: the SSH key in app.vps.ssh_key_secret could not be read" in text
    assert calls_of(bindir, "ssh") == []
