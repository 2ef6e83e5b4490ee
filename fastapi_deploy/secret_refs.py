"""Secret references and how each platform consumes them — without ever touching a secret value.

A reference names where a secret lives:

- ``ssm:/prod/api/jwt``                         SSM Parameter Store (SecureString), path starts with ``/``
- ``ssm:arn:aws:ssm:REGION:ACCT:parameter/x``   ... or its ARN
- ``secretsmanager:prod/api/db``                 Secrets Manager secret (whole value)
- ``secretsmanager:prod/api/db:url``             ... one key of a JSON secret
- ``secretsmanager:arn:aws:secretsmanager:REGION:ACCT:secret:NAME-AbCdEf[:json-key]``
- ``gcp:projects/P/secrets/S[/versions/V]``     Google Secret Manager (version default ``latest``)
- ``gcp:S[/versions/V]``                        ... in the Cloud Run project

Platforms inject them natively (ECS ``secrets[].valueFrom``, Cloud Run ``secretKeyRef``), so the value
never appears in a task definition, in Pulumi state or in the console. Lambda gets the reference string
itself and ``app/lambda_handler.py`` resolves it at cold start.

Public names: ``SecretRef``, ``SecretRefError``, ``SecretRef.parse``, ``.arn(...)``, ``.iam_resource(...)``,
``ecs_secrets(...)``, ``aws_read_policy_statements(...)``, ``lambda_reference_env(...)``,
``gcp_secret_id(...)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

from fastapi_deploy import contract

Scheme = Literal["ssm", "secretsmanager", "gcp"]
SCHEMES: tuple[Scheme, ...] = ("ssm", "secretsmanager", "gcp")

#: A secret reference that cannot be parsed; the message shows the accepted forms and the value masked.
SecretRefError = contract.SecretRefSyntaxError
FORMS = contract.SECRET_REF_FORMS


@dataclass(frozen=True)
class SecretRef:
    """A parsed reference to a secret stored in a cloud secret store (never the value).

    The grammar is the contract's (:func:`app.contract.parse_secret_ref`), shared with the Lambda
    resolver in the image and the policy pack.
    """

    scheme: Scheme
    #: ssm: the parameter path (``/a/b``); secretsmanager: the name; gcp: the secret id.
    name: str
    #: secretsmanager: a key inside a JSON secret.
    json_key: str | None = None
    #: gcp: version (default ``latest``).
    version: str | None = None
    #: gcp: project, when given in the reference.
    project: str | None = None
    #: When the reference was a full ARN: the ARN without the json key.
    given_arn: str | None = None

    @classmethod
    def parse(cls, raw: str) -> SecretRef:
        """Parse ``scheme:body``. Raises :class:`SecretRefError` naming the accepted forms."""
        p = contract.parse_secret_ref(raw)
        return cls(
            cast(Scheme, p.scheme), p.name, json_key=p.json_key, version=p.version, project=p.project,
            given_arn=p.given_arn,
        )  # fmt: skip

    def __str__(self) -> str:
        if self.scheme == "ssm":
            return f"ssm:{self.given_arn or self.name}"
        if self.scheme == "secretsmanager":
            base = self.given_arn or self.name
            return f"secretsmanager:{base}" + (f":{self.json_key}" if self.json_key else "")
        proj = f"projects/{self.project}/secrets/" if self.project else ""
        return f"gcp:{proj}{self.name}/versions/{self.version or 'latest'}"

    # ---------------------------------------------------------------------------------------- AWS
    def arn(self, account: str, region: str, partition: str = "aws") -> str:
        """The ARN that identifies the secret for ECS ``valueFrom`` / IAM (no json key)."""
        if self.given_arn:
            return self.given_arn
        if self.scheme == "ssm":
            return f"arn:{partition}:ssm:{region}:{account}:parameter{self.name}"
        if self.scheme == "secretsmanager":
            # A partial ARN (no 6-char suffix) is accepted by ECS valueFrom and GetSecretValue.
            return f"arn:{partition}:secretsmanager:{region}:{account}:secret:{self.name}"
        raise SecretRefError(f"{self}: a gcp: reference has no AWS ARN")

    def iam_resource(self, account: str, region: str, partition: str = "aws") -> str:
        """The IAM resource matching exactly this secret.

        Secrets Manager appends ``-`` and 6 random characters to every secret's ARN; AWS's documented
        least-privilege pattern for a name is ``secret:NAME-??????`` (exactly six characters, not ``*``, so
        ``prod/db`` does not also match ``prod/db-admin``).
        """
        if self.scheme == "secretsmanager" and not self.given_arn:
            return self.arn(account, region, partition) + "-??????"
        return self.arn(account, region, partition)

    def ecs_value_from(self, account: str, region: str, partition: str = "aws") -> str:
        """ECS ``secrets[].valueFrom``: ARN, plus ``:json-key::`` for one key of a JSON secret."""
        arn = self.arn(account, region, partition)
        if self.scheme == "secretsmanager" and self.json_key:
            # Format: arn:...:secret:NAME:json-key:version-stage:version-id (empty = AWSCURRENT).
            return f"{arn}:{self.json_key}::"
        return arn


def ecs_secrets(
    refs: Mapping[str, SecretRef], account: str, region: str, partition: str = "aws"
) -> list[dict[str, str]]:
    """Container-definition ``secrets`` entries (sorted by name for stable diffs)."""
    return [
        {"name": k, "valueFrom": refs[k].ecs_value_from(account, region, partition)} for k in sorted(refs)
    ]


def aws_read_policy_statements(
    refs: Mapping[str, SecretRef],
    account: str,
    region: str,
    kms_key_arns: Sequence[str] = (),
    partition: str = "aws",
    ssm_actions: Sequence[str] = ("ssm:GetParameters",),
) -> list[dict[str, Any]]:
    """IAM statements allowing reads of exactly ``refs`` (and decrypt with exactly ``kms_key_arns``).

    ECS's agent calls ``ssm:GetParameters``; the Lambda handler may pass
    ``ssm_actions=("ssm:GetParameter", "ssm:GetParameters")``. No statement is emitted for an empty set,
    so no policy ever has an empty or wildcard ``Resource``.
    """
    ssm = sorted({r.iam_resource(account, region, partition) for r in refs.values() if r.scheme == "ssm"})
    sm = sorted(
        {r.iam_resource(account, region, partition) for r in refs.values() if r.scheme == "secretsmanager"}
    )
    statements: list[dict[str, Any]] = []
    if ssm:
        statements.append(
            {"Sid": "ReadParameters", "Effect": "Allow", "Action": sorted(ssm_actions), "Resource": ssm}
        )
    if sm:
        statements.append(
            {
                "Sid": "ReadSecrets",
                "Effect": "Allow",
                "Action": ["secretsmanager:GetSecretValue"],
                "Resource": sm,
            }
        )
    if kms_key_arns and (ssm or sm):
        services = [
            f"{svc}.{region}.amazonaws.com" for svc, used in (("ssm", ssm), ("secretsmanager", sm)) if used
        ]
        statements.append(
            {
                "Sid": "DecryptSecrets",
                "Effect": "Allow",
                "Action": ["kms:Decrypt"],
                "Resource": sorted(kms_key_arns),
                # Only when decrypting on behalf of the secret stores, not arbitrary ciphertext.
                "Condition": {"StringEquals": {"kms:ViaService": services}},
            }
        )
    return statements


def lambda_reference_env(refs: Mapping[str, SecretRef]) -> dict[str, str]:
    """Env for Lambda: ENV_NAME -> the reference string the handler resolves at cold start."""
    for key, ref in refs.items():
        if ref.scheme == "gcp":
            raise SecretRefError(f"app.secrets.{key}: gcp: references cannot be resolved on Lambda")
    return {k: str(refs[k]) for k in sorted(refs)}


def gcp_secret_id(ref: SecretRef, default_project: str) -> tuple[str, str]:
    """(``projects/P/secrets/S`` or the short id when in the same project, version) for ``secretKeyRef``."""
    if ref.scheme != "gcp":
        raise SecretRefError(f"{ref}: not a gcp: reference")
    project = ref.project or default_project
    secret = ref.name if project == default_project else f"projects/{project}/secrets/{ref.name}"
    return secret, ref.version or "latest"
