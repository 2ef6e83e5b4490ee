"""Image: deploy by digest, never by tag; tags never reused; ECR lifecycle keeps recent images."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from infra import image as image_mod
from infra.targets.ecs import ecr_repository_arn_from_ref


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
    monkeypatch.chdir(image_mod.PROJECT_ROOT)
    assert image_mod.build_path(".") == "."
    assert image_mod.build_path("./Dockerfile") == "Dockerfile"
    monkeypatch.chdir(tmp_path)
    assert image_mod.build_path(".") == str(image_mod.PROJECT_ROOT)


def test_build_paths_stay_relative_under_the_cli_working_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    """`main: infra/` makes the CLI run the program (and the docker provider) with cwd = infra/
    (pulumi/pulumi pkg/engine/project.go getPwdMain: a directory `main` becomes the pwd; issue #20305).
    The paths must still be relative - and correct from there - or every machine diffs and rebuilds."""
    monkeypatch.chdir(image_mod.PROJECT_ROOT / "infra")
    context, dockerfile = image_mod.build_path("."), image_mod.build_path("./Dockerfile")
    assert (context, dockerfile) == ("..", os.path.join("..", "Dockerfile"))
    assert (Path.cwd() / dockerfile).resolve() == image_mod.PROJECT_ROOT / "Dockerfile"
