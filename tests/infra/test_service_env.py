# ruff: noqa: E501 - the case table reads best one case a line
"""The deployer refuses what the service would refuse at start: before any resource is registered.

Each case edits a shipped stack file the way a careless user would, runs the real program under mocks
(as `infra plan` and `pulumi preview` do), and expects one error naming the stack key and the fix, with
zero resources recorded and no secret value in the message.
"""

from __future__ import annotations

import copy
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from fastapi_deploy import config, tuning
from fastapi_deploy.plan import plan_stack
from tests.infra.conftest import ROOT, STACKS, run_raw, stack_config

Edit = Callable[[dict[str, Any]], None]
PASTED_SECRET = "postgresql+asyncpg://admin:Sup3r-s3cret-pw@db.internal:5432/items"


def app(**changes: Any) -> Edit:
    """Edit the fastapi-deploy:app object: None removes a key, anything else replaces it."""

    def edit(raw: dict[str, Any]) -> None:
        obj = raw["fastapi-deploy:app"]
        for key, value in changes.items():
            if value is None:
                obj.pop(key, None)
            else:
                obj[key] = value

    return edit


def edited_map(section: str) -> Callable[..., Edit]:
    """An editor of ``app.<section>`` of a stack: None removes a name, a string sets it."""

    def for_stack(stack: str, **changes: str | None) -> Edit:
        current = dict(stack_config(stack)["fastapi-deploy:app"].get(section) or {})
        for key, value in changes.items():
            if value is None:
                current.pop(key, None)
            else:
                current[key] = value
        return app(**{section: current})

    return for_stack


secrets = edited_map("secrets")
env = edited_map("env")


def both(*edits: Edit) -> Edit:
    def edit(raw: dict[str, Any]) -> None:
        for one in edits:
            one(raw)

    return edit


def provider(**changes: str | None) -> Edit:
    def edit(raw: dict[str, Any]) -> None:
        for key, value in changes.items():
            if value is None:
                raw.pop(key, None)
            else:
                raw[key] = value

    return edit


def target_section(section: str, **changes: Any) -> Edit:
    def edit(raw: dict[str, Any]) -> None:
        raw["fastapi-deploy:app"].setdefault(section, {}).update(changes)

    return edit


# (stack, edit, fragments the message must contain: the key and the fix)
CASES: list[tuple[str, Edit, tuple[str, ...]]] = [
    # --- required settings missing ------------------------------------------------------------------
    ("prod-ecs", secrets("prod-ecs", DATABASE_URL=None), ("app.secrets.DATABASE_URL:", "refuses to start", "ssm:/production/items-api/database-url")),
    ("prod-ecs", secrets("prod-ecs", REDIS_URL=None), ("app.secrets.REDIS_URL:", "refuses to start")),
    ("prod-ecs", secrets("prod-ecs", JWT_SECRET_KEY=None), ("app.secrets.JWT_SECRET_KEY:", "refuses to start")),
    ("prod-ecs", app(secrets=None), ("app.secrets.DATABASE_URL:", "app.secrets.REDIS_URL:", "app.secrets.JWT_SECRET_KEY:")),
    ("prod-cloudrun", secrets("prod-cloudrun", DATABASE_URL=None), ("app.secrets.DATABASE_URL:", "gcp:items-api-database-url")),
    ("prod-cloudrun", secrets("prod-cloudrun", JWT_SECRET_KEY=None), ("app.secrets.JWT_SECRET_KEY:", "refuses to start")),
    ("prod-lambda", secrets("prod-lambda", REDIS_URL=None), ("app.secrets.REDIS_URL:", "refuses to start")),
    ("prod-lambda", app(secrets=None), ("app.secrets.DATABASE_URL:", "app.secrets.JWT_SECRET_KEY:")),
    ("prod-vps", secrets("prod-vps", DATABASE_URL=None), ("app.secrets.DATABASE_URL:", "refuses to start")),
    ("prod-vps", secrets("prod-vps", JWT_SECRET_KEY=None), ("app.secrets.JWT_SECRET_KEY:",)),
    ("staging-ecs", secrets("staging-ecs", JWT_SECRET_KEY=None), ("app.secrets.JWT_SECRET_KEY:", "refuses to start")),
    # --- a misspelled name ------------------------------------------------------------------------------
    ("prod-ecs", secrets("prod-ecs", JWT_SECRET_KEY=None, JWT_SECRET="ssm:/prod/items-api/jwt"), ("app.secrets.JWT_SECRET:", "did you mean JWT_SECRET_KEY?")),
    ("prod-cloudrun", secrets("prod-cloudrun", SENTRY_DSN=None, SENTRY_DNS="gcp:sentry"), ("app.secrets.SENTRY_DNS:", "did you mean SENTRY_DSN?")),
    ("prod-lambda", env("prod-lambda", LOGLEVEL="info"), ("app.env.LOGLEVEL:", "did you mean LOG_LEVEL?")),
    ("prod-vps", env("prod-vps", LOGIN_RATE_LIMITS="5/minute"), ("app.env.LOGIN_RATE_LIMITS:", "did you mean LOGIN_RATE_LIMIT?")),
    ("prod-ecs", secrets("prod-ecs", DATABASE_URL=None, DATABASE_URI="ssm:/prod/db"), ("app.secrets.DATABASE_URI:", "did you mean DATABASE_URL?", "app.secrets.DATABASE_URL:")),
    # --- literal values the service's validators refuse -------------------------------------------------
    ("prod-ecs", env("prod-ecs", LOG_LEVEL="verbose"), ("app.env.LOG_LEVEL:", "LOG_LEVEL=info")),
    ("prod-ecs", env("prod-ecs", LOGIN_RATE_LIMIT="5 per minute"), ("app.env.LOGIN_RATE_LIMIT:", "LOGIN_RATE_LIMIT=5/minute")),
    ("prod-cloudrun", env("prod-cloudrun", LOG_LEVEL="TRACE"), ("app.env.LOG_LEVEL:",)),
    ("prod-cloudrun", env("prod-cloudrun", SENTRY_TRACES_SAMPLE_RATE="1.5"), ("app.env.SENTRY_TRACES_SAMPLE_RATE:", "less than or equal to 1")),
    ("prod-lambda", env("prod-lambda", LOGIN_RATE_LIMIT="0/minute"), ("app.env.LOGIN_RATE_LIMIT:",)),
    ("prod-lambda", env("prod-lambda", JWT_EXPIRE_MINUTES="forever"), ("app.env.JWT_EXPIRE_MINUTES:", "valid integer")),
    ("prod-vps", env("prod-vps", JWT_ALGORITHM="none"), ("app.env.JWT_ALGORITHM:", "HS256")),
    ("prod-vps", both(secrets("prod-vps", REDIS_URL=None), env("prod-vps", REDIS_URL="redis://cache:99999/0")), ("app.env.REDIS_URL:", "invalid port")),
    ("prod-vps", env("prod-vps", CORS_ALLOW_HEADERS="*"), ("app.env.CORS_ALLOW_HEADERS:", "refused in production")),
    ("staging-cloudrun", env("staging-cloudrun", METRICS_ENABLED="maybe"), ("app.env.METRICS_ENABLED:", "valid boolean")),
    ("staging-ecs", env("staging-ecs", REDIS_SOCKET_TIMEOUT="60"), ("app.env.REDIS_SOCKET_TIMEOUT:", "less than or equal to 10")),
    ("prod-ecs", env("prod-ecs", FASTAPI_TELEMETRY="yes"), ("app.env.FASTAPI_TELEMETRY:", "'auto', 'on' or 'off'")),
    ("prod-vps", env("prod-vps", FASTAPI_TELEMETRI="off"), ("app.env.FASTAPI_TELEMETRI:", "did you mean FASTAPI_TELEMETRY?")),
    # --- secrets pasted where a reference belongs: refused, never echoed -------------------------------
    ("prod-ecs", secrets("prod-ecs", DATABASE_URL=PASTED_SECRET), ("app.secrets.DATABASE_URL:", f"({len(PASTED_SECRET)} chars)")),
    ("prod-vps", secrets("prod-vps", JWT_SECRET_KEY="k8Zq3-pasted-jwt-signing-key-value-0123456789"), ("app.secrets.JWT_SECRET_KEY:", "chars)")),
    ("prod-ecs", secrets("prod-ecs", JWT_SECRET_KEY="hunter2supersecretvaluexyz:hunter2again"), ("app.secrets.JWT_SECRET_KEY: 'hun…' (39 chars)",)),
    ("prod-vps", both(secrets("prod-vps", REDIS_URL=None), env("prod-vps", REDIS_URL="redis://:hunter2pw@cache:6379/0")), ("app.env.REDIS_URL: the URL carries a password", "app.secrets.REDIS_URL")),
    # --- names the deployer owns, wherever they are put ------------------------------------------------
    ("prod-ecs", secrets("prod-ecs", APP_ENV="ssm:/prod/x/appenv"), ("APP_ENV is computed by the deployer", "app.environment")),
    ("prod-cloudrun", secrets("prod-cloudrun", PORT="gcp:port"), ("PORT is computed by the deployer",)),
    ("prod-ecs", env("prod-ecs", CORS_ORIGIN="https://app.example.com"), ("app.env.CORS_ORIGIN:", "did you mean CORS_ORIGINS?", "set app.cors_origins instead")),
    # --- target limits that used to surface as a crash under the program -----------------------------
    ("prod-lambda", env("prod-lambda", AWS_REGION="us-east-1"), ("app.env: ['AWS_REGION'] are reserved by the Lambda runtime",)),
    ("prod-lambda", env("prod-lambda", BIG="x" * 5000), ("app.env: the function's environment is", "bytes; Lambda allows 4096")),
    ("prod-lambda", env("prod-lambda", FEATURE_FLAG="ssm:feature-flag"), ("app.env.FEATURE_FLAG: looks like a secret reference", "app.secrets.FEATURE_FLAG")),
    ("prod-vps", both(provider(**{"gcp:project": None}), secrets("prod-vps", JWT_SECRET_KEY="gcp:jwt")), ("app.secrets.JWT_SECRET_KEY: a gcp: reference on a VPS needs its project",)),
    ("prod-vps", provider(**{"aws:region": None}), ("aws:region: required when a vps stack reads AWS",)),
    # --- notification targets the platform cannot use ----------------------------------------------
    ("prod-cloudrun", app(alerts={"webhook_url": "https://hooks.example.com/x"}), ("app.alerts.webhook_url: Cloud Run alert policies notify Cloud Monitoring channels only",)),
    ("prod-ecs", app(alerts={"gcp_notification_channels": ["projects/items-api-prod/notificationChannels/42"]}), ("app.alerts.gcp_notification_channels: only Cloud Run uses them",)),
    ("prod-vps", app(alerts={"emails": ["oncall@example.com"]}), ("app.alerts: a VPS has no managed alarms",)),
    ("prod-ecs", app(alerts={"emails": ["not-an-email"]}), ("app.alerts.emails:",)),
    # --- provider settings --------------------------------------------------------------------------
    ("prod-ecs", provider(**{"aws:region": None}), ("aws:region: required for target ecs", "pulumi config set aws:region")),
    ("prod-lambda", provider(**{"aws:region": None}), ("aws:region: required for target lambda",)),
    ("prod-ecs", provider(**{"aws:region": "us-east-9"}), ("aws:region: 'us-east-9' is not an AWS region",)),
    ("prod-lambda", provider(**{"aws:region": "eu-west-x"}), ("aws:region: 'eu-west-x' is not an AWS region",)),
    ("prod-cloudrun", target_section("cloudrun", region="europe-west99"), ("app.cloudrun.region: 'europe-west99' is not a Cloud Run region", "cloud.google.com/run/docs/locations")),
    # --- the timeout chain --------------------------------------------------------------------------
    ("prod-ecs", app(request_timeout_s=116), ("app.request_timeout_s: 116 s is above the maximum of 115 s on ECS",)),
    ("prod-cloudrun", app(request_timeout_s=3601), ("app.request_timeout_s:", "3600")),
    ("prod-lambda", app(request_timeout_s=31), ("app.request_timeout_s: 31 exceeds the API Gateway HTTP API limit of 30 s",)),
]  # fmt: skip


@pytest.mark.parametrize(("stack", "edit", "fragments"), CASES, ids=[f"{s}-{f[0][:50]}" for s, _, f in CASES])
def test_the_plan_refuses_what_the_service_would_refuse(
    stack: str, edit: Edit, fragments: tuple[str, ...]
) -> None:
    raw = stack_config(stack)
    edit(raw)
    mocks, error, _ = run_raw(stack, raw)
    assert error is not None, "the program accepted a config the service refuses"
    message = str(error)
    for fragment in fragments:
        assert fragment in message
    assert mocks.monitor.recorded == [], "nothing may be registered before the config is known good"  # type: ignore[attr-defined]
    for leaked in ("Sup3r-s3cret-pw", "k8Zq3-pasted", "hunter2"):
        assert leaked not in message


def test_the_cases_cover_every_target() -> None:
    targets = {stack_config(stack)["fastapi-deploy:app"]["target"] for stack, _, _ in CASES}
    assert targets == {"ecs", "cloudrun", "lambda", "vps"}
    assert len(CASES) >= 30


@pytest.mark.parametrize("stack", sorted(p.name.removeprefix("Pulumi.")[:-5] for p in STACKS.glob("*.yaml")))
def test_the_shipped_stacks_pass_the_services_checks(stack: str) -> None:
    from fastapi_deploy import service_env

    cfg = config.load_stack_file(STACKS / f"Pulumi.{stack}.yaml")
    assert service_env.problems(cfg, tuning.for_platform(cfg)) == []


def test_a_requests_timeout_above_the_alb_default_raises_the_whole_chain() -> None:
    """61-115 s used to be accepted while the ALB still cut requests at 60 s."""
    raw = stack_config("prod-ecs")
    raw["fastapi-deploy:app"]["request_timeout_s"] = 90
    _, error, result = run_raw("prod-ecs", raw)
    assert error is None
    assert result is not None
    (alb,) = result.by_type("aws:lb/loadBalancer:LoadBalancer")
    assert alb.inputs["idleTimeout"] == 95
    (tg,) = result.by_type("aws:lb/targetGroup:TargetGroup")
    assert int(tg.inputs["deregistrationDelay"]) == 95
    assert result.outputs["tuning"]["GUNICORN_KEEPALIVE"] == "110"


@pytest.mark.parametrize("name", ["READ_DATABASE_URL", "REDIS_URL_2", "LOG_LEVEL_SQL", "SENTRY_DSN_STAGING"])
def test_a_variable_that_extends_a_known_name_is_not_a_typo(name: str) -> None:
    raw = stack_config("prod-ecs")
    raw["fastapi-deploy:app"]["secrets"][name] = "ssm:/prod/items-api/own-variable"
    _, error, _ = run_raw("prod-ecs", raw)
    assert error is None


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (
            "config:\n  fastapi-deploy:app:\n    secrets:\n      JWT_SECRET_KEY: hunter2pw: x\n",
            "line 4, column",
        ),
        ('config:\n  aws:region: "hunter2pw\n', "not valid YAML"),
        ("- hunter2pw\n- b\n", "expected a mapping with a `config:` key"),
    ],
)
def test_a_broken_stack_file_is_one_line_that_does_not_quote_it(
    tmp_path: Path, text: str, fragment: str
) -> None:
    path = tmp_path / "Pulumi.broken.yaml"
    path.write_text(text)
    with pytest.raises(config.ConfigError) as err:
        config.load_stack_file(path)
    assert fragment in str(err.value)
    assert "hunter2pw" not in str(err.value)


def test_an_unquoted_yaml_number_says_to_quote_it() -> None:
    raw = stack_config("prod-ecs")
    raw["fastapi-deploy:app"]["env"]["SENTRY_TRACES_SAMPLE_RATE"] = 0.1
    _, error, _ = run_raw("prod-ecs", raw)
    assert "app.env.SENTRY_TRACES_SAMPLE_RATE: must be a string: quote it" in str(error)


def write_stack(tmp_path: Path, stack: str, edit: Edit) -> Path:
    raw = stack_config(stack)
    edit(raw)
    path = tmp_path / f"Pulumi.{stack}.yaml"
    path.write_text(yaml.safe_dump({"config": raw}))
    return path


def test_infra_plan_reports_it_as_invalid_config(tmp_path: Path) -> None:
    plan = plan_stack(write_stack(tmp_path, "prod-ecs", env("prod-ecs", LOG_LEVEL="verbose")))
    assert plan.exit_code == 2
    assert plan.error is not None
    assert "app.env.LOG_LEVEL" in plan.error
    assert plan.resources == []


def test_doctor_reports_the_same_problems(tmp_path: Path) -> None:
    from fastapi_deploy.doctor import check_service_env

    path = write_stack(tmp_path, "prod-ecs", secrets("prod-ecs", JWT_SECRET_KEY=None))
    findings = check_service_env(config.load_stack_file(path), "prod-ecs")
    assert [(f.severity.value, f.where) for f in findings] == [("blocking", "app.secrets.JWT_SECRET_KEY")]


# ------------------------------------------------------------------------------ under the real CLI
#: What `pulumi-language-python-exec` (the Python language host) does with a program: read the config from
#: PULUMI_CONFIG, run the program directory with runpy, print a RunError's message alone and a traceback
#: for any other exception, exit 1. The engine's monitor is the recording mock (fastapi_deploy.mocks.run_program).
LANGUAGE_HOST = textwrap.dedent(
    """
    import json, logging, os, sys, traceback
    import pulumi
    from fastapi_deploy.mocks import run_program

    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    flat = json.loads(os.environ["PULUMI_CONFIG"])
    config = {k: json.loads(v) if v[:1] in "{[" else v for k, v in flat.items()}
    ok = False
    try:
        run_program(sys.argv[2], config)
        ok = True
    except pulumi.RunError as e:
        pulumi.log.error(str(e))
    except Exception:
        pulumi.log.error(traceback.format_exc())
    sys.exit(0 if ok else 1)
    """
)


def run_like_the_cli(stack: str, raw: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    import json

    flat = {k: json.dumps(v) if isinstance(v, dict | list) else str(v) for k, v in raw.items()}
    return subprocess.run(
        [sys.executable, "-c", LANGUAGE_HOST, "infra", stack],
        env={"PATH": "/usr/bin:/bin", "PULUMI_CONFIG": json.dumps(flat), "IMAGE_TAG": "test-0123456789ab"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_under_the_cli_a_bad_stack_is_one_clean_message() -> None:
    raw = copy.deepcopy(stack_config("prod-ecs"))
    raw["fastapi-deploy:app"]["env"]["LOG_LEVEL"] = "verbose"
    raw["fastapi-deploy:app"]["secrets"]["DATABASE_URL"] = PASTED_SECRET
    proc = run_like_the_cli("prod-ecs", raw)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("app.secrets.DATABASE_URL:")  # the message alone: no traceback before it
    assert "Sup3r-s3cret-pw" not in proc.stderr + proc.stdout


def test_under_the_cli_a_good_stack_runs() -> None:
    proc = run_like_the_cli("prod-ecs", stack_config("prod-ecs"))
    assert proc.returncode == 0, proc.stderr[-2000:]
