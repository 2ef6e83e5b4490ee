"""`infra plan`: the real program under mocks, the JSON contract, secrets, exit codes.

Each plan runs `infra/__main__.py` for a stack file under `fastapi_deploy.mocks`; nothing here talks to a
cloud.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml

from fastapi_deploy import plan as plan_mod
from fastapi_deploy.mocks import RecordingMocks

STACKS_DIR = Path(__file__).resolve().parents[2] / "stacks"

STACKS = plan_mod.stack_files()
CANARY = "CANARY-s3cr3t-9f1c2e7d"  # a recognisable secret value that must never be printed


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = plan_mod.cli(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def write_stack(tmp_path: Path, base: str, edit: Any = None, name: str | None = None) -> Path:
    """Copy stacks/Pulumi.<base>.yaml into tmp_path, optionally editing its config mapping."""
    doc = yaml.safe_load((STACKS_DIR / f"Pulumi.{base}.yaml").read_text())
    if edit is not None:
        edit(doc["config"])
    path = tmp_path / f"Pulumi.{name or base}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.fixture(scope="module")
def plans() -> dict[str, plan_mod.StackPlan]:
    planned = {plan_mod.stack_name(p): plan_mod.plan_stack(p) for p in STACKS}
    # Bench-style timing (not an assertion): the first plan in a process pays for importing the SDKs.
    for name, p in planned.items():
        print(f"plan {name}: {p.seconds:.2f} s, {len(p.resources)} resources")
    return planned


def test_there_are_stacks_to_plan() -> None:
    assert {"prod-ecs", "staging-ecs"} <= {plan_mod.stack_name(p) for p in STACKS}


@pytest.mark.parametrize("path", STACKS, ids=[plan_mod.stack_name(p) for p in STACKS])
def test_json_contract(plans: dict[str, plan_mod.StackPlan], path: Path) -> None:
    p = plans[plan_mod.stack_name(path)]
    assert p.error is None, p.error
    doc = json.loads(json.dumps(p.as_json(), default=str))
    assert set(doc) == {"stack", "target", "resources", "outputs", "tuning", "policy", "cost"}
    assert doc["stack"] == plan_mod.stack_name(path)
    assert doc["target"] in {"ecs", "cloudrun", "lambda", "vps"}
    assert doc["resources"], "the program registered nothing"
    urns = {r["urn"] for r in doc["resources"]}
    for r in doc["resources"]:
        assert set(r) == {"urn", "type", "name", "parent", "inputs"}
        assert r["type"].count(":") >= 2, r["type"]  # a Pulumi type token, e.g. aws:ecs/service:Service
        assert r["parent"] is None or r["parent"] in urns or "pulumi:pulumi:Stack" in r["parent"]
    # The target's component is there, typed fastapi-deploy:<platform>:<Kind>.
    assert any(r["type"].startswith(f"fastapi-deploy:{doc['target']}:") for r in doc["resources"])
    for key in ("target", "url", "image", "health_path", "ready_path"):
        assert key in doc["outputs"], key
    assert doc["tuning"]["workers"] >= 1
    assert doc["tuning"]["max_total_connections"] <= doc["tuning"]["connection_budget"]
    for v in doc["policy"]["violations"]:
        assert set(v) == {"policy", "enforcement", "urn", "message"}
        assert v["enforcement"] in {"mandatory", "advisory"}
    cost = doc["cost"]
    assert cost["currency"] == "USD"
    assert isinstance(cost["monthly_total"], float)
    assert cost["monthly_total"] > 0
    assert cost["lines"]
    assert all(set(line) == {"resource", "monthly", "basis"} for line in cost["lines"])
    assert {"requests_per_month", "avg_duration_ms", "egress_gb_per_month", "hours_per_month"} <= set(
        cost["assumptions"]
    )


@pytest.mark.parametrize("path", STACKS, ids=[plan_mod.stack_name(p) for p in STACKS])
def test_every_stack_in_the_repo_passes_the_mandatory_policies(
    plans: dict[str, plan_mod.StackPlan], path: Path
) -> None:
    # The same gate as CI's offline plan: a stack file committed here must be deployable under the pack.
    p = plans[plan_mod.stack_name(path)]
    mandatory = [v for v in p.violations if v["enforcement"] == "mandatory"]
    assert mandatory == []
    assert p.exit_code == plan_mod.EXIT_OK


def test_inputs_are_camel_case_as_the_engine_receives_them(plans: dict[str, plan_mod.StackPlan]) -> None:
    ecs = plans["prod-ecs"]
    (service,) = [r for r in ecs.resources if r["type"] == "aws:ecs/service:Service"]
    assert service["inputs"]["deploymentCircuitBreaker"] == {"enable": True, "rollback": True}
    (task,) = [r for r in ecs.resources if r["type"] == "aws:ecs/taskDefinition:TaskDefinition"]
    assert isinstance(task["inputs"]["containerDefinitions"], str)  # a JSON string, like the engine's


def test_plan_runs_the_real_program_for_the_stack_config(tmp_path: Path) -> None:
    # Changing the stack file changes what the plan records: it is the program, not a copy of it.
    def bump(config: dict[str, Any]) -> None:
        config["fastapi-deploy:app"]["scaling"].update(min=3, desired=3)

    p = plan_mod.plan_stack(write_stack(tmp_path, "prod-ecs", bump))
    (service,) = [r for r in p.resources if r["type"] == "aws:ecs/service:Service"]
    assert service["inputs"]["desiredCount"] == 3
    base = plan_mod.plan_stack(STACKS_DIR / "Pulumi.prod-ecs.yaml")
    assert p.cost["monthly_total"] > base.cost["monthly_total"]


def test_cost_assumptions_come_from_the_stack_config(plans: dict[str, plan_mod.StackPlan]) -> None:
    raw = yaml.safe_load((STACKS_DIR / "Pulumi.prod-ecs.yaml").read_text())
    configured = raw["config"]["fastapi-deploy:app"]["cost"]
    assumptions = plans["prod-ecs"].cost["assumptions"]
    for key, value in configured.items():
        assert assumptions[key] == value


def test_policy_results_are_the_rule_functions_over_the_recorded_graph(
    plans: dict[str, plan_mod.StackPlan],
) -> None:
    from policy import rules

    p = plans["prod-ecs"]
    graph = [
        rules.Resource(type=r["type"], inputs=r["inputs"], urn=r["urn"], name=r["name"]) for r in p.resources
    ]
    assert [v.as_dict() for v in rules.evaluate(graph)] == p.violations


# --- secrets -----------------------------------------------------------------------------------------
class CanaryMocks(RecordingMocks):
    """Every secret read returns the canary, as a real secret store would return the real value."""

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[Any, Any], list[tuple[str, str]] | None]:
        answer, failures = super().call(args)
        answer = dict(answer)
        for key in ("value", "insecureValue", "secretString", "secretData", "password"):
            if key in answer:
                answer[key] = (
                    CANARY if key != "secretString" else json.dumps({"url": CANARY, "value": CANARY})
                )
        return answer, failures


def _all_output(path: Path, mocks: Any = None) -> tuple[plan_mod.StackPlan, str]:
    p = plan_mod.plan_stack(path, mocks_factory=mocks)
    text = io.StringIO()
    plan_mod.render_text(p, text)
    return p, text.getvalue() + json.dumps(p.as_json(), default=str)


def test_secret_values_read_at_deploy_time_never_appear(tmp_path: Path) -> None:
    # The VPS target reads secret values at deploy time and passes them as Pulumi secrets.
    def factory(raw: Mapping[str, Any]) -> RecordingMocks:
        return CanaryMocks(region=str(raw.get("aws:region") or "us-east-1"))

    path = STACKS_DIR / "Pulumi.prod-vps.yaml"
    # The canary really flows into the program's resources (so the assertions below can fail)...
    from fastapi_deploy import mocks as mocks_mod
    from fastapi_deploy.config import stack_file_config

    raw = stack_file_config(path)
    recorded = mocks_mod.run_program("prod-vps", raw, mocks=factory(raw))
    assert CANARY in json.dumps([mocks_mod.unwrap(r.inputs) for r in recorded.resources])
    # ...and never out of the plan.
    p, output = _all_output(path, factory)
    assert p.error is None, p.error
    assert CANARY not in output
    assert plan_mod.SECRET_MARK in output


def test_secure_config_values_are_shown_as_secret_and_never_printed(tmp_path: Path) -> None:
    ciphertext = "v1:" + CANARY + ":AAAAAAAAAAAAAAAAAAAAAAAA"

    def add_secure(config: dict[str, Any]) -> None:
        config["aws:secretKey"] = {"secure": ciphertext}

    p, output = _all_output(write_stack(tmp_path, "prod-ecs", add_secure))
    assert p.error is None, p.error
    assert CANARY not in output


def test_plaintext_credential_in_env_is_masked_and_fails_the_policy(tmp_path: Path) -> None:
    def add_plain(config: dict[str, Any]) -> None:
        config["fastapi-deploy:app"]["env"]["PAYMENT_API_KEY"] = CANARY

    path = write_stack(tmp_path, "prod-ecs", add_plain)
    p, output = _all_output(path)
    assert CANARY not in output
    assert any(
        v["policy"] == "no-plaintext-secrets" and v["enforcement"] == "mandatory" for v in p.violations
    )
    code, out, _ = run_cli("--stack", str(path), "--format", "json")
    assert code == plan_mod.EXIT_FINDINGS
    assert CANARY not in out


# --- exit codes and CLI ------------------------------------------------------------------------------
def test_exit_0_and_text_like_pulumi_preview_for_a_compliant_stack(
    plans: dict[str, plan_mod.StackPlan],
) -> None:
    assert plans["prod-ecs"].exit_code == plan_mod.EXIT_OK, plans["prod-ecs"].violations
    code, out, _ = run_cli("--stack", "prod-ecs")
    assert code == 0
    assert "Previewing update (prod-ecs)" in out
    assert "├─ " in out
    assert "aws:ecs/service:Service" in out
    assert "WEB_CONCURRENCY=" in out
    assert "Policy (policy/ pack)" in out
    assert "Estimated monthly cost: USD" in out


def test_exit_2_on_invalid_config_naming_the_field(tmp_path: Path) -> None:
    def bad_memory(config: dict[str, Any]) -> None:
        config["fastapi-deploy:app"]["ecs"]["memory"] = 3000

    path = write_stack(tmp_path, "prod-ecs", bad_memory)
    code, out, err = run_cli("--stack", str(path))
    assert code == plan_mod.EXIT_INVALID
    assert "app.ecs.memory" in err
    assert "app.ecs.memory" in out


def test_exit_2_on_unknown_stack_lists_the_known_ones() -> None:
    code, _, err = run_cli("--stack", "no-such-stack")
    assert code == plan_mod.EXIT_INVALID
    assert "prod-ecs" in err


def test_stack_all_plans_every_stack_and_returns_the_worst_exit_code(tmp_path: Path) -> None:
    write_stack(tmp_path, "staging-ecs")

    def bad(config: dict[str, Any]) -> None:
        config["fastapi-deploy:app"]["health"]["liveness_path"] = "health"

    write_stack(tmp_path, "prod-ecs", bad, name="broken")
    code, out, err = run_cli("--stack", "all", "--stacks-dir", str(tmp_path), "--format", "json")
    doc = json.loads(out)
    assert [d["stack"] for d in doc] == ["broken", "staging-ecs"]
    assert "error" in doc[0]
    assert "app.health.liveness_path" in doc[0]["error"]
    assert "resources" in doc[1]
    assert code == plan_mod.EXIT_INVALID
    assert "broken" in err


def test_list_is_a_github_actions_matrix_of_every_stack() -> None:
    code, out, _ = run_cli("--list")
    assert code == 0
    include = json.loads(out)["include"]
    assert {row["stack"] for row in include} == {plan_mod.stack_name(p) for p in STACKS}
    by_stack = {row["stack"]: row for row in include}
    assert by_stack["prod-ecs"]["cloud"] == "aws"
    assert by_stack["prod-ecs"]["region"] == "us-east-1"
    if "prod-cloudrun" in by_stack:
        assert by_stack["prod-cloudrun"]["cloud"] == "gcp"
    code, out, _ = run_cli("--list", "--prefix", "staging-")
    assert all(row["stack"].startswith("staging-") for row in json.loads(out)["include"])


def test_a_failing_program_is_reported_per_stack_with_exit_1(monkeypatch: pytest.MonkeyPatch) -> None:
    from fastapi_deploy import mocks as mocks_mod

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(
            "fastapi_deploy/mocks.py: no mock answer for invoke 'aws:x/getY:getY'; add one"
        )

    monkeypatch.setattr(mocks_mod, "run_program", broken)
    code, out, err = run_cli("--stack", "prod-ecs")
    assert code == plan_mod.EXIT_FINDINGS
    assert "the Pulumi program failed under mocks: NotImplementedError" in err
    assert "Traceback" not in out + err


def test_vps_release_gate_is_not_counted_as_an_instance(plans: dict[str, plan_mod.StackPlan]) -> None:
    """The one-shot gate runs the app's image + env but serves nothing: one app container, one finding."""
    from fastapi_deploy.vps import component as vps_mod
    from policy import rules

    assert vps_mod.GATE_ROLE_LABEL == rules.RELEASE_GATE_LABEL
    single = [v for v in plans["prod-vps"].violations if v["policy"] == "single-instance-production"]
    assert len(single) == 1, single
    assert single[0]["urn"].endswith("-app")


def test_a_registry_login_does_not_hide_the_image_ref(plans: dict[str, plan_mod.StackPlan]) -> None:
    """The registry login {server, username, password} is one secret; its server is the image ref's host
    and must not turn the plan's image output into "[secret]/..." (the password stays hidden)."""
    p = plans["prod-cloudrun"]
    assert str(p.outputs["image"]).startswith("europe-west1-docker.pkg.dev/items-api-prod/")
    (image,) = [r for r in p.resources if r["type"] == "docker:index/image:Image"]
    assert image["inputs"]["registry"] == plan_mod.SECRET_MARK


def test_text_plan_reads_like_a_reviewer_expects(plans: dict[str, plan_mod.StackPlan]) -> None:
    out = io.StringIO()
    plan_mod.render_text(plans["staging-ecs"], out)
    plan_mod.render_text(plans["prod-lambda"], out)
    text = out.getvalue()
    assert "HTTP listener on port 80 serves" in text  # not "port 80.0" (the engine's float)
    assert "LB idle None" not in text
    assert "no LB idle timeout on this platform" in text


def test_vps_container_name_output_is_the_auto_named_app_container(
    plans: dict[str, plan_mod.StackPlan],
) -> None:
    # The app container has no fixed name (a replacement starts beside the old one): Pulumi auto-names it.
    name = plans["prod-vps"].outputs["container_name"]
    assert isinstance(name, str)
    assert name.startswith("items-api-prod-vps-app-")


def test_resources_are_listed_in_the_same_tree_order_whatever_order_they_registered_in() -> None:
    import random
    from types import SimpleNamespace

    stack = "urn:stack"
    made = [
        SimpleNamespace(urn="c", type="t:comp", name="svc", parent=stack),
        SimpleNamespace(urn="c/b", type="aws:b", name="x", parent="c"),
        SimpleNamespace(urn="c/a2", type="aws:a", name="y", parent="c"),
        SimpleNamespace(urn="c/a1", type="aws:a", name="x", parent="c"),
        SimpleNamespace(urn="c/a1/k", type="aws:k", name="k", parent="c/a1"),
        SimpleNamespace(urn="img", type="docker:image", name="img", parent=stack),
    ]
    expected = ["img", "c", "c/a1", "c/a1/k", "c/a2", "c/b"]
    rng = random.Random(5)
    for _ in range(20):
        shuffled = made[:]
        rng.shuffle(shuffled)
        assert [r.urn for r in plan_mod.tree_order(shuffled)] == expected


def test_a_plan_lists_every_parent_before_its_children(plans: dict[str, plan_mod.StackPlan]) -> None:
    for name, p in plans.items():
        seen: set[str] = set()
        urns = {r["urn"] for r in p.resources}
        for r in p.resources:
            assert r["parent"] not in urns or r["parent"] in seen, (name, r["urn"])
            seen.add(r["urn"])


# --- prices by region --------------------------------------------------------------------------------
def test_staging_ecs_is_priced_with_eu_west_1_prices(
    plans: dict[str, plan_mod.StackPlan], tmp_path: Path
) -> None:
    staging = plans["staging-ecs"]
    assert staging.cost["region"] == staging.cost["price_region"] == "eu-west-1"
    assert staging.cost["fallback_from"] is None

    def to_us_east_1(config: dict[str, Any]) -> None:
        config["aws:region"] = "us-east-1"

    east = plan_mod.plan_stack(write_stack(tmp_path, "staging-ecs", to_us_east_1))
    assert east.error is None, east.error
    assert east.cost["price_region"] == "us-east-1"
    # Same resources, different regional prices: a different total.
    assert [r["urn"] for r in east.resources] == [r["urn"] for r in staging.resources]
    assert staging.cost["monthly_total"] != east.cost["monthly_total"]
    text = io.StringIO()
    plan_mod.render_text(staging, text)
    assert "prices: eu-west-1 prices (read " in text.getvalue()


def test_a_region_without_a_price_table_falls_back_and_the_plan_says_so(tmp_path: Path) -> None:
    def to_sydney(config: dict[str, Any]) -> None:  # a real AWS region, but not in fastapi_deploy/prices.yaml
        config["aws:region"] = "ap-southeast-2"

    path = write_stack(tmp_path, "staging-ecs", to_sydney)
    code, out, _ = run_cli("--stack", str(path), "--format", "json")
    assert code == plan_mod.EXIT_OK
    doc = json.loads(out)
    assert doc["cost"]["fallback_from"] == "ap-southeast-2"
    assert doc["cost"]["price_region"] == "us-east-1"
    _code, out, _ = run_cli("--stack", str(path))
    assert (
        "NOTE: no price table for aws region ap-southeast-2; priced with us-east-1 prices (fallback)" in out
    )


def test_every_shipped_stack_says_whose_prices_it_used(plans: dict[str, plan_mod.StackPlan]) -> None:
    expected = {"prod-ecs": "us-east-1", "staging-ecs": "eu-west-1", "prod-lambda": "us-east-1"}
    expected |= {"prod-cloudrun": "europe-west1", "staging-cloudrun": "europe-west1", "prod-vps": None}
    for name, region in expected.items():
        assert plans[name].cost["price_region"] == region, name
        assert plans[name].cost["fallback_from"] is None, name


@pytest.mark.parametrize("stack", ["prod-ecs", "prod-lambda", "prod-cloudrun"])
def test_a_production_stack_without_alert_targets_fails_the_alarm_policy(tmp_path: Path, stack: str) -> None:
    def drop_alerts(config: dict[str, Any]) -> None:
        config["fastapi-deploy:app"].pop("alerts", None)

    p = plan_mod.plan_stack(write_stack(tmp_path, stack, drop_alerts))
    silent = [v for v in p.violations if v["policy"] == "alarms-notify-in-production"]
    assert silent
    assert all(v["enforcement"] == "mandatory" for v in silent)
    assert p.exit_code == plan_mod.EXIT_FINDINGS
