"""The Lambda target under Pulumi mocks: what a reviewer checks before `pulumi up --stack prod-lambda`.

The real program (infra/__main__.py) runs for stacks/Pulumi.prod-lambda.yaml (plus variants); every
registered resource is recorded with the inputs the engine would receive.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pulumi
import pytest

from fastapi_deploy import apimodels
from fastapi_deploy import config as config_mod
from fastapi_deploy.awslambda import component as lam
from fastapi_deploy.config import ConfigError, LambdaConfig
from fastapi_deploy.mocks import ProgramResult, RecordingMocks, mask_secrets, run_program
from fastapi_deploy.tuning import TuningError, for_platform
from tests.infra.conftest import edited_config

ROOT = Path(__file__).resolve().parents[2]
STACK = ROOT / "stacks" / "Pulumi.prod-lambda.yaml"
COMPONENT = "items-api-prod-lambda"
#: What every secret store answers under these mocks; the deployer must never read it for Lambda.
RECOGNISABLE = "s3cr3t-VALUE-must-not-leak-7f1c"


class Mocks(RecordingMocks):
    """The core mocks, with every secret read answering a recognisable value."""

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:  # type: ignore[override]
        if args.token in (
            "aws:ssm/getParameter:getParameter",
            "aws:secretsmanager/getSecretVersion:getSecretVersion",
            "gcp:secretmanager/getSecretVersionAccess:getSecretVersionAccess",
        ):
            self.calls.append((args.token, dict(args.args or {})))
            return {
                "value": RECOGNISABLE,
                "secretString": RECOGNISABLE,
                "secretData": RECOGNISABLE,
                "id": "x",
            }
        res = super().call(args)
        return res if isinstance(res, dict) else res[0]


def raw_config(**app_changes: Any) -> dict[str, Any]:
    return edited_config(STACK, **app_changes)


def run(**app_changes: Any) -> ProgramResult:
    raw = raw_config(**app_changes)
    return run_program("prod-lambda", raw, mocks=Mocks(region=str(raw["aws:region"])))


@pytest.fixture(scope="module")
def prod() -> ProgramResult:
    return run()


def fn_inputs(result: ProgramResult) -> dict[str, Any]:
    return result.one("aws:lambda/function:Function").inputs


def policy(result: ProgramResult, suffix: str) -> dict[str, Any]:
    (rp,) = [r for r in result.by_type("aws:iam/rolePolicy:RolePolicy") if r.name.endswith(suffix)]
    return json.loads(rp.inputs["policy"])


# ------------------------------------------------------------------------------------ the function
def test_function_is_the_image_with_the_mangum_command(prod: ProgramResult) -> None:
    fn = fn_inputs(prod)
    assert fn["packageType"] == "Image"
    assert fn["imageUri"] == prod.outputs["image"]
    assert "@sha256:" in fn["imageUri"], "Lambda must run the tested bytes: deploy by digest, never by tag"
    cmd = fn["imageConfig"]["entryPoints"] + fn["imageConfig"]["commands"]
    assert cmd == ["python", "-m", "awslambdaric", "app.lambda_handler.handler"]
    assert fn["architectures"] == ["arm64"]
    assert fn["memorySize"] == 1024
    assert fn["timeout"] == 25
    assert fn["reservedConcurrentExecutions"] == 150


def test_handler_named_in_the_command_exists_in_the_app() -> None:
    # The command names app.lambda_handler.handler; the module is owned by the app, so check it exists.
    import app.lambda_handler as handler_module

    module, _, attr = lam.HANDLER.rpartition(".")
    assert module == handler_module.__name__
    assert callable(getattr(handler_module, attr))


def test_function_parameters_match_botocore_create_function(prod: ProgramResult) -> None:
    params = lam.create_function_params(fn_inputs(prod))
    apimodels.validate(("lambda", "CreateFunction"), params)
    assert params["Architectures"][0] in apimodels.enum_values(("lambda", "CreateFunction"), "Architectures")
    assert params["PackageType"] in apimodels.enum_values(("lambda", "CreateFunction"), "PackageType")
    log_formats = apimodels.enum_values(("lambda", "CreateFunction"), "LoggingConfig.LogFormat")
    assert params["LoggingConfig"]["LogFormat"] in log_formats
    concurrency = fn_inputs(prod)["reservedConcurrentExecutions"]
    put = {"FunctionName": params["FunctionName"], "ReservedConcurrentExecutions": concurrency}
    apimodels.validate(("lambda", "PutFunctionConcurrency"), put)
    # The check can fail: below-minimum memory, a string timeout and a misspelt key are all refused.
    bad = {**params, "MemorySize": 64, "Timeout": "25", "ImageConfig": {"Cmd": ["x"]}}
    with pytest.raises(apimodels.ApiValidationError) as exc:
        apimodels.validate(("lambda", "CreateFunction"), bad)
    assert "MemorySize" in str(exc.value)
    assert "Timeout" in str(exc.value)
    assert "Cmd" in str(exc.value)


def _api(inputs: dict[str, Any], mapping: dict[str, str], **fixed: Any) -> dict[str, Any]:
    return {**fixed, **{dst: inputs[src] for src, dst in mapping.items() if inputs.get(src) is not None}}


def test_alias_front_and_permissions_match_their_api_models(prod: ProgramResult) -> None:
    alias = prod.one("aws:lambda/alias:Alias").inputs
    apimodels.validate(
        ("lambda", "CreateAlias"),
        _api(alias, {"functionName": "FunctionName", "name": "Name", "functionVersion": "FunctionVersion"}),
    )
    pc = prod.one("aws:lambda/provisionedConcurrencyConfig:ProvisionedConcurrencyConfig").inputs
    apimodels.validate(
        ("lambda", "PutProvisionedConcurrencyConfig"),
        _api(
            pc,
            {
                "functionName": "FunctionName",
                "qualifier": "Qualifier",
                "provisionedConcurrentExecutions": "ProvisionedConcurrentExecutions",
            },
        ),
    )
    for perm in prod.by_type("aws:lambda/permission:Permission"):
        params = _api(
            perm.inputs,
            {
                "function": "FunctionName",
                "action": "Action",
                "principal": "Principal",
                "sourceArn": "SourceArn",
                "qualifier": "Qualifier",
                "functionUrlAuthType": "FunctionUrlAuthType",
                "invokedViaFunctionUrl": "InvokedViaFunctionUrl",
            },
            StatementId=perm.name,
        )
        apimodels.validate(("lambda", "AddPermission"), params)
    api_id = prod.one("aws:apigatewayv2/api:Api").id
    integ = prod.one("aws:apigatewayv2/integration:Integration").inputs
    apimodels.validate(
        ("apigatewayv2", "CreateIntegration"),
        _api(
            integ,
            {
                "integrationType": "IntegrationType",
                "integrationUri": "IntegrationUri",
                "payloadFormatVersion": "PayloadFormatVersion",
                "timeoutMilliseconds": "TimeoutInMillis",
            },
            ApiId=api_id,
        ),
    )
    stage = prod.one("aws:apigatewayv2/stage:Stage").inputs
    settings = stage["defaultRouteSettings"]
    apimodels.validate(
        ("apigatewayv2", "CreateStage"),
        {
            "ApiId": api_id,
            "StageName": stage["name"],
            "AutoDeploy": stage["autoDeploy"],
            "DefaultRouteSettings": {
                "ThrottlingBurstLimit": settings["throttlingBurstLimit"],
                "ThrottlingRateLimit": settings["throttlingRateLimit"],
            },
            "AccessLogSettings": {
                "DestinationArn": stage["accessLogSettings"]["destinationArn"],
                "Format": stage["accessLogSettings"]["format"],
            },
            "Tags": stage["tags"],
        },
    )


def test_runtime_env_is_one_request_at_a_time(prod: ProgramResult) -> None:
    env = fn_inputs(prod)["environment"]["variables"]
    assert env["WEB_CONCURRENCY"] == "1"
    assert env["DB_POOL_CLASS"] == "null", "a frozen environment must not keep a pool of dead connections"
    assert env["APP_ENV"] == "production"
    assert not set(env) & lam.RESERVED_ENV
    # app.database.migrate defaults to manual here: a cold start must not run Alembic.
    assert "MIGRATE_ON_START" not in env


# ------------------------------------------------------------------------------------------ secrets
def test_env_holds_references_never_values(prod: ProgramResult) -> None:
    env = fn_inputs(prod)["environment"]["variables"]
    assert env["DATABASE_URL"] == "secretsmanager:prod/items-api/db:url"
    assert env["REDIS_URL"] == "ssm:/prod/items-api/redis-url"
    assert env["JWT_SECRET_KEY"] == "ssm:/prod/items-api/jwt-secret-key"
    # The deployer never read a secret (no secret-store invoke), so no value can be anywhere.
    assert not [t for t, _ in prod.calls if "getParameter" in t or "getSecretVersion" in t]
    everything = json.dumps([r.inputs for r in prod.resources], default=str) + json.dumps(prod.outputs)
    assert RECOGNISABLE not in everything


def test_references_resolve_with_the_apps_resolver() -> None:
    """The env the deployer writes is exactly what app/secret_refs.py resolves at cold start (moto)."""
    moto = pytest.importorskip("moto")
    import boto3

    from app.secret_refs import resolve_env

    cfg = config_mod.load_stack_file(STACK)
    assert isinstance(cfg, LambdaConfig)
    from fastapi_deploy.awslambda.adapter import function_env

    env = function_env(cfg, for_platform(cfg))
    with moto.mock_aws():
        ssm = boto3.client("ssm", region_name="us-east-1")
        ssm.put_parameter(Name="/prod/items-api/redis-url", Value="redis://r:6379/0", Type="SecureString")
        ssm.put_parameter(Name="/prod/items-api/jwt-secret-key", Value="j" * 48, Type="SecureString")
        boto3.client("secretsmanager", region_name="us-east-1").create_secret(
            Name="prod/items-api/db", SecretString=json.dumps({"url": "postgresql+asyncpg://u:p@db/app"})
        )
        import os

        old = os.environ.get("AWS_DEFAULT_REGION")
        os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
        try:
            resolved = resolve_env(env)
        finally:
            if old is None:
                os.environ.pop("AWS_DEFAULT_REGION", None)
            else:
                os.environ["AWS_DEFAULT_REGION"] = old
    assert sorted(resolved) == ["DATABASE_URL", "JWT_SECRET_KEY", "REDIS_URL"]
    assert env["DATABASE_URL"] == "postgresql+asyncpg://u:p@db/app"
    assert env["REDIS_URL"] == "redis://r:6379/0"


def test_role_reads_exactly_the_referenced_secrets(prod: ProgramResult) -> None:
    doc = policy(prod, "-secrets-policy")
    by_sid = {s["Sid"]: s for s in doc["Statement"]}
    assert by_sid["ReadParameters"]["Action"] == ["ssm:GetParameter", "ssm:GetParameters"]
    assert by_sid["ReadParameters"]["Resource"] == [
        "arn:aws:ssm:us-east-1:123456789012:parameter/prod/items-api/jwt-secret-key",
        "arn:aws:ssm:us-east-1:123456789012:parameter/prod/items-api/redis-url",
    ]
    assert by_sid["ReadSecrets"]["Action"] == ["secretsmanager:GetSecretValue"]
    # Exactly six characters after the name: prod/items-api/db must not also match prod/items-api/db-admin.
    assert by_sid["ReadSecrets"]["Resource"] == [
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/items-api/db-??????"
    ]
    kms = by_sid["DecryptSecrets"]
    assert kms["Action"] == ["kms:Decrypt"]
    assert kms["Resource"] == ["arn:aws:kms:us-east-1:123456789012:key/5b2e8c1d-7a4f-4e3b-9c6d-2f1a0b9e8d7c"]
    assert kms["Condition"] == {
        "StringEquals": {
            "kms:ViaService": ["ssm.us-east-1.amazonaws.com", "secretsmanager.us-east-1.amazonaws.com"]
        }
    }


def test_no_wildcard_resources_and_no_managed_policies(prod: ProgramResult) -> None:
    for rp in prod.by_type("aws:iam/rolePolicy:RolePolicy"):
        for stmt in json.loads(rp.inputs["policy"])["Statement"]:
            if stmt["Resource"] == "*":
                # The one exception: EC2 Describe* has no resource-level permissions at all.
                assert all(a.startswith("ec2:Describe") for a in stmt["Action"]), stmt
                continue
            for res in stmt["Resource"]:
                assert res != "*", rp.name
                assert not res.endswith(":*:*"), (rp.name, res)
    assert not prod.by_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
    logs = policy(prod, "-logs-policy")["Statement"]
    assert logs == [
        {
            "Sid": "WriteOwnLogs",
            "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": ["arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/items-api-prod-lambda:*"],
        }
    ]
    trust = json.loads(prod.one("aws:iam/role:Role").inputs["assumeRolePolicy"])
    assert trust["Statement"] == [
        {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
    ]


def test_secrets_policy_reads_only_the_stores_in_use() -> None:
    # The service needs DATABASE_URL, REDIS_URL and JWT_SECRET_KEY, so a Lambda always reads secrets; with
    # only Parameter Store references and no customer key, the policy grants nothing else.
    only_ssm = {"DATABASE_URL": "ssm:/p/db", "REDIS_URL": "ssm:/p/redis", "JWT_SECRET_KEY": "ssm:/p/jwt"}
    result = run(secrets=only_ssm, secret_kms_key_arns=[], **{"lambda": {"vpc": None}})
    statements = policy(result, "-secrets-policy")["Statement"]
    assert [s["Sid"] for s in statements] == ["ReadParameters"]
    assert "vpcConfig" not in fn_inputs(result)


def test_vpc_attachment_is_scoped_to_the_configured_subnets(prod: ProgramResult) -> None:
    assert fn_inputs(prod)["vpcConfig"] == {
        "subnetIds": ["subnet-0a1b2c3d4e5f60021", "subnet-0a1b2c3d4e5f60022"],
        "securityGroupIds": ["sg-0a1b2c3d4e5f60031"],
    }
    by_sid = {s["Sid"]: s for s in policy(prod, "-vpc-policy")["Statement"]}
    ec2 = "arn:aws:ec2:us-east-1:123456789012"
    assert by_sid["CreateEnisInConfiguredSubnets"]["Resource"] == [
        f"{ec2}:network-interface/*",
        f"{ec2}:subnet/subnet-0a1b2c3d4e5f60021",
        f"{ec2}:subnet/subnet-0a1b2c3d4e5f60022",
        f"{ec2}:security-group/sg-0a1b2c3d4e5f60031",
    ]
    assert by_sid["ManageEnis"]["Resource"] == [f"{ec2}:network-interface/*"]


# ---------------------------------------------------------------------------------- logs and front
def test_function_waits_for_its_policies(prod: ProgramResult) -> None:
    """The first cold start must be able to log and read its secrets."""
    needed = {r.urn for r in prod.by_type("aws:iam/rolePolicy:RolePolicy")}
    needed |= {
        r.urn for r in prod.by_type("aws:cloudwatch/logGroup:LogGroup") if r.name == f"{COMPONENT}-logs"
    }
    assert len(needed) == 4
    # the engine's dependency list of the function's registration
    assert needed <= set(prod.one("aws:lambda/function:Function").dependencies)


def test_log_group_with_retention_is_the_functions(prod: ProgramResult) -> None:
    groups = {r.inputs["name"]: r.inputs for r in prod.by_type("aws:cloudwatch/logGroup:LogGroup")}
    assert groups["/aws/lambda/items-api-prod-lambda"]["retentionInDays"] == 30
    assert fn_inputs(prod)["loggingConfig"]["logGroup"] == "/aws/lambda/items-api-prod-lambda"
    assert all(g["retentionInDays"] == 30 for g in groups.values())


def test_provisioned_concurrency_on_alias_of_published_version(prod: ProgramResult) -> None:
    assert fn_inputs(prod)["publish"] is True
    alias = prod.one("aws:lambda/alias:Alias").inputs
    assert alias["name"] == "live"
    assert alias["functionVersion"] == "1"  # the version the function resource published (not $LATEST)
    pc = prod.one("aws:lambda/provisionedConcurrencyConfig:ProvisionedConcurrencyConfig").inputs
    assert pc["qualifier"] == "live"
    assert pc["provisionedConcurrentExecutions"] == 2


def test_http_api_front_with_stage_throttling(prod: ProgramResult) -> None:
    api = prod.one("aws:apigatewayv2/api:Api").inputs
    assert api["protocolType"] == "HTTP"
    integ = prod.one("aws:apigatewayv2/integration:Integration").inputs
    assert integ["integrationType"] == "AWS_PROXY"
    assert integ["payloadFormatVersion"] == "2.0"
    assert integ["integrationUri"].endswith(":function:items-api-prod-lambda:live/invocations")
    assert integ["timeoutMilliseconds"] == 25_000 <= 30_000
    assert prod.one("aws:apigatewayv2/route:Route").inputs["routeKey"] == "$default"
    stage = prod.one("aws:apigatewayv2/stage:Stage").inputs
    assert stage["name"] == "$default"
    assert stage["autoDeploy"] is True
    assert stage["defaultRouteSettings"]["throttlingRateLimit"] == 200
    assert stage["defaultRouteSettings"]["throttlingBurstLimit"] == 400
    assert stage["accessLogSettings"]["destinationArn"].endswith(
        "log-group:/aws/apigateway/items-api-prod-lambda"
    )
    perm = prod.one("aws:lambda/permission:Permission").inputs
    assert perm["principal"] == "apigateway.amazonaws.com"
    assert perm["qualifier"] == "live"
    api_rec = prod.one("aws:apigatewayv2/api:Api")
    assert perm["sourceArn"] == f"{api_rec.outputs['executionArn']}/*/*"
    assert not prod.by_type("aws:lambda/functionUrl:FunctionUrl")


def test_function_url_front_and_no_alias_without_provisioned_concurrency() -> None:
    result = run(**{"lambda": {"front": "function_url", "provisioned_concurrency": None}})
    assert not result.by_type("aws:apigatewayv2/api:Api")
    assert not result.by_type("aws:lambda/alias:Alias")
    assert fn_inputs(result)["publish"] is False
    url = result.one("aws:lambda/functionUrl:FunctionUrl").inputs
    assert url["authorizationType"] == "NONE"
    apimodels.validate(
        ("lambda", "CreateFunctionUrlConfig"),
        {"FunctionName": url["functionName"], "AuthType": url["authorizationType"]},
    )
    perms = {r.inputs["action"]: r.inputs for r in result.by_type("aws:lambda/permission:Permission")}
    assert perms["lambda:InvokeFunctionUrl"]["functionUrlAuthType"] == "NONE"
    assert perms["lambda:InvokeFunction"]["invokedViaFunctionUrl"] is True
    assert result.outputs["alias_name"] is None
    assert result.outputs["url"].endswith(".lambda-url.us-east-1.on.aws/")


def test_ecr_lets_only_this_function_pull(prod: ProgramResult) -> None:
    doc = json.loads(prod.one("aws:ecr/repositoryPolicy:RepositoryPolicy").inputs["policy"])
    (stmt,) = doc["Statement"]
    assert stmt["Principal"] == {"Service": "lambda.amazonaws.com"}
    assert stmt["Action"] == ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
    assert stmt["Condition"]["StringLike"]["aws:sourceArn"] == (
        "arn:aws:lambda:us-east-1:123456789012:function:items-api-prod-lambda*"
    )


def test_pull_policy_exists_before_the_function(prod: ProgramResult) -> None:
    # Created in parallel, CreateFunction races the policy and tries to set its own (ecr:SetRepositoryPolicy).
    policy = prod.one("aws:ecr/repositoryPolicy:RepositoryPolicy")
    function = prod.one("aws:lambda/function:Function")
    assert policy.urn in function.dependencies
    assert policy.parent == function.parent  # a child of the component, named after it
    assert policy.name.startswith(function.parent.rsplit("::", 1)[1])


# --------------------------------------------------------------------------------- graph and outputs
def test_outputs_follow_the_contract(prod: ProgramResult) -> None:
    out = prod.outputs
    assert out["target"] == "lambda"
    assert out["url"] == prod.one("aws:apigatewayv2/api:Api").outputs["apiEndpoint"]
    assert out["function_name"] == "items-api-prod-lambda"
    assert out["function_arn"] == "arn:aws:lambda:us-east-1:123456789012:function:items-api-prod-lambda"
    assert out["alias_name"] == "live"
    assert out["log_group"] == "/aws/lambda/items-api-prod-lambda"
    assert out["region"] == "us-east-1"
    assert (out["health_path"], out["ready_path"]) == ("/health", "/ready")
    assert not prod.secret_outputs


def test_children_carry_the_component_name_and_tags(prod: ProgramResult) -> None:
    comp = prod.one(lam.COMPONENT_TYPE)
    children = [r for r in prod.resources if r.parent == comp.urn]
    assert len(children) >= 12
    for r in children:
        assert r.name.startswith(f"{COMPONENT}-"), r.name
        if "tags" in r.inputs:
            assert {"app": "items-api", "stack": "prod-lambda", "managed-by": "pulumi"}.items() <= r.inputs[
                "tags"
            ].items()


def test_component_outputs_resolve_under_runtime_test() -> None:
    cfg = config_mod.parse(
        raw_config()[config_mod.CONFIG_KEY], stack="prod-lambda", providers={"aws:region": "us-east-1"}
    )
    assert isinstance(cfg, LambdaConfig)
    pulumi.runtime.set_mocks(Mocks(), project="fastapi-deploy", stack="prod-lambda", preview=False)

    @pulumi.runtime.test
    def check() -> pulumi.Output[None]:
        lam_cfg = cfg.lambda_
        assert lam_cfg.reserved_concurrency is not None
        args: lam.LambdaServiceArgs = {
            "image": "r/x@sha256:" + "a" * 64,
            "reserved_concurrency": lam_cfg.reserved_concurrency,
            "region": "us-east-1",
            "database": {
                "max_connections": cfg.database.max_connections,
                "reserved_connections": cfg.database.reserved_connections,
            },
        }
        if lam_cfg.provisioned_concurrency is not None:
            args["provisioned_concurrency"] = lam_cfg.provisioned_concurrency
        svc = lam.LambdaService("unit", args)

        def verify(values: list[Any]) -> None:
            url, arn, alias, log_group = values
            assert url.startswith("https://")
            assert ".execute-api.us-east-1." in url
            assert arn.endswith(":function:unit")
            assert alias == "live"
            assert log_group == "/aws/lambda/unit"

        return pulumi.Output.all(svc.url, svc.function_arn, svc.alias_name, svc.log_group).apply(verify)

    check()


# ---------------------------------------------------------------------------------------- bad config
BAD = [
    ({"request_timeout_s": 60}, ConfigError, "request_timeout_s"),
    ({"database": {"migrate": "on_start"}}, ConfigError, "app.database.migrate"),
    ({"database": {"migrate": "sometimes"}}, ConfigError, "app.database.migrate"),
    (
        {"lambda": {"reserved_concurrency": None, "provisioned_concurrency": None}},
        TuningError,
        "app.lambda.reserved_concurrency",
    ),
    ({"lambda": {"reserved_concurrency": 500}}, TuningError, "app.lambda.reserved_concurrency"),
    ({"lambda": {"provisioned_concurrency": 200}}, ConfigError, "provisioned_concurrency"),
    ({"lambda": {"memory_mb": 64}}, ConfigError, "app.lambda.memory_mb"),
    ({"lambda": {"log_retention_days": 10}}, ConfigError, "app.lambda.log_retention_days"),
    ({"lambda": {"architecture": "x86_64"}}, ConfigError, "lambda.architecture"),
    ({"lambda": {"front": "alb"}}, ConfigError, "app.lambda.front"),
    ({"secrets": {"DATABASE_URL": "gcp:db-url"}}, ConfigError, "secrets.DATABASE_URL"),
    ({"secrets": {"DATABASE_URL": "vault:db"}}, ConfigError, "DATABASE_URL"),
    ({"env": {"DATABASE_URL": "postgresql://u:p@h/db"}}, ConfigError, "app.env"),
    ({"secret_kms_key_arns": ["alias/aws/ssm"]}, ConfigError, "app.secret_kms_key_arns"),
    (
        {
            "lambda": {
                "vpc": {"subnet_ids": ["subnet-0a1b2c3d4e5f60021"], "security_group_ids": ["sg-0a1b2c3d"]}
            }
        },
        ConfigError,
        "app.lambda.vpc.subnet_ids",
    ),
    (
        {
            "lambda": {
                "vpc": {
                    "subnet_ids": ["subnet-0a1b2c3d4e5f60021", "subnet-0a1b2c3d4e5f60022"],
                    "security_group_ids": [],
                }
            }
        },
        ConfigError,
        "app.lambda.vpc.security_group_ids",
    ),
]


def test_oversized_environment_is_refused_before_anything_registers() -> None:
    mocks = Mocks()
    with pytest.raises(ValueError, match=r"app\.env: the function's environment is \d+ bytes"):
        run_program("prod-lambda", raw_config(env={"BIG_BLOB": "x" * 4000}), mocks=mocks)
    assert mocks.monitor.recorded == []  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("changes", "error", "field"), BAD, ids=[b[2] + "-" + str(i) for i, b in enumerate(BAD)]
)
def test_invalid_config_names_the_field_and_registers_nothing(
    changes: dict[str, Any], error: type[Exception], field: str
) -> None:
    raw = raw_config(**changes)
    mocks = Mocks()
    with pytest.raises(error) as exc:
        run_program("prod-lambda", raw, mocks=mocks)
    assert field in str(exc.value)
    assert mocks.monitor.recorded == []  # type: ignore[attr-defined]
    assert RECOGNISABLE not in json.dumps(mask_secrets(str(exc.value)))


# ------------------------------------------------------------------------------------------------ alarms
def test_alarms_on_errors_throttles_and_p95_duration_notify_the_topic(prod: ProgramResult) -> None:
    fn = prod.one("aws:lambda/function:Function")
    topic = prod.one("aws:sns/topic:Topic")
    (sub,) = prod.by_type("aws:sns/topicSubscription:TopicSubscription")
    assert (sub.inputs["protocol"], sub.inputs["endpoint"], sub.inputs["topic"]) == (
        "email",
        "oncall@example.com",
        topic.outputs["arn"],
    )
    alarms = {a.name.rsplit("-", 1)[-1]: a for a in prod.by_type("aws:cloudwatch/metricAlarm:MetricAlarm")}
    assert set(alarms) == {"errors", "throttles", "duration"}
    assert alarms["errors"].inputs["metricName"] == "Errors"
    assert alarms["throttles"].inputs["metricName"] == "Throttles"
    duration = alarms["duration"].inputs
    assert (duration["metricName"], duration["extendedStatistic"]) == ("Duration", "p95")
    assert duration["threshold"] == pytest.approx(0.8 * fn.inputs["timeout"] * 1000)
    for alarm in alarms.values():
        assert alarm.inputs["namespace"] == "AWS/Lambda"
        assert alarm.inputs["dimensions"] == {"FunctionName": fn.outputs["name"]}
        assert alarm.inputs["alarmActions"] == alarm.inputs["okActions"] == [topic.outputs["arn"]]
        params = apimodels.cloudwatch_put_metric_alarm_params(alarm.inputs, alarm.outputs["name"])
        apimodels.validate(("cloudwatch", "PutMetricAlarm"), params)
    apimodels.validate(("sns", "CreateTopic"), apimodels.sns_create_topic_params(topic.inputs, "t"))
    apimodels.validate(("sns", "Subscribe"), apimodels.sns_subscribe_params(sub.inputs, topic.outputs["arn"]))
