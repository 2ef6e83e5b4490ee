"""The Cloud Run target under Pulumi mocks: what a reviewer checks before `pulumi up --stack prod-cloudrun`.

The rendered service is parsed with ``google.cloud.run_v2.Service`` (the Admin API's own types), so a
misspelt or unknown field fails here instead of at deploy time.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import pulumi
import pytest
from google.protobuf.json_format import ParseError

from fastapi_deploy import config as config_mod
from fastapi_deploy.cloudrun import component as cr
from fastapi_deploy.config import CloudRunConfig, ConfigError
from fastapi_deploy.mocks import ProgramResult, RecordingMocks, run_program, unwrap
from fastapi_deploy.tuning import TuningError, for_platform
from tests.infra.conftest import edited_config

with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)
    from google.cloud import run_v2

ROOT = Path(__file__).resolve().parents[2]
PROD = ROOT / "stacks" / "Pulumi.prod-cloudrun.yaml"
STAGING = ROOT / "stacks" / "Pulumi.staging-cloudrun.yaml"
COMPONENT = "items-api-prod-cloudrun"
RECOGNISABLE = "s3cr3t-VALUE-must-not-leak-2c9e"
SERVICE = "gcp:cloudrunv2/service:Service"


class Mocks(RecordingMocks):
    """The core mocks, with every secret read answering a recognisable value."""

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:  # type: ignore[override]
        if "getSecretVersion" in args.token or "getParameter" in args.token:
            self.calls.append((args.token, dict(args.args or {})))
            return {
                "secretData": RECOGNISABLE,
                "value": RECOGNISABLE,
                "secretString": RECOGNISABLE,
                "id": "x",
            }
        res = super().call(args)
        return res if isinstance(res, dict) else res[0]


def raw_config(path: Path = PROD, **app_changes: Any) -> dict[str, Any]:
    return edited_config(path, **app_changes)


def run(path: Path = PROD, **app_changes: Any) -> ProgramResult:
    raw = raw_config(path, **app_changes)
    stack = path.name.removeprefix("Pulumi.").removesuffix(".yaml")
    return run_program(stack, raw, mocks=Mocks(gcp_project=raw["gcp:project"], gcp_region=raw["gcp:region"]))


@pytest.fixture(scope="module")
def prod() -> ProgramResult:
    return run()


@pytest.fixture(scope="module")
def staging() -> ProgramResult:
    return run(STAGING)


def container(result: ProgramResult) -> dict[str, Any]:
    (c,) = result.one(SERVICE).inputs["template"]["containers"]
    return c


def env_of(result: ProgramResult) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container(result)["envs"]}


# --------------------------------------------------------------------------------------- API types
def test_service_parses_as_cloud_run_v2_service(prod: ProgramResult) -> None:
    body = cr.run_v2_service_body(prod.one(SERVICE).inputs, "items-api-prod", "europe-west1")
    svc = run_v2.Service.from_json(json.dumps(body))  # unknown fields raise
    assert svc.name == "projects/items-api-prod/locations/europe-west1/services/items-api-prod-cloudrun"
    assert svc.ingress == run_v2.IngressTraffic.INGRESS_TRAFFIC_ALL
    assert svc.traffic[0].type_ == run_v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST
    assert svc.traffic[0].percent == 100
    t = svc.template
    assert t.timeout.total_seconds() == 60
    assert t.max_instance_request_concurrency == 80
    assert (t.scaling.min_instance_count, t.scaling.max_instance_count) == (1, 20)
    assert t.execution_environment == run_v2.ExecutionEnvironment.EXECUTION_ENVIRONMENT_GEN2
    (c,) = t.containers
    assert c.ports[0].container_port == 8080
    assert c.startup_probe.http_get.path == "/ready"
    assert c.liveness_probe.http_get.path == "/health"
    refs = {e.name: e.value_source.secret_key_ref for e in c.env if e.value_source}
    assert refs["JWT_SECRET_KEY"].secret == "projects/items-shared-secrets/secrets/items-api-jwt"
    assert refs["JWT_SECRET_KEY"].version == "3"
    assert t.volumes[0].cloud_sql_instance.instances == ["items-api-prod:europe-west1:items-db"]


def test_api_check_rejects_unknown_fields(prod: ProgramResult) -> None:
    body = cr.run_v2_service_body(prod.one(SERVICE).inputs, "p", "r")
    body["template"]["containers"][0]["startupProbe"]["periodSecs"] = 5
    with pytest.raises(ParseError, match="periodSecs"):
        run_v2.Service.from_json(json.dumps(body))


def test_staging_service_parses_too(staging: ProgramResult) -> None:
    body = cr.run_v2_service_body(staging.one(SERVICE).inputs, "items-api-staging", "europe-west1")
    svc = run_v2.Service.from_json(json.dumps(body))
    assert svc.ingress == run_v2.IngressTraffic.INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER
    assert svc.template.scaling.min_instance_count == 0
    assert not svc.template.volumes


# ---------------------------------------------------------------------------------------- secrets
def test_secrets_are_secret_key_refs_never_values(prod: ProgramResult) -> None:
    env = env_of(prod)
    expected = {
        "DATABASE_URL": ("items-api-database-url", "latest"),
        "REDIS_URL": ("items-api-redis-url", "latest"),
        "JWT_SECRET_KEY": ("projects/items-shared-secrets/secrets/items-api-jwt", "3"),
        "SENTRY_DSN": ("items-api-sentry-dsn", "latest"),
    }
    for name, (secret, version) in expected.items():
        assert "value" not in env[name], name
        assert env[name]["valueSource"]["secretKeyRef"] == {"secret": secret, "version": version}
    # Nothing read a secret value at deploy time, so no value can be in state.
    assert not [t for t, _ in prod.calls if "Secret" in t or "Parameter" in t]
    assert RECOGNISABLE not in json.dumps([r.inputs for r in prod.resources], default=str)


def test_service_account_reads_exactly_the_referenced_secrets(prod: ProgramResult) -> None:
    sa = prod.one("gcp:serviceaccount/account:Account")
    member = f"serviceAccount:{sa.outputs['email']}"
    grants = {
        (r.inputs["project"], r.inputs["secretId"])
        for r in prod.by_type("gcp:secretmanager/secretIamMember:SecretIamMember")
        if r.inputs["role"] == "roles/secretmanager.secretAccessor" and r.inputs["member"] == member
    }
    assert grants == {
        ("items-api-prod", "items-api-database-url"),
        ("items-api-prod", "items-api-redis-url"),
        ("items-shared-secrets", "items-api-jwt"),
        ("items-api-prod", "items-api-sentry-dsn"),
    }
    assert len(prod.by_type("gcp:secretmanager/secretIamMember:SecretIamMember")) == 4
    # Nothing project-wide except the Cloud SQL client role, and that one only for the one instance.
    project_grants = prod.by_type("gcp:projects/iAMMember:IAMMember")
    assert [g.inputs["role"] for g in project_grants] == ["roles/cloudsql.client"]
    assert project_grants[0].inputs["condition"]["expression"] == (
        'resource.name == "projects/items-api-prod/instances/items-db"'
    )
    assert prod.one(SERVICE).inputs["template"]["serviceAccount"] == sa.outputs["email"]


def test_one_grant_per_secret_even_when_two_vars_share_it() -> None:
    shared = {
        "DATABASE_URL": "gcp:shared",
        "REDIS_URL": "gcp:shared/versions/2",
        "JWT_SECRET_KEY": "gcp:shared/versions/3",
    }
    result = run(STAGING, secrets=shared)
    assert len(result.by_type("gcp:secretmanager/secretIamMember:SecretIamMember")) == 1


def test_service_waits_for_its_secret_grants(prod: ProgramResult) -> None:
    """The first revision must not start before its identity can read the secrets it mounts."""
    grants = {r.urn for r in prod.by_type("gcp:secretmanager/secretIamMember:SecretIamMember")}
    grants |= {r.urn for r in prod.by_type("gcp:projects/iAMMember:IAMMember")}
    assert len(grants) == 5
    # the engine's dependency list of the service's registration
    assert grants <= set(prod.one(SERVICE).dependencies)


def test_no_public_invoker_unless_configured(prod: ProgramResult, staging: ProgramResult) -> None:
    inv = prod.one("gcp:cloudrunv2/serviceIamMember:ServiceIamMember").inputs
    assert (inv["role"], inv["member"], inv["name"]) == (
        "roles/run.invoker",
        "allUsers",
        "items-api-prod-cloudrun",
    )
    assert not staging.by_type("gcp:cloudrunv2/serviceIamMember:ServiceIamMember")


# -------------------------------------------------------------------------------- probes and timing
def test_startup_probe_gates_on_readiness_and_liveness_is_dependency_free(prod: ProgramResult) -> None:
    c = container(prod)
    startup, liveness = c["startupProbe"], c["livenessProbe"]
    assert startup["httpGet"]["path"] == "/ready"  # a revision that can't reach the DB never takes traffic
    assert liveness["httpGet"]["path"] == "/health"  # a DB outage never restarts a healthy instance
    assert startup["httpGet"]["port"] == liveness["httpGet"]["port"] == 8080
    budget = startup["initialDelaySeconds"] + startup["periodSeconds"] * startup["failureThreshold"]
    assert 60 <= budget <= cr.STARTUP_BUDGET_S
    for probe in (startup, liveness):
        assert probe["timeoutSeconds"] <= probe["periodSeconds"]
    # A wedged process is restarted after 30 s, not after one slow answer.
    assert liveness["periodSeconds"] * liveness["failureThreshold"] >= 30


def test_runtime_env_fits_cloud_run(prod: ProgramResult) -> None:
    env = {k: v["value"] for k, v in env_of(prod).items() if "value" in v}
    assert "PORT" not in env  # reserved: Cloud Run sets it and rejects a service that sets it
    assert int(env["GUNICORN_GRACEFUL_TIMEOUT"]) < cr.CLOUDRUN_SIGTERM_GRACE_S
    assert env["WEB_CONCURRENCY"] == "1"  # 1 vCPU: one async worker; the platform scales instances
    assert env["DB_POOL_CLASS"] == "queue"
    assert env["CORS_ORIGINS"] == "https://app.example.com"
    assert env["LOG_LEVEL"] == "info"
    res = container(prod)["resources"]
    assert res["limits"] == {"cpu": "1", "memory": "1024Mi"}
    assert res["startupCpuBoost"] is True
    assert res["cpuIdle"] is True


def _direct_args(cfg: CloudRunConfig) -> cr.CloudRunServiceArgs:
    """Plain Args as a user of the component writes them (the stack file only supplies the numbers)."""
    return {
        "image": "r/x@sha256:" + "b" * 64,
        "project": str(cfg.gcp_project),
        "region": str(cfg.gcp_region),
        "scaling": {"min": cfg.scaling.min, "max": cfg.scaling.max},
        "database": {"max_connections": cfg.database.max_connections},
    }


def test_graceful_timeout_must_fit_the_sigterm_grace() -> None:
    cfg = config_mod.load_stack_file(PROD)
    assert isinstance(cfg, CloudRunConfig)
    import dataclasses

    from fastapi_deploy.mocks import run_callable

    bad = dataclasses.replace(for_platform(cfg), graceful_timeout_s=20)
    mocks = Mocks()
    with pytest.raises(
        ValueError, match=r"CloudRunServiceArgs\.request_timeout_s: GUNICORN_GRACEFUL_TIMEOUT 20s"
    ):
        run_callable(lambda: cr.CloudRunService("unit", _direct_args(cfg), tuning=bad), mocks=mocks)
    assert mocks.monitor.recorded == []  # type: ignore[attr-defined]


def test_small_instances_fall_back_to_gen1() -> None:
    result = run(STAGING, cloudrun={"memory": "448Mi"})
    assert result.one(SERVICE).inputs["template"]["executionEnvironment"] == "EXECUTION_ENVIRONMENT_GEN1"
    assert cr.execution_environment(512) == "EXECUTION_ENVIRONMENT_GEN2"


def test_fractional_cpu_runs_on_gen1() -> None:
    """Cloud Run refuses a revision with cpu < 1 on the second generation ("You must use the first
    generation execution environment", cloud.google.com/run/docs/configuring/cpu); 512Mi alone picked gen2."""
    result = run(STAGING, cloudrun={"cpu": 0.5, "memory": "512Mi", "concurrency": 1})
    template = result.one(SERVICE).inputs["template"]
    assert template["containers"][0]["resources"]["limits"]["cpu"] == "500m"
    assert template["executionEnvironment"] == "EXECUTION_ENVIRONMENT_GEN1"
    assert cr.execution_environment(1024, cpu=1.0) == "EXECUTION_ENVIRONMENT_GEN2"


def test_cpu_quantities() -> None:
    assert [cr.cpu_limit(c) for c in (0.5, 1.0, 2.0, 4.0)] == ["500m", "1", "2", "4"]


# ------------------------------------------------------------------------------ image and registry
def test_built_image_goes_to_an_artifact_registry_repo_by_digest(prod: ProgramResult) -> None:
    repo = prod.one("gcp:artifactregistry/repository:Repository").inputs
    assert repo["format"] == "DOCKER"
    assert repo["location"] == "europe-west1"
    assert repo["dockerConfig"] == {"immutableTags": True}
    assert {p["id"]: p["action"] for p in repo["cleanupPolicies"]} == {
        "keep-recent": "KEEP",
        "delete-old": "DELETE",
    }
    image = container(prod)["image"]
    assert image.startswith(
        f"europe-west1-docker.pkg.dev/items-api-prod/{repo['repositoryId']}/items-api@sha256:"
    )
    assert prod.outputs["image"] == image


def test_promoted_digest_builds_nothing(staging: ProgramResult) -> None:
    assert not staging.by_type("gcp:artifactregistry/repository:Repository")
    assert not staging.by_type("docker:index/image:Image")
    assert container(staging)["image"] == staging.outputs["image"]


# -------------------------------------------------------------------------------- graph and outputs
def test_outputs_follow_the_contract(prod: ProgramResult) -> None:
    svc = prod.one(SERVICE)
    out = prod.outputs
    assert out["target"] == "cloudrun"
    assert out["url"] == svc.outputs["uri"]
    assert out["revision"] == svc.outputs["latestReadyRevision"]
    assert out["service_account"] == prod.one("gcp:serviceaccount/account:Account").outputs["email"]
    assert (out["project"], out["region"], out["service_name"]) == (
        "items-api-prod",
        "europe-west1",
        "items-api-prod-cloudrun",
    )
    assert (out["health_path"], out["ready_path"]) == ("/health", "/ready")
    assert not prod.secret_outputs


def test_children_carry_the_component_name_and_labels(prod: ProgramResult) -> None:
    comp = prod.one(cr.COMPONENT_TYPE)
    children = [r for r in prod.resources if r.parent == comp.urn]
    assert len(children) == 12  # 8 + one email channel and three alert policies
    for r in children:
        assert r.name.startswith(f"{COMPONENT}-"), r.name
    labels = prod.one(SERVICE).inputs["labels"]
    assert labels == {"app": "items-api", "stack": "prod-cloudrun", "managed-by": "pulumi"}
    assert prod.one(SERVICE).inputs["deletionProtection"] is True


def test_component_outputs_resolve_under_runtime_test() -> None:
    cfg = config_mod.load_stack_file(STAGING)
    assert isinstance(cfg, CloudRunConfig)
    pulumi.runtime.set_mocks(
        Mocks(gcp_project="items-api-staging"), project="fastapi-deploy", stack="unit", preview=False
    )

    @pulumi.runtime.test
    def check() -> pulumi.Output[None]:
        svc = cr.CloudRunService("unit", _direct_args(cfg))

        def verify(values: list[Any]) -> None:
            url, revision, email, name = values
            assert url.startswith("https://unit-")
            assert url.endswith(".a.run.app")
            assert revision.startswith("projects/items-api-staging/locations/europe-west1/revisions/unit-")
            assert email == "unit-run@items-api-staging.iam.gserviceaccount.com"
            assert name == "unit"

        assert svc.invoker is None
        return pulumi.Output.all(svc.url, svc.revision, svc.service_account, svc.service_name).apply(verify)

    check()


# ---------------------------------------------------------------------------------------- bad config
BAD = [
    ({"cloudrun": {"cpu": 3}}, ConfigError, "app.cloudrun.cpu"),
    ({"cloudrun": {"memory": "8Gi"}}, ConfigError, "memory"),
    ({"cloudrun": {"concurrency": 0}}, ConfigError, "app.cloudrun.concurrency"),
    ({"cloudrun": {"ingress": "public"}}, ConfigError, "app.cloudrun.ingress"),
    ({"cloudrun": {"cloud_sql_instance": "items-db"}}, ConfigError, "app.cloudrun.cloud_sql_instance"),
    ({"cloudrun": {"cpu": 0.5, "memory": 512}}, ConfigError, "concurrency"),
    ({"secrets": {"DATABASE_URL": "ssm:/prod/db"}}, ConfigError, "secrets.DATABASE_URL"),
    ({"secrets": {"DATABASE_URL": "gcp:projects/x/secrets"}}, ConfigError, "DATABASE_URL"),
    ({"health": {"readiness_path": "ready"}}, ConfigError, "app.health.readiness_path"),
    ({"request_timeout_s": 7200}, ConfigError, "request_timeout_s"),
    ({"scaling": {"min": 5, "max": 2}}, ConfigError, "app.scaling"),
    ({"scaling": {"min": 1, "max": 300}}, TuningError, "app.scaling.max"),
]


@pytest.mark.parametrize(("changes", "error", "field"), BAD, ids=[f"{i}-{b[2]}" for i, b in enumerate(BAD)])
def test_invalid_config_names_the_field_and_registers_nothing(
    changes: dict[str, Any], error: type[Exception], field: str
) -> None:
    mocks = Mocks()
    with pytest.raises(error) as exc:
        run_program("prod-cloudrun", raw_config(PROD, **changes), mocks=mocks)
    assert field in str(exc.value)
    assert mocks.monitor.recorded == []  # type: ignore[attr-defined]


def test_missing_project_is_named() -> None:
    raw = raw_config(PROD)
    del raw["gcp:project"]
    with pytest.raises(ConfigError, match=r"cloudrun\.project"):
        run_program("prod-cloudrun", raw, mocks=Mocks())


def test_service_account_ids_of_long_names_do_not_collide() -> None:
    """Account ids are 6-30 chars; plain truncation gave two stacks in one project sharing the first 25
    characters the same account (the second `pulumi up` fails with "already exists", or both services
    share one identity and its secret grants)."""
    import re

    a = cr.service_account_id("items-api-staging-cloudrun-eu")
    b = cr.service_account_id("items-api-staging-cloudrun-us")
    assert a != b
    for account in (a, b, cr.service_account_id("ab"), cr.service_account_id("items-api-prod-cloudrun")):
        assert re.fullmatch(r"[a-z][-a-z0-9]{4,28}[a-z0-9]", account), account
    # Short names are unchanged.
    assert cr.service_account_id("items-api-prod-cloudrun") == "items-api-prod-cloudrun-run"


def test_revisions_migrate_on_start_within_the_startup_probe_budget(prod: ProgramResult) -> None:
    env = env_of(prod)
    assert env["MIGRATE_ON_START"]["value"] == "true"
    probe = container(prod)["startupProbe"]
    assert int(env["MIGRATE_TIMEOUT"]["value"]) < probe["periodSeconds"] * probe["failureThreshold"]


def test_manual_migrations_inject_nothing() -> None:
    env = env_of(run(database={"migrate": "manual"}))
    assert "MIGRATE_ON_START" not in env
    assert "MIGRATE_TIMEOUT" not in env


# ------------------------------------------------------------------------------------------------ alerts
POLICY = "gcp:monitoring/alertPolicy:AlertPolicy"
CHANNEL = "gcp:monitoring/notificationChannel:NotificationChannel"


def test_alert_policies_on_5xx_latency_and_max_instances_notify_the_email_channel(
    prod: ProgramResult,
) -> None:
    (channel,) = prod.by_type(CHANNEL)
    assert channel.inputs["type"] == "email"
    assert channel.inputs["labels"] == {"email_address": "oncall@example.com"}
    policies = {p.name.rsplit("-", 1)[-1]: p.inputs for p in prod.by_type(POLICY)}
    assert set(policies) == {"5xx", "latency", "instances"}
    for p in policies.values():
        assert p["notificationChannels"] == [channel.outputs["name"]]
        (cond,) = p["conditions"]
        assert (
            'resource.labels.service_name = "items-api-prod-cloudrun"' in cond["conditionThreshold"]["filter"]
        )
        assert set(p["alertStrategy"]["notificationPrompts"]) == {"OPENED", "CLOSED"}
    five = policies["5xx"]["conditions"][0]["conditionThreshold"]
    assert 'response_code_class = "5xx"' in five["filter"]
    assert "response_code_class" not in five["denominatorFilter"]
    assert five["thresholdValue"] == 0.05
    lat = policies["latency"]["conditions"][0]["conditionThreshold"]
    assert lat["aggregations"][0]["perSeriesAligner"] == "ALIGN_PERCENTILE_95"
    assert lat["thresholdValue"] == 1000
    inst = policies["instances"]["conditions"][0]["conditionThreshold"]
    max_instances = prod.one(SERVICE).inputs["template"]["scaling"]["maxInstanceCount"]
    assert max_instances - 1 < inst["thresholdValue"] < max_instances


def test_existing_channels_are_used_without_creating_email_channels() -> None:
    name = "projects/items-api-prod/notificationChannels/42"
    result = run(alerts={"emails": [], "gcp_notification_channels": [name]})
    assert result.by_type(CHANNEL) == []
    for p in result.by_type(POLICY):
        assert p.inputs["notificationChannels"] == [name]


def test_alert_policies_and_channels_parse_as_the_monitoring_api_types(prod: ProgramResult) -> None:
    """The rendered inputs are read by Cloud Monitoring's own v3 types (unknown fields raise), like the
    Cloud Run service is read by run_v2."""
    from google.cloud import monitoring_v3

    policies = prod.by_type(POLICY)
    channels = prod.by_type(CHANNEL)
    assert len(policies) == 3
    assert len(channels) == 1
    for p in policies:
        body = {k: v for k, v in unwrap(p.inputs).items() if k != "project"}
        policy = monitoring_v3.AlertPolicy.from_json(json.dumps(body))
        assert policy.combiner == monitoring_v3.AlertPolicy.ConditionCombinerType.OR
        (cond,) = policy.conditions
        assert cond.condition_threshold.comparison == monitoring_v3.ComparisonType.COMPARISON_GT
        assert cond.condition_threshold.duration.total_seconds() > 0
    for c in channels:
        body = {k: v for k, v in unwrap(c.inputs).items() if k != "project"}
        assert monitoring_v3.NotificationChannel.from_json(json.dumps(body)).type_ == "email"
    broken = {k: v for k, v in unwrap(policies[0].inputs).items() if k != "project"}
    broken["notificationChanels"] = broken.pop("notificationChannels")
    with pytest.raises(ParseError):
        monitoring_v3.AlertPolicy.from_json(json.dumps(broken))
