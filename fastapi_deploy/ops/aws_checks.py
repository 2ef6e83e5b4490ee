"""AWS preflight checks (boto3): secrets readable incl. KMS decrypt, ACM certificate, ECR image digest.

Every function takes a boto3 client (or a factory for region-bound clients) and plain values, never the
stack config, so the same checks serve every target and the tests drive them with real clients.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from fastapi_deploy.ops.findings import Finding, blocking, ok, warning

ClientFactory = Callable[[str, str], Any]
"""(service, region) -> boto3 client. Defaults to `boto3.client(service, region_name=region)`."""


def default_client_factory(service: str, region: str) -> Any:
    import boto3

    return boto3.client(service, region_name=region)  # type: ignore[call-overload]


def _q(value: str) -> str:
    return shlex.quote(value)


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _message(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Message", "")) or str(exc)


def _mentions_kms(exc: ClientError) -> bool:
    text = f"{_code(exc)} {_message(exc)}".lower()
    return any(word in text for word in ("kms", "ciphertext", "customer master key", "decrypt"))


def _kms_fix(key_id: str | None, region: str) -> str:
    key = key_id or "<key id>"
    return (
        f"aws kms describe-key --key-id {_q(key)} --region {region}   # enabled? which account?\n"
        f"grant kms:Decrypt on that key to you AND to the task/function role, e.g.\n"
        f"aws kms create-grant --key-id {_q(key)} --grantee-principal <role arn> --operations Decrypt "
        f"--region {region}"
    )


# ---------------------------------------------------------------------------------------------- secrets


def check_ssm_parameter(ssm: Any, name: str, region: str, where: str) -> Finding:
    """Parameter exists and decrypts for the caller (GetParameter WithDecryption=True).

    ECS resolves `valueFrom` secrets when it starts the task; a missing or undecryptable parameter is
    not a Pulumi error but a task that dies with `ResourceInitializationError` over and over.
    """
    check = "ssm-parameter"
    try:
        param = ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]
    except ClientError as exc:
        code = _code(exc)
        if code == "ParameterNotFound":
            return blocking(
                check,
                f"parameter {name} does not exist in {region}",
                where,
                f"aws ssm put-parameter --name {_q(name)} --type SecureString --value '<value>' "
                f"--region {region}",
            )
        if code == "InvalidKeyId" or _mentions_kms(exc):
            key_id = _ssm_key_id(ssm, name)
            return blocking(
                check,
                f"parameter {name} exists but cannot be decrypted (KMS): {_message(exc)}",
                where,
                _kms_fix(key_id, region),
            )
        if code in ("AccessDeniedException", "AccessDenied", "UnauthorizedOperation"):
            return blocking(
                check,
                f"parameter {name} is not readable by the current identity: {_message(exc)}",
                where,
                f"allow ssm:GetParameter on arn:aws:ssm:{region}:<account>:parameter{_slash(name)} "
                f"for you and for the execution role",
            )
        return blocking(check, f"cannot read parameter {name}: {code}: {_message(exc)}", where)
    except BotoCoreError as exc:
        return blocking(check, f"cannot reach SSM in {region}: {exc}", where)
    if param.get("Type") != "SecureString":
        return warning(
            check,
            f"parameter {name} is a {param.get('Type')}, stored unencrypted",
            where,
            f"aws ssm put-parameter --name {_q(name)} --type SecureString --overwrite --value '<value>' "
            f"--region {region}",
        )
    if not param.get("Value"):
        return warning(check, f"parameter {name} is empty", where)
    return ok(check, f"parameter {name} exists and decrypts (version {param.get('Version')})", where)


def _slash(name: str) -> str:
    return name if name.startswith("/") else f"/{name}"


def _ssm_key_id(ssm: Any, name: str) -> str | None:
    try:
        found = ssm.describe_parameters(ParameterFilters=[{"Key": "Name", "Values": [name]}])["Parameters"]
    except (ClientError, BotoCoreError):
        return None
    return str(found[0].get("KeyId")) if found and found[0].get("KeyId") else None


def check_secretsmanager_secret(
    sm: Any, secret_id: str, region: str, where: str, *, json_key: str | None = None
) -> Finding:
    """Secret exists, is not scheduled for deletion, has a current value and decrypts for the caller.

    With `json_key` (reference `secretsmanager:name:key`) the value must be a JSON object holding that
    key: ECS fails the task start with ResourceInitializationError otherwise. The value itself is only
    parsed, never printed.
    """
    check = "secretsmanager-secret"
    try:
        desc = sm.describe_secret(SecretId=secret_id)
    except ClientError as exc:
        if _code(exc) == "ResourceNotFoundException":
            return blocking(
                check,
                f"secret {secret_id} does not exist in {region}",
                where,
                f"aws secretsmanager create-secret --name {_q(secret_id)} --secret-string '<value>' "
                f"--region {region}",
            )
        return blocking(check, f"cannot describe secret {secret_id}: {_code(exc)}: {_message(exc)}", where)
    except BotoCoreError as exc:
        return blocking(check, f"cannot reach Secrets Manager in {region}: {exc}", where)
    if desc.get("DeletedDate"):
        return blocking(
            check,
            f"secret {secret_id} is scheduled for deletion on {desc['DeletedDate']}",
            where,
            f"aws secretsmanager restore-secret --secret-id {_q(secret_id)} --region {region}",
        )
    try:
        value = sm.get_secret_value(SecretId=secret_id)
    except ClientError as exc:
        code = _code(exc)
        if code == "DecryptionFailure" or _mentions_kms(exc):
            return blocking(
                check,
                f"secret {secret_id} exists but cannot be decrypted (KMS): {_message(exc)}",
                where,
                _kms_fix(desc.get("KmsKeyId"), region),
            )
        if code == "ResourceNotFoundException":
            return blocking(
                check,
                f"secret {secret_id} has no current value (no AWSCURRENT version)",
                where,
                f"aws secretsmanager put-secret-value --secret-id {_q(secret_id)} --secret-string '<value>' "
                f"--region {region}",
            )
        if code in ("AccessDeniedException", "AccessDenied"):
            return blocking(
                check,
                f"secret {secret_id} is not readable by the current identity: {_message(exc)}",
                where,
                f"allow secretsmanager:GetSecretValue on {desc.get('ARN', secret_id)} "
                f"for you and for the execution role",
            )
        return blocking(check, f"cannot read secret {secret_id}: {code}: {_message(exc)}", where)
    if json_key is not None:
        try:
            doc = json.loads(value.get("SecretString") or "")
        except ValueError:
            doc = None
        if not isinstance(doc, dict):
            return blocking(
                check,
                f"secret {secret_id} is not a JSON object, but the reference asks for its key {json_key!r}",
                where,
                f"aws secretsmanager put-secret-value --secret-id {_q(secret_id)} "
                f'--secret-string \'{{"{json_key}": "<value>"}}\' --region {region}',
            )
        if json_key not in doc:
            return blocking(
                check,
                f"secret {secret_id} has no JSON key {json_key!r} (keys: {sorted(doc)})",
                where,
                f"aws secretsmanager put-secret-value --secret-id {_q(secret_id)} "
                f'--secret-string \'{{..., "{json_key}": "<value>"}}\' --region {region}',
            )
        return ok(check, f"secret {secret_id} exists, decrypts and holds key {json_key!r}", where)
    return ok(check, f"secret {secret_id} exists and decrypts", where)


# ------------------------------------------------------------------------------------------ certificate

_ACM_ARN = re.compile(r"^arn:aws[a-z-]*:acm:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):certificate/[\w-]+$")


def certificate_covers(names: list[str], domain: str) -> bool:
    """True when a certificate name covers `domain`.

    A wildcard covers exactly one label: `*.example.com` covers `api.example.com` but neither
    `example.com` nor `a.b.example.com` (RFC 6125 6.4.3; browsers and ALB agree).
    """
    host = domain.lower().rstrip(".")
    for raw in names:
        name = raw.lower().rstrip(".")
        if name == host:
            return True
        if name.startswith("*."):
            suffix = name[1:]  # ".example.com"
            label, _, rest = host.partition(".")
            if label and f".{rest}" == suffix:
                return True
    return False


def check_acm_certificate(
    client_factory: ClientFactory,
    arn: str,
    domain: str | None,
    stack_region: str,
    where: str,
    *,
    now: datetime | None = None,
) -> list[Finding]:
    """Certificate is ISSUED, lives in the stack's region, covers the domain, and is not about to expire."""
    check = "acm-certificate"
    request_fix = (
        f"aws acm request-certificate --domain-name {_q(domain or '<domain>')} --validation-method DNS "
        f"--region {stack_region}"
    )
    match = _ACM_ARN.match(arn)
    if not match:
        return [blocking(check, f"{arn!r} is not an ACM certificate ARN", where, request_fix)]
    cert_region = match["region"]
    if cert_region != stack_region:
        # An ALB listener only accepts a certificate from its own region; the us-east-1 rule is CloudFront's.
        return [
            blocking(
                check,
                f"certificate is in {cert_region} but the load balancer is in {stack_region}; a load "
                f"balancer can only use a certificate from its own region",
                f"{where} = {arn}",
                request_fix,
            )
        ]
    try:
        cert = client_factory("acm", cert_region).describe_certificate(CertificateArn=arn)["Certificate"]
    except ClientError as exc:
        if _code(exc) == "ResourceNotFoundException":
            return [blocking(check, f"certificate {arn} does not exist", where, request_fix)]
        return [blocking(check, f"cannot describe certificate: {_code(exc)}: {_message(exc)}", where)]
    except BotoCoreError as exc:
        return [blocking(check, f"cannot reach ACM in {cert_region}: {exc}", where)]

    findings: list[Finding] = []
    status = cert.get("Status", "UNKNOWN")
    names = [cert.get("DomainName", ""), *cert.get("SubjectAlternativeNames", [])]
    if status == "PENDING_VALIDATION":
        records = [
            f"CNAME {o['ResourceRecord']['Name']} -> {o['ResourceRecord']['Value']}"
            for o in cert.get("DomainValidationOptions", [])
            if o.get("ResourceRecord") and o.get("ValidationStatus") != "SUCCESS"
        ]
        fix = "create the DNS validation record(s), then wait for ISSUED:\n" + "\n".join(
            records or ["(none)"]
        )
        fix += f"\naws acm wait certificate-validated --certificate-arn {arn} --region {cert_region}"
        findings.append(blocking(check, "certificate is PENDING_VALIDATION, not ISSUED", where, fix))
    elif status != "ISSUED":
        reason = cert.get("FailureReason")
        findings.append(
            blocking(
                check,
                f"certificate status is {status}" + (f" ({reason})" if reason else "") + ", not ISSUED",
                where,
                request_fix,
            )
        )
    if domain is None:
        findings.append(
            warning(
                check,
                "no domain configured: clients will use the load balancer's DNS name, which no "
                "certificate covers",
                where,
            )
        )
    elif not certificate_covers(names, domain):
        findings.append(
            blocking(
                check,
                f"certificate names {names} do not cover {domain} (a wildcard covers exactly one label)",
                where,
                request_fix,
            )
        )
    not_after = cert.get("NotAfter")
    now = now or datetime.now(UTC)
    if isinstance(not_after, datetime) and status == "ISSUED":
        days = (not_after - now) / timedelta(days=1)
        if days < 30 and cert.get("Type") == "IMPORTED":
            findings.append(
                warning(
                    check,
                    f"imported certificate expires in {days:.0f} days and ACM does not renew imported ones",
                    where,
                    f"aws acm import-certificate --certificate-arn {arn} --certificate fileb://cert.pem "
                    f"--private-key fileb://key.pem --region {cert_region}",
                )
            )
    if not any(f.severity.value == "blocking" for f in findings):
        findings.append(ok(check, f"certificate ISSUED in {cert_region}, covers {domain or names[0]}", where))
    return findings


# ---------------------------------------------------------------------------------------------- images

_ECR_REF = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr(?:-fips)?\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/"
    r"(?P<repo>[^@:]+)(?::(?P<tag>[^@]+))?(?:@(?P<digest>sha256:[0-9a-f]{64}))?$"
)


@dataclass(frozen=True)
class EcrImage:
    """An image reference pointing into ECR."""

    account: str
    region: str
    repository: str
    tag: str | None
    digest: str | None


def parse_ecr_image(ref: str) -> EcrImage | None:
    m = _ECR_REF.match(ref)
    if not m:
        return None
    return EcrImage(m["account"], m["region"], m["repo"], m["tag"], m["digest"])


def check_ecr_image(
    client_factory: ClientFactory, ref: str, deploy_region: str, where: str, *, lambda_target: bool = False
) -> list[Finding]:
    """The digest exists in the repository (DescribeImages by digest), with its scan findings summarised."""
    check = "image"
    img = parse_ecr_image(ref)
    if img is None:
        return [blocking(check, f"{ref!r} is not an ECR image reference", where)]
    findings: list[Finding] = []
    if img.digest is None:
        tag = img.tag or "latest"
        return [
            blocking(
                check,
                f"image {ref} is referenced by tag, not digest; a re-pushed tag silently changes what runs "
                f"and what a rollback returns to",
                where,
                f"aws ecr describe-images --repository-name {_q(img.repository)} --image-ids imageTag={tag} "
                f"--query 'imageDetails[0].imageDigest' --output text --region {img.region}",
            )
        ]
    if lambda_target and img.region != deploy_region:
        findings.append(
            blocking(
                check,
                f"Lambda can only use an ECR image from its own region; image is in {img.region}, "
                f"function in {deploy_region}",
                where,
                f"enable ECR replication to {deploy_region} or push the image there",
            )
        )
    try:
        details = client_factory("ecr", img.region).describe_images(
            registryId=img.account, repositoryName=img.repository, imageIds=[{"imageDigest": img.digest}]
        )["imageDetails"]
    except ClientError as exc:
        code = _code(exc)
        if code == "RepositoryNotFoundException":
            return [
                *findings,
                blocking(
                    check,
                    f"repository {img.repository} does not exist in {img.account}/{img.region}",
                    where,
                    f"aws ecr create-repository --repository-name {_q(img.repository)} "
                    f"--image-tag-mutability IMMUTABLE --image-scanning-configuration scanOnPush=true "
                    f"--region {img.region}",
                ),
            ]
        if code == "ImageNotFoundException":
            repo_uri = f"{img.account}.dkr.ecr.{img.region}.amazonaws.com/{img.repository}"
            return [
                *findings,
                blocking(
                    check,
                    f"digest {img.digest} is not in repository {img.repository}",
                    where,
                    f"docker buildx build --platform linux/amd64 -t {repo_uri}:<tag> --push .   "
                    f"# then put the pushed digest in the stack config",
                ),
            ]
        return [*findings, blocking(check, f"cannot describe image: {code}: {_message(exc)}", where)]
    except BotoCoreError as exc:
        return [*findings, blocking(check, f"cannot reach ECR in {img.region}: {exc}", where)]
    detail = details[0] if details else {}
    counts = detail.get("imageScanFindingsSummary", {}).get("findingSeverityCounts", {})
    critical = int(counts.get("CRITICAL", 0))
    if critical:
        findings.append(
            warning(
                check,
                f"image scan reports {critical} CRITICAL and {int(counts.get('HIGH', 0))} HIGH findings",
                where,
                f"aws ecr describe-image-scan-findings --repository-name {_q(img.repository)} "
                f"--image-id imageDigest={img.digest} --region {img.region}",
            )
        )
    if not any(f.severity.value == "blocking" for f in findings):
        tags = ",".join(detail.get("imageTags", [])) or "untagged"
        findings.append(ok(check, f"{img.digest[:19]}... exists in {img.repository} ({tags})", where))
    return findings


# --------------------------------------------------------------------------------------------- identity


def check_aws_identity(client_factory: ClientFactory, region: str, where: str) -> tuple[Finding, str | None]:
    """STS GetCallerIdentity once, so missing credentials are one finding instead of one per check.

    Returns (finding, account id or None when there is no usable identity).
    """
    check = "aws-credentials"
    try:
        ident = client_factory("sts", region).get_caller_identity()
    except (ClientError, BotoCoreError) as exc:
        return (
            blocking(
                check,
                f"no usable AWS credentials: {exc}",
                where,
                "aws sso login --profile <profile> && export AWS_PROFILE=<profile>   # or aws configure",
            ),
            None,
        )
    account = str(ident.get("Account"))
    return ok(check, f"checking as {ident.get('Arn')} (account {account})", where), account
