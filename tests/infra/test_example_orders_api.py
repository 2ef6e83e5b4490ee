"""examples/orders-api: a different FastAPI app (own Dockerfile, port 8080, /healthz and /readyz) deployed to
ECS Fargate and Cloud Run by a short program using the public component API, run under the recording mocks
with its own stack file, the way the Pulumi CLI would run it.

What a user of the components cares about: their port and health paths reach the task definition, the target
group, the container health check and the Cloud Run probes; their image (built from their Dockerfile, pushed
to each cloud's registry) is what runs, by digest; and nothing of this repository's own service leaks in (no
gunicorn command, no DATABASE_URL, only the env they set plus the tuning's).
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from fastapi_deploy import contract
from fastapi_deploy.mocks import ProgramResult, run_program, unwrap
from tests.infra.conftest import TEST_IMAGE_TAG

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "orders-api"
PORT = 8080
OWN_ENV = {"ORDERS_CURRENCY": "EUR"}


def _run(targets: list[str] | None = None) -> ProgramResult:
    raw = yaml.safe_load((EXAMPLE / "Pulumi.dev.yaml").read_text())["config"]
    if targets is not None:
        raw["orders-api:targets"] = targets
    return run_program("dev", raw, main=EXAMPLE / "__main__.py")


@pytest.fixture(scope="module")
def both() -> ProgramResult:
    return _run()


def _no_repo_service(result: ProgramResult) -> None:
    """Nothing of this repository's app/ (its gunicorn command, its factory) in any resource."""
    for res in result.resources:
        dumped = json.dumps(unwrap(res.inputs), default=str)
        for needle in ("create_app", "app.main", "gunicorn_conf", "lambda_handler"):
            assert needle not in dumped, f"{res.type} {res.name} carries {needle!r}"


def _env_is_own_plus_tuning(env: dict[str, str]) -> None:
    assert {k: env[k] for k in OWN_ENV} == OWN_ENV
    assert env["PORT"] == str(PORT)
    # The tuning's variables, plus the switch the components set where nothing can scrape /metrics
    # privately (Cloud Run, Lambda; fastapi_deploy/tuning.py METRICS_PRIVATELY_SCRAPABLE).
    extra = set(env) - set(OWN_ENV) - contract.TUNING_ENV_NAMES - {"METRICS_ENABLED"}
    assert not extra, f"env the example did not ask for: {sorted(extra)}"
    assert not set(env) & contract.CREDENTIAL_ENV_NAMES


# ------------------------------------------------------------------------------------------------ ECS
def _container(result: ProgramResult) -> dict[str, Any]:
    td = result.one("aws:ecs/taskDefinition:TaskDefinition")
    (container,) = json.loads(unwrap(td.inputs["containerDefinitions"]))
    return container


def test_ecs_task_runs_the_examples_image_on_its_port(both: ProgramResult) -> None:
    c = _container(both)
    ecr_image = next(r for r in both.by_type("docker:index/image:Image") if r.name == "orders-ecr")
    assert c["image"] == ecr_image.outputs["repoDigest"]
    assert "@sha256:" in c["image"]
    assert c["portMappings"][0]["containerPort"] == PORT
    # The image's own CMD runs: no command or entry point from this repository's service.
    assert "command" not in c
    assert "entryPoint" not in c
    assert not c.get("secrets")
    _env_is_own_plus_tuning({e["name"]: e["value"] for e in c["environment"]})


def test_ecs_health_checks_use_the_examples_paths(both: ProgramResult) -> None:
    script = _container(both)["healthCheck"]["command"][-1]
    assert "'/healthz'" in script
    assert "'/readyz'" in script
    assert "'/health'" not in script
    assert "'/ready'" not in script
    tg = both.one("aws:lb/targetGroup:TargetGroup")
    assert tg.inputs["port"] == PORT
    assert tg.inputs["healthCheck"]["path"] == "/healthz"
    assert both.outputs["ecs_url"].startswith("http")


# ------------------------------------------------------------------------------------------ Cloud Run
def _run_container(result: ProgramResult) -> dict[str, Any]:
    svc = result.one("gcp:cloudrunv2/service:Service")
    (container,) = unwrap(svc.inputs["template"])["containers"]
    return container


def test_cloud_run_runs_the_examples_image_on_its_port(both: ProgramResult) -> None:
    c = _run_container(both)
    ar_image = next(r for r in both.by_type("docker:index/image:Image") if r.name == "orders-ar")
    assert c["image"] == ar_image.outputs["repoDigest"]
    assert c["image"].startswith("europe-west1-docker.pkg.dev/acme-orders/orders/orders@sha256:")
    assert c["ports"]["containerPort"] == PORT
    assert not c.get("commands")
    assert not c.get("args")
    env = {e["name"]: e["value"] for e in c.get("envs") or [] if "value" in e}
    # Cloud Run sets PORT itself (reserved), from containerPort.
    _env_is_own_plus_tuning({**env, "PORT": str(int(c["ports"]["containerPort"]))})
    assert c["startupProbe"]["httpGet"]["path"] == "/readyz"
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    svc = both.one("gcp:cloudrunv2/service:Service")
    assert (svc.inputs["project"], svc.inputs["location"]) == ("acme-orders", "europe-west1")
    assert both.outputs["cloudrun_url"].startswith("https://")


def test_image_is_built_from_the_examples_dockerfile(both: ProgramResult) -> None:
    images = {r.name: r for r in both.by_type("docker:index/image:Image")}
    assert set(images) == {"orders-ecr", "orders-ar"}
    for img in images.values():
        build = unwrap(img.inputs["build"])
        # Relative to the program's directory, where the CLI runs it.
        assert (EXAMPLE / build["context"] / "Dockerfile").is_file()
        assert build["context"] == "service"
        assert build["platform"] == "linux/amd64"
        assert img.inputs["imageName"].endswith(f":{TEST_IMAGE_TAG}")  # default_tag(): IMAGE_TAG, pinned here
    _no_repo_service(both)


def test_one_target_per_stack_registers_nothing_of_the_other_cloud() -> None:
    ecs_only = _run(["ecs"])
    assert not [r for r in ecs_only.resources if r.type.startswith("gcp:")]
    assert set(ecs_only.outputs) == {"ecs_url"}
    run_only = _run(["cloudrun"])
    assert not [r for r in run_only.resources if r.type.startswith("aws:")]
    assert set(run_only.outputs) == {"cloudrun_url"}


# ------------------------------------------------------------------------------------ the app itself
@pytest.fixture(scope="module")
def client() -> TestClient:
    # Loaded by path under its own name: `app` is this repository's sample service package.
    spec = importlib.util.spec_from_file_location("orders_api_app", EXAMPLE / "service" / "app.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return TestClient(module.app)


def test_example_app_serves_its_health_paths_and_orders(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").status_code == 200
    created = client.post("/orders", json={"item": "coffee", "quantity": 2})
    assert created.status_code == 201
    order = created.json()
    assert client.get(f"/orders/{order['id']}").json() == order
    assert client.get("/orders/999").status_code == 404
    assert client.post("/orders", json={"item": "", "quantity": 0}).status_code == 422
    # The repository's own paths are not this app's.
    assert client.get("/health").status_code == 404


def test_example_dockerfile_listens_on_8080_as_non_root() -> None:
    text = (EXAMPLE / "service" / "Dockerfile").read_text()
    assert "ENV PORT=8080" in text
    assert "EXPOSE 8080" in text
    assert "USER 10001:10001" in text
    assert 'CMD ["python", "app.py"]' in text
    hadolint = shutil.which("hadolint") or shutil.which("hadolint", path=str(ROOT / ".venv" / "bin"))
    if hadolint is None:
        pytest.skip("hadolint not installed")
    proc = subprocess.run(
        [hadolint, str(EXAMPLE / "service" / "Dockerfile")], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
