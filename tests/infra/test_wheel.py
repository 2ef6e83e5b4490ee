"""The distribution as a user gets it: the built wheel in a fresh virtualenv with one cloud's extra.

Nothing of this repository is on the path there (no `app/`, no `policy/`, no `infra/` package): the
`infra` CLI must start, and `infra plan` must run a project's program, with `fastapi-deploy[aws]` alone.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DIGEST = "123456789012.dkr.ecr.us-east-1.amazonaws.com/items@sha256:" + "a" * 64


def _uv() -> str:
    uv = shutil.which("uv") or str(ROOT / ".tools" / "bin" / "uv")
    if not Path(uv).exists():
        pytest.skip("uv not found")
    return uv


@pytest.fixture(scope="module")
def aws_only(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtualenv holding the built wheel with the [aws] extra only; returns its bin directory."""
    uv, tmp = _uv(), tmp_path_factory.mktemp("wheel")
    env = {**os.environ, "UV_SYSTEM_CERTS": "1"}
    env.pop("VIRTUAL_ENV", None)
    run = {"env": env, "capture_output": True, "text": True, "timeout": 600, "check": True}
    subprocess.run([uv, "build", "--wheel", "--out-dir", str(tmp / "dist"), str(ROOT)], **run)  # type: ignore[call-overload]
    (wheel,) = (tmp / "dist").glob("fastapi_deploy-*.whl")
    subprocess.run([uv, "venv", "--python", "3.11", str(tmp / "venv")], **run)  # type: ignore[call-overload]
    subprocess.run(  # type: ignore[call-overload]
        [uv, "pip", "install", "--python", str(tmp / "venv" / "bin" / "python"), f"{wheel}[aws]"], **run
    )
    return tmp / "venv" / "bin"


def _infra(bindir: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {"HOME": os.environ.get("HOME", "/root"), "PATH": f"{bindir}:/usr/bin:/bin"}
    return subprocess.run(
        [str(bindir / "infra"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_wheel_holds_only_the_deployer(aws_only: Path) -> None:
    site = next((aws_only.parent / "lib").glob("python*/site-packages"))
    assert (site / "fastapi_deploy" / "py.typed").exists()
    for absent in ("app", "policy", "infra", "pulumi_gcp", "pulumi_docker"):
        assert not (site / absent).exists(), absent


@pytest.mark.parametrize("command", ["plan", "doctor", "verify", "status", "logs", "rollback"])
def test_every_command_starts_with_the_aws_extra_alone(aws_only: Path, command: str, tmp_path: Path) -> None:
    proc = _infra(aws_only, command, "--help", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-1500:]
    assert "Traceback" not in proc.stderr


def test_infra_plan_runs_a_project_from_the_installed_wheel(aws_only: Path, tmp_path: Path) -> None:
    """A project of its own (this repository's program copied, a stack deploying an existing digest):
    resources, tuning, policy and cost come out with nothing of this checkout importable."""
    shutil.copytree(ROOT / "infra", tmp_path / "infra", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "Pulumi.yaml").write_text("name: fastapi-deploy\nruntime: python\nmain: infra/\n")
    doc = yaml.safe_load((ROOT / "stacks" / "Pulumi.prod-ecs.yaml").read_text())
    doc["config"]["fastapi-deploy:app"]["image"] = {"digest": DIGEST}
    (tmp_path / "Pulumi.shop.yaml").write_text(yaml.safe_dump(doc))
    proc = _infra(aws_only, "plan", "--stack", "shop", "--format", "json", cwd=tmp_path)
    assert proc.returncode in (0, 1), proc.stderr[-2000:]  # 1: a blocking policy finding, still a plan
    assert "Traceback" not in proc.stderr
    assert '"aws:ecs/service:Service"' in proc.stdout
    assert '"monthly_total"' in proc.stdout


def test_a_cloud_run_stack_without_the_gcp_extra_names_the_extra(aws_only: Path, tmp_path: Path) -> None:
    shutil.copytree(ROOT / "infra", tmp_path / "infra", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "Pulumi.yaml").write_text("name: fastapi-deploy\nruntime: python\nmain: infra/\n")
    doc = yaml.safe_load((ROOT / "stacks" / "Pulumi.prod-cloudrun.yaml").read_text())
    doc["config"]["fastapi-deploy:app"]["image"] = {
        "digest": "europe-west1-docker.pkg.dev/acme-prod/items/api@sha256:" + "b" * 64
    }
    (tmp_path / "Pulumi.run.yaml").write_text(yaml.safe_dump(doc))
    proc = _infra(aws_only, "plan", "--stack", "run", cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout[-1500:] + proc.stderr[-1500:]
    assert 'pip install "fastapi-deploy[gcp]"' in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
