"""`infra plan --diff PREVIOUS.json`: a real previous plan from this code, an edited stack, the diff.

Previous plans are what `infra plan --format json` writes (``StackPlan.as_json`` through ``json``);
the current side is the program run again under mocks for an edited copy of the stack file.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from fastapi_deploy import plan as plan_mod
from fastapi_deploy import plandiff

STACKS_DIR = Path(__file__).resolve().parents[2] / "stacks"

CANARY = "CANARY-d1ff-7e3a9b1c5f"  # must never be printed


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = plan_mod.cli(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def write_stack(
    directory: Path, base: str, edit: Callable[[dict[str, Any]], None] | None = None, name: str | None = None
) -> Path:
    doc = yaml.safe_load((STACKS_DIR / f"Pulumi.{base}.yaml").read_text())
    if edit is not None:
        edit(doc["config"]["fastapi-deploy:app"])
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"Pulumi.{name or base}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def as_file_json(plan: plan_mod.StackPlan) -> dict[str, Any]:
    """What `infra plan --format json` would have written for this plan."""
    doc: dict[str, Any] = json.loads(json.dumps(plan.as_json(), default=str))
    return doc


def scale_up(app: dict[str, Any]) -> None:
    app["scaling"].update(max=12, min=3, desired=3)


def single_nat(app: dict[str, Any]) -> None:
    app["ecs"]["vpc"]["nat_gateways"] = "single"


@pytest.fixture(scope="module")
def planned(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("stacks")
    return {
        "prod-ecs": as_file_json(plan_mod.plan_stack(STACKS_DIR / "Pulumi.prod-ecs.yaml")),
        "scaled": as_file_json(plan_mod.plan_stack(write_stack(tmp / "scaled", "prod-ecs", scale_up))),
        "single-nat": as_file_json(plan_mod.plan_stack(write_stack(tmp / "nat", "prod-ecs", single_nat))),
    }


def one(doc: dict[str, Any]) -> dict[str, Any]:
    (stack,) = doc["stacks"]
    return stack


def changed_inputs(stack: dict[str, Any], type_: str) -> dict[str, tuple[Any, Any]]:
    (resource,) = [r for r in stack["changed"] if r["type"] == type_]
    return {c["input"]: (c["before"], c["after"]) for c in resource["inputs"]}


# --- the diff of real plans --------------------------------------------------------------------------
def test_the_same_plan_twice_has_no_changes(planned: dict[str, dict[str, Any]]) -> None:
    prev = {"prod-ecs": planned["prod-ecs"]}
    again = as_file_json(plan_mod.plan_stack(STACKS_DIR / "Pulumi.prod-ecs.yaml"))
    doc = plandiff.diff_plans(prev, [again], all_stacks=False)
    stack = one(doc)
    assert stack["status"] == "unchanged"
    assert (stack["added"], stack["removed"], stack["changed"]) == ([], [], [])
    assert stack["cost"]["delta"] == 0
    assert "No changes." in plandiff.render_markdown(doc)


def test_scaling_change_shows_the_autoscaling_target_and_the_cost_delta(
    planned: dict[str, dict[str, Any]],
) -> None:
    doc = plandiff.diff_plans({"prod-ecs": planned["prod-ecs"]}, [planned["scaled"]], all_stacks=False)
    stack = one(doc)
    assert stack["status"] == "changed"
    assert stack["added"] == stack["removed"] == []
    target = changed_inputs(stack, "aws:appautoscaling/target:Target")
    assert target["maxCapacity"] == (10, 12)
    assert target["minCapacity"] == (2, 3)
    assert changed_inputs(stack, "aws:ecs/service:Service")["desiredCount"] == (2, 3)
    # Only what changed is listed: the ALB, VPC, log group... are not.
    assert {r["type"] for r in stack["changed"]} <= {
        "aws:appautoscaling/target:Target",
        "aws:ecs/service:Service",
        "fastapi-deploy:ecs:FargateService",
        "aws:ecs/taskDefinition:TaskDefinition",
    }
    cost = stack["cost"]
    before, after = planned["prod-ecs"]["cost"]["monthly_total"], planned["scaled"]["cost"]["monthly_total"]
    assert cost["before"] == before
    assert cost["after"] == after
    assert cost["delta"] == pytest.approx(after - before, abs=0.01)
    assert cost["delta"] > 0
    (service_line,) = [x for x in cost["lines"] if x["resource"].startswith("Service ")]
    assert service_line["delta"] == pytest.approx(service_line["after"] - service_line["before"], abs=0.01)
    assert service_line["after"] == pytest.approx(service_line["before"] * 3 / 2, abs=0.02)
    assert doc["monthly_delta"] == cost["delta"]

    md = plandiff.render_markdown(doc)
    assert "0 to add, " in md
    assert "0 to remove" in md
    assert "`maxCapacity`: `10` → `12`" in md
    assert f"**{cost['delta']:+,.2f}**" in md
    assert "| line | before | after | delta |" in md


def test_a_removed_nat_gateway_is_a_removed_resource_and_a_saving(planned: dict[str, dict[str, Any]]) -> None:
    removed = one(
        plandiff.diff_plans({"prod-ecs": planned["prod-ecs"]}, [planned["single-nat"]], all_stacks=False)
    )
    assert "aws:ec2/natGateway:NatGateway" in {r["type"] for r in removed["removed"]}
    assert all(r["urn"].startswith("urn:pulumi:prod-ecs::") for r in removed["removed"])
    assert removed["cost"]["delta"] < 0
    (nat_line,) = [x for x in removed["cost"]["lines"] if x["after"] is None]
    assert nat_line["resource"].startswith("NatGateway ")
    assert nat_line["delta"] == pytest.approx(-nat_line["before"])
    # ...and the other way round it is an added resource and a cost.
    added = one(
        plandiff.diff_plans({"prod-ecs": planned["single-nat"]}, [planned["prod-ecs"]], all_stacks=False)
    )
    assert {r["urn"] for r in added["added"]} == {r["urn"] for r in removed["removed"]}
    assert added["cost"]["delta"] == pytest.approx(-removed["cost"]["delta"], abs=0.01)
    md = plandiff.render_markdown(
        {"previous": "", "currency": "USD", "monthly_delta": 0.0, "stacks": [added]}
    )
    assert "| add | `items-api-prod-ecs-nat-1` | `aws:ec2/natGateway:NatGateway` |" in md


def test_cli_diff_markdown_and_json_against_a_file_written_by_the_plan(
    planned: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    previous = tmp_path / "previous.json"
    code, out, _ = run_cli("--stack", "prod-ecs", "--format", "json")
    assert code == 0
    previous.write_text(out)
    stack = write_stack(tmp_path / "edited", "prod-ecs", scale_up)
    code, md, err = run_cli("--stack", str(stack), "--diff", str(previous))
    assert code == plan_mod.EXIT_OK, err
    assert md.startswith("## infra plan diff: 1 of 1 stack(s) changed")
    assert "### `prod-ecs`" in md
    assert "`maxCapacity`: `10` → `12`" in md
    code, out, _ = run_cli("--stack", str(stack), "--diff", str(previous), "--format", "json")
    doc = json.loads(out)
    assert set(doc) == {"previous", "currency", "monthly_delta", "stacks"}
    assert set(one(doc)) >= {"stack", "status", "added", "removed", "changed", "cost"}
    assert one(doc)["cost"]["delta"] == pytest.approx(
        planned["scaled"]["cost"]["monthly_total"] - planned["prod-ecs"]["cost"]["monthly_total"], abs=0.01
    )


# --- one side only, error plans ----------------------------------------------------------------------
def test_stack_all_reports_stacks_present_on_one_side_only(
    planned: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    stacks = tmp_path / "stacks"
    write_stack(stacks, "prod-ecs", scale_up)
    write_stack(stacks, "prod-ecs", name="prod-ecs-copy")
    retired = {**planned["prod-ecs"], "stack": "retired"}
    previous = tmp_path / "all.json"
    previous.write_text(json.dumps([planned["prod-ecs"], retired]))
    code, out, _ = run_cli(
        "--stack", "all", "--stacks-dir", str(stacks), "--diff", str(previous), "--format", "json"
    )
    assert code == plan_mod.EXIT_OK
    doc = json.loads(out)
    by_name = {s["stack"]: s for s in doc["stacks"]}
    assert by_name["prod-ecs"]["status"] == "changed"
    assert by_name["prod-ecs-copy"]["status"] == "new"
    assert by_name["prod-ecs-copy"]["removed"] == []
    assert len(by_name["prod-ecs-copy"]["added"]) == len(planned["prod-ecs"]["resources"])
    assert by_name["retired"]["status"] == "gone"
    assert len(by_name["retired"]["removed"]) == len(planned["prod-ecs"]["resources"])
    assert by_name["retired"]["cost"]["delta"] == -planned["prod-ecs"]["cost"]["monthly_total"]
    assert doc["monthly_delta"] == pytest.approx(sum(s["cost"]["delta"] for s in doc["stacks"]), abs=0.01)
    _, md, _ = run_cli("--stack", "all", "--stacks-dir", str(stacks), "--diff", str(previous))
    assert "### `prod-ecs-copy` (new stack)" in md
    assert "### `retired` (stack removed)" in md


def test_an_error_plan_on_either_side_is_reported_not_diffed(
    planned: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    broken_prev = {"stack": "prod-ecs", "target": "ecs", "error": "Pulumi.prod-ecs.yaml: app.ecs.memory: bad"}
    stack = one(plandiff.diff_plans({"prod-ecs": broken_prev}, [planned["prod-ecs"]], all_stacks=False))
    assert stack["status"] == "error"
    assert stack["previous_error"] == broken_prev["error"]
    assert stack["current_error"] is None
    assert stack["cost"]["delta"] is None
    assert (stack["added"], stack["removed"], stack["changed"]) == ([], [], [])

    def bad_memory(app: dict[str, Any]) -> None:
        app["ecs"]["memory"] = 3000

    previous = tmp_path / "previous.json"
    previous.write_text(json.dumps(planned["prod-ecs"]))
    path = write_stack(tmp_path / "bad", "prod-ecs", bad_memory)
    code, md, err = run_cli("--stack", str(path), "--diff", str(previous))
    assert code == plan_mod.EXIT_INVALID  # the current plan's own exit code
    assert "app.ecs.memory" in err
    assert "### `prod-ecs` (plan error)" in md
    assert "current plan failed:" in md
    assert "app.ecs.memory" in md


def test_a_single_stack_missing_from_the_previous_file_is_new_with_a_note(
    planned: dict[str, dict[str, Any]],
) -> None:
    staging = {**planned["prod-ecs"], "stack": "staging-ecs"}
    stack = one(plandiff.diff_plans({"staging-ecs": staging}, [planned["prod-ecs"]], all_stacks=False))
    assert stack["status"] == "new"
    assert "has no plan for prod-ecs (it has: staging-ecs)" in stack["note"]


# --- secrets -----------------------------------------------------------------------------------------
def test_secrets_stay_masked_in_the_diff(planned: dict[str, dict[str, Any]], tmp_path: Path) -> None:
    def add_plain(app: dict[str, Any]) -> None:
        app["env"]["PAYMENT_API_KEY"] = CANARY

    previous = tmp_path / "previous.json"
    previous.write_text(json.dumps(planned["prod-ecs"]))
    path = write_stack(tmp_path / "secret", "prod-ecs", add_plain)
    for fmt in ("text", "json"):
        code, out, err = run_cli("--stack", str(path), "--diff", str(previous), "--format", fmt)
        assert code == plan_mod.EXIT_FINDINGS  # no-plaintext-secrets, as in the plan
        assert CANARY not in out + err
    assert (
        "environment[PAYMENT_API_KEY].value`: _(absent)_ → `[secret]`"
        in run_cli("--stack", str(path), "--diff", str(previous))[1]
    )

    # A previous file that holds a credential in clear (hand-edited, or from an older version) is masked
    # again before it is compared: the value is not echoed either.
    leaked = json.loads(json.dumps(planned["prod-ecs"]))
    (task,) = [r for r in leaked["resources"] if r["type"] == "aws:ecs/taskDefinition:TaskDefinition"]
    containers = json.loads(task["inputs"]["containerDefinitions"])
    containers[0]["environment"].append({"name": "DB_PASSWORD", "value": CANARY})
    task["inputs"]["containerDefinitions"] = json.dumps(containers)
    stack = one(plandiff.diff_plans({"prod-ecs": leaked}, [planned["prod-ecs"]], all_stacks=False))
    text = json.dumps(stack) + plandiff.render_markdown(
        {"previous": "", "currency": "USD", "monthly_delta": 0.0, "stacks": [stack]}
    )
    assert CANARY not in text
    assert changed_inputs(stack, "aws:ecs/taskDefinition:TaskDefinition")[
        "containerDefinitions[app].environment[DB_PASSWORD].value"
    ] == (plan_mod.SECRET_MARK, None)


# --- a bad previous file: exit 2, one message, nothing planned ----------------------------------------
@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "no such file"),
        ("directory", "is a directory"),
        (b"\xff\xfe\x00binary " + CANARY.encode(), "not a text file"),
        (f"not json {CANARY}", "not JSON (line 1, column 1)"),
        (json.dumps({"foo": CANARY}), "not an infra plan"),
        (json.dumps([]), "an empty list"),
        (
            json.dumps([{"stack": "x", "resources": [{"name": "no-urn"}], "cost": {}}]),
            "not an infra plan (item 0",
        ),
    ],
    ids=["missing", "directory", "binary", "not-json", "not-a-plan", "empty-list", "resource-without-urn"],
)
def test_a_bad_previous_file_exits_2_with_one_clear_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str | bytes | None, expected: str
) -> None:
    path = tmp_path / "previous.json"
    if content == "directory":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)

    def must_not_plan(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("planned before checking the previous file")

    monkeypatch.setattr(plan_mod, "plan_stack", must_not_plan)
    code, out, err = run_cli("--stack", "prod-ecs", "--diff", str(path))
    assert code == plan_mod.EXIT_INVALID
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith(f"infra plan: --diff {path}: ")
    assert expected in err
    assert CANARY not in err  # the file's content is never echoed
