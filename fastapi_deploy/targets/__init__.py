"""What the program hands a target's deploy module, and how it finds that module.

Which module deploys a target is the target's registration (:mod:`fastapi_deploy.registry`,
``Target.deploy_module``); this module only looks it up. A deploy module exposes:

``deploy(ctx: DeployContext) -> dict[str, pulumi.Input[Any]]``
    Builds the component's Args from the spec and the target's config section (its ``adapter.args_from``),
    creates the component and returns its one outputs dict: the stack outputs of contract section 2
    (``target``, ``url``, ``image``, ``health_path``, ``ready_path`` plus the target's own keys).

``validate(cfg, tuning) -> None``  (optional)
    Target checks that need the tuning; called before any resource is registered. Raises with the key.

``image_registry(ctx: RegistryContext) -> fastapi_deploy.image.Registry``  (optional)
    Where a built image is pushed (ECR for AWS targets by default). Not called when the config gives an
    existing ``image.digest``.

The Pulumi program never imports a target module directly: a target registered with
:func:`fastapi_deploy.registry.register` (or one of the built-in ones) is deployed with no edit here.
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

#: Output keys every target must export (the contract, read back by `infra verify`); a target's own keys
#: are its registration's ``outputs``.
COMMON_OUTPUTS = contract.COMMON_OUTPUTS


#: Top-level module -> the distribution's extra that installs it.
_EXTRAS = {
    "pulumi_aws": "aws",
    "boto3": "aws",
    "pulumi_gcp": "gcp",
    "google": "gcp",
    "pulumi_docker": "docker",
}


class TargetNotAvailable(RuntimeError):
    """The config names a target whose module is not in this checkout."""


@dataclass(frozen=True)
class RegistryContext:
    """What a target's ``image_registry`` receives."""

    name: str
    cfg: StackConfigType
    tags: dict[str, str]


def config_section(cfg: StackConfigType) -> Any:
    """The target's own config section (``app.ecs``, ``app.cloudrun``, ``app.lambda``, ``app.vps``)."""
    from fastapi_deploy import registry

    section = registry.get(cfg.target).section
    for attr, info in type(cfg).model_fields.items():
        if section in (attr, info.alias):
            return getattr(cfg, attr)
    return None


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
    from fastapi_deploy import registry

    found = registry.find(target)
    if found is None:
        raise TargetNotAvailable(
            f"app.target: {target!r} has no deployer; known: {', '.join(registry.names())}"
        )
    path = found.deploy_module
    try:
        return importlib.import_module(path)
    except ModuleNotFoundError as exc:
        if exc.name == path:
            raise TargetNotAvailable(
                f"app.target: {target!r} is not implemented in this checkout "
                f"({path.replace('.', '/')}.py missing)"
            ) from None
        hint = install_hint(exc)
        if hint:
            raise TargetNotAvailable(f"app.target: {target!r} {hint}") from None
        raise


def install_hint(exc: ModuleNotFoundError) -> str | None:
    """``needs pulumi_gcp, which is not installed: pip install "fastapi-deploy[gcp]" (or [all])`` when the
    missing module belongs to one of the package's extras, else None."""
    extra = _EXTRAS.get((exc.name or "").split(".")[0])
    if not extra:
        return None
    return f'needs {exc.name}, which is not installed: pip install "fastapi-deploy[{extra}]" (or [all])'


def import_component_module(package: str, module: str) -> ModuleType:
    """A target package's lazily loaded module (``__getattr__`` of fastapi_deploy/<target>/__init__.py):
    a provider SDK of a missing extra is an ImportError that says which extra to install."""
    try:
        return importlib.import_module(f"{package}.{module}")
    except ModuleNotFoundError as exc:
        hint = install_hint(exc)
        if hint is None:
            raise
        raise ImportError(f"{package} {hint}", name=exc.name) from None
