"""The target registry: one table, :data:`TARGETS`, of everything the deployer knows about a target.

A target is a package that exports one :class:`Target` (``fastapi_deploy/<pkg>/target.py: TARGET`` for the
four built-in ones). The shared modules (config, tuning, cost, doctor, verify, plan, mocks, outputs,
reference, service_env) hold no per-target branch: they look the target up here. Adding a target is
writing its package and calling :func:`register` (built-ins: one line in :data:`BUILTIN`). A project's
own targets are named in its pyproject.toml and registered by :func:`load_project_targets`, which every
`infra` command and the program (``config.load``) call before they read a stack file::

    [tool.fastapi-deploy]
    targets = ["kube_target"]   # modules that each expose TARGET (a Target)

This module imports no provider SDK and no target package until a target is looked up: the built-in
``target.py`` modules are imported lazily, and the module that deploys a target is a dotted path string.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from fastapi_deploy.config import AppConfigBase
    from fastapi_deploy.cost import Assumptions, Line, PriceTable
    from fastapi_deploy.doctor import DoctorContext
    from fastapi_deploy.ops.findings import Finding
    from fastapi_deploy.ops.rollout import Poller
    from fastapi_deploy.tuning import RuntimeTuning, TuningInput
    from fastapi_deploy.verify import Clients, Login

#: The built-in targets, in the order they are listed everywhere (docs, errors, the config union).
BUILTIN: dict[str, str] = {
    "ecs": "fastapi_deploy.ecs.target",
    "cloudrun": "fastapi_deploy.cloudrun.target",
    "lambda": "fastapi_deploy.awslambda.target",
    "vps": "fastapi_deploy.vps.target",
}


class UnknownTarget(KeyError):
    """No target of that name is registered; the message lists the known ones."""

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class TuningRules:
    """The platform facts the tuning (fastapi_deploy/tuning.py) uses for one target."""

    #: Replicas alive at once during a deploy, relative to the max replicas (old + new side by side).
    deploy_surge: float
    #: Config -> the tuning's inputs (size, memory, max replicas) with the config key names for errors.
    input_for: Callable[[AppConfigBase, dict[str, str], dict[str, Any]], TuningInput]
    #: The platform numbers (keepalive, grace, stop timeout, LB/health timings) from the common ones.
    platform: Callable[[TuningInput, dict[str, Any]], RuntimeTuning]
    #: The target's own worker rule (Lambda: always 1) instead of vCPU/memory.
    workers: Callable[[TuningInput], int] | None = None
    #: The target's own pool rule (Lambda: one connection, no pool) instead of the budget split.
    pool: Callable[[TuningInput], tuple[int, int]] | None = None
    #: FORWARDED_ALLOW_IPS, when a proxy sits in front of the container (None: not injected).
    forwarded_allow_ips: str | None = None
    #: /metrics reachable privately by a scraper (else METRICS_ENABLED=false unless app.env sets it).
    metrics_privately_scrapable: bool = False
    #: CloudWatch EMF metric log lines (METRICS_EMF).
    metrics_emf: bool = False
    #: Started by gunicorn: the GC_FREEZE/GC_THRESHOLD settings apply.
    gunicorn: bool = True
    #: Seconds the platform waits for the first healthy answer (None: the container health check's).
    startup_budget_s: int | None = None
    #: Config-dependent changes after tuning (Cloud Run's container concurrency).
    adjust: Callable[[AppConfigBase, RuntimeTuning], RuntimeTuning] | None = None
    #: Extra env the target's resources read (the ECS alarms' EMF namespace).
    extra_env: Callable[[AppConfigBase], dict[str, str]] | None = None


@dataclass(frozen=True)
class SecretRules:
    """Which secret stores the platform injects from, and why others are refused."""

    #: ``SecretRef.scheme`` values the platform can inject (empty: any).
    schemes: tuple[str, ...] = ()
    #: The doctor's message for a reference in another store.
    refused: str = ""
    #: An example reference for advice (``{name}``, ``{env}``, ``{slug}`` are filled in).
    example: str = "ssm:/{env}/{name}/{slug}"
    #: Further references the config holds outside app.secrets: cfg -> [(where, reference)].
    extra_refs: Callable[[AppConfigBase], list[tuple[str, str]]] | None = None


@dataclass(frozen=True)
class PolicyFacts:
    """What the policy pack and the cost estimate can tell about a target from the resources alone.

    The runtime facts the pack's stack rules judge a target by (its env, size, stop grace, LB idle timeout,
    replicas, connection budget) are not here: the target's component publishes them on itself, as the
    prop ``contract.RUNTIME_FACTS`` (``fastapi_deploy.component.runtime_props``), where the standalone pack
    sees them under `pulumi preview --policy-pack` as well as in `infra plan`."""

    #: Resource types whose presence means a stack of this target (its compute).
    resource_types: tuple[str, ...] = ()


@dataclass(frozen=True)
class ComponentDoc:
    """How docs/components.md presents a target's Pulumi component (fastapi_deploy/component_reference.py)."""

    #: The package that exports the component and its Args (its ``component`` module has COMPONENT_TYPE).
    package: str
    #: The component class and its Args TypedDict, both exported by ``package``.
    component: str
    args: str
    #: Markdown listing the component's children attributes (not outputs).
    children: str
    #: A Python example of its use.
    example: str


@dataclass(frozen=True)
class Target:
    """Everything about one deploy target. Built-in ones live in ``fastapi_deploy/<pkg>/target.py``."""

    #: ``app.target`` value.
    key: str
    #: The pydantic model of a stack of this target (an ``AppConfigBase`` subclass whose ``target`` field is
    #: ``Literal[key]``); it becomes a member of the StackConfig discriminated union.
    config_model: type[AppConfigBase]
    #: The stack-config key of the target's own section (``app.<section>``).
    section: str
    #: Dotted path of the module that deploys it (``deploy(ctx)``; see fastapi_deploy/targets).
    deploy_module: str
    #: Stack outputs the target exports besides the common ones (contract section 2); declared only here:
    #: `infra verify`, the program and the components' output annotations (tested) follow it.
    outputs: tuple[str, ...]
    tuning: TuningRules
    #: ``(resources, assumptions, prices) -> lines``: the stack's priced lines.
    cost_lines: Callable[[list[Mapping[str, Any]], Assumptions, PriceTable], list[Line]]
    #: Price table section its lines are priced from (``aws``, ``gcp``, ``vps``...).
    price_provider: str
    #: ``app.database.migrate`` when unset (``manual`` where every cold start would pay for it).
    migrate_default: Literal["on_start", "manual"] = "on_start"
    #: The cloud a deploy authenticates to (``aws``, ``gcp``) or None (a host reached over SSH).
    cloud: str | None = None
    #: Raw stack file (provider keys, app object) -> (cloud, region) for `infra plan --list`'s CI matrix
    #: (None: the CI job logs in to no cloud, ``cloud: "none"``).
    ci_login: Callable[[Mapping[str, Any], Mapping[str, Any]], tuple[str, str]] | None = None
    #: The region line `infra plan` prints (None: nothing printed).
    region_line: Callable[[AppConfigBase, str], str | None] | None = None
    #: Provider-key checks before the app object is read: (providers, app object, stack) -> problems.
    provider_checks: Callable[[Mapping[str, Any], Mapping[str, Any], str], list[str]] | None = None
    secrets: SecretRules = field(default_factory=SecretRules)
    #: `infra doctor` checks after the secrets and the image, before the DB budget (context -> findings).
    doctor_checks: tuple[Callable[[DoctorContext], list[Finding]], ...] = ()
    #: `infra doctor` checks run last, after the DB budget and the service env (a host reached over SSH).
    doctor_host_checks: tuple[Callable[[DoctorContext], list[Finding]], ...] = ()
    #: The platform runs images only from ECR in its own region (Lambda): doctor refuses others.
    ecr_only: bool = False
    #: `infra verify`: outputs -> the poller that waits for the release to be stable.
    verify_poller: Callable[[Mapping[str, Any], Clients, Login], Poller] | None = None
    #: `infra verify`: the stack config -> its ssh login (user, port), when the platform is reached over SSH.
    verify_login: Callable[[AppConfigBase], tuple[str, int]] | None = None
    #: `infra verify`: a bearer token for the smoke test when the service refuses anonymous calls.
    smoke_token: Callable[[Mapping[str, Any]], str | None] | None = None
    #: Recording mocks: invoke token -> (mocks, args) -> answer.
    mock_invokes: Mapping[str, Callable[[Any, dict[str, Any]], dict[str, Any]]] = field(default_factory=dict)
    #: Recording mocks: resource type -> (mocks, name, inputs, outputs, physical name) -> id or None;
    #: it fills the computed outputs into ``outputs`` in place.
    mock_resources: Mapping[str, Callable[[Any, str, dict[str, Any], dict[str, Any], str], str | None]] = (
        field(default_factory=dict)
    )
    policy: PolicyFacts = field(default_factory=PolicyFacts)
    #: `infra plan`: (resource type, inputs, is_credential(name, value), mask) -> inputs with the plain env
    #: values that are credentials masked, for the resource types that carry the container env.
    mask_env: Callable[[str, dict[str, Any], Callable[[str, str], bool], str], dict[str, Any]] | None = None
    #: `infra plan`: resource type -> inputs worth a glance in the text tree.
    plan_inputs: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: Extra markdown for the target's section of docs/stack-config.md.
    reference_extra: Callable[[], list[str]] | None = None
    #: Module with ``status``/``logs``/``rollback`` for `infra status|logs|rollback` (None: not offered).
    operations_module: str | None = None
    #: Module with ``PLATFORM`` (a :class:`fastapi_deploy.release_gate.GatePlatform`): `pulumi up` waits for
    #: the platform to serve the release (None: the target has no platform-side rollout to wait for).
    release_gate: str | None = None
    #: Its section of docs/components.md (None: not documented there).
    component_doc: ComponentDoc | None = None


#: The table: target key -> Target (built-in ones loaded on first lookup). Change it with register().
TARGETS: dict[str, Target] = {}
_LOADED = False
#: Bumped on every change of the table, so caches built from it (the config union) know to rebuild.
VERSION = 0


def _load_builtins() -> None:
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    try:
        for key, path in BUILTIN.items():
            if key not in TARGETS:
                _add(importlib.import_module(path).TARGET, builtin=True)
    except BaseException:
        _LOADED = False  # the next lookup retries (and raises the same error) instead of a short table
        raise


def _add(target: Target, *, builtin: bool = False) -> None:
    global VERSION
    if not builtin:
        _load_builtins()
    if target.key in TARGETS:
        raise ValueError(f"target {target.key!r} is already registered")
    TARGETS[target.key] = target
    VERSION += 1


def _check(target: Target) -> None:
    """A Target that could not work is refused when it is registered, not at the first plan."""
    fields = target.config_model.model_fields
    tag = fields.get("target")
    if tag is None or tag.default != target.key:
        raise ValueError(
            f"target {target.key!r}: {target.config_model.__name__}.target must be "
            f'Literal["{target.key}"] = "{target.key}" (the discriminator of the stack config union)'
        )
    if not any(target.section in (name, f.alias) for name, f in fields.items()):
        raise ValueError(
            f"target {target.key!r}: {target.config_model.__name__} has no section {target.section!r}"
        )


def register(target: Target) -> Target:
    """Add a target (from any package). Raises ValueError when the key is taken or the Target is
    inconsistent (its model's ``target`` tag or its section missing)."""
    _check(target)
    _add(target)
    return target


def unregister(key: str) -> None:
    """Remove a target added with :func:`register` (tests). Built-in targets cannot be removed."""
    global VERSION
    if key in BUILTIN:
        raise ValueError(f"target {key!r} is built in")
    target = TARGETS.pop(key, None)
    if target is not None:
        VERSION += 1


def all_targets() -> tuple[Target, ...]:
    """Every registered target, built-in ones first."""
    _load_builtins()
    return tuple(TARGETS.values())


def names() -> tuple[str, ...]:
    """The registered targets' keys, built-in ones first."""
    return tuple(t.key for t in all_targets())


def get(key: object) -> Target:
    """The target named ``key``; :class:`UnknownTarget` lists the known ones."""
    _load_builtins()
    found = TARGETS.get(str(key)) if isinstance(key, str) else None
    if found is None:
        raise UnknownTarget(f"app.target: {key!r} is not a known target; known: {', '.join(TARGETS)}")
    return found


def find(key: object) -> Target | None:
    """The target named ``key`` or None."""
    _load_builtins()
    return TARGETS.get(key) if isinstance(key, str) else None


def target_modules() -> dict[str, str]:
    """target -> the module that deploys it."""
    return {t.key: t.deploy_module for t in all_targets()}


def for_resources(resources: list[Mapping[str, Any]]) -> Iterator[Target]:
    """The targets whose compute resource types appear in a recorded graph."""
    types = {str(r.get("type")) for r in resources}
    for t in all_targets():
        if types & set(t.policy.resource_types):
            yield t


class ProjectTargetsError(ValueError):
    """``[tool.fastapi-deploy] targets`` names a module that cannot be loaded; one line, naming the key."""


#: The pyproject.toml key that names a project's own target modules.
PROJECT_KEY = "[tool.fastapi-deploy] targets"


def load_project_targets(start: Path | None = None) -> tuple[Target, ...]:
    """Register the targets the nearest pyproject.toml names in ``[tool.fastapi-deploy] targets``.

    Each entry is a module name; the module exposes ``TARGET`` (a :class:`Target`) and this registers it
    (a module that registered the same object itself is fine; it is not registered twice). The modules are
    imported from the installed packages, then from the folder of that pyproject.toml and the folder of the
    project's Pulumi program (``main:`` of Pulumi.yaml), which are appended to ``sys.path``. Calling it again
    is cheap and registers nothing new. Raises :class:`ProjectTargetsError` (missing module, an error while
    importing it, no TARGET, a key already taken).
    """
    from fastapi_deploy import project

    found, table = project.tool_table(start)
    if found is None or "targets" not in table:
        return ()
    where = f"{PROJECT_KEY} in {found}"
    names = table["targets"]
    if not isinstance(names, list) or not all(isinstance(n, str) and n.strip() for n in names):
        raise ProjectTargetsError(f'{where}: expected a list of module names, e.g. targets = ["kube_target"]')
    _importable_from(found.parent)
    loaded: list[Target] = []
    for name in names:
        try:
            module = importlib.import_module(name.strip())
        except Exception as exc:  # not found, or the module itself failed: one line either way
            detail = " ".join(f"{type(exc).__name__}: {exc}".split())
            raise ProjectTargetsError(
                f"{where}: cannot import {name!r} ({detail}); the module must be importable from "
                f"{found.parent} or installed"
            ) from None
        target = getattr(module, "TARGET", None)
        if not isinstance(target, Target):
            raise ProjectTargetsError(
                f"{where}: module {name!r} has no TARGET (a fastapi_deploy.registry.Target to register)"
            )
        if find(target.key) is not target:
            try:
                register(target)
            except ValueError as exc:
                raise ProjectTargetsError(f"{where}: {name}.TARGET: {exc}") from None
        loaded.append(target)
    return tuple(loaded)


def _importable_from(root: Path) -> None:
    """Append the pyproject's folder and the Pulumi program's folder to sys.path (after everything else,
    so a project module never shadows an installed package)."""
    import sys

    from fastapi_deploy import project

    folders = [root]
    try:
        main = project.find(root).main
    except project.ProjectNotFound:
        pass
    else:
        folders.append(main.parent)
    for folder in folders:
        if folder.is_dir() and str(folder) not in sys.path:
            sys.path.append(str(folder))
