"""`pulumi up` fails when the release did not go live.

The platforms can report a deploy as done while the old release keeps serving: ECS's deployment circuit
breaker rolls a failed task definition back to the previous one and the rollback itself completes
normally (the AWS provider's ``wait_for_steady_state`` then returns success — awsx #1848, SST #5922);
Cloud Run can keep 100 % of the traffic on an older revision; a Lambda alias can stay on an older
version. :class:`ReleaseGate` is a Pulumi dynamic resource placed after the platform resource: its
``create``/``update`` poll the platform API (bounded by ``timeout_s``) with the same pollers
``infra verify`` uses (:mod:`fastapi_deploy.ops.rollout`) and raise :class:`ReleaseNotLive` — which fails
``pulumi up`` — naming the stack resource, the expected and the serving release, and the platform's own
reason.

What "live" means is the target's: each gated target's package has a ``gate`` module
(``fastapi_deploy/ecs/gate.py``, ``cloudrun/gate.py``, ``awslambda/gate.py``) with its poller, its timeout
and the builder its component calls, and names it in ``Target.release_gate`` (fastapi_deploy/registry.py).
This module is the shared machinery: the dynamic resource, its provider (which finds the platform from
the gate's ``target`` input through the registry), the bounded wait and the failure message. A target
without a ``release_gate`` (the VPS: the Docker provider already waits for a healthy container) has none.

The provider object is pickled (dill) into the stack state and unpickled by the ``pulumi-python``
dynamic provider process, so it holds no state at all: clients are built inside the methods (the
process has the user's credentials; the region/project is an input), and this module must be importable
there (it is: ``fastapi_deploy`` is an installed distribution of the program's virtualenv).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi.dynamic as dyn

#: No gate waits longer than this, whatever a caller passes (a stuck deploy must end).
MAX_TIMEOUT_S = 3600
OUTPUT_KEYS = ("live_release", "running_images", "summary")
#: Inputs that are not the identity of a release: a change in any OTHER input (the target, region, the
#: platform's service/function names, the release, the image...) re-runs the gate; these do not (a new
#: pickle of the provider, another timeout or interval, the outputs of the last run).
NOT_IDENTITY = frozenset(
    {"__provider", "stack", "stack_resource", "timeout_s", "poll_interval_s", "gate_module", *OUTPUT_KEYS}
)


class ReleaseNotLive(Exception):
    """The new release is not what ended up serving; the message says what is, and why."""


@dataclass(frozen=True)
class GatePlatform:
    """What the shared gate needs to know about one target's platform. Each gated target's package has a
    ``gate`` module with ``PLATFORM = GatePlatform(...)`` and names that module in ``Target.release_gate``
    (fastapi_deploy/registry.py); the provider finds it from the gate's ``target`` input."""

    #: Inputs the platform needs besides ``stack_resource``, ``region`` and ``release``.
    required: tuple[str, ...]
    #: What a release is called there ("task definition", "revision", "version").
    what: str
    #: The gate's inputs -> the `infra verify` poller told which release must be the one serving.
    poller: Callable[[Mapping[str, Any]], Any]
    #: The gate's inputs -> where it looked ("ECS service api in cluster prod (eu-west-1)").
    where: Callable[[Mapping[str, Any]], str]
    #: A release as the platform's console shows it (Cloud Run: the revision's short name).
    release_name: Callable[[str], str] = str
    #: The failure line when an older release serves (None: "an older <what> is still the one serving").
    rolled_back_line: str | None = None
    #: Advice put first when an older release serves (the platform rolled back by itself).
    rolled_back_hint: str | None = None


def platform(target: object, module: object = None) -> GatePlatform | None:
    """The gate platform of a registered target (None: no such target, or it has no gate).

    A target registered from outside fastapi_deploy is unknown to the registry of the engine's dynamic
    provider process, where only the built-in targets load by themselves. There, the project's targets are
    registered the way every `infra` command and the program register them: from the nearest
    pyproject.toml's ``[tool.fastapi-deploy] targets`` (the engine starts the provider in the program's
    directory, inside the project), whose folders then also make its modules importable. ``module``, the
    gate's ``gate_module`` input (the module with the target's platform), is the fallback when that
    registers nothing by that name (a target registered by other means): it is imported as named.
    """
    import contextlib
    import importlib

    from fastapi_deploy import registry

    spec = registry.find(target)
    if spec is None and isinstance(target, str) and target not in registry.BUILTIN:
        with contextlib.suppress(registry.ProjectTargetsError):
            registry.load_project_targets()
        spec = registry.find(target)
    path = spec.release_gate if spec is not None else module if isinstance(module, str) and module else None
    if path is None:
        return None
    found: GatePlatform = importlib.import_module(path).PLATFORM
    return found


def gated_targets() -> tuple[str, ...]:
    """The registered targets with a platform-side rollout to wait for."""
    from fastapi_deploy import registry

    return tuple(t.key for t in registry.all_targets() if t.release_gate is not None)


# ------------------------------------------------------------------------------------ props checks


def _is_unknown(value: Any) -> bool:
    from pulumi.runtime import rpc

    return isinstance(value, str) and value == rpc.UNKNOWN


def check_props(props: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(input, reason) for every unusable input; values still unknown (preview) are not judged."""
    failures: list[tuple[str, str]] = []

    def need(key: str) -> None:
        value = props.get(key)
        if _is_unknown(value):
            return
        if not isinstance(value, str) or not value:
            failures.append((key, f"{key} is required for a {target} release gate"))

    target = props.get("target")
    gate = platform(target, props.get("gate_module"))
    if gate is None:
        known = ", ".join(gated_targets())
        failures.append(("target", f"target must be one of {known}, not {target!r}"))
        return failures
    for key in ("stack_resource", "region", "release", *gate.required):
        need(key)
    timeout, interval = props.get("timeout_s"), props.get("poll_interval_s")
    if not _is_unknown(timeout) and not (isinstance(timeout, int | float) and 0 < timeout <= MAX_TIMEOUT_S):
        failures.append(("timeout_s", f"timeout_s must be in (0, {MAX_TIMEOUT_S}] seconds, not {timeout!r}"))
    if not _is_unknown(interval) and not (isinstance(interval, int | float) and 0 < interval <= 60):
        failures.append(("poll_interval_s", f"poll_interval_s must be in (0, 60] seconds, not {interval!r}"))
    return failures


# --------------------------------------------------------------------------------------- the check


def build_poller(props: Mapping[str, Any]) -> Any:
    """The `infra verify` poller of this target, told which release must be the one serving."""
    gate = platform(props["target"], props.get("gate_module"))
    if gate is None:
        raise ReleaseNotLive(f"release gate: target {props['target']!r} has no release gate")
    return gate.poller(props)


def _hint(props: Mapping[str, Any], gate: GatePlatform, rolled_back: bool) -> str:
    stack = props.get("stack") or "STACK"
    lines = [f"`infra verify --stack {stack}` shows the same after the fix."]
    if rolled_back and gate.rolled_back_hint:
        lines.insert(0, gate.rolled_back_hint)
    return " ".join(lines)


def failure_message(props: Mapping[str, Any], obs: Any, *, timed_out: bool, timeout_s: float) -> str:
    """The error `pulumi up` prints: what, expected vs serving, why (the platform's words), what next.

    ``obs`` is the last observation the platform gave (on a timeout: the last one before the deadline).
    """
    gate = platform(props["target"], props.get("gate_module"))
    if gate is None:
        raise ReleaseNotLive(f"release gate: target {props['target']!r} has no release gate")
    what = gate.what
    expected = gate.release_name(props["release"]) if props["release"] else props["release"]
    serving = gate.release_name(obs.release) if obs.release else obs.release
    rolled_back = bool(serving) and serving != expected
    head = (
        f"release gate: {props.get('stack_resource')} (stack {props.get('stack') or '?'}) did not go live "
        f"on {gate.where(props)}"
    )
    lines = [head, f"  expected {what}: {expected}", f"  serving {what}:  {serving or 'unknown'}"]
    if props.get("image"):
        lines.append(f"  expected image: {props['image']}")
    if obs.running_images:
        lines.append(f"  running image(s): {', '.join(obs.running_images)}")
    if timed_out:
        lines.append(f"  timed out after {timeout_s:g} s waiting for the rollout to settle")
    elif rolled_back:
        lines.append(f"  {gate.rolled_back_line or f'an older {what} is still the one serving'}")
    lines.append(f"  {'last seen' if timed_out else 'platform state'}: {obs.summary}")
    reason = (obs.reason or "").strip()
    if reason:
        lines.append("  platform reason:")
        lines.extend(f"    {line}" for line in reason.splitlines() if line.strip())
    lines.append("  " + _hint(props, gate, rolled_back))
    return "\n".join(lines)


class _Recorder:
    """Wraps a poller; remembers the last real observation (to tell a timeout from a platform failure)."""

    def __init__(self, poller: Any) -> None:
        self.poller = poller
        self.last: Any = None

    def poll(self) -> Any:
        self.last = self.poller.poll()
        return self.last

    def explain(self) -> str:
        return str(self.poller.explain())


def run_gate(
    props: Mapping[str, Any],
    *,
    poller: Any = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Poll until the expected release serves (outputs) or raise :class:`ReleaseNotLive`."""
    from fastapi_deploy.ops.rollout import wait_until_stable

    failures = check_props(props)
    if failures:
        raise ReleaseNotLive("release gate: unusable inputs: " + "; ".join(r for _, r in failures))
    timeout_s = float(props["timeout_s"])
    recorder = _Recorder(poller if poller is not None else build_poller(props))
    obs = wait_until_stable(
        recorder,
        timeout_s=timeout_s,
        interval_s=float(props["poll_interval_s"]),
        # The dynamic provider process has no channel to the CLI's progress display; the error says it all.
        progress=lambda _line: None,
        clock=clock,
        sleep=sleep,
    )
    if obs.state != "stable":
        # On a timeout wait_until_stable returns a new Observation (with the poller's explanation); the
        # last one the platform really gave is the recorder's.
        timed_out = obs is not recorder.last
        last = recorder.last if timed_out else obs
        if timed_out and obs.reason:
            last.reason = obs.reason
        raise ReleaseNotLive(failure_message(props, last, timed_out=timed_out, timeout_s=timeout_s))
    return {
        "live_release": obs.release or props["release"],
        "running_images": list(obs.running_images),
        "summary": obs.summary,
    }


# ---------------------------------------------------------------------------------- the provider


class ReleaseGateProvider(dyn.ResourceProvider):
    """Waits for the platform to serve the expected release. Stateless: safe to pickle into the state."""

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> dyn.CheckResult:
        return dyn.CheckResult(news, [dyn.CheckFailure(k, r) for k, r in check_props(news)])

    def diff(self, _id: str, _olds: dict[str, Any], _news: dict[str, Any]) -> dyn.DiffResult:
        # The pickled provider (``__provider``) is not part of the identity: moving code between modules, or
        # a new dill, must not make every stack wait for a rollout again.
        keys = (set(_olds) | set(_news)) - NOT_IDENTITY
        changed = sorted(k for k in keys if _olds.get(k) != _news.get(k))
        # Never a replacement: the gate owns nothing; an update just waits for the new release again.
        return dyn.DiffResult(changes=bool(changed), replaces=[], delete_before_replace=False)

    def create(self, props: dict[str, Any]) -> dyn.CreateResult:
        outs = run_gate(props)
        gate_id = f"{props['target']}:{props.get('stack_resource')}"
        return dyn.CreateResult(gate_id, {**props, **outs})

    def update(self, _id: str, _olds: dict[str, Any], _news: dict[str, Any]) -> dyn.UpdateResult:
        return dyn.UpdateResult({**_news, **run_gate(_news)})

    def read(self, id_: str, props: dict[str, Any]) -> dyn.ReadResult:
        # `pulumi refresh` keeps what the last successful gate saw: the platform's present state is
        # `infra verify`'s job, and a refresh must not wait minutes or fail.
        return dyn.ReadResult(id_, props)

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        return None


class ReleaseGate(dyn.Resource, name="ReleaseGate"):
    """Registered as ``pulumi-python:dynamic:ReleaseGate``; outputs what the platform ended up serving."""

    live_release: pulumi.Output[str]
    running_images: pulumi.Output[list[str]]
    summary: pulumi.Output[str]

    def __init__(
        self, name: str, props: Mapping[str, Any], opts: pulumi.ResourceOptions | None = None
    ) -> None:
        from pulumi.runtime import rpc

        from fastapi_deploy import registry

        spec = registry.find(props.get("target"))
        if spec is not None and spec.release_gate and spec.key not in registry.BUILTIN:
            # The provider process knows only the built-in targets (see platform()); built-in gates carry
            # no such input, so deployed ones see no new input.
            props = {**props, "gate_module": spec.release_gate}
        # Outputs are judged by the provider's `check` once known; plain values are judged now, before
        # anything is registered.
        known = {k: rpc.UNKNOWN if isinstance(v, pulumi.Output) else v for k, v in props.items()}
        failures = check_props(known)
        if failures:
            raise ValueError(f"release gate {name}: " + "; ".join(r for _, r in failures))
        super().__init__(
            ReleaseGateProvider(),
            name,
            {**props, **dict.fromkeys(OUTPUT_KEYS)},
            opts,
        )


# ------------------------------------------------------------------------------ for the gate modules


def gate_props(target: str, stack_resource: str, timeout_s: int, poll_interval_s: float) -> dict[str, Any]:
    """The inputs every gate has; a target's gate module adds its platform's own."""
    return {
        "target": target,
        "stack": pulumi.get_stack(),
        "stack_resource": stack_resource,
        "timeout_s": timeout_s,
        "poll_interval_s": poll_interval_s,
    }
