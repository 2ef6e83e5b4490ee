"""GitHub workflows, validated offline: the vendored GitHub workflow schema (check-jsonschema) and the
properties a reviewer checks: OIDC only (Pulumi Cloud included), one pinned Pulumi CLI, PR comments, offline
plan summary, ephemeral PR environments destroyed on close, drift detection, production promoted by digest
behind manual approval. The shell the workflows run (event decision, promotion, drift check) is executed
here with fake `pulumi`/`crane`/`aws` executables."""

from __future__ import annotations

import json
import re
import shutil
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


def test_the_workflows_exist() -> None:
    assert {p.name for p in FILES} >= {"ci.yml", "preview.yml", "deploy.yml", "drift.yml"}


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
    (pulumi,) = [s for s in uses(job, "pulumi/actions") if "command" in s.get("with", {})]
    assert pulumi["with"]["command"] == "preview"
    assert pulumi["with"]["comment-on-pr"] is True
    assert pulumi["with"]["policyPacks"] == "policy"
    # Only when credentials exist; forks get the offline plan.
    assert "credentials" in job["if"]


def test_preview_writes_the_offline_plan_to_the_job_summary() -> None:
    job = load("preview.yml")["jobs"]["offline-plan"]
    # Every code change gets it, credentials or not (label/close events change no code: no plan).
    assert job["if"] == "needs.stacks.outputs.code == 'true'"
    assert "permissions" not in job or "id-token" not in job["permissions"]
    script = "\n".join(str(s.get("run", "")) for s in steps(job))
    assert "infra plan --stack" in script
    assert "$GITHUB_STEP_SUMMARY" in script
    assert "exit $status" in script  # a mandatory policy violation fails the check


def test_matrix_comes_from_the_stacks_directory() -> None:
    for name in ("preview.yml", "deploy.yml", "drift.yml"):
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
        (pulumi,) = [s for s in uses(job, "pulumi/actions") if "command" in s.get("with", {})]
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


# --------------------------------------------------------------------------------------- helpers
def workflows() -> dict[str, dict[str, Any]]:
    return {p.name: load(p.name) for p in FILES}


def all_steps() -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (name, job_name, step)
        for name, wf in workflows().items()
        for job_name, job in wf["jobs"].items()
        for step in steps(job)
    ]


def run_text(step: dict[str, Any]) -> str:
    """What a step runs: its inline script, plus the repository script it calls."""
    text = str(step.get("run", ""))
    for script in re.findall(r"\.github/scripts/[\w.-]+\.sh", text):
        text += "\n" + (ROOT / script).read_text()
    return text


def runs_pulumi_cli(step: dict[str, Any]) -> bool:
    return re.search(r"(^|[\s;|(])pulumi\s+(?!/)[a-z]", run_text(step), re.M) is not None


def uses_pulumi(step: dict[str, Any]) -> bool:
    return str(step.get("uses", "")).startswith("pulumi/actions@") or runs_pulumi_cli(step)


def locked_pulumi_sdk() -> str:
    lock = (ROOT / "uv.lock").read_text()
    match = re.search(r'^name = "pulumi"\nversion = "([^"]+)"', lock, re.M)
    assert match, "pulumi is not in uv.lock"
    return match.group(1)


def fake_bin(tmp_path: Path, scripts: dict[str, str]) -> dict[str, str]:
    """Executables that log their argv to calls.log and then run the given bash body."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name, body in scripts.items():
        exe = bindir / name
        exe.write_text(f'#!/usr/bin/env bash\necho "{name} $*" >> "{tmp_path}/calls.log"\n{body}\n')
        exe.chmod(0o755)
    return {"PATH": f"{bindir}:/usr/bin:/bin", "HOME": str(tmp_path)}


def calls(tmp_path: Path) -> list[str]:
    log = tmp_path / "calls.log"
    return log.read_text().splitlines() if log.exists() else []


# ------------------------------------------------------------------ one pinned Pulumi CLI, OIDC
def test_every_pulumi_step_pins_the_same_exact_cli_version_as_the_locked_sdk() -> None:
    versions = {}
    pulumi_steps = [
        (n, j, s) for n, j, s in all_steps() if str(s.get("uses", "")).startswith("pulumi/actions@")
    ]
    assert len(pulumi_steps) >= 8, "preview, env-up, env-down, staging, staging-image, production, drift"
    for name, job_name, step in pulumi_steps:
        assert step["with"].get("pulumi-version") == "${{ env.PULUMI_VERSION }}", (name, job_name, step)
        versions[name] = workflows()[name]["env"]["PULUMI_VERSION"]
    for name, version in versions.items():
        assert re.fullmatch(r"\d+\.\d+\.\d+", str(version)), f"{name}: {version!r} is not an exact version"
    # One version everywhere, and the CLI the SDK in uv.lock was released with.
    assert set(versions.values()) == {locked_pulumi_sdk()}, versions


def test_a_job_that_runs_the_pulumi_cli_installs_the_pinned_one_first() -> None:
    checked = 0
    for name, wf in workflows().items():
        for job_name, job in wf["jobs"].items():
            installed = False
            for step in steps(job):
                if str(step.get("uses", "")).startswith("pulumi/actions@"):
                    installed = True
                elif runs_pulumi_cli(step):
                    checked += 1
                    assert installed, (
                        f"{name}/{job_name}: step {step.get('name')!r} runs pulumi before installing it"
                    )
    assert checked >= 8
    text = "".join(p.read_text() for p in FILES)
    assert "get.pulumi.com" not in text
    assert "pulumi-version-file" not in text


def test_pulumi_cloud_auth_is_oidc_no_stored_access_token() -> None:
    for path in [*FILES, *(ROOT / ".github" / "scripts").glob("*.sh")]:
        text = path.read_text()
        assert not re.search(r"secrets\.PULUMI_ACCESS_TOKEN|PULUMI_ACCESS_TOKEN\s*[:=]", text), (
            f"{path.name} still uses a stored Pulumi token"
        )
    jobs_with_pulumi = 0
    for name, wf in workflows().items():
        for job_name, job in wf["jobs"].items():
            job_steps = steps(job)
            first = next((i for i, s in enumerate(job_steps) if uses_pulumi(s)), None)
            if first is None:
                continue
            jobs_with_pulumi += 1
            auth = uses(job, "pulumi/auth-actions")
            assert len(auth) == 1, f"{name}/{job_name}: no pulumi/auth-actions step"
            assert job_steps.index(auth[0]) < first, f"{name}/{job_name}: Pulumi Cloud login after first use"
            assert auth[0]["with"]["organization"] == "${{ vars.PULUMI_ORG }}"
            assert (
                auth[0]["with"]["requested-token-type"] == "urn:pulumi:token-type:access_token:organization"
            )
            assert auth[0]["if"] == "vars.PULUMI_BACKEND_URL == ''", (
                "OIDC exactly when Pulumi Cloud is the backend"
            )
            assert job["permissions"]["id-token"] == "write", f"{name}/{job_name}"
    assert jobs_with_pulumi == 7  # preview, env-up, env-down, staging, staging-image, production, drift


def test_actions_are_pinned_by_major_version_consistently() -> None:
    refs: dict[str, set[str]] = {}
    for name, job_name, step in all_steps():
        if "uses" not in step:
            continue
        action, _, ref = str(step["uses"]).partition("@")
        assert re.fullmatch(r"v\d+|[0-9a-f]{40}", ref), (
            f"{name}/{job_name}: {step['uses']} (pin a major or a sha)"
        )
        refs.setdefault(action, set()).add(ref)
    assert {a: r for a, r in refs.items() if len(r) > 1} == {}, "one ref per action across all workflows"
    assert refs["pulumi/actions"] == {"v7"}
    assert refs["pulumi/auth-actions"] == {"v2"}


def test_cloud_credentials_are_oidc_everywhere_pulumi_runs() -> None:
    for name, wf in workflows().items():
        for job_name, job in wf["jobs"].items():
            for step in uses(job, "aws-actions/configure-aws-credentials"):
                assert set(step["with"]) >= {"role-to-assume", "aws-region"}, (name, job_name)
            for step in uses(job, "google-github-actions/auth"):
                assert set(step["with"]) >= {"workload_identity_provider", "service_account"}, (
                    name,
                    job_name,
                )


# --------------------------------------------------------------------- preview environments
def decide(tmp_path: Path, **env: str) -> dict[str, str]:
    """Run preview.yml's event decision step as the runner would."""
    (step,) = [s for s in steps(load("preview.yml")["jobs"]["stacks"]) if s.get("id") == "decide"]
    out, summary = tmp_path / "out", tmp_path / "summary"
    out.write_text("")
    base = {"ACTION": "", "HAS_LABEL": "false", "EVENT_LABEL": "", "CREDENTIALS": "true"}
    result = subprocess.run(
        ["bash", "-e", "-c", step["run"]],
        env={
            "PATH": "/usr/bin:/bin",
            **load("preview.yml")["env"],
            **base,
            **env,
            "GITHUB_OUTPUT": str(out),
            "GITHUB_STEP_SUMMARY": str(summary),
        },
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    return dict(line.split("=", 1) for line in out.read_text().splitlines())


@pytest.mark.parametrize(
    ("event", "code", "env"),
    [
        ({"ACTION": "opened"}, "true", "none"),
        ({"ACTION": "synchronize", "HAS_LABEL": "true"}, "true", "up"),
        ({"ACTION": "labeled", "EVENT_LABEL": "preview-env", "HAS_LABEL": "true"}, "false", "up"),
        ({"ACTION": "labeled", "EVENT_LABEL": "documentation"}, "false", "none"),
        ({"ACTION": "unlabeled", "EVENT_LABEL": "preview-env"}, "false", "down"),
        ({"ACTION": "unlabeled", "EVENT_LABEL": "documentation", "HAS_LABEL": "true"}, "false", "none"),
        ({"ACTION": "closed", "HAS_LABEL": "true"}, "false", "down"),
        ({"ACTION": "closed"}, "false", "down"),
        # A fork PR has no credentials: never an environment, whatever its labels.
        ({"ACTION": "synchronize", "HAS_LABEL": "true", "CREDENTIALS": "false"}, "true", "none"),
        ({"ACTION": "labeled", "EVENT_LABEL": "preview-env", "CREDENTIALS": "false"}, "false", "none"),
    ],
)
def test_preview_env_decision(tmp_path: Path, event: dict[str, str], code: str, env: str) -> None:
    assert decide(tmp_path, **event) == {"code": code, "env": env}


def test_preview_env_is_created_per_pr_from_the_staging_config_and_commented() -> None:
    wf = load("preview.yml")
    assert set(wf["on"]["pull_request"]["types"]) >= {
        "opened",
        "synchronize",
        "labeled",
        "unlabeled",
        "closed",
    }
    assert wf["env"]["PREVIEW_ENV_LABEL"] == "preview-env"
    assert "concurrency" not in wf, "cancelling a whole run would cancel a running pulumi up/destroy"
    up = wf["jobs"]["env-up"]
    assert up["if"].startswith("needs.stacks.outputs.env == 'up'")
    assert up["strategy"]["matrix"] == "${{ fromJSON(needs.stacks.outputs.staging) }}"  # never prod
    assert up["env"]["PR_STACK"] == "pr-${{ github.event.pull_request.number }}-${{ matrix.stack }}"
    script = "\n".join(run_text(s) for s in steps(up))
    assert 'pulumi stack init "$STACK_REF" --copy-config-from "$BASE_REF"' in script
    assert 'pulumi config cp --stack "$BASE_REF" --dest "$STACK_REF"' in script
    assert "app/migrations/versions" in script  # shares staging's database: migrations are refused
    (pulumi_up,) = [s for s in uses(up, "pulumi/actions") if s["with"].get("command") == "up"]
    assert pulumi_up["with"]["stack-name"] == "${{ env.STACK_REF }}"
    (comment,) = uses(up, "actions/github-script")
    assert comment["env"]["URL"] == "${{ steps.up.outputs.url }}"
    assert pulumi_up["id"] == "up"
    assert up["environment"]["url"] == "${{ steps.up.outputs.url }}"
    assert up["permissions"]["pull-requests"] == "write"


def test_preview_env_is_destroyed_and_removed_on_close_or_unlabel() -> None:
    wf = load("preview.yml")
    up, down = wf["jobs"]["env-up"], wf["jobs"]["env-down"]
    assert down["if"].startswith("needs.stacks.outputs.env == 'down'")
    assert down["strategy"]["matrix"] == up["strategy"]["matrix"]
    assert down["env"]["STACK_REF"] == up["env"]["STACK_REF"]
    (destroy,) = [s for s in steps(down) if s.get("id") == "destroy"]
    script = destroy["run"]
    d = script.index('pulumi destroy --yes --skip-preview --non-interactive --stack "$STACK_REF"')
    r = script.index('pulumi stack rm --yes --stack "$STACK_REF"')
    assert d < r, "destroy the resources, then remove the stack"
    assert not re.search(r"stack rm[^\n]*--force", script), "stack rm must refuse while resources remain"
    # The ECR images are removed only from the PR stack's own repository.
    assert '*.dkr.ecr.*.amazonaws.com/*"$PR_STACK"*)' in script
    # Up and down share one never-cancelled group per PR and stack: a destroy waits for a running up.
    for job in (up, down):
        assert job["concurrency"] == {
            "group": "preview-env-${{ github.event.pull_request.number }}-${{ matrix.stack }}",
            "cancel-in-progress": False,
        }
        assert job["environment"] == "preview-env" or job["environment"]["name"] == "preview-env"


def test_fork_prs_never_reach_a_job_with_credentials() -> None:
    wf = load("preview.yml")
    for job_name, job in wf["jobs"].items():
        if "id-token" in (job.get("permissions") or {}):
            assert "github.event.pull_request.head.repo.full_name == github.repository" in job["if"], job_name
    for job_name in ("stacks", "offline-plan"):
        assert "id-token" not in (wf["jobs"][job_name].get("permissions") or {})


def test_pr_stack_names_are_accepted_by_the_program(tmp_path: Path) -> None:
    """`pr-<number>-<staging stack>` must fit the component-name limits (AWS names) for 5-digit PRs."""
    staging = sorted((ROOT / "stacks").glob("Pulumi.staging-*.yaml"))
    assert staging
    for path in staging:
        shutil.copy(path, tmp_path / path.name.replace("Pulumi.", "Pulumi.pr-99999-"))
    result = subprocess.run(
        [
            str(Path(sys.executable).with_name("infra")),
            "plan",
            "--stack",
            "all",
            "--stacks-dir",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stdout.count("pr-99999-staging-") >= len(staging)


# ------------------------------------------------------------------------------------- drift
def test_drift_runs_on_a_schedule_for_every_stack_and_expects_no_changes() -> None:
    wf = load("drift.yml")
    assert wf["on"]["schedule"][0]["cron"].split()[0].isdigit()
    assert "workflow_dispatch" in wf["on"]
    assert wf["permissions"] == {"contents": "read"}
    assert "--prefix" not in json.dumps(wf["jobs"]["stacks"]), "every stack, staging and production"
    job = wf["jobs"]["drift"]
    assert job["strategy"]["fail-fast"] is False
    assert job["strategy"]["matrix"] == "${{ fromJSON(needs.stacks.outputs.matrix) }}"
    script = "\n".join(run_text(s) for s in steps(job))
    assert "pulumi refresh --preview-only --expect-no-changes" in script
    # A drift check never changes anything.
    assert "pulumi up" not in script
    assert "refresh --yes" not in script


@pytest.mark.parametrize(
    ("status", "output", "code", "verdict"),
    [
        (0, "Resources:\n    42 unchanged\n", 0, "no drift"),
        (255, "~ aws:ecs:Service svc update\nResources:\n    ~ 1 to update\n    41 unchanged\n", 1, "DRIFT"),
        (255, "error: failed to get credentials: no EC2 IMDS role found\n", 2, "could not check"),
    ],
)
def test_drift_check_verdicts(tmp_path: Path, status: int, output: str, code: int, verdict: str) -> None:
    env = fake_bin(tmp_path, {"pulumi": f"printf '%s' {json.dumps(output)}\nexit {status}"})
    summary = tmp_path / "summary.md"
    result = subprocess.run(
        [str(ROOT / ".github" / "scripts" / "drift-check.sh")],
        env={**env, "STACK": "prod-ecs", "STACK_REF": "acme/prod-ecs", "GITHUB_STEP_SUMMARY": str(summary)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == code, result.stdout + result.stderr
    assert summary.read_text().startswith(f"### Drift: `prod-ecs`: {verdict}")
    (call,) = calls(tmp_path)
    assert call.startswith("pulumi refresh --preview-only --expect-no-changes")
    assert call.endswith("--stack acme/prod-ecs")


# ------------------------------------------------------------------- production: promote a digest
def test_production_promotes_the_staging_digest_and_builds_nothing() -> None:
    wf = load("deploy.yml")
    production, image = wf["jobs"]["production"], wf["jobs"]["staging-image"]
    assert image["needs"] == "staging", "the digest is read after every staging stack passed verify"
    assert set(production["needs"]) >= {"staging", "staging-image"}
    assert production["environment"] == "production"
    # The source is a staging stack that builds (image.build): the digest staging ran, not a pinned one.
    source = yaml.safe_load((ROOT / "stacks" / f"Pulumi.{wf['env']['PROMOTE_FROM_STACK']}.yaml").read_text())
    assert wf["env"]["PROMOTE_FROM_STACK"].startswith("staging-")
    assert "build" in source["config"]["fastapi-deploy:app"]["image"]
    job_steps = steps(production)
    (promote,) = [s for s in job_steps if s.get("id") == "promote"]
    assert promote["env"]["DIGEST"] == "${{ needs.staging-image.outputs.digest }}"
    assert promote["env"]["SOURCE_REF"] == "${{ needs.staging-image.outputs.ref }}"
    (up,) = [s for s in uses(production, "pulumi/actions") if s["with"].get("command") == "up"]
    assert job_steps.index(promote) < job_steps.index(up), "the digest is set before pulumi up"
    script = run_text(promote)
    assert "crane copy" in script
    assert "pulumi config set --path app.image.digest" in script
    # No build anywhere in the production job.
    text = json.dumps(production) + "\n".join(run_text(s) for s in job_steps)
    for build in ("docker build", "buildx build", "docker/build-push-action", "IMAGE_TAG", "docker push"):
        assert build not in text, build
    (check,) = [s for s in job_steps if s.get("env", {}).get("EXPECTED")]
    assert check["env"]["EXPECTED"] == "${{ steps.promote.outputs.ref }}"
    assert job_steps.index(up) < job_steps.index(check)


PROMOTE = ROOT / ".github" / "scripts" / "promote-image.sh"
DIGEST = "sha256:" + "c0" * 32
STAGING_REF = f"123456789012.dkr.ecr.eu-west-1.amazonaws.com/items-api-stg-staging-ecs-repo-aaa@{DIGEST}"
PROD_REPO = "123456789012.dkr.ecr.us-east-1.amazonaws.com/items-api-prod-ecs-repo-bbb"


def promote(tmp_path: Path, *, current: str | None, copied: str = DIGEST) -> subprocess.CompletedProcess[str]:
    pulumi = f'if [ "$1 $2" = "stack output" ]; then {"echo " + current if current else "exit 255"}; fi'
    env = fake_bin(
        tmp_path,
        {
            "pulumi": pulumi,
            "crane": f'if [ "$1" = digest ]; then echo {copied}; fi\ncat > /dev/null || true',
            "aws": "echo ecr-password",
        },
    )
    (tmp_path / "out").write_text("")
    return subprocess.run(
        [str(PROMOTE)],
        env={
            **env,
            "STACK_REF": "acme/prod-ecs",
            "SOURCE_REF": STAGING_REF,
            "DIGEST": DIGEST,
            "PROMOTE_TAG": "promoted-77-1",
            "GITHUB_OUTPUT": str(tmp_path / "out"),
        },
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )


def test_promotion_copies_into_the_stacks_registry_and_sets_the_digest(tmp_path: Path) -> None:
    result = promote(tmp_path, current=f"{PROD_REPO}@sha256:{'0' * 64}")
    assert result.returncode == 0, result.stderr
    log = calls(tmp_path)
    assert "aws ecr get-login-password --region eu-west-1" in log
    assert "aws ecr get-login-password --region us-east-1" in log
    assert f"crane copy {STAGING_REF} {PROD_REPO}:promoted-77-1" in log
    assert f"pulumi config set --path app.image.digest {PROD_REPO}@{DIGEST} --stack acme/prod-ecs" in log
    assert log.index(f"crane copy {STAGING_REF} {PROD_REPO}:promoted-77-1") < len(log) - 1
    assert (tmp_path / "out").read_text() == f"ref={PROD_REPO}@{DIGEST}\n"
    assert not any(c.startswith(("docker ", "pulumi up")) for c in log)


def test_promotion_refuses_a_copy_with_another_digest(tmp_path: Path) -> None:
    result = promote(tmp_path, current=f"{PROD_REPO}@sha256:{'0' * 64}", copied="sha256:" + "dd" * 32)
    assert result.returncode != 0
    assert "staging runs" in result.stderr
    assert not any(c.startswith("pulumi config set") for c in calls(tmp_path))


def test_promotion_refuses_a_stack_that_was_never_deployed(tmp_path: Path) -> None:
    result = promote(tmp_path, current=None)
    assert result.returncode != 0
    assert "deploy it once with image.build" in result.stderr
    assert not any(c.startswith(("crane", "pulumi config set")) for c in calls(tmp_path))


def test_promotion_to_artifact_registry_logs_in_with_the_google_token(tmp_path: Path) -> None:
    ar_repo = "europe-west1-docker.pkg.dev/items-api-prod/items-api/items-api"
    env = fake_bin(
        tmp_path,
        {
            "pulumi": f'if [ "$1 $2" = "stack output" ]; then echo {ar_repo}@sha256:{"1" * 64}; fi',
            "crane": (
                f'if [ "$1" = digest ]; then echo {DIGEST}; fi\n'
                f'if [ "$1" = auth ]; then cat > "{tmp_path}/stdin-$5"; fi'
            ),
            "aws": "echo ecr-password",
        },
    )
    result = subprocess.run(
        [str(PROMOTE)],
        env={
            **env,
            "STACK_REF": "prod-cloudrun",
            "SOURCE_REF": STAGING_REF,
            "DIGEST": DIGEST,
            "PROMOTE_TAG": "promoted-77-1",
            "GCP_ACCESS_TOKEN": "ya29.fake",
        },
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "stdin-oauth2accesstoken").read_text() == "ya29.fake"
    assert f"pulumi config set --path app.image.digest {ar_repo}@{DIGEST} --stack prod-cloudrun" in calls(
        tmp_path
    )


def _evaluate(expression: str, row: dict[str, str]) -> Any:
    """A GitHub expression over one matrix row, as Python (&&/|| short-circuit the same way)."""
    expr = expression.strip().removeprefix("${{").removesuffix("}}")
    expr = re.sub(r"matrix\.(\w+)", lambda m: repr(row.get(m.group(1), "")), expr)
    # The staging image is in ECR (staging-ecs), the state backend is Pulumi Cloud.
    expr = expr.replace("contains(needs.staging-image.outputs.ref, '.dkr.ecr.')", "True")
    expr = expr.replace("startsWith(vars.PULUMI_BACKEND_URL, 's3://')", "False")
    expr = expr.replace("&&", " and ").replace("||", " or ")
    return eval(expr)  # noqa: S307 - a fixed expression from our own workflow files


def test_aws_credentials_always_get_an_aws_region() -> None:
    """A matrix leg on GCP that still needs AWS (the promotion reads staging's ECR) must not pass its GCP
    region to the AWS credentials action (its STS call would go to sts.europe-west1.amazonaws.com)."""
    rows = json.loads(
        subprocess.run(
            [str(Path(sys.executable).with_name("infra")), "plan", "--list"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
    )["include"]
    checked = 0
    for name, job_name, step in all_steps():
        if not str(step.get("uses", "")).startswith("aws-actions/configure-aws-credentials@"):
            continue
        for row in rows:
            if "if" in step and not _evaluate(step["if"], row):
                continue
            region = _evaluate(step["with"]["aws-region"], row)
            aws_region = re.fullmatch(r"(us|eu|ap|ca|sa|me|af|il|mx)-[a-z]+-\d", region)
            assert aws_region, (name, job_name, row, region)
            checked += 1
    assert checked > 10
