"""A project's own target, named in its pyproject.toml (``[tool.fastapi-deploy] targets``), works from the
`infra` CLI and the program.

The `infra` commands read the stack file (or the outputs file) before any program runs, so a target the
project's program registers itself is unknown to them. These tests run the real `infra` console script
as a subprocess in a project directory (tmp_path) whose pyproject.toml names ``nomad_ext``, a module of that
directory re-exporting tests/infra/nomad_target.py's TARGET: `infra plan`, `doctor`, `verify` handle the
target, the program under mocks finds it before it parses the stack config, the release gate's provider
process finds it, and a module that cannot be loaded is one line naming the key.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from fastapi_deploy import config as config_mod
from fastapi_deploy import mocks, registry, service_env
from tests.infra import nomad_target
from tests.infra._ops_fakes import HttpFake
from tests.infra.test_fifth_target import DIGEST, nomad_app

ROOT = Path(__file__).resolve().parents[2]
INFRA = Path(sys.executable).with_name("infra")
KEY = "[tool.fastapi-deploy] targets"


def write_project(
    folder: Path, app: dict[str, Any], *, targets: str | None = '["nomad_ext"]', stack: str = "prod-nomad"
) -> Path:
    """A Pulumi project whose program is this repository's infra/, its stack file beside Pulumi.yaml, and a
    pyproject.toml naming its target modules (``targets``: the TOML value, None: no key)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "Pulumi.yaml").write_text(
        yaml.safe_dump({"name": "shop", "runtime": "python", "main": str(ROOT / "infra")})
    )
    pyproject = '[tool.fastapi-deploy]\nservice-settings = "app.settings"\n'
    if targets is not None:
        pyproject += f"targets = {targets}\n"
    (folder / "pyproject.toml").write_text(pyproject)
    (folder / "nomad_ext.py").write_text(
        '"""The project\'s own target (here: the test tree\'s nomad)."""\n'
        "from tests.infra.nomad_target import TARGET as TARGET\n"
    )
    path = folder / f"Pulumi.{stack}.yaml"
    path.write_text(yaml.safe_dump({"config": {"fastapi-deploy:app": app}}))
    return path


def infra(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The installed `infra` console script, run in ``cwd`` (the project directory is not on its sys.path:
    only [tool.fastapi-deploy] targets can make nomad_ext importable; PYTHONPATH makes `tests` so)."""
    assert INFRA.is_file(), f"no infra console script next to {sys.executable}"
    full = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run(
        [str(INFRA), *args], cwd=cwd, env=full, capture_output=True, text=True, timeout=300, check=False
    )


@pytest.fixture
def cleanup() -> Iterator[None]:
    """Undo what loading a project's targets in this process does (registry, sys.path, the module)."""
    path = list(sys.path)
    try:
        yield
    finally:
        registry.unregister("nomad")
        sys.path[:] = path
        for name in ("nomad_ext", "no_target_ext"):
            sys.modules.pop(name, None)
        service_env.service_model.cache_clear()


def test_infra_plan_plans_a_target_named_in_pyproject(tmp_path: Path) -> None:
    write_project(tmp_path, nomad_app())
    proc = infra(tmp_path, "plan", "--stack", "prod-nomad", "--format", "json")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    doc = json.loads(proc.stdout)
    assert doc["target"] == "nomad"
    assert {nomad_target.COMPONENT_TYPE, nomad_target.JOB_TYPE} <= {r["type"] for r in doc["resources"]}
    assert doc["outputs"]["job_id"] == "items-api-prod-nomad"
    assert doc["tuning"]["workers"] == 2

    listed = infra(tmp_path, "plan", "--list")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout)["include"] == [
        {"stack": "prod-nomad", "target": "nomad", "cloud": "none", "region": ""}
    ]


def test_without_the_key_the_cli_does_not_know_the_target(tmp_path: Path) -> None:
    write_project(tmp_path, nomad_app(), targets=None)
    proc = infra(tmp_path, "plan", "--stack", "prod-nomad")
    assert proc.returncode == 2
    assert "app.target: 'nomad' is unknown" in proc.stderr


def test_infra_doctor_runs_the_targets_check(tmp_path: Path) -> None:
    with HttpFake(routes={"/v1/status/leader": (200, '"10.0.0.5:4647"')}).serve() as api:
        write_project(tmp_path, nomad_app(address=api.url))
        # No Google credentials here (and no metadata server to ask): the secret checks cannot run, which
        # is the one blocking finding; everything else, the nomad check included, runs.
        no_google = {"NO_GCE_CHECK": "true", "CLOUDSDK_CONFIG": str(tmp_path / "gcloud")}
        env = {k: v for k, v in os.environ.items() if k != "GOOGLE_APPLICATION_CREDENTIALS"}
        proc = subprocess.run(
            [str(INFRA), "doctor", "--stack", "prod-nomad", "--json"],
            cwd=tmp_path,
            env={**env, "PYTHONPATH": str(ROOT), **no_google},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    assert proc.returncode == 1, proc.stderr + proc.stdout
    findings = json.loads(proc.stdout)
    assert api.hits == ["/v1/status/leader"]
    leader = [f for f in findings if f["check"] == "nomad-leader"]
    assert [(f["severity"], f["what"]) for f in leader] == [("ok", "Nomad leader 10.0.0.5:4647")]
    assert {f["check"] for f in findings if f["severity"] == "blocking"} == {"gcp-credentials"}


def test_infra_verify_and_status_accept_its_outputs(tmp_path: Path) -> None:
    routes = {
        "/v1/job/items-api-prod-nomad/deployment": (
            200,
            json.dumps({"ID": "d-1", "Status": "successful", "StatusDescription": "Deployment completed"}),
        ),
        "/health": (200, '{"status":"ok"}'),
        "/ready": (200, '{"status":"ok"}'),
    }
    with HttpFake(routes=routes).serve() as api:
        write_project(tmp_path, nomad_app(address=api.url))
        outputs = {
            "target": "nomad",
            "url": api.url,
            "image": DIGEST,
            "health_path": "/health",
            "ready_path": "/ready",
            "nomad_address": api.url,
            "job_id": "items-api-prod-nomad",
        }
        (tmp_path / "outputs.json").write_text(json.dumps(outputs))
        proc = infra(tmp_path, "verify", "--outputs", "outputs.json", "--timeout", "5", "--interval", "0.05")
        assert proc.returncode == 0, proc.stderr + proc.stdout
        assert "deployment d-1 successful: Deployment completed" in proc.stdout
        assert api.hits == ["/v1/job/items-api-prod-nomad/deployment", "/health", "/ready"]

    # nomad declares no operations module: status says so (not "output target is 'nomad'; expected ...").
    status = infra(tmp_path, "status", "--outputs", "outputs.json")
    assert status.returncode == 2
    assert "target 'nomad' offers no status/logs/rollback" in status.stderr


@pytest.mark.parametrize(
    ("targets", "files", "expected"),
    [
        ('["no_such_module"]', {}, "cannot import 'no_such_module' (ModuleNotFoundError: No module named"),
        (
            '["broken_ext"]',
            {"broken_ext.py": "raise RuntimeError('the cluster address is\\nnot set')\n"},
            "cannot import 'broken_ext' (RuntimeError: the cluster address is not set)",
        ),
        ('["no_target_ext"]', {"no_target_ext.py": "X = 1\n"}, "module 'no_target_ext' has no TARGET"),
        (
            '["ecs_again"]',
            {
                "ecs_again.py": "import dataclasses\nfrom fastapi_deploy.ecs.target import TARGET as ECS\n"
                "TARGET = dataclasses.replace(ECS)  # another target keyed ecs\n"
            },
            "ecs_again.TARGET: target 'ecs' is already registered",
        ),
        ('"nomad_ext"', {}, "expected a list of module names"),
    ],
)
def test_a_module_that_cannot_be_loaded_is_one_line_naming_the_key(
    tmp_path: Path, targets: str, files: dict[str, str], expected: str
) -> None:
    write_project(tmp_path, nomad_app(), targets=targets)
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    where = f"{KEY} in {tmp_path.resolve() / 'pyproject.toml'}: "
    for command in (["plan", "--stack", "prod-nomad"], ["doctor", "--stack", "prod-nomad"], ["verify"]):
        proc = infra(tmp_path, *command)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.startswith(f"infra {command[0]}: {where}")
        assert expected in proc.stderr
        assert proc.stderr.count("\n") == 1, proc.stderr  # one line, no traceback
        assert "Traceback" not in proc.stderr


def test_the_program_loads_them_before_it_parses_the_stack_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cleanup: None
) -> None:
    """`pulumi up` runs the program with no `infra` in front: config.load() registers the project's
    targets itself."""
    path = write_project(tmp_path, nomad_app())
    monkeypatch.chdir(tmp_path)
    assert registry.find("nomad") is None
    result = mocks.run_stack_file(path)
    assert result.outputs["job_id"] == "items-api-prod-nomad"
    assert [r.name for r in result.resources if r.type == nomad_target.JOB_TYPE] == [
        "items-api-prod-nomad-job"
    ]

    (tmp_path / "pyproject.toml").write_text('[tool.fastapi-deploy]\ntargets = ["no_target_ext"]\n')
    (tmp_path / "no_target_ext.py").write_text("X = 1\n")
    with pytest.raises(config_mod.ConfigError, match=r"\[tool.fastapi-deploy\] targets in .*has no TARGET"):
        mocks.run_stack_file(path)


def test_the_release_gate_provider_process_finds_it_through_the_pyproject(tmp_path: Path) -> None:
    """The engine's dynamic provider process knows only the built-in targets; started in the project, it
    finds the project's target the way the CLI does, even from a gate that recorded no gate_module."""
    write_project(tmp_path, nomad_app())
    props = {
        "target": "nomad",
        "stack": "prod-nomad",
        "stack_resource": "api-job",
        "timeout_s": 60,
        "poll_interval_s": 1,
        "region": "fra1",
        "release": "d-2",
        "nomad_address": "http://127.0.0.1:4646",
        "job_id": "",
    }
    code = (
        "import json, sys\n"
        "from fastapi_deploy import registry\n"
        "from fastapi_deploy.release_gate import ReleaseGateProvider\n"
        "assert 'nomad' not in registry.names()\n"
        "failures = ReleaseGateProvider().check({}, json.loads(sys.stdin.read())).failures\n"
        "print(json.dumps([[f.property, f.reason] for f in failures]))\n"
    )

    def check_in(cwd: Path, given: dict[str, Any]) -> Any:
        proc = subprocess.run(
            [sys.executable, "-c", code],
            input=json.dumps(given),
            capture_output=True,
            text=True,
            cwd=cwd,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    # nomad's own check runs (it knows job_id is required), so its platform was found.
    assert check_in(tmp_path, props) == [["job_id", "job_id is required for a nomad release gate"]]
    assert check_in(tmp_path, {**props, "job_id": "api"}) == []
    # Outside the project it is unknown (and no gate_module was recorded to fall back on).
    assert check_in(tmp_path.parent, {**props, "job_id": "api"}) == [
        ["target", "target must be one of ecs, cloudrun, lambda, not 'nomad'"]
    ]
