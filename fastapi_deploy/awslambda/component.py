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

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from fastapi_deploy.aws_alerts import alert_actions
from fastapi_deploy.config import ConfigError, LambdaConfig, LambdaVpc, StackConfigType
from fastapi_deploy.release_migrate import lambda_release_migration  # issue 15 item 2
from fastapi_deploy.secret_refs import aws_read_policy_statements, lambda_reference_env
from fastapi_deploy.targets import DeployContext
from fastapi_deploy.tuning import RuntimeTuning, container_environment

COMPONENT_TYPE = "fastapi-deploy:lambda:LambdaService"

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


@dataclass(frozen=True)
class LambdaServiceArgs:
    """Validated config, the Lambda tuning and the image digest ref (``ACCOUNT.dkr.ecr...@sha256:...``)."""

    config: LambdaConfig
    tuning: RuntimeTuning
    image: pulumi.Input[str]
    # Set when the deployer built and pushed the image to its own ECR repository: the component then lets
    # exactly this function pull from it, before the function exists (see the RepositoryPolicy below).
    repository_url: pulumi.Input[str] | None = None


def function_name(name: str) -> str:
    """Lambda function names: letters, digits, '-' and '_', at most 64 chars."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", name)[:64]


def function_env(config: LambdaConfig, tuning: RuntimeTuning) -> dict[str, str]:
    """Plain env + secret REFERENCES (resolved by the handler at cold start), never secret values."""
    env = container_environment(config, tuning)
    # The reference exactly as written in the stack config (str(SecretRef)): app/secret_refs.py parses the
    # same grammar (tests/test_secret_ref_grammar.py runs both parsers over one table).
    env.update(lambda_reference_env(config.secret_refs()))
    clash = sorted(set(env) & RESERVED_ENV)
    if clash:
        raise ConfigError(f"app.env: {clash} are reserved by the Lambda runtime; rename them")
    size = sum(len(k) + len(v) for k, v in env.items())
    if size > ENV_MAX_BYTES:
        raise ConfigError(
            f"app.env: the function's environment is {size} bytes; Lambda allows {ENV_MAX_BYTES} in total "
            "(move large values into SSM/Secrets Manager and reference them in app.secrets)"
        )
    return dict(sorted(env.items()))


def validate(cfg: StackConfigType, tuning: RuntimeTuning) -> None:
    """Checks run before anything is registered: reserved/oversized env, one-request-at-a-time tuning."""
    assert isinstance(cfg, LambdaConfig)
    function_env(cfg, tuning)
    if tuning.pool_class != "null" or tuning.workers != 1:
        raise ConfigError("Lambda tuning must be one worker with DB_POOL_CLASS=null (one request at a time)")


def vpc_statements(vpc: LambdaVpc, account: str, region: str, partition: str = "aws") -> list[dict[str, Any]]:
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


class LambdaService(pulumi.ComponentResource):
    """The FastAPI image on Lambda behind an HTTP API or a Function URL (see the module docstring)."""

    function: aws.lambda_.Function
    role: aws.iam.Role
    log_group: aws.cloudwatch.LogGroup
    alias: aws.lambda_.Alias | None
    api: aws.apigatewayv2.Api | None
    function_url: aws.lambda_.FunctionUrl | None
    url: pulumi.Output[str]
    function_arn: pulumi.Output[str]
    function_name: pulumi.Output[str]
    alias_name: pulumi.Output[str | None]
    log_group_name: pulumi.Output[str]

    def __init__(
        self, name: str, args: LambdaServiceArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        cfg = args.config
        lam = cfg.lambda_
        # Validate before registering anything: a bad env must not leave half a stack behind.
        validate(cfg, args.tuning)
        env = function_env(cfg, args.tuning)
        super().__init__(COMPONENT_TYPE, name, args.tuning.component_props(), opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = cfg.resource_tags()
        fn_name = function_name(name)
        region = cfg.region or aws.get_region_output().region
        identity = aws.get_caller_identity_output()
        partition = aws.get_partition_output().partition

        self.log_group = aws.cloudwatch.LogGroup(
            f"{name}-logs",
            name=f"/aws/lambda/{fn_name}",
            retention_in_days=lam.log_retention_days,
            tags=tags,
            opts=child,
        )

        self.role = aws.iam.Role(
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
            tags=tags,
            opts=child,
        )
        # Not AWSLambdaBasicExecutionRole: that managed policy allows logs:* on every log group ("*").
        logs_policy = aws.iam.RolePolicy(
            f"{name}-logs-policy",
            role=self.role.id,
            policy=self.log_group.arn.apply(
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
        depends: list[pulumi.Resource] = [self.log_group, logs_policy]

        refs = cfg.secret_refs()
        if refs:

            def secrets_policy(values: list[Any]) -> str:
                account, reg, part = values
                statements = aws_read_policy_statements(
                    refs,
                    account,
                    reg,
                    kms_key_arns=cfg.secret_kms_key_arns,
                    partition=part,
                    ssm_actions=("ssm:GetParameter", "ssm:GetParameters"),
                )
                return json.dumps({"Version": "2012-10-17", "Statement": statements})

            depends.append(
                aws.iam.RolePolicy(
                    f"{name}-secrets-policy",
                    role=self.role.id,
                    policy=pulumi.Output.all(identity.account_id, region, partition).apply(secrets_policy),
                    opts=child,
                )
            )

        vpc_config = None
        if lam.vpc is not None:
            vpc = lam.vpc
            vpc_config = aws.lambda_.FunctionVpcConfigArgs(
                subnet_ids=vpc.subnet_ids, security_group_ids=vpc.security_group_ids
            )

            def vpc_policy(values: list[Any]) -> str:
                account, reg, part = values
                return json.dumps(
                    {"Version": "2012-10-17", "Statement": vpc_statements(vpc, account, reg, part)}
                )

            depends.append(
                aws.iam.RolePolicy(
                    f"{name}-vpc-policy",
                    role=self.role.id,
                    policy=pulumi.Output.all(identity.account_id, region, partition).apply(vpc_policy),
                    opts=child,
                )
            )

        if args.repository_url is not None:
            # Lambda pulls the image with its service principal, not the execution role. Without this policy
            # CreateFunction tries to add one itself (needs ecr:SetRepositoryPolicy); created in parallel with
            # the function, the first deploy races it. So: policy first, function depends on it.
            depends.append(
                aws.ecr.RepositoryPolicy(
                    f"{name}-lambda-pull",
                    repository=pulumi.Output.from_input(args.repository_url).apply(
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

        # issue 15 item 2: migrate: release needs a published version and an alias that moves after it
        release = cfg.database.migrate_mode("lambda") == "release"
        publish = lam.provisioned_concurrency is not None or release
        self.function = aws.lambda_.Function(
            f"{name}-function",
            name=fn_name,
            description=f"{cfg.name} ({cfg.stack}) FastAPI via Mangum, managed by Pulumi",
            package_type="Image",
            image_uri=args.image,
            image_config=aws.lambda_.FunctionImageConfigArgs(entry_points=ENTRY_POINT, commands=[HANDLER]),
            architectures=[_ARCH[lam.architecture]],
            role=self.role.arn,
            memory_size=lam.memory_mb,
            timeout=cfg.function_timeout_s,
            reserved_concurrent_executions=lam.reserved_concurrency,
            publish=publish,
            environment=aws.lambda_.FunctionEnvironmentArgs(variables=env),
            vpc_config=vpc_config,
            logging_config=aws.lambda_.FunctionLoggingConfigArgs(
                log_format="Text", log_group=self.log_group.name
            ),
            tags=tags,
            # The role's policies must exist before the first cold start tries to read secrets and log.
            opts=pulumi.ResourceOptions(parent=self, depends_on=depends),
        )

        # ------------------------------------------------------------------------------- alarms
        alarms_cfg = lam.alarms
        actions = alert_actions(name, cfg.alerts, cfg.alerts.sns_topic_arn, tags, child)
        p95_s = alarms_cfg.p95_duration_s or round(0.8 * cfg.function_timeout_s, 3)
        alarm_common: dict[str, Any] = dict(
            namespace="AWS/Lambda",
            dimensions={"FunctionName": self.function.name},
            period=60,
            evaluation_periods=alarms_cfg.evaluation_periods,
            datapoints_to_alarm=alarms_cfg.evaluation_periods,
            alarm_actions=actions,
            ok_actions=actions,
            treat_missing_data="notBreaching",
            tags=tags,
            opts=child,
        )
        self.alarm_errors = aws.cloudwatch.MetricAlarm(
            f"{name}-errors",
            alarm_description=f"{name}: errors per minute at or above {alarms_cfg.errors_per_minute}",
            metric_name="Errors",
            statistic="Sum",
            comparison_operator="GreaterThanOrEqualToThreshold",
            threshold=alarms_cfg.errors_per_minute,
            **alarm_common,
        )
        self.alarm_throttles = aws.cloudwatch.MetricAlarm(
            f"{name}-throttles",
            alarm_description=(
                f"{name}: throttled invocations per minute at or above {alarms_cfg.throttles_per_minute}"
            ),
            metric_name="Throttles",
            statistic="Sum",
            comparison_operator="GreaterThanOrEqualToThreshold",
            threshold=alarms_cfg.throttles_per_minute,
            **alarm_common,
        )
        self.alarm_duration = aws.cloudwatch.MetricAlarm(
            f"{name}-duration",
            alarm_description=f"{name}: p95 duration above {p95_s:g} s",
            metric_name="Duration",
            extended_statistic="p95",
            comparison_operator="GreaterThanThreshold",
            threshold=p95_s * 1000,  # AWS/Lambda Duration is in milliseconds
            **alarm_common,
        )

        self.alias = None
        invoke_arn: pulumi.Output[str] = self.function.invoke_arn
        qualifier: pulumi.Input[str] | None = None
        if publish:
            # --- issue 15 item 2 (release migrations, fastapi_deploy/release_migrate.py): wiring -----
            alias_version: pulumi.Input[str] = self.function.version
            alias_deps: list[pulumi.Resource] = []
            if release:
                invocation, alias_version = lambda_release_migration(
                    name,
                    function_name=self.function.name,
                    version=self.function.version,
                    image=args.image,
                    opts=child,
                )
                alias_deps.append(invocation)
            # --- end of issue 15 item 2 wiring (+ alias_version/alias_deps below) -----------------------
            self.alias = aws.lambda_.Alias(
                f"{name}-alias",
                name=ALIAS_NAME,
                function_name=self.function.name,
                function_version=alias_version,
                description="The version this deploy published; provisioned concurrency lives here",
                opts=pulumi.ResourceOptions(parent=self, depends_on=alias_deps),
            )
            if lam.provisioned_concurrency is not None:  # issue 15 item 2: publish may be for release only
                aws.lambda_.ProvisionedConcurrencyConfig(
                    f"{name}-provisioned",
                    function_name=self.function.name,
                    qualifier=self.alias.name,
                    provisioned_concurrent_executions=lam.provisioned_concurrency or 0,
                    opts=child,
                )
            invoke_arn = self.alias.invoke_arn
            qualifier = self.alias.name

        self.api = None
        self.function_url = None
        if lam.front == "http_api":
            self.api = aws.apigatewayv2.Api(
                f"{name}-api",
                name=fn_name,
                protocol_type="HTTP",
                description=f"HTTP front of {fn_name}",
                tags=tags,
                opts=child,
            )
            integration = aws.apigatewayv2.Integration(
                f"{name}-integration",
                api_id=self.api.id,
                integration_type="AWS_PROXY",
                integration_uri=invoke_arn,
                payload_format_version="2.0",
                timeout_milliseconds=min(HTTP_API_MAX_INTEGRATION_MS, cfg.function_timeout_s * 1000),
                opts=child,
            )
            route = aws.apigatewayv2.Route(
                f"{name}-route",
                api_id=self.api.id,
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
            aws.apigatewayv2.Stage(
                f"{name}-stage",
                api_id=self.api.id,
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
                opts=pulumi.ResourceOptions(parent=self, depends_on=[route]),
            )
            aws.lambda_.Permission(
                f"{name}-apigw-invoke",
                action="lambda:InvokeFunction",
                function=self.function.name,
                principal="apigateway.amazonaws.com",
                # Only this API (any stage/route) may invoke the function.
                source_arn=self.api.execution_arn.apply(lambda a: f"{a}/*/*"),
                qualifier=qualifier,
                opts=child,
            )
            self.url = self.api.api_endpoint
        else:
            self.function_url = aws.lambda_.FunctionUrl(
                f"{name}-url",
                function_name=self.function.name,
                qualifier=qualifier,
                authorization_type="NONE",
                opts=child,
            )
            # A public Function URL needs both statements since AWS's October 2025 change.
            aws.lambda_.Permission(
                f"{name}-url-invoke",
                action="lambda:InvokeFunctionUrl",
                function=self.function.name,
                principal="*",
                function_url_auth_type="NONE",
                qualifier=qualifier,
                opts=child,
            )
            aws.lambda_.Permission(
                f"{name}-url-invoke-function",
                action="lambda:InvokeFunction",
                function=self.function.name,
                principal="*",
                invoked_via_function_url=True,
                qualifier=qualifier,
                opts=child,
            )
            self.url = self.function_url.function_url

        self.function_arn = self.function.arn
        self.function_name = self.function.name
        self.alias_name = self.alias.name if self.alias else pulumi.Output.from_input(None)
        self.log_group_name = self.log_group.name
        self.register_outputs(
            {
                "url": self.url,
                "function_name": self.function_name,
                "function_arn": self.function_arn,
                "alias_name": self.alias_name,
                "log_group": self.log_group_name,
            }
        )


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


def deploy(ctx: DeployContext) -> dict[str, pulumi.Input[Any]]:
    """Create the Lambda component and return the stack outputs of contract section 2."""
    cfg = ctx.cfg
    assert isinstance(cfg, LambdaConfig)
    # Built here or promoted into the registry this stack owns: Lambda needs the pull policy on it.
    repository_url = ctx.image.repository_url
    svc = LambdaService(
        ctx.name,
        LambdaServiceArgs(config=cfg, tuning=ctx.tuning, image=ctx.image.ref, repository_url=repository_url),
        opts=ctx.opts,
    )
    return {
        "target": "lambda",
        "url": svc.url,
        "image": ctx.image.ref,
        "health_path": cfg.health.liveness_path,
        "ready_path": cfg.health.readiness_path,
        "region": cfg.region or aws.get_region_output().region,
        "function_name": svc.function_name,
        "function_arn": svc.function_arn,
        "alias_name": svc.alias_name,
        "log_group": svc.log_group_name,
    }
