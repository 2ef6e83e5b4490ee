"""Target registry: ``target`` name -> the module that deploys it.

A target module (``fastapi_deploy/targets/<module>.py``) exposes two functions:

``deploy(ctx: DeployContext) -> dict[str, pulumi.Input[Any]]``
    Builds the component's Args from the spec and the target's config section (its ``adapter.args_from``),
    creates the component and returns its one outputs dict: the stack outputs of contract section 2
    (``target``, ``url``, ``image``, ``health_path``, ``ready_path`` plus the target's own keys).

``validate(cfg, tuning) -> None``  (optional)
    Target checks that need the tuning; called before any resource is registered. Raises with the key.

``image_registry(ctx: RegistryContext) -> fastapi_deploy.image.Registry``  (optional)
    Where a built image is pushed (ECR for AWS targets by default). Not called when the config gives an
    existing ``image.digest``.

The Pulumi program never imports a target module directly, so adding a target means adding a module
and one line in :data:`TARGET_MODULES`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any

from fastapi_deploy import contract

if TYPE_CHECKING:
    import pulumi

    from fastapi_deploy.config import StackConfigType
    from fastapi_deploy.spec import DeploySpec
    from fastapi_deploy.tuning import RuntimeTuning

#: target -> module path. Edit (one line) when a target module is added or renamed.
TARGET_MODULES: dict[str, str] = {
    "ecs": "fastapi_deploy.ecs.component",
    "cloudrun": "fastapi_deploy.cloudrun.component",
    "lambda": "fastapi_deploy.awslambda.component",
    "vps": "fastapi_deploy.vps.component",
}

#: Output keys every target must export (app/contract.py, read back by `infra verify`).
COMMON_OUTPUTS = contract.COMMON_OUTPUTS
TARGET_OUTPUTS = contract.TARGET_OUTPUTS


class TargetNotAvailable(RuntimeError):
    """The config names a target whose module is not in this checkout."""


@dataclass(frozen=True)
class RegistryContext:
    """What a target's ``image_registry`` receives."""

    name: str
    cfg: StackConfigType
    tags: dict[str, str]


#: target -> attribute of the stack config holding the target's own section.
SECTION_ATTRS: dict[str, str] = {"ecs": "ecs", "cloudrun": "cloudrun", "lambda": "lambda_", "vps": "vps"}


def config_section(cfg: StackConfigType) -> Any:
    """The target's own config section (``app.ecs``, ``app.cloudrun``, ``app.lambda``, ``app.vps``)."""
    return getattr(cfg, SECTION_ATTRS.get(cfg.target, cfg.target), None)


@dataclass(frozen=True)
class DeployContext:
    """What a target's ``deploy`` receives: the one frozen spec and the target's own config section."""

    spec: DeploySpec
    #: The target's config section (e.g. ``EcsSettings``); never the whole stack config.
    section: Any
    opts: pulumi.ResourceOptions | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """Component name (``<app name>-<stack>``); children derive their names from it."""
        return self.spec.name

    @property
    def tuning(self) -> RuntimeTuning:
        """The tuning the program computed (passed to the component, not recomputed)."""
        return self.spec.tuning


def module_for(target: str) -> ModuleType:
    """Import the module that deploys ``target``."""
    path = TARGET_MODULES.get(target)
    if path is None:
        raise TargetNotAvailable(
            f"app.target: {target!r} has no deployer; known: {', '.join(TARGET_MODULES)}"
        )
    try:
        return importlib.import_module(path)
    except ModuleNotFoundError as exc:
        if exc.name == path:
            raise TargetNotAvailable(
                f"app.target: {target!r} is not implemented in this checkout "
                f"({path.replace('.', '/')}.py missing)"
            ) from None
        raise
