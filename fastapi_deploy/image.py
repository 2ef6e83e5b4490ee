"""The image every target runs: built once and deployed by digest, or an existing digest promoted.

Deploying ``repo@sha256:...`` instead of ``repo:tag`` means a task that starts (scale-out, replacement)
runs exactly the bytes that were tested, even if someone pushes the same tag again; ECR tags are
IMMUTABLE as a second line of defence. A lifecycle policy keeps the newest ``image.keep_images``
images and expires untagged layers after 7 days, so the repository does not grow forever (ECR bills
$0.10/GB-month).

Public names: ``Registry``, ``ImageResult``, ``ecr_registry(...)``, ``resolve(...)``, ``default_tag(...)``,
``project_root()``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pulumi

from fastapi_deploy import project
from fastapi_deploy.config import ImageSpec

UNTAGGED_EXPIRY_DAYS = 7


class ImageError(ValueError):
    """The image cannot be built or resolved; the message names the config key."""


@dataclass
class Registry:
    """Where a built image is pushed, with credentials (password is a Pulumi secret)."""

    repository_url: pulumi.Output[str]
    server: pulumi.Input[str]
    username: pulumi.Input[str]
    password: pulumi.Input[str]
    #: Registry-side resources (for example the ECR repository), so targets can grant pull access.
    repository_arn: pulumi.Output[str] | None = None


@dataclass
class ImageResult:
    """The resolved image: ``ref`` is always a digest reference (``repo@sha256:<64 hex>``)."""

    ref: pulumi.Output[str]
    platform: str
    built: bool
    repository_url: pulumi.Output[str] | None = None
    repository_arn: pulumi.Output[str] | None = None


def project_root() -> Path:
    """The Pulumi project's directory (nearest Pulumi.yaml): build paths are relative to it."""
    return project.find().root


def default_tag(root: Path | None = None) -> str:
    """A tag that is never reused: ``IMAGE_TAG`` env, else the git commit (+ hash of uncommitted changes).

    Tags are immutable in ECR: reusing one for different bytes fails the push instead of silently
    replacing what production runs.
    """
    env_tag = os.environ.get("IMAGE_TAG")
    if env_tag:
        return env_tag
    root = root or project_root()
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        diff = subprocess.run(
            ["git", "diff", "HEAD", "--", "."], cwd=root, capture_output=True, timeout=10, check=True
        ).stdout
        # Untracked (not ignored) files are in the build context too: a new file under app/ changes the
        # image but not `git diff`, and pushing a reused tag to the IMMUTABLE repository then fails.
        untracked = subprocess.run(
            ["git", "ls-files", "--others", "--exclude-standard", "-z", "--", "."],
            cwd=root,
            capture_output=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise ImageError(
            "app.image.build.tag: cannot derive a tag from git here; set app.image.build.tag or IMAGE_TAG"
        ) from exc
    digest = hashlib.sha256(diff)
    for rel in sorted(p for p in untracked.split(b"\0") if p):
        digest.update(b"\0untracked\0" + rel + b"\0")
        try:
            digest.update((root / rel.decode()).read_bytes())
        except OSError:
            digest.update(b"<unreadable>")
    dirty = bool(diff or untracked)
    return f"git-{sha}" + (f"-dirty-{digest.hexdigest()[:8]}" if dirty else "")


def build_path(relative: str) -> str:
    """A build path (given relative to the project root) as the engine should store it.

    Relative to the working directory whenever that is inside the project: an absolute path would differ
    between a laptop and CI and make every `pulumi up` from the other machine rebuild the image. Under the
    CLI the working directory is NOT the project root: `main: infra/` makes the engine run the program and
    its providers in ``infra/`` (pulumi pkg/engine/project.go getPwdMain), so the context is ``..`` there.
    Outside the project (tests run from elsewhere) the absolute path is used.
    """
    root = project_root()
    target = (root / relative).resolve()
    cwd = Path.cwd().resolve()
    if cwd == root or root in cwd.parents:
        return os.path.relpath(target, cwd)
    return str(target)


def ecr_lifecycle_policy(keep_images: int) -> str:
    """ECR lifecycle policy JSON: expire untagged after 7 days, keep the newest ``keep_images`` tagged."""
    return json.dumps(
        {
            "rules": [
                {
                    "rulePriority": 1,
                    "description": f"expire untagged images after {UNTAGGED_EXPIRY_DAYS} days",
                    "selection": {
                        "tagStatus": "untagged",
                        "countType": "sinceImagePushed",
                        "countUnit": "days",
                        "countNumber": UNTAGGED_EXPIRY_DAYS,
                    },
                    "action": {"type": "expire"},
                },
                {
                    "rulePriority": 2,
                    "description": f"keep the newest {keep_images} images",
                    "selection": {
                        "tagStatus": "any",
                        "countType": "imageCountMoreThan",
                        "countNumber": keep_images,
                    },
                    "action": {"type": "expire"},
                },
            ]
        },
        sort_keys=True,
    )


def ecr_registry(
    name: str, spec: ImageSpec, tags: dict[str, str], opts: pulumi.ResourceOptions | None = None
) -> Registry:
    """An ECR repository (scan on push, immutable tags, lifecycle policy) and push credentials."""
    import pulumi_aws as aws

    repo = aws.ecr.Repository(
        f"{name}-repo",
        image_tag_mutability="IMMUTABLE",
        image_scanning_configuration=aws.ecr.RepositoryImageScanningConfigurationArgs(scan_on_push=True),
        encryption_configurations=[aws.ecr.RepositoryEncryptionConfigurationArgs(encryption_type="AES256")],
        # Deleting the stack must not delete the images production may still be running elsewhere.
        force_delete=False,
        tags=tags,
        opts=opts,
    )
    aws.ecr.LifecyclePolicy(
        f"{name}-repo-lifecycle",
        repository=repo.name,
        policy=ecr_lifecycle_policy(spec.keep_images),
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(parent=repo)),
    )
    token = aws.ecr.get_authorization_token_output(registry_id=repo.registry_id)
    return Registry(
        repository_url=repo.repository_url,
        server=token.proxy_endpoint,
        username=token.user_name,
        password=pulumi.Output.secret(token.password),
        repository_arn=repo.arn,
    )


def resolve(
    name: str, spec: ImageSpec, registry: Registry | None, opts: pulumi.ResourceOptions | None = None
) -> ImageResult:
    """Build and push (``spec.build``) or take the existing digest (``spec.digest``).

    With both (a promotion), the digest wins and nothing is built; ``registry`` is still created by the
    caller so the promotion does not delete it. ``repository_arn`` stays unset then: a target derives the
    pull permission from the digest reference itself, which names the repository the bytes really are in.
    """
    if spec.digest is not None:
        return ImageResult(
            ref=pulumi.Output.from_input(spec.digest),
            platform=spec.platform,
            built=False,
            repository_url=registry.repository_url if registry is not None else None,
        )
    assert spec.build is not None
    if registry is None:
        raise ImageError("app.image: this target has no registry to push to; set app.image.digest")
    import pulumi_docker as docker

    build = spec.build
    context = build_path(build.context)
    dockerfile = build_path(str(Path(build.context) / build.dockerfile))
    tag = build.tag or default_tag()
    image = docker.Image(
        f"{name}-image",
        image_name=registry.repository_url.apply(lambda url: f"{url}:{tag}"),
        build=docker.DockerBuildArgs(
            context=context,
            dockerfile=dockerfile,
            platform=build.platform,
            target=build.target,
            args=build.args or None,
            builder_version=docker.BuilderVersion.BUILDER_BUILD_KIT,
        ),
        registry=docker.RegistryArgs(
            server=registry.server, username=registry.username, password=registry.password
        ),
        skip_push=False,
        opts=opts,
    )
    ref = image.repo_digest.apply(_check_digest)
    return ImageResult(
        ref=ref,
        platform=build.platform,
        built=True,
        repository_url=registry.repository_url,
        repository_arn=registry.repository_arn,
    )


_DIGEST = re.compile(r"^.+@sha256:[0-9a-f]{64}$")


def _check_digest(ref: str) -> str:
    # A tag reference here would let a later push change what new tasks run.
    if ref and not _DIGEST.match(ref):
        raise ImageError(f"pushed image has no digest reference ({ref!r}); refusing to deploy by tag")
    return ref
