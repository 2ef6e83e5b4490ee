"""GitHub workflows, validated offline: the vendored GitHub workflow schema (check-jsonschema) and the
properties a reviewer checks: OIDC only, PR comments, offline plan summary, manual production."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"
FILES = sorted(WORKFLOWS.glob("*.yml"))


def load(name: str) -> dict[str, Any]:
    doc = yaml.safe_load((WORKFLOWS / name).read_text())
    # YAML 1.1 reads the bare key `on` as True.
    if True in doc:
        doc["on"] = doc.pop(True)
    return doc


def steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return list(job.get("steps") or [])


def uses(job: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [s for s in steps(job) if str(s.get("uses", "")).split("@")[0] == action]


def check_jsonschema(*paths: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("check-jsonschema")
    return subprocess.run(
        [str(exe), "--builtin-schema", "vendor.github-workflows", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_three_workflows_exist() -> None:
    assert {p.name for p in FILES} >= {"ci.yml", "preview.yml", "deploy.yml"}


def test_workflows_match_the_github_workflow_schema() -> None:
    result = check_jsonschema(*FILES)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_rejects_a_broken_workflow(tmp_path: Path) -> None:
    broken = load("ci.yml")
    broken["jobs"]["test"]["runs-on"] = {"not": "a runner"}
    broken["jobs"]["test"]["timeout-minutes"] = "soon"
    path = tmp_path / "broken.yml"
    path.write_text(yaml.safe_dump(broken))
    assert check_jsonschema(path).returncode != 0


def test_no_long_lived_cloud_keys_anywhere() -> None:
    for path in FILES:
        text = path.read_text()
        for forbidden in (
            "aws-access-key-id",
            "aws-secret-access-key",
            "credentials_json",
            "AWS_SECRET_ACCESS_KEY",
        ):
            assert forbidden not in text, f"{path.name} uses {forbidden}"


def test_ci_runs_ruff_mypy_and_pytest() -> None:
    text = json.dumps(load("ci.yml"))
    for tool in ("ruff check", "ruff format --check", "mypy", "pytest"):
        assert tool in text, tool
    assert load("ci.yml")["permissions"] == {"contents": "read"}


def test_preview_uses_oidc_comments_on_the_pr_and_runs_the_policy_pack() -> None:
    wf = load("preview.yml")
    assert "pull_request" in wf["on"]
    assert wf["permissions"] == {"contents": "read"}  # least privilege by default; jobs opt in
    job = wf["jobs"]["preview"]
    assert job["permissions"]["id-token"] == "write"
    assert job["permissions"]["pull-requests"] == "write"
    (aws,) = uses(job, "aws-actions/configure-aws-credentials")
    assert "role-to-assume" in aws["with"]
    (gcp,) = uses(job, "google-github-actions/auth")
    assert "workload_identity_provider" in gcp["with"]
    (pulumi,) = uses(job, "pulumi/actions")
    assert pulumi["with"]["command"] == "preview"
    assert pulumi["with"]["comment-on-pr"] is True
    assert pulumi["with"]["policyPacks"] == "policy"
    # Only when credentials exist; forks get the offline plan.
    assert "credentials" in job["if"]


def test_preview_writes_the_offline_plan_to_the_job_summary() -> None:
    job = load("preview.yml")["jobs"]["offline-plan"]
    assert "if" not in job, "the offline plan runs for every pull request, credentials or not"
    assert "permissions" not in job or "id-token" not in job["permissions"]
    script = "\n".join(str(s.get("run", "")) for s in steps(job))
    assert "infra plan --stack" in script
    assert "$GITHUB_STEP_SUMMARY" in script
    assert "exit $status" in script  # a mandatory policy violation fails the check


def test_matrix_comes_from_the_stacks_directory() -> None:
    for name in ("preview.yml", "deploy.yml"):
        text = (WORKFLOWS / name).read_text()
        assert "infra plan --list" in text, name
    # The command the workflows use really prints a matrix with every stack.
    result = subprocess.run(
        [str(Path(sys.executable).with_name("infra")), "plan", "--list"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    stacks = {row["stack"] for row in json.loads(result.stdout)["include"]}
    assert stacks == {
        p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in (ROOT / "stacks").glob("Pulumi.*.yaml")
    }


def test_deploy_staging_on_push_production_never_automatic() -> None:
    wf = load("deploy.yml")
    assert wf["on"]["push"]["branches"] == ["main"]
    assert "workflow_dispatch" in wf["on"]
    assert wf["concurrency"]["cancel-in-progress"] is False  # never kill a running `pulumi up`
    staging, production = wf["jobs"]["staging"], wf["jobs"]["production"]
    assert staging["environment"] == "staging"
    assert production["environment"] == "production"  # required reviewers live on this environment
    condition = production["if"]
    assert "github.event_name == 'workflow_dispatch'" in condition
    assert "promote_to_production" in condition
    assert "staging" in production["needs"]
    for job in (staging, production):
        assert job["permissions"]["id-token"] == "write"
        (pulumi,) = uses(job, "pulumi/actions")
        assert pulumi["with"]["command"] == "up"
        assert pulumi["with"]["policyPacks"] == "policy"
        assert uses(job, "aws-actions/configure-aws-credentials")[0]["with"]["role-to-assume"]
        assert "workload_identity_provider" in uses(job, "google-github-actions/auth")[0]["with"]


@pytest.mark.parametrize("event", ["push"])
def test_a_push_cannot_satisfy_the_production_condition(event: str) -> None:
    # Evaluate the job condition the way GitHub would for a push: event_name is 'push', inputs empty.
    condition = load("deploy.yml")["jobs"]["production"]["if"]
    expression = (
        condition.replace("github.event_name", repr(event))
        .replace("inputs.promote_to_production", "False")
        .replace("github.ref", "'refs/heads/main'")
        .replace("&&", " and ")
        .replace("||", " or ")
    )
    assert eval(expression) is False  # noqa: S307 - a fixed expression from our own workflow file
