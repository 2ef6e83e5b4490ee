"""A fifth target, registered from outside the package, goes through plan, doctor, verify and the cost.

tests/infra/nomad_target.py defines `nomad` (config section, component, tuning rule, doctor check, verify
check, cost line, mock answer) and nothing in fastapi_deploy/ names it: the fixture registers it, the
shared modules find everything through fastapi_deploy.registry, and it is unregistered afterwards.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from fastapi_deploy import config as config_mod
from fastapi_deploy import cost, doctor, plan, registry, service_env, verify
from tests.infra import nomad_target
from tests.infra._ops_fakes import HttpFake

ROOT = Path(__file__).resolve().parents[2]
DIGEST = "ghcr.io/acme/items-api@sha256:" + "ab" * 32


@pytest.fixture
def nomad() -> Iterator[registry.Target]:
    registry.register(nomad_target.TARGET)
    try:
        yield nomad_target.TARGET
    finally:
        registry.unregister("nomad")
        # The service's settings model is looked up from the working directory and cached: forget the one
        # found from tmp_path, so later tests find this repository's again.
        service_env.service_model.cache_clear()


class _Version:
    def __init__(self, name: str) -> None:
        self.name = name


class FakeSecretManager:
    """Answers access_secret_version like Secret Manager for the references the stack names."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def access_secret_version(self, request: dict[str, str], timeout: float) -> _Version:
        self.asked.append(request["name"])
        return _Version(request["name"])


def nomad_app(address: str = "http://127.0.0.1:4646", **changes: Any) -> dict[str, Any]:
    app: dict[str, Any] = {
        "target": "nomad",
        "name": "items-api",
        "environment": "production",
        "image": {"digest": DIGEST},
        "domain": "api.example.org",
        "scaling": {"min": 2, "max": 3},
        "database": {"max_connections": 100, "reserved_connections": 10},
        "secrets": {
            "DATABASE_URL": "gcp:projects/acme-prod/secrets/items-db-url",
            "REDIS_URL": "gcp:projects/acme-prod/secrets/items-redis-url",
            "JWT_SECRET_KEY": "gcp:projects/acme-prod/secrets/items-jwt",
        },
        "nomad": {"address": address, "datacenter": "fra1", "cpu_mhz": 2000, "memory": 2048},
    }
    app.update(changes)
    return app


def write_project(tmp_path: Path, app: dict[str, Any], stack: str = "prod-nomad") -> Path:
    """A Pulumi project in tmp_path whose program is this repository's infra/ (the real program)."""
    (tmp_path / "Pulumi.yaml").write_text(
        yaml.safe_dump({"name": "fastapi-deploy", "runtime": "python", "main": str(ROOT / "infra")})
    )
    # The service whose settings the plan checks the container env against (this repository's app).
    (tmp_path / "pyproject.toml").write_text('[tool.fastapi-deploy]\nservice-settings = "app.settings"\n')
    service_env.service_model.cache_clear()
    path = tmp_path / f"Pulumi.{stack}.yaml"
    path.write_text(yaml.safe_dump({"config": {"fastapi-deploy:app": app}}))
    return path


def test_an_unregistered_target_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(config_mod.ConfigError, match=r"app.target: 'nomad' is unknown; allowed: ecs, "):
        config_mod.parse(nomad_app())
    with pytest.raises(registry.UnknownTarget, match="known: ecs, cloudrun, lambda, vps"):
        registry.get("nomad")


def test_its_config_section_is_validated_like_the_built_in_ones(nomad: registry.Target) -> None:
    cfg = config_mod.parse(nomad_app(), stack="prod-nomad")
    assert isinstance(cfg, nomad_target.NomadConfig)
    assert cfg.nomad.cpu_mhz == 2000
    with pytest.raises(config_mod.ConfigError, match=r"app\.nomad\.cpu_mhz: .*greater than or equal to 100"):
        config_mod.parse(nomad_app(nomad={"cpu_mhz": 5}))
    with pytest.raises(config_mod.ConfigError, match=r"app\.nomad\.dc: unknown key"):
        config_mod.parse(nomad_app(nomad={"dc": "x"}))


def test_infra_plan_runs_the_program_and_prints_resources_tuning_and_cost(
    nomad: registry.Target, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_project(tmp_path, nomad_app())
    monkeypatch.chdir(tmp_path)
    out, err = io.StringIO(), io.StringIO()
    rc = plan.cli(["--stack", "prod-nomad", "--format", "json"], out=out, err=err)
    assert rc == 0, err.getvalue() + out.getvalue()
    doc = json.loads(out.getvalue())
    doc = doc[0] if isinstance(doc, list) else doc
    assert doc["target"] == "nomad"
    types = {r["type"] for r in doc["resources"]}
    assert {nomad_target.COMPONENT_TYPE, nomad_target.JOB_TYPE} <= types
    (job,) = [r for r in doc["resources"] if r["type"] == nomad_target.JOB_TYPE]
    spec = json.loads(job["inputs"]["jobspec"])
    task = spec["TaskGroups"][0]["Tasks"][0]
    assert task["Config"]["image"] == DIGEST
    # The tuning rule: 2 cores -> 2 workers; the kill timeout drives the graceful timeout.
    assert doc["tuning"]["workers"] == 2
    assert doc["tuning"]["stop_timeout_s"] == nomad_target.KILL_TIMEOUT_S
    assert task["Env"]["WEB_CONCURRENCY"] == "2"
    assert task["Env"]["GUNICORN_GRACEFUL_TIMEOUT"] == str(nomad_target.KILL_TIMEOUT_S - 10)
    assert doc["outputs"]["job_id"] == "items-api-prod-nomad"  # the mock answer of the nomad module
    assert doc["outputs"]["nomad_address"] == "http://127.0.0.1:4646"
    (line,) = doc["cost"]["lines"]
    assert line["resource"] == "Nomad job items-api-prod-nomad"
    assert line["monthly"] == pytest.approx(2 * 2.0 * nomad_target.USD_PER_GHZ_MONTH)

    text, err = io.StringIO(), io.StringIO()
    assert plan.cli(["--stack", "prod-nomad"], out=text, err=err) == 0, err.getvalue()
    shown = text.getvalue()
    assert "nomad:index/job:Job" in shown
    assert "Nomad job items-api-prod-nomad" in shown
    assert "workers 2 on 2 vCPU / 2048 MiB" in shown
    assert "graceful 35 s (stop grace 45 s)" in shown
    assert "flat NOMAD price" in shown


def test_plan_stops_a_bad_nomad_config_before_any_resource(
    nomad: registry.Target, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 256 MiB leaves no room for one worker: the shared tuning refuses it, naming the nomad key.
    write_project(tmp_path, nomad_app(nomad={"memory": 256}))
    monkeypatch.chdir(tmp_path)
    out, err = io.StringIO(), io.StringIO()
    assert plan.cli(["--stack", "prod-nomad", "--format", "json"], out=out, err=err) == 2
    assert "app.nomad.memory: 256 MiB leaves no room for one worker" in err.getvalue()
    assert not json.loads(out.getvalue()).get("resources")


def test_plan_refuses_what_the_service_would_refuse_on_it_too(
    nomad: registry.Target, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_project(tmp_path, nomad_app(env={"LOG_LEVEL": "verbose"}))
    monkeypatch.chdir(tmp_path)
    out, err = io.StringIO(), io.StringIO()
    assert plan.cli(["--stack", "prod-nomad", "--format", "json"], out=out, err=err) == 2
    assert "app.env.LOG_LEVEL: Input should be 'debug'" in err.getvalue()


def test_plan_list_puts_it_in_the_ci_matrix(
    nomad: registry.Target, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_project(tmp_path, nomad_app())
    matrix = plan.list_stacks(tmp_path)
    # nomad declares no ci_login: its CI job logs in to no cloud (not to a guessed AWS).
    assert matrix == {"include": [{"stack": "prod-nomad", "target": "nomad", "cloud": "none", "region": ""}]}
    assert plan.ci_login("not-registered", {"aws:region": "eu-west-1"}, {}) == plan.NO_CLOUD_LOGIN


def test_doctor_runs_its_check_with_the_common_ones(nomad: registry.Target, tmp_path: Path) -> None:
    with HttpFake(routes={"/v1/status/leader": (200, '"10.0.0.5:4647"')}).serve() as api:
        write_project(tmp_path, nomad_app(address=api.url))
        secrets = FakeSecretManager()
        lines: list[str] = []
        rc = doctor.cli(
            ["--stack", "prod-nomad", "--stacks-dir", str(tmp_path)],
            clients=doctor.DoctorClients(gcp_secrets=secrets),
            out=lines.append,
        )
    text = "\n".join(lines)
    assert rc == 0, text
    assert api.hits == ["/v1/status/leader"]
    assert "Nomad leader 10.0.0.5:4647" in text
    assert "projects/acme-prod/secrets/items-db-url/versions/latest exists" in text  # the common secret check
    assert "db-budget" in text

    with HttpFake(routes={"/v1/status/leader": (200, '""')}).serve() as api:
        write_project(tmp_path, nomad_app(address=api.url))
        lines = []
        rc = doctor.cli(
            ["--stack", "prod-nomad", "--stacks-dir", str(tmp_path)],
            clients=doctor.DoctorClients(gcp_secrets=FakeSecretManager()),
            out=lines.append,
        )
    assert rc == 1
    assert "the cluster has no leader" in "\n".join(lines)


def test_verify_runs_its_check_against_an_outputs_json(nomad: registry.Target, tmp_path: Path) -> None:
    routes = {
        "/v1/job/items-api-prod-nomad/deployment": (
            200,
            json.dumps({"ID": "d-1", "Status": "successful", "StatusDescription": "Deployment completed"}),
        ),
        "/health": (200, '{"status":"ok"}'),
        "/ready": (200, '{"status":"ok"}'),
    }
    with HttpFake(routes=routes).serve() as api:
        outputs = {
            "target": "nomad",
            "url": api.url,
            "image": DIGEST,
            "health_path": "/health",
            "ready_path": "/ready",
            "nomad_address": api.url,
            "job_id": "items-api-prod-nomad",
        }
        path = tmp_path / "outputs.json"
        path.write_text(json.dumps(outputs))
        lines: list[str] = []
        rc = verify.cli(["--outputs", str(path), "--timeout", "5", "--interval", "0.05"], out=lines.append)
        text = "\n".join(lines)
        assert rc == 0, text
        assert "deployment d-1 successful: Deployment completed" in text
        assert api.hits == ["/v1/job/items-api-prod-nomad/deployment", "/health", "/ready"]

        # Its own output keys are required like any target's.
        del outputs["job_id"]
        path.write_text(json.dumps(outputs))
        assert verify.cli(["--outputs", str(path)], out=lines.append) == 2


def test_the_cost_estimate_includes_its_line(nomad: registry.Target) -> None:
    jobspec = {"ID": "x", "TaskGroups": [{"Count": 3, "Tasks": [{"Resources": {"CPU": 500}}]}]}
    graph = [{"type": nomad_target.JOB_TYPE, "name": "x-job", "inputs": {"jobspec": json.dumps(jobspec)}}]
    for est in (cost.estimate(graph), cost.estimate(graph, target="nomad")):
        (line,) = est.lines
        assert line.monthly == pytest.approx(3 * 0.5 * nomad_target.USD_PER_GHZ_MONTH)
    assert cost.TARGET_PROVIDER["nomad"] == "nomad"


def test_the_shared_paths_read_everything_else_from_its_registration(tmp_path: Path) -> None:
    """CI login, verify's required outputs, the price table's providers and the release gate: what the
    registration says, with no edit of fastapi_deploy/ (a variant of nomad that declares more of them)."""
    from dataclasses import replace

    from fastapi_deploy import release_gate
    from fastapi_deploy.ops import outputs as outputs_mod

    def login(raw: Any, app: Any) -> tuple[str, str]:
        return "gcp", str(app["nomad"]["datacenter"])

    variant = replace(
        nomad_target.TARGET, ci_login=login, outputs=(*nomad_target.TARGET.outputs, "allocations")
    )
    registry.register(variant)
    try:
        write_project(tmp_path, nomad_app())
        assert plan.list_stacks(tmp_path)["include"] == [
            {"stack": "prod-nomad", "target": "nomad", "cloud": "gcp", "region": "fra1"}
        ]
        assert outputs_mod.REQUIRED["nomad"] == ("nomad_address", "job_id", "allocations")
        given = {
            "target": "nomad",
            "url": "http://x",
            "image": DIGEST,
            "health_path": "/h",
            "ready_path": "/r",
        }
        given |= {"nomad_address": "http://n", "job_id": "j"}
        with pytest.raises(outputs_mod.OutputsError, match="allocations"):
            outputs_mod.validate_outputs(given, "outputs.json")
        assert outputs_mod.validate_outputs({**given, "allocations": 3}, "outputs.json") == "nomad"

        # A price table with a section for its provider is read like aws/gcp/vps (no list of providers).
        table = yaml.safe_load(cost.PRICES_PATH.read_text())
        table["nomad"] = {"ghz_month": {"price": 12.0, "unit": "GHz-month", "source": "https://x.example"}}
        path = tmp_path / "prices.yaml"
        path.write_text(yaml.safe_dump(table))
        assert cost.load_prices(path)("nomad", "ghz_month") == 12.0

        # The release gate's provider finds its platform through the registry and waits for its deployment.
        assert release_gate.gated_targets() == ("ecs", "cloudrun", "lambda", "nomad")
        body = {"ID": "d-2", "Status": "failed", "StatusDescription": "Failed due to unhealthy allocations"}
        with HttpFake(routes={"/v1/job/api/deployment": (200, json.dumps(body))}).serve() as api:
            props = {
                "target": "nomad",
                "stack": "prod-nomad",
                "stack_resource": "api-job",
                "timeout_s": 5,
                "poll_interval_s": 0.05,
                "region": "fra1",
                "release": "d-2",
                "nomad_address": api.url,
                "job_id": "api",
            }
            with pytest.raises(release_gate.ReleaseNotLive) as err:
                release_gate.ReleaseGateProvider().create(props)
            assert api.hits == ["/v1/job/api/deployment"]
        text = str(err.value)
        assert f"did not go live on Nomad job api at {api.url}" in text
        assert "expected deployment: d-2" in text
        assert "Failed due to unhealthy allocations" in text
        missing = release_gate.check_props({**props, "job_id": ""})
        assert missing == [("job_id", "job_id is required for a nomad release gate")]
    finally:
        registry.unregister("nomad")
        service_env.service_model.cache_clear()
    assert release_gate.gated_targets() == ("ecs", "cloudrun", "lambda")


def test_unregistering_leaves_the_built_in_targets_as_they_were(nomad: registry.Target) -> None:
    registry.unregister("nomad")
    assert registry.names() == ("ecs", "cloudrun", "lambda", "vps")
    from fastapi_deploy import targets
    from fastapi_deploy.ops import outputs

    with pytest.raises(targets.TargetNotAvailable, match="'nomad' has no deployer"):
        targets.module_for("nomad")
    assert "nomad" not in outputs.REQUIRED  # `infra verify` no longer expects its outputs
    registry.register(nomad_target.TARGET)  # for the fixture's teardown
    with pytest.raises(ValueError, match="already registered"):
        registry.register(nomad_target.TARGET)
    with pytest.raises(ValueError, match="built in"):
        registry.unregister("ecs")


def test_nothing_in_fastapi_deploy_names_it() -> None:
    """The proof is only a proof if the package really does not know the fifth target."""
    named = [p for p in (ROOT / "fastapi_deploy").rglob("*.py") if "nomad" in p.read_text().lower()]
    assert named == []


def test_an_inconsistent_target_is_refused_when_registered() -> None:
    from dataclasses import replace

    with pytest.raises(ValueError, match=r'NomadConfig.target must be Literal\["fly"\]'):
        registry.register(replace(nomad_target.TARGET, key="fly"))
    with pytest.raises(ValueError, match="has no section 'fly'"):
        registry.register(replace(nomad_target.TARGET, section="fly"))
    assert "nomad" not in registry.names()
