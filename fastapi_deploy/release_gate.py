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

What "live" means per target (the pollers' ``expected_*`` arguments):

- ECS: the service's PRIMARY deployment is the task definition ARN this deploy registered, its
  rolloutState is COMPLETED, running == desired, only one deployment left, and (with a target group)
  every registered target healthy. A rollback leaves the PRIMARY on the previous task definition: fail.
- Cloud Run: the latest created revision is the one this deploy created, it is the latest READY one,
  it serves 100 % of the traffic (or ``traffic_tag`` routes to it), and no condition failed.
- Lambda: the alias points at the version this deploy published and that version is State Active /
  LastUpdateStatus Successful (without an alias: ``$LATEST`` runs the deployed image digest).
- VPS: no gate: Pulumi itself swaps the containers there and the Docker provider already fails the
  create unless the new container turns healthy (``wait=True``), after a one-shot readiness ``gate``
  container (see :mod:`fastapi_deploy.vps.component`).

The provider object is pickled (dill) into the stack state and unpickled by the ``pulumi-python``
dynamic provider process, so it holds no state at all: clients are built inside the methods (the
process has the user's credentials; the region/project is an input), and this module must be importable
there (it is: ``fastapi_deploy`` is an installed distribution of the program's virtualenv).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import pulumi
import pulumi.dynamic as dyn

#: Targets with a platform-side rollout to wait for (the VPS has none; see the module docstring).
TARGETS = ("ecs", "cloudrun", "lambda")
#: No gate waits longer than this, whatever a caller passes (a stuck deploy must end).
MAX_TIMEOUT_S = 3600
#: Fargate provisioning + ENI attach + image pull + boot of a task, on top of the ECS health timings.
ECS_TASK_START_MARGIN_S = 180
#: Cloud Run: the provider already waited for the revision; this covers traffic settling + a margin.
CLOUDRUN_MARGIN_S = 120
#: Lambda: an image function's version leaves State Pending within a few minutes.
LAMBDA_TIMEOUT_S = 300
#: Identity of a release: a change in any of these re-runs the gate (timeouts and intervals do not).
IDENTITY_KEYS = (
    "target",
    "region",
    "project",
    "cluster",
    "service_name",
    "function_name",
    "alias",
    "release",
    "image",
    "traffic_tag",
    "target_group_arn",
)
OUTPUT_KEYS = ("live_release", "running_images", "summary")


class ReleaseNotLive(Exception):
    """The new release is not what ended up serving; the message says what is, and why."""


# ----------------------------------------------------------------------------------------- timeouts


def ecs_timeout_s(
    deregistration_delay_s: int,
    health_check_grace_s: int,
    lb_interval_s: int = 15,
    lb_healthy_threshold: int = 2,
) -> int:
    """How long an ECS rollout may take: a new task starts (margin), passes the grace period and the ALB's
    healthy threshold, then the old tasks drain for the deregistration delay. Bounded by MAX_TIMEOUT_S."""
    total = (
        ECS_TASK_START_MARGIN_S
        + health_check_grace_s
        + lb_interval_s * lb_healthy_threshold
        + deregistration_delay_s
    )
    return min(MAX_TIMEOUT_S, total)


def cloudrun_timeout_s(startup_budget_s: int | None = None) -> int:
    """Cloud Run: the startup probe window (tuning.CLOUDRUN_STARTUP_BUDGET_S) plus a margin."""
    from fastapi_deploy.tuning import CLOUDRUN_STARTUP_BUDGET_S

    budget = CLOUDRUN_STARTUP_BUDGET_S if startup_budget_s is None else startup_budget_s
    return min(MAX_TIMEOUT_S, budget + CLOUDRUN_MARGIN_S)


# ------------------------------------------------------------------------------------ props checks


def _is_unknown(value: Any) -> bool:
    from pulumi.runtime import rpc

    return isinstance(value, str) and value == rpc.UNKNOWN


_REQUIRED = {
    "ecs": ("cluster", "service_name"),
    "cloudrun": ("project", "service_name"),
    "lambda": ("function_name",),
}


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
    if target not in TARGETS:
        failures.append(("target", f"target must be one of {', '.join(TARGETS)}, not {target!r}"))
        return failures
    for key in ("stack_resource", "region", "release", *_REQUIRED[target]):
        need(key)
    timeout, interval = props.get("timeout_s"), props.get("poll_interval_s")
    if not _is_unknown(timeout) and not (isinstance(timeout, int | float) and 0 < timeout <= MAX_TIMEOUT_S):
        failures.append(("timeout_s", f"timeout_s must be in (0, {MAX_TIMEOUT_S}] seconds, not {timeout!r}"))
    if not _is_unknown(interval) and not (isinstance(interval, int | float) and 0 < interval <= 60):
        failures.append(("poll_interval_s", f"poll_interval_s must be in (0, 60] seconds, not {interval!r}"))
    return failures


# --------------------------------------------------------------------------------------- the check


def aws_client(service: str, region: str) -> Any:
    """A boto3 client with bounded network timeouts (the gate's loop is bounded; so is every call)."""
    import boto3
    from botocore.config import Config

    cfg = Config(connect_timeout=10, read_timeout=20, retries={"max_attempts": 3, "mode": "standard"})
    return boto3.client(service, region_name=region, config=cfg)  # type: ignore[call-overload]


def cloudrun_clients(region: str) -> tuple[Any, Any]:
    """Cloud Run admin clients (Application Default Credentials of the user running `pulumi up`)."""
    from google.cloud import run_v2

    return run_v2.ServicesClient(), run_v2.RevisionsClient()


def build_poller(props: Mapping[str, Any]) -> Any:
    """The `infra verify` poller of this target, told which release must be the one serving."""
    from fastapi_deploy.ops import rollout

    target, region = props["target"], props["region"]
    if target == "ecs":
        return rollout.EcsRollout(
            aws_client("ecs", region),
            aws_client("elbv2", region),
            props["cluster"],
            props["service_name"],
            props.get("target_group_arn") or None,
            props.get("image") or None,
            expected_task_definition=props["release"],
        )
    if target == "lambda":
        return rollout.LambdaRollout(
            aws_client("lambda", region),
            props["function_name"],
            props.get("alias") or None,
            props.get("image") or None,
            expected_version=props["release"],
        )
    services, revisions = cloudrun_clients(region)
    return rollout.CloudRunRollout(
        services,
        revisions,
        props["project"],
        region,
        props["service_name"],
        props.get("image") or None,
        expected_revision=props["release"],
        traffic_tag=props.get("traffic_tag") or None,
    )


_WHAT = {"ecs": "task definition", "cloudrun": "revision", "lambda": "version"}


def _platform(props: Mapping[str, Any]) -> str:
    target = props["target"]
    if target == "ecs":
        return f"ECS service {props['service_name']} in cluster {props['cluster']} ({props['region']})"
    if target == "cloudrun":
        return f"Cloud Run service {props['service_name']} in {props['project']}/{props['region']}"
    alias = f" alias {props['alias']}" if props.get("alias") else ""
    return f"Lambda function {props['function_name']}{alias} ({props['region']})"


def _hint(props: Mapping[str, Any], rolled_back: bool) -> str:
    stack = props.get("stack") or "STACK"
    lines = [f"`infra verify --stack {stack}` shows the same after the fix."]
    if rolled_back and props["target"] == "ecs":
        lines.insert(
            0,
            "The platform is back on the previous release (nothing is broken for users). Fix the release, "
            "then run `pulumi up --refresh`: without the refresh Pulumi believes the service already runs "
            "the new task definition and does not deploy it again.",
        )
    return " ".join(lines)


def _release_name(target: str, release: str | None) -> str | None:
    # Cloud Run names revisions by their full resource path in the provider's outputs; the short name is
    # what the console and gcloud show.
    return release.rsplit("/", 1)[-1] if release and target == "cloudrun" else release


def failure_message(props: Mapping[str, Any], obs: Any, *, timed_out: bool, timeout_s: float) -> str:
    """The error `pulumi up` prints: what, expected vs serving, why (the platform's words), what next.

    ``obs`` is the last observation the platform gave (on a timeout: the last one before the deadline).
    """
    what = _WHAT[props["target"]]
    expected = _release_name(props["target"], props["release"])
    serving = _release_name(props["target"], obs.release)
    rolled_back = bool(serving) and serving != expected
    head = (
        f"release gate: {props.get('stack_resource')} (stack {props.get('stack') or '?'}) did not go live "
        f"on {_platform(props)}"
    )
    lines = [head, f"  expected {what}: {expected}", f"  serving {what}:  {serving or 'unknown'}"]
    if props.get("image"):
        lines.append(f"  expected image: {props['image']}")
    if obs.running_images:
        lines.append(f"  running image(s): {', '.join(obs.running_images)}")
    if timed_out:
        lines.append(f"  timed out after {timeout_s:g} s waiting for the rollout to settle")
    elif rolled_back and props["target"] == "ecs":
        lines.append(
            "  the service is on an older task definition: ECS rolled the release back (deployment "
            "circuit breaker or CloudWatch alarm rollback), or another deploy replaced it"
        )
    elif rolled_back:
        lines.append(f"  an older {what} is still the one serving")
    lines.append(f"  {'last seen' if timed_out else 'platform state'}: {obs.summary}")
    reason = (obs.reason or "").strip()
    if reason:
        lines.append("  platform reason:")
        lines.extend(f"    {line}" for line in reason.splitlines() if line.strip())
    lines.append("  " + _hint(props, rolled_back))
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
        changed = [k for k in IDENTITY_KEYS if _olds.get(k) != _news.get(k)]
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


# ------------------------------------------------------------------------------ per-target builders


def _props(target: str, stack_resource: str, timeout_s: int, poll_interval_s: float) -> dict[str, Any]:
    return {
        "target": target,
        "stack": pulumi.get_stack(),
        "stack_resource": stack_resource,
        "timeout_s": timeout_s,
        "poll_interval_s": poll_interval_s,
    }


def ecs_gate(
    name: str,
    *,
    cluster: pulumi.Input[str],
    service_name: pulumi.Input[str],
    task_definition_arn: pulumi.Input[str],
    region: pulumi.Input[str],
    timeout_s: int,
    stack_resource: str,
    target_group_arn: pulumi.Input[str] | None = None,
    image: pulumi.Input[str] | None = None,
    poll_interval_s: float = 10,
    opts: pulumi.ResourceOptions | None = None,
) -> ReleaseGate:
    """Gate on an ECS service: the PRIMARY deployment must be ``task_definition_arn``, COMPLETED, healthy.

    ``cluster``: name or ARN; ``stack_resource``: the Pulumi name of the service (for the error);
    ``timeout_s``: :func:`ecs_timeout_s` of the stack's tuning. Put the service in ``opts.depends_on``.
    """
    props = _props("ecs", stack_resource, timeout_s, poll_interval_s)
    props.update(
        region=region,
        cluster=cluster,
        service_name=service_name,
        release=task_definition_arn,
        target_group_arn=target_group_arn,
        image=image,
    )
    return ReleaseGate(name, props, opts)


def cloudrun_gate(
    name: str,
    *,
    project: pulumi.Input[str],
    region: pulumi.Input[str],
    service_name: pulumi.Input[str],
    revision: pulumi.Input[str],
    stack_resource: str,
    timeout_s: int | None = None,
    image: pulumi.Input[str] | None = None,
    traffic_tag: str | None = None,
    poll_interval_s: float = 5,
    opts: pulumi.ResourceOptions | None = None,
) -> ReleaseGate:
    """Gate on a Cloud Run service: ``revision`` (the service's ``latest_created_revision`` output) must be
    the latest ready one and serve 100 % (or be behind ``traffic_tag``)."""
    props = _props("cloudrun", stack_resource, timeout_s or cloudrun_timeout_s(), poll_interval_s)
    props.update(
        region=region,
        project=project,
        service_name=service_name,
        release=revision,
        image=image,
        traffic_tag=traffic_tag,
    )
    return ReleaseGate(name, props, opts)


def lambda_gate(
    name: str,
    *,
    function_name: pulumi.Input[str],
    version: pulumi.Input[str],
    region: pulumi.Input[str],
    stack_resource: str,
    alias: pulumi.Input[str] | None = None,
    image: pulumi.Input[str] | None = None,
    timeout_s: int = LAMBDA_TIMEOUT_S,
    poll_interval_s: float = 5,
    opts: pulumi.ResourceOptions | None = None,
) -> ReleaseGate:
    """Gate on a Lambda function: ``alias`` must point at ``version`` (the function's published
    ``version`` output) and that version be Active/Successful; without an alias ``$LATEST`` must run
    ``image`` (pass it: the version is always ``$LATEST`` then, so the image is what identifies a release).
    """
    props = _props("lambda", stack_resource, timeout_s, poll_interval_s)
    props.update(region=region, function_name=function_name, release=version, alias=alias, image=image)
    return ReleaseGate(name, props, opts)
