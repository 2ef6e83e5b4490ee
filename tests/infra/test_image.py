"""Image: deploy by digest, never by tag; tags never reused; ECR lifecycle keeps recent images."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from fastapi_deploy import image as image_mod
from fastapi_deploy.ecs.component import ecr_repository_arn_from_ref
from fastapi_deploy.mocks import run_program

ROOT = Path(__file__).resolve().parents[2]


def test_lifecycle_policy_expires_untagged_and_keeps_recent() -> None:
    rules = json.loads(image_mod.ecr_lifecycle_policy(30))["rules"]
    assert [r["rulePriority"] for r in rules] == [1, 2]
    untagged, keep = rules
    assert untagged["selection"] == {
        "tagStatus": "untagged",
        "countType": "sinceImagePushed",
        "countUnit": "days",
        "countNumber": 7,
    }
    assert keep["selection"] == {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 30}
    assert all(r["action"] == {"type": "expire"} for r in rules)


def test_default_tag_prefers_image_tag_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAGE_TAG", "ci-1234")
    assert image_mod.default_tag() == "ci-1234"


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, timeout=20)


def test_default_tag_from_git_changes_with_uncommitted_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("IMAGE_TAG", raising=False)
    _git(tmp_path, "init", "-q")
    (tmp_path / "a.txt").write_text("1")
    _git(tmp_path, "add", "a.txt")
    _git(tmp_path, "-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-qm", "x")
    clean = image_mod.default_tag(tmp_path)
    assert clean.startswith("git-")
    assert "dirty" not in clean
    (tmp_path / "a.txt").write_text("2")
    dirty = image_mod.default_tag(tmp_path)
    assert dirty.startswith(clean + "-dirty-")
    (tmp_path / "a.txt").write_text("3")
    assert image_mod.default_tag(tmp_path) != dirty  # different bytes, different (immutable) tag


def test_default_tag_changes_with_untracked_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A new file in the build context (e.g. app/routes/new.py before `git add`) changes the image bytes;
    # reusing the commit's tag would make the push to the immutable repository fail.
    monkeypatch.delenv("IMAGE_TAG", raising=False)
    _git(tmp_path, "init", "-q")
    (tmp_path / ".gitignore").write_text("ignored.txt\n")
    (tmp_path / "a.txt").write_text("1")
    _git(tmp_path, "add", "a.txt", ".gitignore")
    _git(tmp_path, "-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-qm", "x")
    clean = image_mod.default_tag(tmp_path)
    (tmp_path / "ignored.txt").write_text("not in the context")
    assert image_mod.default_tag(tmp_path) == clean  # ignored files don't count
    (tmp_path / "new.py").write_text("v1")
    with_new = image_mod.default_tag(tmp_path)
    assert with_new.startswith(clean + "-dirty-")
    (tmp_path / "new.py").write_text("v2")
    assert image_mod.default_tag(tmp_path) not in (clean, with_new)


def test_default_tag_without_git_asks_for_a_tag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IMAGE_TAG", raising=False)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    with pytest.raises(image_mod.ImageError, match=r"app\.image\.build\.tag"):
        image_mod.default_tag(tmp_path)


def test_pushed_image_without_digest_is_refused() -> None:
    ok = "1.dkr.ecr.us-east-1.amazonaws.com/r@sha256:" + "a" * 64
    assert image_mod._check_digest(ok) == ok
    with pytest.raises(image_mod.ImageError, match="refusing to deploy by tag"):
        image_mod._check_digest("1.dkr.ecr.us-east-1.amazonaws.com/r:v1")


@pytest.mark.parametrize(
    ("ref", "arn"),
    [
        (
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/api@sha256:" + "a" * 64,
            "arn:aws:ecr:eu-west-1:123456789012:repository/team/api",
        ),
        ("ghcr.io/acme/api@sha256:" + "a" * 64, None),
        ("docker.io/library/python@sha256:" + "a" * 64, None),
    ],
)
def test_pull_permission_is_derived_only_for_ecr_digests(ref: str, arn: str | None) -> None:
    assert ecr_repository_arn_from_ref(ref) == arn


def test_build_paths_are_stable_across_machines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """From the project root (how the CLI runs) paths stay relative, so CI and laptops don't diff."""
    monkeypatch.chdir(ROOT)
    assert image_mod.build_path(".") == "."
    assert image_mod.build_path("./Dockerfile") == "Dockerfile"
    monkeypatch.chdir(tmp_path)
    assert image_mod.build_path(".") == str(ROOT)


def test_build_paths_stay_relative_under_the_cli_working_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    """`main: infra/` makes the CLI run the program (and the docker provider) with cwd = infra/
    (pulumi/pulumi pkg/engine/project.go getPwdMain: a directory `main` becomes the pwd; issue #20305).
    The paths must still be relative - and correct from there - or every machine diffs and rebuilds."""
    monkeypatch.chdir(ROOT / "infra")
    context, dockerfile = image_mod.build_path("."), image_mod.build_path("./Dockerfile")
    assert (context, dockerfile) == ("..", os.path.join("..", "Dockerfile"))
    assert (Path.cwd() / dockerfile).resolve() == ROOT / "Dockerfile"


# ------------------------------------------------------------------------- promotion (deploy.yml)
PROMOTED_DIGEST = "sha256:" + "ab" * 32


def _promote(stack: str, repository: str) -> Any:
    """The program for ``stack`` after deploy.yml's `pulumi config set --path app.image.digest ...`:
    the stack file keeps ``image.build`` and gains ``image.digest`` (staging's digest, copied into its
    registry). Returns (promoted run, unedited run)."""
    from tests.infra.conftest import stack_config

    raw = stack_config(stack)
    app = raw["fastapi-deploy:app"]
    assert app["image"].get("build"), f"{stack} is expected to own a registry (image.build)"
    app["image"]["digest"] = f"{repository}@{PROMOTED_DIGEST}"
    return run_program(stack, raw), run_program(stack, stack_config(stack))


def test_promoting_a_digest_keeps_the_registry_and_builds_nothing() -> None:
    """Switching prod-ecs to the promoted digest must not delete its ECR repository (the registry the digest
    was copied into) and must not build: the task runs exactly the promoted bytes."""
    repo = "123456789012.dkr.ecr.us-east-1.amazonaws.com/items-api-prod-ecs-repo-1a2b3c4"
    promoted, built = _promote("prod-ecs", repo)
    kept = ("aws:ecr/repository:Repository", "aws:ecr/lifecyclePolicy:LifecyclePolicy")
    for kind in kept:
        assert [r.name for r in promoted.by_type(kind)] == [r.name for r in built.by_type(kind)] != []
    assert built.by_type("docker:index/image:Image"), "the unpromoted stack builds (the comparison is real)"
    assert not promoted.by_type("docker:index/image:Image")
    assert promoted.outputs["image"] == f"{repo}@{PROMOTED_DIGEST}"
    (container,) = json.loads(
        promoted.one("aws:ecs/taskDefinition:TaskDefinition").inputs["containerDefinitions"]
    )
    assert container["image"] == f"{repo}@{PROMOTED_DIGEST}"
    # Pull permission names the repository the digest is in (derived from the reference).
    pol = next(
        r for r in promoted.by_type("aws:iam/rolePolicy:RolePolicy") if r.name.endswith("-exec-policy")
    )
    resources = json.dumps(json.loads(pol.inputs["policy"]))
    assert ecr_repository_arn_from_ref(f"{repo}@{PROMOTED_DIGEST}") in resources


def test_promoting_to_lambda_keeps_the_repository_pull_policy() -> None:
    repo = "123456789012.dkr.ecr.us-east-1.amazonaws.com/items-api-prod-lambda-repo-1a2b3c4"
    promoted, built = _promote("prod-lambda", repo)
    policies = "aws:ecr/repositoryPolicy:RepositoryPolicy"
    assert [r.name for r in promoted.by_type(policies)] == [r.name for r in built.by_type(policies)] != []
    assert not promoted.by_type("docker:index/image:Image")
    assert promoted.one("aws:lambda/function:Function").inputs["imageUri"] == f"{repo}@{PROMOTED_DIGEST}"


def test_promoting_to_cloud_run_keeps_the_artifact_registry_repository() -> None:
    repo = "europe-west1-docker.pkg.dev/items-api-prod/items-api/items-api"
    promoted, built = _promote("prod-cloudrun", repo)
    kind = "gcp:artifactregistry/repository:Repository"
    assert [r.name for r in promoted.by_type(kind)] == [r.name for r in built.by_type(kind)] != []
    assert not promoted.by_type("docker:index/image:Image")
    assert promoted.outputs["image"] == f"{repo}@{PROMOTED_DIGEST}"
