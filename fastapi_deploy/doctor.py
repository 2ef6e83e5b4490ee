"""`infra doctor`: preflight a stack against the real account before `pulumi up`.

Most failed first deploys are not Pulumi errors but something missing in the account: a secret that does
not exist or cannot be decrypted (ECS tasks then die with `ResourceInitializationError` in a loop), a
certificate in the wrong region, an image digest that is not in the registry, a database budget the
service would exceed, a VPS without Docker. Each finding says what is wrong, where, and the command that
fixes it. Exit 1 on blocking findings, 2 on an invalid stack config. Needs no Pulumi CLI: the stack file
is parsed offline by `fastapi_deploy.config.load_stack_file`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from fastapi_deploy import project as pulumi_project
from fastapi_deploy import registry as targets
from fastapi_deploy.config import ConfigError, StackConfigType, load_stack_file
from fastapi_deploy.ops import access, aws_checks, gcp_checks, registry
from fastapi_deploy.ops.findings import Finding, blocking, has_blocking, ok, summary, warning
from fastapi_deploy.secret_refs import SecretRef, SecretRefError

Printer = Callable[[str], None]


@dataclass
class DoctorClients:
    """Where doctor gets its cloud clients; tests pass clients whose transport is faked."""

    aws: aws_checks.ClientFactory = aws_checks.default_client_factory
    gcp_secrets: Any = None
    oci_session: Any = None

    def secret_manager(self) -> Any:
        if self.gcp_secrets is None:
            from google.cloud import secretmanager

            self.gcp_secrets = secretmanager.SecretManagerServiceClient()
        return self.gcp_secrets


def _aws_region(cfg: StackConfigType) -> str | None:
    value = cfg.providers.get("aws:region")
    return str(value) if value else None


def _gcp_project(cfg: StackConfigType) -> str | None:
    return cfg.gcp_project


@dataclass
class DoctorContext:
    """What a target's doctor check (``Target.doctor_checks``) receives."""

    cfg: StackConfigType
    stack: str
    clients: DoctorClients
    #: The findings so far (a check may depend on an earlier one, e.g. the SSH key's secret).
    findings: list[Finding]
    #: AWS credentials work (or the stack does not use AWS).
    aws_ok: bool = True
    gcp_ok: bool = True

    @property
    def aws_region(self) -> str | None:
        return _aws_region(self.cfg)


def check_secret(
    ref: SecretRef, where: str, cfg: StackConfigType, clients: DoctorClients, stack: str
) -> Finding:
    """Dispatch one reference to its store's check, in the region/project the platform will use."""
    if ref.scheme in ("ssm", "secretsmanager"):
        region = ref.given_arn.split(":")[3] if ref.given_arn else _aws_region(cfg)
        if not region:
            return blocking(
                "secret",
                f"{ref} needs an AWS region and the stack sets no aws:region",
                where,
                f"pulumi config set aws:region <region> --stack {stack}   # or edit the stack file",
            )
        if ref.scheme == "ssm":
            return aws_checks.check_ssm_parameter(clients.aws("ssm", region), ref.name, region, where)
        return aws_checks.check_secretsmanager_secret(
            clients.aws("secretsmanager", region),
            ref.given_arn or ref.name,
            region,
            where,
            json_key=ref.json_key,
        )
    project = ref.project or _gcp_project(cfg)
    if not project:
        return blocking(
            "gcp-secret",
            f"{ref} names no project and the stack sets no gcp:project",
            where,
            f"use gcp:projects/<project>/secrets/{ref.name} or set gcp:project in the stack file",
        )
    return gcp_checks.check_gcp_secret(
        clients.secret_manager(), project, ref.name, ref.version or "latest", where
    )


def check_image(cfg: StackConfigType, clients: DoctorClients, stack: str) -> list[Finding]:
    """The existing image digest is in its registry (the target's rules, e.g. Lambda's ECR-only, first)."""
    if cfg.image.digest is None:
        return [
            ok(
                "image",
                "image is built and pushed by `pulumi up` (image.build); no existing digest to check",
                "app.image.build",
            )
        ]
    ref = cfg.image.digest
    where = "app.image.digest"
    if aws_checks.parse_ecr_image(ref) is not None:
        region = _aws_region(cfg) or aws_checks.parse_ecr_image(ref).region  # type: ignore[union-attr]
        return aws_checks.check_ecr_image(
            clients.aws, ref, region, where, lambda_target=targets.get(cfg.target).ecr_only
        )
    findings = []
    if targets.get(cfg.target).ecr_only:
        findings.append(
            blocking(
                "image",
                f"{cfg.target} only runs images from ECR; {ref} is elsewhere",
                where,
                "push it to ECR",
            )
        )
    findings.append(registry.check_oci_image(ref, where, session=clients.oci_session))
    return findings


def check_budget(cfg: StackConfigType, stack: str) -> list[Finding]:
    """The tuning module's own arithmetic, run before deploy, plus the plausibility of its inputs."""
    from fastapi_deploy import tuning

    where = "app.database"
    file_fix = f"edit stacks/Pulumi.{stack}.yaml"
    try:
        t = tuning.for_platform(cfg)
        t.check()
    except tuning.TuningError as exc:
        return [blocking("db-budget", str(exc), where, file_fix)]
    findings: list[Finding] = []
    if "max_connections" not in cfg.database.model_fields_set:
        findings.append(
            warning(
                "db-budget",
                f"app.database.max_connections is not set; assuming PostgreSQL's default "
                f"{cfg.database.max_connections}. RDS derives it from instance memory, so the real value may "
                f"be much lower (db.t4g.micro: ~80) or higher",
                where,
                "psql \"$DATABASE_URL\" -c 'SHOW max_connections'   # then set app.database.max_connections",
            )
        )
    if t.pool_class == "queue" and t.pool_size + t.max_overflow < tuning.MIN_CONNECTIONS_PER_WORKER + 1:
        findings.append(
            warning(
                "db-budget",
                f"each worker gets only {t.pool_size}+{t.max_overflow} connections: concurrent requests wait "
                f"up to DB_POOL_TIMEOUT={t.pool_timeout_s:g}s for one and then fail with 503",
                where,
                "raise app.database.max_connections (or add RDS Proxy/PgBouncer) or lower app.scaling.max",
            )
        )
    findings.append(
        ok(
            "db-budget",
            f"{t.max_total_connections} connections at most ({t.replicas_during_deploy} replicas in a deploy "
            f"x {t.workers} workers x ({t.pool_size}+{t.max_overflow})) <= budget {t.connection_budget}",
            where,
        )
    )
    return findings


def check_service_env(cfg: StackConfigType, stack: str) -> list[Finding]:
    """What the service would refuse at start (the same check `infra plan` and `pulumi up` run)."""
    from fastapi_deploy import service_env, tuning

    try:
        runtime = tuning.for_platform(cfg)
    except tuning.TuningError:
        return []  # reported by check_budget
    problems = service_env.problems(cfg, runtime)
    if not problems:
        return [
            ok("service-env", "the container's environment passes the service's own settings checks", "app")
        ]
    fix = f"edit stacks/Pulumi.{stack}.yaml"
    return [blocking("service-env", line, line.split(":", 1)[0], fix) for line in problems]


def run_doctor(cfg: StackConfigType, stack: str, clients: DoctorClients | None = None) -> list[Finding]:
    """Every check that applies to this stack's target, in the order a deploy would hit them."""
    clients = clients or DoctorClients()
    spec = targets.get(cfg.target)
    findings: list[Finding] = []
    if spec.cloud == "aws" and not _aws_region(cfg):
        findings.append(
            blocking(
                "region",
                "the stack sets no aws:region",
                f"stacks/Pulumi.{stack}.yaml",
                f"pulumi config set aws:region <region> --stack {stack}",
            )
        )
    refs: list[tuple[str, str]] = [(f"app.secrets.{k}", v) for k, v in sorted(cfg.secrets.items())]
    if spec.secrets.extra_refs is not None:
        refs.extend(spec.secrets.extra_refs(cfg))
    parsed: list[tuple[str, SecretRef]] = []
    for where, raw in refs:
        try:
            parsed.append((where, SecretRef.parse(raw)))
        except SecretRefError as exc:
            findings.append(blocking("secret", str(exc), where))
    ecr_image = cfg.image.digest is not None and aws_checks.parse_ecr_image(cfg.image.digest) is not None
    uses_aws = spec.cloud == "aws" or ecr_image or any(r.scheme != "gcp" for _, r in parsed)
    aws_ok = True
    if uses_aws:
        ident, account = aws_checks.check_aws_identity(
            clients.aws, _aws_region(cfg) or "us-east-1", "AWS credentials"
        )
        findings.append(ident)
        aws_ok = account is not None
    gcp_ok = True
    if any(r.scheme == "gcp" for _, r in parsed):
        try:
            clients.secret_manager()
        except Exception as exc:  # google.auth.exceptions.DefaultCredentialsError and friends
            gcp_ok = False
            findings.append(
                blocking(
                    "gcp-credentials",
                    f"no usable Google credentials: {exc}",
                    "Application Default Credentials",
                    "gcloud auth application-default login",
                )
            )
    for where, ref in parsed:
        if (ref.scheme != "gcp" and not aws_ok) or (ref.scheme == "gcp" and not gcp_ok):
            continue
        if spec.secrets.schemes and ref.scheme not in spec.secrets.schemes:
            findings.append(blocking("secret", spec.secrets.refused.format(target=cfg.target), where))
            continue
        findings.append(check_secret(ref, where, cfg, clients, stack))
    if aws_ok or not ecr_image:
        findings.extend(check_image(cfg, clients, stack))
    ctx = DoctorContext(cfg, stack, clients, findings, aws_ok=aws_ok, gcp_ok=gcp_ok)
    for check in spec.doctor_checks:
        findings.extend(check(ctx))
    findings.extend(check_budget(cfg, stack))
    findings.extend(check_service_env(cfg, stack))
    for check in spec.doctor_host_checks:
        findings.extend(check(ctx))
    return findings


def read_secret_value(ref: SecretRef, cfg: StackConfigType, clients: DoctorClients) -> str:
    """The secret's value, for the one check that needs it (the SSH key). Never printed or logged."""
    if ref.scheme == "ssm":
        region = ref.given_arn.split(":")[3] if ref.given_arn else (_aws_region(cfg) or "")
        value = clients.aws("ssm", region).get_parameter(Name=ref.name, WithDecryption=True)["Parameter"][
            "Value"
        ]
        return str(value)
    if ref.scheme == "secretsmanager":
        region = ref.given_arn.split(":")[3] if ref.given_arn else (_aws_region(cfg) or "")
        raw = clients.aws("secretsmanager", region).get_secret_value(SecretId=ref.given_arn or ref.name)
        text = str(raw.get("SecretString") or "")
        return str(json.loads(text)[ref.json_key]) if ref.json_key else text
    project = ref.project or _gcp_project(cfg) or ""
    name = gcp_checks.secret_version_name(project, ref.name, ref.version or "latest")
    resp = clients.secret_manager().access_secret_version(request={"name": name}, timeout=10.0)
    return bytes(resp.payload.data).decode()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="infra doctor",
        description="Preflight a stack: secrets, certificate, image digest, DB budget, VPS host.",
        epilog=access.EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--stack", required=True, help="stack name: reads Pulumi.<stack>.yaml")
    p.add_argument(
        "--stacks-dir", default=None, help="directory of stack files (default: stackConfigDir of Pulumi.yaml)"
    )
    p.add_argument("--json", action="store_true", help="print findings as JSON")
    p.add_argument("--quiet", action="store_true", help="only print warnings and blocking findings")
    return p


def cli(argv: list[str], *, clients: DoctorClients | None = None, out: Printer = print) -> int:
    """Entry point for `infra doctor ...` (dispatched by fastapi_deploy/cli.py)."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:
        return 0 if exc.code == 0 else 2
    try:
        path = pulumi_project.stack_path(args.stack, args.stacks_dir)
    except pulumi_project.ProjectNotFound as exc:
        print(f"infra doctor: {exc} (or pass --stacks-dir)", file=sys.stderr)
        return 2
    if not path.is_file():
        print(f"infra doctor: {path} does not exist", file=sys.stderr)
        return 2
    try:
        cfg = load_stack_file(path)
    except ConfigError as exc:
        print(f"infra doctor: {path}: {exc}", file=sys.stderr)
        return 2

    def doctor() -> int:
        findings = run_doctor(cfg, args.stack, clients)
        if args.json:
            out(json.dumps([asdict(f) for f in findings], indent=2))
        else:
            out(f"doctor: stack {args.stack} ({cfg.target})")
            for f in findings:
                if not (args.quiet and f.severity.value == "ok"):
                    out(f.render())
            out(summary(findings))
        return 1 if has_blocking(findings) else 0

    return access.unreachable_is_exit_3(doctor, "infra doctor", f"stack {args.stack}")
