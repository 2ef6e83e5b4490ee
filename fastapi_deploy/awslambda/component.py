"""AWS Lambda via Mangum: the same image, the Lambda runtime interface client as its command.

What a user gets from :class:`LambdaService`:

- a container-image function (``package_type=Image``) running
  ``python -m awslambdaric app.lambda_handler.handler`` (entry point + command, so whatever ENTRYPOINT
  the image has for gunicorn is replaced), architecture from ``app.lambda.architecture``;
- memory, timeout and reserved concurrency from config; the reserved concurrency is also the replica
  bound of the DB connection budget (one connection per execution environment, ``DB_POOL_CLASS=null``);
- optional provisioned concurrency on a ``live`` alias of a published version (cold starts removed for
  that many environments; the alias always points at the version this deploy published);
- an explicit log group ``/aws/lambda/<function>`` with retention (Lambda's implicit one never expires);
- an execution role that may write to exactly that log group and read exactly the referenced
  parameters/secrets (``ssm:GetParameter(s)`` / ``secretsmanager:GetSecretValue``), plus ``kms:Decrypt``
  on the configured customer-managed keys only via SSM/Secrets Manager (``kms:ViaService``);
- secrets passed as REFERENCES (``DATABASE_URL=ssm:/prod/api/db``): the handler resolves them once per
  cold start, so no value is ever in the function configuration, in state or in the console;
- an HTTP front: API Gateway HTTP API (``$default`` route and stage, stage throttling, access logs) by
  default, or a Function URL.

:func:`create_function_params` maps the registered function inputs to botocore's ``CreateFunction``
request so tests validate names and types against AWS's own API model.
"""

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Optional

import pulumi
import pulumi_aws as aws

from fastapi_deploy import component as cargs
from fastapi_deploy.aws_alerts import alert_actions
from fastapi_deploy.awslambda.args import LambdaServiceArgs
from fastapi_deploy.awslambda.config import (
    LAMBDA_NO_SECURITY_GROUP,
    LAMBDA_TOO_FEW_SUBNETS,
    lambda_security_groups_problem,
    lambda_subnets_problem,
)
from fastapi_deploy.awslambda.domain import LambdaDomain, LambdaDomainArgs
from fastapi_deploy.awslambda.gate import lambda_gate
from fastapi_deploy.awslambda.migrate import lambda_release_migration
from fastapi_deploy.component import ArgsError, NamedComponent
from fastapi_deploy.config import (
    ACM_CERTIFICATE,
    IAM_ROLE,
    KMS_KEY,
    SNS_TOPIC,
    Alerts,
    AppConfigBase,
    ConfigError,
    Database,
    Health,
    LambdaSettings,
    LambdaVpc,
    TuningOverrides,
    aws_domain_problem,
)
from fastapi_deploy.secret_refs import SecretRef, aws_read_policy_statements, lambda_reference_env
from fastapi_deploy.tuning import (
    DEFAULT_MAX_REQUEST_BODY_BYTES,
    LAMBDA_MB_PER_VCPU,
    METRICS_PRIVATELY_SCRAPABLE,
    RuntimeTuning,
    TuningInput,
    migrate_env,
    tune,
)

COMPONENT_TYPE = "fastapi-deploy:lambda:LambdaService"
OWNER = "LambdaServiceArgs"

#: The Mangum adapter the app exposes (app/lambda_handler.py: ``handler = Mangum(app, ...)``).
HANDLER = "app.lambda_handler.handler"
#: awslambdaric is the Runtime Interface Client for images not built on AWS's base images.
ENTRY_POINT = ["python", "-m", "awslambdaric"]
ALIAS_NAME = "live"
#: API Gateway HTTP API integrations time out at 30 s.
HTTP_API_MAX_INTEGRATION_MS = 30_000
#: Env names the Lambda runtime reserves (CreateFunction rejects them).
#: Source: https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html#configuration-envvars-runtime
RESERVED_ENV = frozenset(
    {
        "_HANDLER",
        "_X_AMZN_TRACE_ID",
        "AWS_DEFAULT_REGION",
        "AWS_REGION",
        "AWS_EXECUTION_ENV",
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_INITIALIZATION_TYPE",
        "AWS_LAMBDA_LOG_GROUP_NAME",
        "AWS_LAMBDA_LOG_STREAM_NAME",
        "AWS_ACCESS_KEY",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_LAMBDA_RUNTIME_API",
        "LAMBDA_TASK_ROOT",
        "LAMBDA_RUNTIME_DIR",
    }
)
#: Lambda's limit on the total size of all environment variables (keys + values).
#: Source: https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html
ENV_MAX_BYTES = 4096
_ARCH = {"x86_64": "x86_64", "arm64": "arm64"}


def function_name(name: str) -> str:
    """Lambda function names: letters, digits, '-' and '_', at most 64 chars."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", name)[:64]


def build_function_env(
    env: Mapping[str, Any], refs: Mapping[str, SecretRef], where: str, error: type[ValueError] = ConfigError
) -> dict[str, Any]:
    """Plain env + secret REFERENCES (resolved by the handler at cold start), never secret values.
    Raises ``error`` naming ``where`` for runtime-reserved names or an environment over Lambda's 4 KB."""
    out = dict(env)
    # The reference as str(SecretRef): app/secret_refs.py parses the same grammar
    # (tests/test_secret_ref_grammar.py
    # runs both parsers over one table).
    out.update(lambda_reference_env(refs))
    clash = sorted(set(out) & RESERVED_ENV)
    if clash:
        raise error(f"{where}: {clash} are reserved by the Lambda runtime; rename them")
    size = sum(len(k) + len(v) for k, v in out.items() if isinstance(v, str))
    if size > ENV_MAX_BYTES:
        raise error(
            f"{where}: the function's environment is {size} bytes; Lambda allows {ENV_MAX_BYTES} in total "
            "(move large values into SSM/Secrets Manager and reference them in secrets)"
        )
    return dict(sorted(out.items()))


def vpc_statements(
    vpc: LambdaVpc | Any, account: str, region: str, partition: str = "aws"
) -> list[dict[str, Any]]:
    """What Lambda needs to attach the function to the VPC (instead of AWSLambdaVPCAccessExecutionRole).

    ``ec2:Describe*`` has no resource-level permissions (AWS requires ``*``; read-only). Creating an ENI is
    limited to the configured subnets and security groups; managing ENIs to this account and region.
    """
    ec2 = f"arn:{partition}:ec2:{region}:{account}"
    return [
        {
            "Sid": "DescribeForVpcAttach",
            "Effect": "Allow",
            "Action": ["ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets"],
            "Resource": "*",
        },
        {
            "Sid": "CreateEnisInConfiguredSubnets",
            "Effect": "Allow",
            "Action": ["ec2:CreateNetworkInterface"],
            "Resource": [
                f"{ec2}:network-interface/*",
                *(f"{ec2}:subnet/{s}" for s in vpc.subnet_ids),
                *(f"{ec2}:security-group/{g}" for g in vpc.security_group_ids),
            ],
        },
        {
            "Sid": "ManageEnis",
            "Effect": "Allow",
            "Action": [
                "ec2:DeleteNetworkInterface",
                "ec2:AssignPrivateIpAddresses",
                "ec2:UnassignPrivateIpAddresses",
            ],
            "Resource": [f"{ec2}:network-interface/*"],
        },
    ]


@dataclass(frozen=True)
class LambdaInputs:
    """The Args after validation."""

    image: pulumi.Input[str]
    settings: LambdaSettings
    timeout_s: int
    app_env: str
    port: int
    env: dict[str, pulumi.Input[str]]
    secrets: dict[str, SecretRef]
    secret_kms_key_arns: cargs.IdList
    health: Health
    database: Database
    request_timeout_s: int
    max_request_body_bytes: int
    overrides: TuningOverrides
    subnet_ids: cargs.IdList
    """A plain list, or an Output of one (checked when it resolves); the same for security_group_ids."""
    security_group_ids: cargs.IdList
    role_arn: pulumi.Input[str] | None
    repository_url: pulumi.Input[str] | None
    region: str | None
    description: str | None
    wait_for_release: bool
    domain: str | None
    certificate_arn: pulumi.Input[str] | None
    alert_emails: list[str]
    alert_webhook_url: str | None
    alert_topic_arn: str | None
    tags: dict[str, str]


_SETTINGS_KEYS = (
    "architecture", "memory_mb", "timeout_s", "reserved_concurrency", "provisioned_concurrency", "front",
    "throttling", "log_retention_days", "alarms", "zone",
)  # fmt: skip


def region_from_args(a: Mapping[str, Any], opts: pulumi.ResourceOptions | None) -> cargs.KnownRegion | None:
    """The region known before anything registers: the ``region`` Arg, else the default provider's (when it
    applies). Both known and different: refused (the function is created in the provider's region)."""
    provider = cargs.aws_region_now(opts)
    given = a.get("region")
    if given is None:
        return provider
    if not isinstance(given, str) or not given:
        raise ArgsError(f"{OWNER}.region: an AWS region name such as 'eu-west-1', not {given!r}")
    if provider is not None and provider.name != given:
        raise ArgsError(
            f"{OWNER}.region: {given} but the AWS provider deploys to {provider.name} ({provider.source}); "
            "the function is created in the provider's region: drop region or make them agree"
        )
    return cargs.KnownRegion(given, f"{OWNER}.region")


def inputs_from_args(args: LambdaServiceArgs, opts: pulumi.ResourceOptions | None = None) -> LambdaInputs:
    """Validate the Args (raises :class:`ArgsError` naming the Arg); registers nothing. ARN Args are checked
    against the region when it is known now (``region``, else ``aws:region`` of the default provider)."""
    a = cargs.known_args(OWNER, args, LambdaServiceArgs)
    image = cargs.image(OWNER, a)
    cargs.required(OWNER, a, "reserved_concurrency")
    region = region_from_args(a, opts)
    settings = cargs.settings(OWNER, a, LambdaSettings, _SETTINGS_KEYS)
    # Id lists: plain, partly Outputs, or an Output of a whole list (awsx's vpc.private_subnet_ids).
    subnets = cargs.id_list(OWNER, "subnet_ids", a.get("subnet_ids"))
    groups = cargs.id_list(OWNER, "security_group_ids", a.get("security_group_ids"))
    if cargs.given(subnets) != cargs.given(groups):
        raise ArgsError(
            f"{OWNER}.subnet_ids: subnet_ids and security_group_ids go together "
            "(a function in a VPC needs both)"
        )
    if cargs.given(subnets):
        subnets = cargs.checked_ids(
            OWNER, "subnet_ids", subnets, lambda_subnets_problem, (2, LAMBDA_TOO_FEW_SUBNETS)
        )
        groups = cargs.checked_ids(
            OWNER, "security_group_ids", groups, lambda_security_groups_problem, (1, LAMBDA_NO_SECURITY_GROUP)
        )
    kms_keys = cargs.id_list(OWNER, "secret_kms_key_arns", a.get("secret_kms_key_arns"))
    cargs.arn_list(OWNER, "secret_kms_key_arns", kms_keys, KMS_KEY, region)
    cargs.arn(OWNER, "role_arn", a.get("role_arn"), IAM_ROLE, region)
    certificate_arn = a.get("certificate_arn")
    cargs.arn(OWNER, "certificate_arn", certificate_arn, ACM_CERTIFICATE, region)
    domain = a.get("domain")
    if domain is not None:
        cargs.field(OWNER, "domain", AppConfigBase, "domain", domain)
        if settings.front != "http_api":
            raise ArgsError(
                f"{OWNER}.front: a custom domain needs the API Gateway HTTP API front (a function URL cannot "
                "have one); set front: http_api or drop domain"
            )
    elif certificate_arn is not None or settings.zone:
        raise ArgsError(f"{OWNER}.domain: zone and certificate_arn need the custom domain they serve")
    domain_problem = aws_domain_problem(
        domain, settings.zone, "given" if certificate_arn is not None else None, OWNER
    )
    if domain_problem:
        raise ArgsError(domain_problem.replace("app.domain", f"{OWNER}.domain"))
    alerts = cargs.section(OWNER, "alerts", Alerts, a.get("alerts"))
    cargs.arn(OWNER, "alerts.sns_topic_arn", alerts.sns_topic_arn, SNS_TOPIC, region)
    request_timeout = cargs.field(
        OWNER, "request_timeout_s", AppConfigBase, "request_timeout_s", a.get("request_timeout_s", 30)
    )
    database = cargs.section(OWNER, "database", Database, a.get("database"))
    if database.migrate == "on_start":
        raise ArgsError(
            f"{OWNER}.database.migrate: on_start is refused on Lambda (every cold start would run it); "
            "use release (the deploy runs it once before the alias moves) or manual"
        )
    return LambdaInputs(
        image=image,
        settings=settings,
        timeout_s=settings.timeout_s or request_timeout,
        app_env=cargs.field(
            OWNER, "environment", AppConfigBase, "environment", a.get("environment", "production")
        ),
        port=8000,
        env=cargs.env(OWNER, a.get("env")),
        secrets=cargs.secret_refs(OWNER, a.get("secrets"), ("ssm", "secretsmanager")),
        secret_kms_key_arns=kms_keys,
        health=cargs.section(OWNER, "health", Health, a.get("health")),
        database=database,
        request_timeout_s=request_timeout,
        max_request_body_bytes=cargs.field(
            OWNER,
            "max_request_body_bytes",
            AppConfigBase,
            "max_request_body_bytes",
            a.get("max_request_body_bytes", DEFAULT_MAX_REQUEST_BODY_BYTES),
        ),
        overrides=cargs.section(OWNER, "overrides", TuningOverrides, a.get("overrides")),
        subnet_ids=subnets,
        security_group_ids=groups,
        role_arn=a.get("role_arn"),
        repository_url=a.get("repository_url"),
        region=a.get("region"),
        description=a.get("description"),
        wait_for_release=bool(a.get("wait_for_release", True)),
        domain=domain,
        certificate_arn=certificate_arn,
        alert_emails=list(alerts.emails),
        alert_webhook_url=alerts.webhook_url,
        alert_topic_arn=alerts.sns_topic_arn,
        tags=cargs.tags(OWNER, a.get("tags")),
    )


def tuning_for(inp: LambdaInputs) -> RuntimeTuning:
    """The runtime tuning computed from the Args (error messages name the Args)."""
    o = inp.overrides
    lam = inp.settings
    assert lam.reserved_concurrency is not None
    return tune(
        TuningInput(
            "lambda",
            lam.memory_mb / LAMBDA_MB_PER_VCPU,
            lam.memory_mb,
            lam.reserved_concurrency,
            db_budget=inp.database.budget,
            request_timeout_s=inp.timeout_s,
            app_env=inp.app_env,
            port=inp.port,
            workers=o.workers,
            pool_size=o.db_pool_size,
            max_overflow=o.db_max_overflow,
            pool_timeout_s=o.db_pool_timeout_s,
            max_request_body_bytes=inp.max_request_body_bytes,
            keys=cargs.tuning_keys(
                OWNER,
                max_replicas=f"{OWNER}.reserved_concurrency",
                size=f"{OWNER}.memory_mb",
                memory=f"{OWNER}.memory_mb",
            ),
        )
    )


def final_env(inp: LambdaInputs, tuning: RuntimeTuning) -> dict[str, Any]:
    """The Args' env, then the tuning's variables (they win), the metrics switch and the secret
    references; refused (naming ``LambdaServiceArgs.env``) when reserved or over 4 KB."""
    env: dict[str, Any] = {**inp.env, **tuning.env()}
    env.update(migrate_env(inp.database.migrate_mode("lambda"), tuning))
    if not METRICS_PRIVATELY_SCRAPABLE["lambda"]:
        env.setdefault("METRICS_ENABLED", "false")
    return build_function_env(dict(sorted(env.items())), inp.secrets, f"{OWNER}.env", ArgsError)


class LambdaService(NamedComponent):
    """The FastAPI image on Lambda behind an HTTP API or a Function URL (see the module docstring)."""

    target: pulumi.Output[str]
    """Always ``lambda``."""
    url: pulumi.Output[str]
    """HTTP API endpoint or Function URL."""
    image: pulumi.Output[str]
    """The image reference the function runs."""
    health_path: pulumi.Output[str]
    """Liveness path."""
    ready_path: pulumi.Output[str]
    """Readiness path."""
    region: pulumi.Output[str]
    """AWS region."""
    function_name: pulumi.Output[str]
    """Lambda function name."""
    function_arn: pulumi.Output[str]
    """Lambda function ARN."""
    alias_name: pulumi.Output[Optional[str]]  # noqa: UP045 - the schema analyzer reads typing.Optional
    """The ``live`` alias (with provisioned concurrency), else empty."""
    log_group: pulumi.Output[str]
    """CloudWatch log group name."""

    def __init__(
        self,
        name: str,
        args: LambdaServiceArgs,
        opts: pulumi.ResourceOptions | None = None,
        *,
        tuning: RuntimeTuning | None = None,
    ) -> None:
        inp = inputs_from_args(args, opts)
        runtime = tuning if tuning is not None else tuning_for(inp)
        if runtime.pool_class != "null" or runtime.workers != 1:
            raise ArgsError(
                f"{OWNER}.overrides: Lambda runs one request at a time (one worker, DB_POOL_CLASS=null)"
            )
        # Validate before registering anything: a bad env must not leave half a stack behind.
        env = final_env(inp, runtime)
        # The runtime facts (contract.RUNTIME_FACTS): executions kept warm are the provisioned ones.
        warm = inp.settings.provisioned_concurrency or 0
        props = cargs.runtime_props(runtime, env, min_replicas=warm)
        super().__init__(COMPONENT_TYPE, name, props, opts)
        # Children (attributes, not outputs: declared here, not on the class, so the schema has none).
        self.role: aws.iam.Role | None
        self.alias: aws.lambda_.Alias | None
        self.api: aws.apigatewayv2.Api | None
        self.function_url: aws.lambda_.FunctionUrl | None
        self.custom_domain: LambdaDomain | None = None
        self.migration: Any = None
        self.provisioned: aws.lambda_.ProvisionedConcurrencyConfig | None = None
        self.release_gate: Any = None
        self.alarm_errors: aws.cloudwatch.MetricAlarm
        self.alarm_throttles: aws.cloudwatch.MetricAlarm
        self.alarm_duration: aws.cloudwatch.MetricAlarm
        self.tuning = runtime
        lam = inp.settings
        child = self.child_opts()
        tags = inp.tags
        fn_name = function_name(name)
        invoke = self.invoke_opts()
        region: pulumi.Input[str] = inp.region or aws.get_region_output(opts=invoke).region
        identity = aws.get_caller_identity_output(opts=invoke)
        partition = aws.get_partition_output(opts=invoke).partition

        self.logs = aws.cloudwatch.LogGroup(
            f"{name}-logs",
            name=f"/aws/lambda/{fn_name}",
            retention_in_days=lam.log_retention_days,
            tags=tags,
            opts=child,
        )
        role_arn, depends = _role(self, name, inp, fn_name, identity.account_id, region, partition)
        if inp.repository_url is not None:
            # Lambda pulls the image with its service principal, not the execution role. Without this policy
            # CreateFunction tries to add one itself (needs ecr:SetRepositoryPolicy); created in parallel with
            # the function, the first deploy races it. So: policy first, function depends on it.
            depends.append(
                aws.ecr.RepositoryPolicy(
                    f"{name}-lambda-pull",
                    repository=pulumi.Output.from_input(inp.repository_url).apply(
                        lambda u: u.split("/", 1)[1]
                    ),
                    policy=pulumi.Output.all(partition, region, identity.account_id).apply(
                        lambda v: ecr_pull_policy(
                            f"arn:{v[0]}:lambda:{v[1]}:{v[2]}:function:{fn_name}*", v[2]
                        )
                    ),
                    opts=child,
                )
            )
        vpc_config = (
            aws.lambda_.FunctionVpcConfigArgs(
                subnet_ids=inp.subnet_ids, security_group_ids=inp.security_group_ids
            )
            if cargs.given(inp.subnet_ids)
            else None
        )
        # migrate: release needs a published version (migrated before the live alias moves to it).
        publish = lam.provisioned_concurrency is not None or inp.database.migrate_mode("lambda") == "release"
        self.function = aws.lambda_.Function(
            f"{name}-function",
            name=fn_name,
            description=inp.description or f"{name} FastAPI via Mangum, managed by Pulumi",
            package_type="Image",
            image_uri=inp.image,
            image_config=aws.lambda_.FunctionImageConfigArgs(entry_points=ENTRY_POINT, commands=[HANDLER]),
            architectures=[_ARCH[lam.architecture]],
            role=role_arn,
            memory_size=lam.memory_mb,
            timeout=inp.timeout_s,
            reserved_concurrent_executions=lam.reserved_concurrency,
            publish=publish,
            environment=aws.lambda_.FunctionEnvironmentArgs(variables=env),
            vpc_config=vpc_config,
            logging_config=aws.lambda_.FunctionLoggingConfigArgs(log_format="Text", log_group=self.logs.name),
            tags=tags,
            # The role's policies must exist before the first cold start tries to read secrets and log.
            opts=self.child_opts(depends_on=depends),
        )
        _alarms(self, name, inp, tags)
        url = _front(self, name, inp, fn_name, tags)
        # `pulumi up` fails unless the alias serves this deploy's version (fastapi_deploy/release_gate.py).
        self.release_gate = None
        if inp.wait_for_release:
            waited_on: list[pulumi.Resource] = [self.alias or self.function]
            if self.provisioned is not None:
                waited_on.append(self.provisioned)
            self.release_gate = lambda_gate(
                f"{name}-release",
                function_name=self.function.name,
                version=self.function.version,
                alias=self.alias.name if self.alias else None,
                image=inp.image,
                region=region,
                stack_resource=f"{name}-alias" if self.alias else f"{name}-function",
                opts=self.child_opts(depends_on=waited_on),
            )
        self.outputs = self.finish(
            {
                "target": "lambda",
                "url": url,
                "image": inp.image,
                "health_path": inp.health.liveness_path,
                "ready_path": inp.health.readiness_path,
                "region": region,
                "function_name": self.function.name,
                "function_arn": self.function.arn,
                "alias_name": self.alias.name if self.alias else pulumi.Output.from_input(None),
                "log_group": self.logs.name,
            }
        )


def _role(
    svc: LambdaService,
    name: str,
    inp: LambdaInputs,
    fn_name: str,
    account: pulumi.Output[str],
    region: pulumi.Input[str],
    partition: pulumi.Output[str],
) -> tuple[pulumi.Input[str], list[pulumi.Resource]]:
    """The execution role (its own log group, its referenced secrets, the VPC attach), unless the Args
    name an existing role (then nothing is attached to it)."""
    child = svc.child_opts()
    if inp.role_arn is not None:
        svc.role = None
        return inp.role_arn, [svc.logs]
    role = aws.iam.Role(
        f"{name}-role",
        assume_role_policy=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "lambda.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                    }
                ],
            }
        ),
        description=f"Execution role of {fn_name}: its own log group and its referenced secrets only",
        tags=inp.tags,
        opts=child,
    )
    svc.role = role
    # Not AWSLambdaBasicExecutionRole: that managed policy allows logs:* on every log group ("*").
    logs_policy = aws.iam.RolePolicy(
        f"{name}-logs-policy",
        role=role.id,
        policy=svc.logs.arn.apply(
            lambda arn: json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Sid": "WriteOwnLogs",
                            "Effect": "Allow",
                            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                            "Resource": [f"{arn}:*"],
                        }
                    ],
                }
            )
        ),
        opts=child,
    )
    depends: list[pulumi.Resource] = [svc.logs, logs_policy]

    refs = inp.secrets
    if refs:

        def secrets_policy(values: list[Any]) -> str:
            acct, reg, part, kms = values
            statements = aws_read_policy_statements(
                refs,
                acct,
                reg,
                kms_key_arns=list(kms or []),
                partition=part,
                ssm_actions=("ssm:GetParameter", "ssm:GetParameters"),
            )
            return json.dumps({"Version": "2012-10-17", "Statement": statements})

        depends.append(
            aws.iam.RolePolicy(
                f"{name}-secrets-policy",
                role=role.id,
                policy=pulumi.Output.all(
                    account, region, partition, pulumi.Output.from_input(inp.secret_kms_key_arns)
                ).apply(secrets_policy),
                opts=child,
            )
        )

    if cargs.given(inp.subnet_ids):

        def vpc_policy(values: list[Any]) -> str:
            acct, reg, part, subnets, groups = values
            vpc = LambdaVpc.model_construct(subnet_ids=subnets, security_group_ids=groups)
            return json.dumps({"Version": "2012-10-17", "Statement": vpc_statements(vpc, acct, reg, part)})

        depends.append(
            aws.iam.RolePolicy(
                f"{name}-vpc-policy",
                role=role.id,
                policy=pulumi.Output.all(
                    account,
                    region,
                    partition,
                    pulumi.Output.from_input(inp.subnet_ids),
                    pulumi.Output.from_input(inp.security_group_ids),
                ).apply(vpc_policy),
                opts=child,
            )
        )
    return role.arn, depends


def _alarms(svc: LambdaService, name: str, inp: LambdaInputs, tags: dict[str, str]) -> None:
    """Errors, throttles and p95 duration alarms on the function, notifying the alert topic."""
    alarms = inp.settings.alarms
    actions = alert_actions(
        name, inp.alert_emails, inp.alert_webhook_url, inp.alert_topic_arn, tags, svc.child_opts()
    )
    p95_s = alarms.p95_duration_s or round(0.8 * inp.timeout_s, 3)
    alarm_common: dict[str, Any] = dict(
        namespace="AWS/Lambda",
        dimensions={"FunctionName": svc.function.name},
        period=60,
        evaluation_periods=alarms.evaluation_periods,
        datapoints_to_alarm=alarms.evaluation_periods,
        alarm_actions=actions,
        ok_actions=actions,
        treat_missing_data="notBreaching",
        tags=tags,
        opts=svc.child_opts(),
    )
    svc.alarm_errors = aws.cloudwatch.MetricAlarm(
        f"{name}-errors",
        alarm_description=f"{name}: errors per minute at or above {alarms.errors_per_minute}",
        metric_name="Errors",
        statistic="Sum",
        comparison_operator="GreaterThanOrEqualToThreshold",
        threshold=alarms.errors_per_minute,
        **alarm_common,
    )
    svc.alarm_throttles = aws.cloudwatch.MetricAlarm(
        f"{name}-throttles",
        alarm_description=(
            f"{name}: throttled invocations per minute at or above {alarms.throttles_per_minute}"
        ),
        metric_name="Throttles",
        statistic="Sum",
        comparison_operator="GreaterThanOrEqualToThreshold",
        threshold=alarms.throttles_per_minute,
        **alarm_common,
    )
    svc.alarm_duration = aws.cloudwatch.MetricAlarm(
        f"{name}-duration",
        alarm_description=f"{name}: p95 duration above {p95_s:g} s",
        metric_name="Duration",
        extended_statistic="p95",
        comparison_operator="GreaterThanThreshold",
        threshold=p95_s * 1000,  # AWS/Lambda Duration is in milliseconds
        **alarm_common,
    )


def _front(
    svc: LambdaService, name: str, inp: LambdaInputs, fn_name: str, tags: dict[str, str]
) -> pulumi.Output[str]:
    """The live alias (with provisioned concurrency), then the HTTP API or the Function URL; returns
    the URL."""
    lam = inp.settings
    child = svc.child_opts()
    svc.alias = None
    svc.migration = None
    svc.provisioned = None
    invoke_arn: pulumi.Output[str] = svc.function.invoke_arn
    qualifier: pulumi.Input[str] | None = None
    release = inp.database.migrate_mode("lambda") == "release"
    if lam.provisioned_concurrency is not None or release:
        # migrate: release - the new version is invoked with the migrate event first; the alias only
        # moves to a version whose migration answered ok (fastapi_deploy/awslambda/migrate.py).
        alias_version: pulumi.Input[str] = svc.function.version
        alias_opts = child
        if release:
            svc.migration, alias_version = lambda_release_migration(
                name,
                function_name=svc.function.name,
                version=svc.function.version,
                image=inp.image,
                opts=child,
            )
            alias_opts = svc.child_opts(depends_on=[svc.migration])
        svc.alias = aws.lambda_.Alias(
            f"{name}-alias",
            name=ALIAS_NAME,
            function_name=svc.function.name,
            function_version=alias_version,
            description="The version this deploy published; provisioned concurrency lives here",
            opts=alias_opts,
        )
        if lam.provisioned_concurrency is not None:
            svc.provisioned = aws.lambda_.ProvisionedConcurrencyConfig(
                f"{name}-provisioned",
                function_name=svc.function.name,
                qualifier=svc.alias.name,
                provisioned_concurrent_executions=lam.provisioned_concurrency or 0,
                opts=child,
            )
        invoke_arn = svc.alias.invoke_arn
        qualifier = svc.alias.name

    svc.api = None
    svc.function_url = None
    if lam.front == "http_api":
        svc.api = aws.apigatewayv2.Api(
            f"{name}-api",
            name=fn_name,
            protocol_type="HTTP",
            description=f"HTTP front of {fn_name}",
            tags=tags,
            opts=child,
        )
        integration = aws.apigatewayv2.Integration(
            f"{name}-integration",
            api_id=svc.api.id,
            integration_type="AWS_PROXY",
            integration_uri=invoke_arn,
            payload_format_version="2.0",
            timeout_milliseconds=min(HTTP_API_MAX_INTEGRATION_MS, inp.timeout_s * 1000),
            opts=child,
        )
        route = aws.apigatewayv2.Route(
            f"{name}-route",
            api_id=svc.api.id,
            route_key="$default",
            target=integration.id.apply(lambda i: f"integrations/{i}"),
            opts=child,
        )
        access_logs = aws.cloudwatch.LogGroup(
            f"{name}-access-logs",
            name=f"/aws/apigateway/{fn_name}",
            retention_in_days=lam.log_retention_days,
            tags=tags,
            opts=child,
        )
        stage = aws.apigatewayv2.Stage(
            f"{name}-stage",
            api_id=svc.api.id,
            name="$default",
            auto_deploy=True,
            # Stage throttling caps the request rate before it reaches the function and, through it,
            # the database; over the limit clients get 429s instead of a connection storm.
            default_route_settings=aws.apigatewayv2.StageDefaultRouteSettingsArgs(
                throttling_rate_limit=lam.throttling.rate_limit,
                throttling_burst_limit=lam.throttling.burst_limit,
            ),
            access_log_settings=aws.apigatewayv2.StageAccessLogSettingsArgs(
                destination_arn=access_logs.arn,
                format=json.dumps(
                    {
                        "requestId": "$context.requestId",
                        "ip": "$context.identity.sourceIp",
                        "routeKey": "$context.routeKey",
                        "status": "$context.status",
                        "latencyMs": "$context.responseLatency",
                        "integrationError": "$context.integrationErrorMessage",
                    }
                ),
            ),
            tags=tags,
            opts=svc.child_opts(depends_on=[route]),
        )
        aws.lambda_.Permission(
            f"{name}-apigw-invoke",
            action="lambda:InvokeFunction",
            function=svc.function.name,
            principal="apigateway.amazonaws.com",
            # Only this API (any stage/route) may invoke the function.
            source_arn=svc.api.execution_arn.apply(lambda a: f"{a}/*/*"),
            qualifier=qualifier,
            opts=child,
        )
        if inp.domain:
            # A custom domain: regional certificate (validated in the zone, awaited), API mapping to the
            # stage, alias records (awslambda/domain.py); the URL output becomes https://domain.
            svc.custom_domain = LambdaDomain(
                f"{name}-domain",
                LambdaDomainArgs(
                    domain=inp.domain,
                    zone=lam.zone,
                    api_id=svc.api.id,
                    stage=stage.name,
                    certificate_arn=inp.certificate_arn,
                    tags=tags,
                ),
                opts=child,
            )
            return svc.custom_domain.url
        return svc.api.api_endpoint
    svc.function_url = aws.lambda_.FunctionUrl(
        f"{name}-url",
        function_name=svc.function.name,
        qualifier=qualifier,
        authorization_type="NONE",
        opts=child,
    )
    # A public Function URL needs both statements since AWS's October 2025 change.
    aws.lambda_.Permission(
        f"{name}-url-invoke",
        action="lambda:InvokeFunctionUrl",
        function=svc.function.name,
        principal="*",
        function_url_auth_type="NONE",
        qualifier=qualifier,
        opts=child,
    )
    aws.lambda_.Permission(
        f"{name}-url-invoke-function",
        action="lambda:InvokeFunction",
        function=svc.function.name,
        principal="*",
        invoked_via_function_url=True,
        qualifier=qualifier,
        opts=child,
    )
    return svc.function_url.function_url


# ----------------------------------------------------------------------------------------- API check
def create_function_params(inputs: dict[str, Any]) -> dict[str, Any]:
    """Recorded ``aws:lambda/function:Function`` inputs -> a botocore ``CreateFunction`` request."""
    params: dict[str, Any] = {
        "FunctionName": inputs.get("name"),
        "Role": inputs.get("role"),
        "Code": {"ImageUri": inputs.get("imageUri")},
        "PackageType": inputs.get("packageType"),
    }
    optional = {
        "description": "Description",
        "memorySize": "MemorySize",
        "timeout": "Timeout",
        "architectures": "Architectures",
        "publish": "Publish",
        "tags": "Tags",
    }
    for src, dst in optional.items():
        if inputs.get(src) is not None:
            value = inputs[src]
            # The engine carries numbers as JSON doubles; the provider sends the schema's integer.
            params[dst] = int(value) if isinstance(value, float) and value.is_integer() else value
    image = inputs.get("imageConfig") or {}
    if image:
        params["ImageConfig"] = {
            k2: image[k1]
            for k1, k2 in (
                ("entryPoints", "EntryPoint"),
                ("commands", "Command"),
                ("workingDirectory", "WorkingDirectory"),
            )
            if k1 in image
        }
    vpc = inputs.get("vpcConfig") or {}
    if vpc:
        params["VpcConfig"] = {
            "SubnetIds": vpc.get("subnetIds"),
            "SecurityGroupIds": vpc.get("securityGroupIds"),
        }
    env = inputs.get("environment") or {}
    if env:
        params["Environment"] = {"Variables": env.get("variables") or {}}
    log = inputs.get("loggingConfig") or {}
    if log:
        params["LoggingConfig"] = {
            k2: log[k1]
            for k1, k2 in (
                ("logFormat", "LogFormat"),
                ("logGroup", "LogGroup"),
                ("applicationLogLevel", "ApplicationLogLevel"),
                ("systemLogLevel", "SystemLogLevel"),
            )
            if k1 in log
        }
    unknown = set(inputs) - {
        "name", "role", "imageUri", "packageType", "imageConfig", "environment", "loggingConfig", "vpcConfig",
        "reservedConcurrentExecutions", "__defaults", *optional,
    }  # fmt: skip
    if unknown:
        raise KeyError(f"no CreateFunction mapping for inputs {sorted(unknown)}")
    return params


def ecr_pull_policy(function_arn_pattern: str, account: str) -> str:
    """ECR repository policy letting the Lambda service pull for this account's functions only."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "LambdaECRImageRetrieval",
                    "Effect": "Allow",
                    "Principal": {"Service": "lambda.amazonaws.com"},
                    "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
                    "Condition": {
                        "StringLike": {"aws:sourceArn": function_arn_pattern},
                        "StringEquals": {"aws:sourceAccount": account},
                    },
                }
            ],
        },
        sort_keys=True,
    )
