"""What every fastapi-deploy component shares: child naming, invoke options, Args validation, outputs.

``NamedComponent`` refuses (at runtime, before the child registers) any descendant whose name does not
start with the component's name — two components in one stack can never collide on a child name, and a
reader of the state can tell which component a resource belongs to (as SST's base component does).

Args are ``TypedDict`` values (the Pulumi component-provider analyzer infers the schema from them); the
helpers here validate them with the same pydantic section models the stack config uses
(``fastapi_deploy.config``) and turn any refusal into an :class:`ArgsError` naming the Arg
(``FargateServiceArgs.cpu: ...``), raised before the component registers anything.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import pulumi
from pydantic import BaseModel, TypeAdapter, ValidationError

from fastapi_deploy.secret_refs import SecretRef, SecretRefError

if TYPE_CHECKING:
    from fastapi_deploy.tuning import RuntimeTuning

M = TypeVar("M", bound=BaseModel)
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ArgsError(ValueError):
    """A component Arg is invalid. The message names the Arg (``XxxArgs.key``) and the fix."""


class ChildNameError(ValueError):
    """A child resource's name does not carry its component's name."""


def _loc(loc: Sequence[Any]) -> str:
    return ".".join(str(p) for p in loc if not str(p).startswith("function-"))


def pydantic_message(owner: str, exc: ValidationError, key: str = "") -> str:
    """One line per pydantic error, each located as ``owner.key.field``."""
    parts = []
    for err in exc.errors():
        where = ".".join(x for x in (owner, key, _loc(err.get("loc", ()))) if x)
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        # A model-level check names its field itself ("memory: 4096 is not valid ..."): join it on.
        head = re.match(r"^([a-z_][a-z0-9_.]*): ", msg)
        if head:
            where, msg = f"{where}.{head.group(1)}", msg[head.end() :]
        parts.append(f"{where}: {msg}")
    return "; ".join(parts)


def section(owner: str, key: str, model: type[M], value: Any) -> M:
    """Validate one Arg (a dict) with the config's pydantic model for it; errors name ``owner.key``."""
    if value is None:
        value = {}
    if isinstance(value, model):
        return value
    if not isinstance(value, Mapping):
        raise ArgsError(f"{owner}.{key}: expected a dict with the keys of {model.__name__}, got {value!r}")
    try:
        return model.model_validate(dict(value))
    except ValidationError as exc:
        raise ArgsError(pydantic_message(owner, exc, key)) from None


def field(owner: str, key: str, model: type[BaseModel], name: str, value: Any) -> Any:
    """Validate one plain Arg against the constraints of ``model.name`` (e.g. AppConfigBase.port)."""
    info = model.model_fields[name]
    adapter: TypeAdapter[Any] = TypeAdapter(info.rebuild_annotation())
    try:
        return adapter.validate_python(value)
    except ValidationError as exc:
        raise ArgsError(pydantic_message(owner, exc, key)) from None


def known_args(owner: str, args: Mapping[str, Any], spec: type) -> dict[str, Any]:
    """``args`` as a dict, refusing a key the Args TypedDict ``spec`` does not declare (a misspelt Arg)."""
    given = dict(args)
    declared = spec.__annotations__
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise ArgsError(f"{owner}.{unknown[0]}: unknown Arg; known: {', '.join(declared)}")
    return given


def settings(owner: str, args: Mapping[str, Any], model: type[M], keys: Sequence[str]) -> M:
    """The target's settings model from the Args named ``keys`` (errors name the Arg)."""
    try:
        return model.model_validate({k: args[k] for k in keys if k in args})
    except ValidationError as exc:
        raise ArgsError(pydantic_message(owner, exc)) from None


def tuning_keys(owner: str, *, max_replicas: str, size: str, memory: str) -> dict[str, str]:
    """What the tuning's error messages call each input: the component's Args."""
    return {
        "workers": f"{owner}.overrides.workers",
        "budget_max": f"{owner}.database.max_connections",
        "budget_reserved": f"{owner}.database.reserved_connections",
        "max_replicas": max_replicas,
        "budget": f"{owner}.database (max_connections - reserved_connections)",
        "size": size,
        "memory": memory,
    }


def env(owner: str, value: Any) -> dict[str, Any]:
    """The ``env`` Arg: NAME -> a string or an Output of one. A credential name or a URL carrying a password
    is refused (it would sit in plain text in the state and the console: use ``secrets``)."""
    from fastapi_deploy import contract

    if value is None:
        return {}
    if isinstance(value, pulumi.Output) or not isinstance(value, Mapping):
        raise ArgsError(
            f"{owner}.env: a mapping of NAME -> value (each value a string or an Output of one), "
            f"not {type(value).__name__}"
        )
    out: dict[str, Any] = {}
    for name, item in value.items():
        if not isinstance(name, str) or not _ENV_NAME.match(name):
            raise ArgsError(
                f"{owner}.env: {name!r} is not an environment variable name (letters, digits and _, "
                "not starting with a digit)"
            )
        if name in contract.CREDENTIAL_ENV_NAMES:
            raise ArgsError(
                f"{owner}.env.{name}: a credential in plain text would sit in the state and the console; "
                f"pass a secret reference in {owner}.secrets instead"
            )
        if isinstance(item, str):
            if contract.URL_WITH_PASSWORD.match(item):
                raise ArgsError(
                    f"{owner}.env.{name}: holds a URL with a password ({contract.mask(item)}); pass a secret "
                    f"reference in {owner}.secrets instead"
                )
        elif not isinstance(item, pulumi.Output):
            raise ArgsError(f"{owner}.env.{name}: a string (or an Output of one), not {type(item).__name__}")
        out[name] = item
    return out


def tags(owner: str, value: Any) -> dict[str, str]:
    """The ``tags`` Arg: plain string keys and values (they become AWS tags or GCP labels)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ArgsError(f"{owner}.tags: a mapping of plain strings to plain strings")
    return dict(value)


def required(owner: str, args: Mapping[str, Any], key: str) -> Any:
    """``args[key]``, or an ArgsError naming it."""
    value = args.get(key)
    if value is None or value == "":
        raise ArgsError(f"{owner}.{key}: required")
    return value


def secret_refs(
    owner: str, secrets: Mapping[str, Any] | None, schemes: Sequence[str]
) -> dict[str, SecretRef]:
    """Parse ``{ENV_NAME: "scheme:..."}`` (or already parsed refs); errors name ``owner.secrets.ENV``."""
    out: dict[str, SecretRef] = {}
    for env_name, raw in sorted((secrets or {}).items()):
        if not _ENV_NAME.fullmatch(env_name):
            raise ArgsError(f"{owner}.secrets.{env_name}: not a valid environment variable name")
        try:
            ref = raw if isinstance(raw, SecretRef) else SecretRef.parse(str(raw))
        except SecretRefError as exc:
            raise ArgsError(f"{owner}.secrets.{env_name}: {exc}") from None
        if ref.scheme not in schemes:
            raise ArgsError(
                f"{owner}.secrets.{env_name}: scheme {ref.scheme}: is not supported here; "
                f"use {' or '.join(f'{s}:' for s in schemes)}"
            )
        out[env_name] = ref
    return out


def runtime_facts(
    tuning: RuntimeTuning,
    env: Mapping[str, Any],
    *,
    min_replicas: int | None,
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The runtime facts (``contract.RUNTIME_FACT_KEYS``) a target's component publishes for the policy
    pack, which judges a target it does not know from them (policy/rules.py, "Runtime facts").

    ``env`` is the app container's plain env exactly as the target hands it to its compute resource (values
    may be Outputs; a secret Output stays a secret in the engine's state). The numbers default to the
    tuning's: its platform, memory and vCPU, the stop grace and LB idle timeout it planned for, the max
    replicas times the deploy surge, the max replicas and the connection budget. ``overrides`` (fact key ->
    value) states what the target's resources actually set where that differs (a size in other units, a
    grace the platform fixes). Raises ValueError naming the fact when the result could not be read."""
    from fastapi_deploy import contract

    facts: dict[str, Any] = {
        "platform": tuning.platform,
        "env": dict(env),
        "memoryMib": tuning.memory_mib,
        "vcpu": tuning.vcpu,
        "stopGraceS": tuning.stop_timeout_s,
        "lbIdleTimeoutS": tuning.lb_idle_timeout_s,
        "maxReplicas": tuning.replicas_during_deploy,
        "minReplicas": min_replicas,
        "maxInstances": tuning.max_replicas,
        "connectionBudget": tuning.connection_budget,
    }
    facts.update(overrides or {})
    # Outputs are resolved by the engine; their shape is the target's to get right, the names are checked.
    shape = {**facts, "env": {k: "" if isinstance(v, pulumi.Output) else v for k, v in facts["env"].items()}}
    problems = contract.runtime_facts_problems(shape)
    if problems:
        raise ValueError(f"{tuning.platform} runtime facts: {'; '.join(problems)}")
    return facts


def runtime_props(
    tuning: RuntimeTuning,
    env: Mapping[str, Any],
    *,
    min_replicas: int | None,
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The props a target's component registers: the tuning's budget arithmetic
    (``RuntimeTuning.component_props``) plus its runtime facts under ``contract.RUNTIME_FACTS``."""
    from fastapi_deploy import contract

    facts = runtime_facts(tuning, env, min_replicas=min_replicas, overrides=overrides)
    return {**tuning.component_props(), contract.RUNTIME_FACTS: facts}


class NamedComponent(pulumi.ComponentResource):
    """A ComponentResource whose descendants must be named ``<component name>-...``."""

    def __init__(
        self,
        t: str,
        name: str,
        props: Mapping[str, Any] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(t, name, dict(props or {}), opts)
        self._component_name = name
        # Legacy transformations run in the SDK before a descendant registers, for every descendant.
        self._transformations = [*self._transformations, self._check_child_name]

    def _check_child_name(self, args: pulumi.ResourceTransformationArgs) -> None:
        if not args.name.startswith(f"{self._component_name}-"):
            raise ChildNameError(
                f"{args.type_} {args.name!r}: a child of {self._component_name!r} must be named "
                f"'{self._component_name}-...'"
            )

    def child_name(self, suffix: str) -> str:
        """``<component name>-<suffix>``."""
        return f"{self._component_name}-{suffix}"

    def child_opts(self, **kwargs: Any) -> pulumi.ResourceOptions:
        """Options of a direct child (``parent=self`` plus ``kwargs``)."""
        return pulumi.ResourceOptions(parent=self, **kwargs)

    def invoke_opts(self) -> pulumi.InvokeOutputOptions:
        """The same invoke options in every target: parented to the component (so its provider applies)."""
        return pulumi.InvokeOutputOptions(parent=self)

    def finish(self, values: Mapping[str, Any]) -> dict[str, pulumi.Output[Any]]:
        """Set each output as an attribute (an Output) and register them all once, from this one dict.

        The keys must be exactly the outputs the class declares (its ``pulumi.Output`` annotations, which
        the schema analyzer reads); the returned dict is what a program exports."""
        declared = output_names(type(self))
        if list(values) != list(declared):
            raise RuntimeError(
                f"{type(self).__name__}: outputs {list(values)} differ from the declared {declared}"
            )
        outputs = {key: pulumi.Output.from_input(value) for key, value in values.items()}
        for key, value in outputs.items():
            setattr(self, key, value)
        self.register_outputs(outputs)
        return outputs


def output_names(cls: type) -> list[str]:
    """The outputs a component class declares: its public ``pulumi.Output[...]`` class annotations."""
    names: list[str] = []
    for klass in reversed(cls.__mro__):
        for key, ann in getattr(klass, "__annotations__", {}).items():
            text = ann if isinstance(ann, str) else repr(ann)
            if not key.startswith("_") and "Output" in text and key not in names:
                names.append(key)
    return names
