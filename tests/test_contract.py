"""One contract between the service and the deployer (app/contract.py), used by both and the policy pack."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from app import contract
from app.settings import Settings, environment_problems
from fastapi_deploy.ops import access
from fastapi_deploy.tuning import TuningInput, tune

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("copy", ["app/contract.py", "policy/contract.py"])
def test_the_service_and_the_pack_carry_the_deployers_contract_byte_for_byte(copy: str) -> None:
    """fastapi_deploy/contract.py is the contract. The image has no deployer in it and the standalone pack
    runs without it, so each carries a copy: edit fastapi_deploy/contract.py, then copy it over both."""
    assert (ROOT / copy).read_bytes() == (ROOT / "fastapi_deploy" / "contract.py").read_bytes()


def test_a_standalone_copy_of_the_pack_runs_without_the_project(tmp_path: Path) -> None:
    pack = tmp_path / "pack"
    shutil.copytree(ROOT / "policy", pack, ignore=shutil.ignore_patterns("__pycache__"))
    probe = (
        "import sys; sys.modules['app'] = None; sys.modules['policy'] = None; "
        f"sys.path.insert(0, {str(pack)!r}); import rules; "
        "print(sorted(rules.SECRET_ENV_NAMES), rules.is_reference('ssm:/a/b'), len(rules.RULES))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("['DATABASE_URL', 'JWT_SECRET_KEY', 'SENTRY_DSN'] True")


def test_the_required_settings_are_the_models_required_fields() -> None:
    required = {name.upper() for name, field in Settings.model_fields.items() if field.is_required()}
    assert required == set(contract.REQUIRED_ENV)
    assert set(contract.REQUIRED_OUTSIDE_DEVELOPMENT) <= {n.upper() for n in Settings.model_fields}


@pytest.mark.parametrize("platform", ["ecs", "cloudrun", "lambda", "vps"])
def test_every_env_name_the_tuning_writes_is_a_tuning_name(platform: str) -> None:
    env = tune(TuningInput(platform, 1.0, 2048, 2, 90)).env()  # type: ignore[arg-type]
    assert set(env) <= contract.TUNING_ENV_NAMES


def test_the_stand_ins_pass_the_services_own_checks() -> None:
    problems = environment_problems({"APP_ENV": "production"}, contract.STAND_INS)
    assert problems == []


@pytest.mark.parametrize(
    "pasted",
    [
        "postgresql+asyncpg://admin:Sup3r-s3cret@db.internal:5432/items",
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ",
        "k8Zq3VvX9-pasted-jwt-signing-key-0123456789",
        "ssm:prod/jwt-but-relative",
        "gcp:my db password!",
        "",
    ],
)
def test_a_value_that_is_not_a_reference_is_never_echoed(pasted: str) -> None:
    with pytest.raises(contract.SecretRefSyntaxError) as err:
        contract.parse_secret_ref(pasted)
    message = str(err.value)
    assert f"({len(pasted)} chars)" in message
    secret_part = pasted.split(":", 1)[1] if ":" in pasted[:20] else pasted
    assert not secret_part or secret_part[3:] not in message


def test_mask_shows_scheme_or_three_characters_and_the_length() -> None:
    assert contract.mask("postgresql://u:pw@db/x") == "'postgresql:…' (22 chars)"
    assert contract.mask("s3cr3t-value") == "'s3c…' (12 chars)"


def test_access_errors_are_one_line_without_a_traceback() -> None:
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError
    from google.api_core import exceptions as gexc
    from google.auth import exceptions as aexc

    denied = ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "DescribeServices")
    cases = {
        NoCredentialsError(): "AWS: no usable credentials",
        denied: "AWS: DescribeServices was refused (AccessDeniedException)",
        EndpointConnectionError(
            endpoint_url="https://ecs.us-east-1.amazonaws.com"
        ): "AWS: the API is unreachable",
        aexc.DefaultCredentialsError("none"): "Google Cloud: no Application Default Credentials",
        gexc.PermissionDenied("nope"): "Google Cloud: refused (PermissionDenied",
        gexc.ServiceUnavailable("down"): "Google Cloud: the API is unreachable",
        FileNotFoundError(2, "No such file", "ssh"): "`ssh` is not installed",
        subprocess.TimeoutExpired(["ssh", "host"], 5): "`ssh` did not answer within 5 s",
    }
    for exc, expected in cases.items():
        assert (access.describe(exc) or "").startswith(expected), exc
    # Anything else is a bug and keeps its traceback.
    assert access.describe(KeyError("x")) is None
    assert access.describe(ClientError({"Error": {"Code": "ServiceNotFoundException"}}, "X")) is None
