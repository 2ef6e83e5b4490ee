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

import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import (
    TYPE_CHECKING,
    Any,
    NotRequired,
    Required,
    TypeVar,
    Union,
    get_args,
    get_origin,
    is_typeddict,
)

import pulumi
from pydantic import BaseModel, TypeAdapter, ValidationError

from fastapi_deploy.config import MAX_COMPONENT_NAME, ArnKind, aws_arn_problem, image_ref_problem
from fastapi_deploy.secret_refs import SecretRef, SecretRefError

if TYPE_CHECKING:
    from fastapi_deploy.tuning import RuntimeTuning

M = TypeVar("M", bound=BaseModel)
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ArgsError(pulumi.RunError, ValueError):
    """A component Arg is invalid. The message names the Arg (``XxxArgs.key``) and the fix.

    A ``pulumi.RunError``: under ``pulumi up`` the Python language host prints its message alone, not a
    traceback through this package (a ValueError too, for callers that catch that)."""


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


def known_args(owner: str, args: Any, spec: type) -> dict[str, Any]:
    """``args`` as a dict, refusing what does not fit the Args TypedDict ``spec``: not a dict, a key it does
    not declare (a misspelt Arg), and a value of the wrong shape (:func:`shape_problem`), in nested Args
    dicts too. The values' contents are the callers' to check."""
    if isinstance(args, pulumi.Output) or not isinstance(args, Mapping):
        raise ArgsError(f"{owner}: a dict with the keys of {spec.__name__}, not {_kind(args)}")
    given = dict(args)
    declared = spec.__annotations__
    unknown = sorted(set(given) - set(declared), key=str)
    if unknown:
        raise ArgsError(f"{owner}.{unknown[0]}: unknown Arg; known: {', '.join(declared)}")
    for key, value in given.items():
        if value is not None:
            shape_problem(f"{owner}.{key}", declared[key], value)
    return given


def _kind(value: Any) -> str:
    """What a value is, for messages: its type, never its text (it may be a secret or an Output)."""
    return "an Output" if isinstance(value, pulumi.Output) else type(value).__name__


def _is_input(ann: Any) -> bool:
    """``pulumi.Input[X]``: a Union with ``Output`` among its members."""
    return get_origin(ann) is Union and any(
        a is pulumi.Output or get_origin(a) is pulumi.Output or "Output" in str(a) for a in get_args(ann)
    )


def shape_problem(where: str, ann: Any, value: Any) -> None:
    """Refuse (ArgsError naming ``where``) a value whose shape does not fit its Arg's annotation, before any
    of it is used: a bool Arg takes only ``True``/``False`` (``bool("no")`` is True), a plain ``str`` Arg
    no Output (it is read before anything registers), a list Arg no lone string (it is not a list of its
    characters), a nested Args dict only a dict with its own keys. ``pulumi.Input[...]`` Args take an
    Output as is; their lists (id lists) and the ``dict[...]`` Args (env, secrets, tags) are checked by
    their own helpers."""
    while get_origin(ann) in (NotRequired, Required):
        ann = get_args(ann)[0]
    if _is_input(ann):
        if isinstance(value, pulumi.Output):
            return
        inner = get_args(ann)[0]
        if inner is str and not isinstance(value, str):
            raise ArgsError(f"{where}: a string (or an Output of one), not {_kind(value)}")
        return
    if ann is bool:
        if not isinstance(value, bool):
            raise ArgsError(f"{where}: true or false (a bool), not {_kind(value)}")
    elif ann is str:
        if isinstance(value, pulumi.Output):
            raise ArgsError(
                f"{where}: a plain string, not an Output (this Arg is read before anything registers)"
            )
        if not isinstance(value, str):
            raise ArgsError(f"{where}: a string, not {_kind(value)}")
    elif get_origin(ann) in (list, Sequence):
        if isinstance(value, (str, bytes, Mapping, pulumi.Output)) or not isinstance(value, (list, tuple)):
            raise ArgsError(f"{where}: a list, not {_kind(value)} (a single value goes in a list of one)")
        (item,) = get_args(ann) or (Any,)
        for i, entry in enumerate(value):
            shape_problem(f"{where}[{i}]", item, entry)
    elif is_typeddict(ann):
        known_args(where, value, ann)


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
        if not isinstance(item, (str, pulumi.Output)):
            raise ArgsError(f"{owner}.env.{name}: a string (or an Output of one), not {type(item).__name__}")
        # The same two refusals as the stack's app.env (one function, each naming its own field).
        problem = contract.env_entry_problem(name, item)
        if problem:
            raise ArgsError(
                f"{owner}.env.{name}: {problem}; pass a secret reference in {owner}.secrets.{name} instead"
            )
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


def image(owner: str, args: Mapping[str, Any]) -> pulumi.Input[str]:
    """The ``image`` Arg: required; an Output (a built image's reference) as is, a plain string only when it
    is an image reference (``registry/repo@sha256:...``; the grammar the platforms pull)."""
    value = required(owner, args, "image")

    def check(ref: Any) -> str:
        if not isinstance(ref, str):
            raise ArgsError(
                f"{owner}.image: an image reference (a string or an Output of one), not {_kind(ref)}"
            )
        problem = image_ref_problem(ref)
        if problem:
            raise ArgsError(f"{owner}.image: {problem}")
        return ref

    # An Output is checked once it resolves (at deploy: the resources taking the image fail with the
    # same message); a plain value now, before anything registers.
    return value.apply(check) if isinstance(value, pulumi.Output) else check(value)


def required(owner: str, args: Mapping[str, Any], key: str) -> Any:
    """``args[key]``, or an ArgsError naming it."""
    value = args.get(key)
    if value is None or value == "":
        raise ArgsError(f"{owner}.{key}: required")
    return value


def secret_refs(owner: str, secrets: Any, schemes: Sequence[str]) -> dict[str, SecretRef]:
    """Parse ``{ENV_NAME: "scheme:..."}`` (or already parsed refs); errors name ``owner.secrets.ENV``."""
    out: dict[str, SecretRef] = {}
    if secrets is None:
        return out
    if isinstance(secrets, pulumi.Output) or not isinstance(secrets, Mapping):
        raise ArgsError(
            f"{owner}.secrets: a mapping of ENV_NAME -> secret reference ('ssm:/path', ...), "
            f"not {_kind(secrets)}"
        )
    for env_name, raw in sorted(secrets.items(), key=lambda kv: str(kv[0])):
        if not isinstance(env_name, str) or not _ENV_NAME.fullmatch(env_name):
            raise ArgsError(f"{owner}.secrets.{env_name}: not a valid environment variable name")
        if isinstance(raw, pulumi.Output) or not isinstance(raw, (str, SecretRef)):
            # Never str(raw): an Output's text is a warning, and a value here may be the secret itself.
            raise ArgsError(
                f"{owner}.secrets.{env_name}: a secret reference is a plain string naming where the secret "
                f"lives ('ssm:/path', 'secretsmanager:name', 'gcp:...'), not {_kind(raw)}; the value is "
                "read by the platform, so it is never an Output"
            )
        try:
            ref = raw if isinstance(raw, SecretRef) else SecretRef.parse(raw)
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


# ------------------------------------------------------------------------- lists of ids, ARNs, the region
#: An id-list Arg after validation: a plain list (entries strings or Outputs) or an Output of a list.
IdList = list[Any] | pulumi.Output[Any]


def id_list(owner: str, key: str, value: Any) -> IdList:
    """An id-list Arg (``pulumi.Input[Sequence[pulumi.Input[str]]]``): a list whose entries are strings or
    Outputs, or an Output of a whole list (``vpc.private_subnet_ids``). None -> ``[]``. A lone string is
    refused (it is not a list of one id)."""
    if value is None:
        return []
    if isinstance(value, pulumi.Output):
        return value
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ArgsError(
            f"{owner}.{key}: a list of ids (each a string or an Output of one) or an Output of a list, "
            f"not {type(value).__name__}"
        )
    for item in value:
        if not isinstance(item, (str, pulumi.Output)):
            raise ArgsError(f"{owner}.{key}: {item!r} is not an id (a string or an Output of one)")
    return list(value)


def plain_ids(value: IdList) -> list[str] | None:
    """The ids when every one is known now (a plain list of strings), else None."""
    if isinstance(value, pulumi.Output) or not all(isinstance(v, str) for v in value):
        return None
    return list(value)


def given(value: IdList) -> bool:
    """The list was given: an Output of a list counts (its length is not known yet)."""
    return isinstance(value, pulumi.Output) or bool(value)


def checked_ids(
    owner: str,
    key: str,
    value: IdList,
    problem: Callable[[list[str]], str | None],
    at_least: tuple[int, str] | None = None,
) -> IdList:
    """Check an id list: ``at_least`` (count, message) as soon as the count is known (a plain list, even with
    Output entries), ``problem`` (count and shapes of the ids) once every id is: now for a plain list of
    strings (an ArgsError naming the Arg, before anything registers), else inside an apply - at preview when
    the Output list is already known, else at deploy, failing the resource that takes the list with the
    same message (a preview of a list still unknown skips it). Returns what the resources should take."""
    if at_least is not None and not isinstance(value, pulumi.Output) and len(value) < at_least[0]:
        raise ArgsError(f"{owner}.{key}: {at_least[1]}")
    plain = plain_ids(value)
    if plain is not None:
        found = problem(plain)
        if found:
            raise ArgsError(f"{owner}.{key}: {found}")
        return value

    def check(ids: Any) -> list[str]:
        found = problem(list(ids))
        if found:
            raise ArgsError(f"{owner}.{key}: {found}")
        return list(ids)

    return pulumi.Output.from_input(value).apply(check)


def join_ids(*parts: IdList) -> list[Any] | pulumi.Output[list[Any]]:
    """The lists one after the other, where any may be an Output of a list (then so is the result)."""
    if not any(isinstance(p, pulumi.Output) for p in parts):
        return [x for p in parts for x in p]
    lists = [pulumi.Output.from_input(p) for p in parts]
    return pulumi.Output.all(*lists).apply(lambda vs: [x for v in vs for x in v])


@dataclass(frozen=True)
class KnownRegion:
    """The region a component's AWS resources land in, when it is known before anything registers."""

    name: str
    source: str
    """Where it came from, for messages: ``aws:region`` or ``LambdaServiceArgs.region``."""


def aws_region_now(opts: pulumi.ResourceOptions | None) -> KnownRegion | None:
    """The default AWS provider's region (``aws:region``, else ``AWS_REGION`` / ``AWS_DEFAULT_REGION`` as the
    provider reads them) when no explicit AWS provider applies to the component (``opts.provider``,
    ``opts.providers`` or its parent's). None otherwise: an explicit provider's region is an Input this
    component cannot read before deploy, so ARN Args are then checked for everything but their region."""
    o = opts or pulumi.ResourceOptions()
    providers: list[Any] = [o.provider] if o.provider is not None else []
    if isinstance(o.providers, Mapping):
        providers += list(o.providers.values())
    elif o.providers:
        providers += list(o.providers)
    if o.parent is not None:
        providers += list((getattr(o.parent, "_providers", None) or {}).values())
    if any(getattr(p, "package", None) == "aws" for p in providers):
        return None
    configured = pulumi.Config("aws").get("region")
    if configured:
        return KnownRegion(configured, "aws:region")
    for var in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        if os.environ.get(var):
            return KnownRegion(os.environ[var], var)
    return None


def arn(owner: str, key: str, value: Any, kind: ArnKind, region: KnownRegion | None) -> None:
    """Check a plain ARN Arg (form, service, resource, partition, and region when ``kind`` must be in the
    component's region and that region is known now); an Output is accepted unchecked."""
    if value is None or isinstance(value, pulumi.Output):
        return
    if not isinstance(value, str):
        raise ArgsError(f"{owner}.{key}: an ARN string (or an Output of one), not {type(value).__name__}")
    problem = aws_arn_problem(
        value,
        kind,
        region.name if region else None,
        f"the component deploys to {{region}} ({region.source})" if region else "",
    )
    if problem:
        raise ArgsError(f"{owner}.{key}: {problem}")


def arn_list(owner: str, key: str, value: IdList, kind: ArnKind, region: KnownRegion | None) -> None:
    """:func:`arn` for each plain entry of an ARN-list Arg (Outputs, and an Output list, unchecked)."""
    if isinstance(value, pulumi.Output):
        return
    for i, item in enumerate(value):
        arn(owner, f"{key}[{i}]", item, kind, region)


#: A component name: it prefixes every child's physical name (ALB and target group: letters, digits and '-';
#: ECR and Cloud Run: lowercase), the stack path's rule for ``<app.name>-<stack>``.
_COMPONENT_NAME = re.compile(r"^[a-z][a-z0-9-]*[a-z0-9]$")


def check_name(cls: str, name: Any) -> None:
    """Refuse (ArgsError naming ``<Class>.name``) a component name the clouds would refuse in a child's
    name only at deploy: the stack path's rule (``config.AppConfigBase``), at most
    :data:`~fastapi_deploy.config.MAX_COMPONENT_NAME` characters (``<name>-exec-role-xxxxxxx`` must fit
    IAM's 64)."""
    if not isinstance(name, str):
        raise ArgsError(f"{cls}.name: a string, not {_kind(name)}")
    if not _COMPONENT_NAME.match(name) or len(name) > MAX_COMPONENT_NAME:
        shown = repr(name) if len(name) <= 80 else f"{name[:40]!r}... ({len(name)} chars)"
        raise ArgsError(
            f"{cls}.name: {shown} must be 2-{MAX_COMPONENT_NAME} chars of lowercase letters, digits and '-', "
            "starting with a letter and not ending with '-': it prefixes the names of the resources made "
            "(load balancer, IAM roles, repositories), which the clouds limit in length and characters"
        )


class NamedComponent(pulumi.ComponentResource):
    """A ComponentResource whose descendants must be named ``<component name>-...``."""

    def __init__(
        self,
        t: str,
        name: str,
        props: Mapping[str, Any] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        check_name(type(self).__name__, name)
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
