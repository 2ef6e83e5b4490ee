"""``infra plan``: what a deploy of a stack would do, computed with nothing but this repository.

The real Pulumi program (``infra/__main__.py``) runs under the recording mocks of :mod:`fastapi_deploy.mocks`
with the stack file's config; the recorded resource graph is then

* printed like ``pulumi preview`` (tree of type/name with key inputs) or as JSON (the contract below),
* judged by the policy pack's own rule functions (:mod:`policy.rules`, the same code CrossGuard runs),
* priced by :mod:`fastapi_deploy.cost` with the stack's ``app.cost`` assumptions.

JSON contract (tools rely on these names)::

    {"stack", "target", "resources": [{"urn", "type", "name", "parent", "inputs"}], "outputs",
     "tuning", "policy": {"violations": [{"policy", "enforcement", "urn", "message"}]},
     "cost": {"currency", "monthly_total", "lines": [{"resource", "monthly", "basis"}], "assumptions",
              "sources", "region", "price_region", "fallback_from", "price_fallback_keys", "price_read",
              "price_sources", "price_note"}}

Keys are only ever added. ``--diff PREVIOUS.json`` compares with such a document
(:mod:`fastapi_deploy.plandiff`).

Secrets: ``secure:`` config values cannot be decrypted offline and never reach the program (the mocks
substitute ``[secret]``); values the program marks secret are shown as ``[secret]``; plain env values
whose name says they are credentials are masked too; and as a last guard every string that was a secret
anywhere in the run is scrubbed from the rendered output.

Exit codes: 0 no mandatory violation, 1 a mandatory violation (or the program itself failed), 2 invalid
config (the message names the key) or a target missing from this checkout.
"""

from __future__ import annotations

import functools
import json
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TextIO, TypeVar

from fastapi_deploy import contract, project

if TYPE_CHECKING:
    from fastapi_deploy.mocks import ProgramResult, RecordingMocks

SECRET_MARK = contract.SECRET_MASK
EXIT_OK, EXIT_FINDINGS, EXIT_INVALID = 0, 1, 2

#: Inputs worth a glance in the text tree, per type token (the JSON has all of them); each target adds
#: its own resource types (``Target.plan_inputs``).
KEY_INPUTS: dict[str, tuple[str, ...]] = {
    "aws:ec2/vpc:Vpc": ("cidrBlock",),
    "aws:ec2/subnet:Subnet": ("cidrBlock", "availabilityZone", "mapPublicIpOnLaunch"),
    "aws:ec2/securityGroup:SecurityGroup": ("description",),
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": ("fromPort", "toPort", "cidrIpv4"),
    "aws:appautoscaling/target:Target": ("minCapacity", "maxCapacity"),
    "aws:cloudwatch/logGroup:LogGroup": ("retentionInDays",),
    "aws:cloudwatch/metricAlarm:MetricAlarm": ("metricName", "threshold"),
    "aws:ecr/repository:Repository": ("imageTagMutability",),
}


def _key_inputs(kind: str) -> tuple[str, ...]:
    from fastapi_deploy import registry

    for target in registry.all_targets():
        if kind in target.plan_inputs:
            return target.plan_inputs[kind]
    return KEY_INPUTS.get(kind, ())


@dataclass
class StackPlan:
    """The plan of one stack (or why there is none)."""

    stack: str
    target: str | None = None
    resources: list[dict[str, Any]] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    tuning: dict[str, Any] = field(default_factory=dict)
    violations: list[dict[str, Any]] = field(default_factory=list)
    cost: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    #: The program itself failed (a bug or an unmocked call), as opposed to an invalid config.
    crashed: bool = False
    seconds: float = 0.0
    #: Where the deploy goes and which stack key says so (text output only; the JSON has it in outputs).
    region: str | None = None

    @property
    def exit_code(self) -> int:
        if self.error is not None:
            return EXIT_FINDINGS if self.crashed else EXIT_INVALID
        if any(v["enforcement"] == "mandatory" for v in self.violations):
            return EXIT_FINDINGS
        return EXIT_OK

    def as_json(self) -> dict[str, Any]:
        if self.error is not None:
            return {"stack": self.stack, "target": self.target, "error": self.error}
        return {
            "stack": self.stack,
            "target": self.target,
            "resources": self.resources,
            "outputs": self.outputs,
            "tuning": self.tuning,
            "policy": {"violations": self.violations},
            "cost": self.cost,
        }


# --- stack discovery ---------------------------------------------------------------------------------
def stack_files(stacks_dir: Path | None = None) -> list[Path]:
    """Every ``Pulumi.<stack>.yaml`` in the stacks directory, sorted by name."""
    stacks_dir = stacks_dir or project.find().stacks_dir
    return sorted(stacks_dir.glob("Pulumi.*.yaml"))


def stack_name(path: Path) -> str:
    return path.name.removeprefix("Pulumi.").rsplit(".", 1)[0]


def resolve_stack(stack: str, stacks_dir: Path | None = None) -> Path:
    """``prod-ecs`` → ``stacks/Pulumi.prod-ecs.yaml``; a path to a stack file is accepted too."""
    candidate = Path(stack)
    if candidate.suffix in {".yaml", ".yml"} and candidate.exists():
        return candidate
    path = project.stack_path(stack, stacks_dir)
    if not path.exists():
        known = ", ".join(stack_name(p) for p in stack_files(path.parent)) or "none"
        raise FileNotFoundError(f"--stack {stack}: no {path}; known stacks: {known}, or 'all'")
    return path


def list_stacks(stacks_dir: Path | None = None, prefix: str = "") -> dict[str, list[dict[str, str]]]:
    """A GitHub Actions matrix of the stacks: which cloud to authenticate to, and the region.

    Reads the raw YAML only (no validation), so one broken stack file cannot hide the others from CI;
    the plan job of that stack reports the error.
    """
    import yaml

    include = []
    for path in stack_files(stacks_dir):
        name = stack_name(path)
        if not name.startswith(prefix):
            continue
        raw = (yaml.safe_load(path.read_text()) or {}).get("config") or {}
        app = raw.get("fastapi-deploy:app") or {}
        target = str(app.get("target", "unknown"))
        cloud, region = ci_login(target, raw, app)
        include.append({"stack": name, "target": target, "cloud": cloud, "region": region})
    return {"include": include}


#: `plan --list`'s (cloud, region) for a stack whose target declares no ``ci_login``.
NO_CLOUD_LOGIN = ("none", "")


def ci_login(target: str, raw: Mapping[str, Any], app: Mapping[str, Any]) -> tuple[str, str]:
    """(cloud, region) a CI job of this stack authenticates to: the target's ``ci_login``.

    A target that declares none (or a stack whose target is not registered: its plan job then reports
    that) gets :data:`NO_CLOUD_LOGIN`: the workflows log in to no cloud for it, instead of to a guessed one.
    """
    from fastapi_deploy import registry

    spec = registry.find(target)
    if spec is None or spec.ci_login is None:
        return NO_CLOUD_LOGIN
    return spec.ci_login(raw, app)


# --- secrets -----------------------------------------------------------------------------------------
@functools.cache
def _policy_rules() -> Any:
    """The policy pack's rule module: shipped inside the wheel as ``fastapi_deploy.policy_rules`` (the
    wheel force-includes policy/rules.py under that name), else ``policy/`` of this checkout."""
    try:
        from fastapi_deploy import policy_rules  # type: ignore[attr-defined]

        return policy_rules
    except ImportError:
        from policy import rules

        return rules


def _secret_env_name(name: str, value: str) -> bool:
    rules = _policy_rules()
    if not value or rules.is_reference(value):
        return False
    return bool(
        name in rules.SECRET_ENV_NAMES
        or rules.SECRET_NAME_RE.search(name)
        or rules.URL_WITH_PASSWORD_RE.match(value)
    )


def _mask_env_entries(kind: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """Mask plain env values that are credentials by name or shape (the policy flags them; never printed).
    Where a resource type keeps its env is the target's knowledge (``Target.mask_env``)."""
    from fastapi_deploy import contract, registry

    for target in registry.all_targets():
        if target.mask_env is not None:
            inputs = target.mask_env(kind, inputs, _secret_env_name, SECRET_MARK)
    # Any target's component: the plain env it publishes in its runtime facts.
    facts = inputs.get(contract.RUNTIME_FACTS)
    if isinstance(facts, dict) and isinstance(facts.get("env"), dict):
        env = {
            k: SECRET_MARK if isinstance(v, str) and _secret_env_name(str(k), v) else v
            for k, v in facts["env"].items()
        }
        inputs = {**inputs, contract.RUNTIME_FACTS: {**facts, "env": env}}
    return inputs


#: Keys inside a secret mapping whose values are addresses, not credentials (not scrubbed from the output).
NOT_SECRET_KEYS = frozenset({"server", "address"})


def _secret_strings(value: Any, secret_env: frozenset[str], inside: bool = False) -> set[str]:
    """Strings that sit inside a secret wrapper, to scrub them from the rendered output.

    A whole env list may be one secret (VPS); there only the values of credential env vars count, so
    ``APP_ENV=production`` riding along inside the secret does not turn every "production" into
    ``[secret]``.
    """
    from fastapi_deploy.mocks import is_secret, unwrap

    found: set[str] = set()
    if is_secret(value):
        return _secret_strings(unwrap(value), secret_env, True)
    if isinstance(value, Mapping):
        for k, v in value.items():
            # A registry login is one secret {server, username, password}; the server is the registry's
            # host and also the prefix of the image ref, which would otherwise print as "[secret]/...".
            if inside and k in NOT_SECRET_KEYS and isinstance(v, str):
                continue
            found |= _secret_strings(v, secret_env, inside)
    elif isinstance(value, list | tuple):
        for v in value:
            found |= _secret_strings(v, secret_env, inside)
    elif inside and isinstance(value, str):
        key, sep, rest = value.partition("=")
        if sep and re.fullmatch(r"[A-Z_][A-Z0-9_]*", key):
            if key in secret_env or _secret_env_name(key, rest):
                found |= {value, rest}
        else:
            found.add(value)
    return {s for s in found if len(s) >= 6 and s != SECRET_MARK}


def scrub(value: Any, secrets: Iterable[str]) -> Any:
    """Replace every occurrence of a secret string in any string of ``value``."""
    ordered = sorted(set(secrets), key=len, reverse=True)
    if not ordered:
        return value
    pattern = re.compile("|".join(re.escape(s) for s in ordered))

    def walk(v: Any) -> Any:
        if isinstance(v, str):
            return pattern.sub(SECRET_MARK, v)
        if isinstance(v, Mapping):
            return {k: walk(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [walk(x) for x in v]
        return v

    return walk(value)


# --- planning ----------------------------------------------------------------------------------------
def plan_stack(
    path: Path, *, mocks_factory: Callable[[Mapping[str, Any]], RecordingMocks] | None = None
) -> StackPlan:
    """Plan one stack file. Never raises for bad config: the error lands in ``StackPlan.error``."""
    import time

    started = time.perf_counter()
    name = stack_name(path)
    plan = StackPlan(stack=name)
    from fastapi_deploy import config as config_mod
    from fastapi_deploy import service_env
    from fastapi_deploy import tuning as tuning_mod

    try:
        cfg = config_mod.load_stack_file(path)
        plan.target = cfg.target
        plan.region = _region_line(cfg, path)
        runtime = tuning_mod.for_platform(cfg)
        service_env.check(cfg, runtime)
    except (config_mod.ConfigError, tuning_mod.TuningError) as exc:
        plan.error = f"{path.name}: {exc}"
        plan.seconds = time.perf_counter() - started
        return plan

    from fastapi_deploy import mocks as mocks_mod
    from fastapi_deploy.component import ArgsError
    from fastapi_deploy.image import ImageError
    from fastapi_deploy.targets import TargetNotAvailable

    raw = config_mod.stack_file_config(path)
    try:
        result = mocks_mod.run_program(
            name,
            raw,
            mocks=mocks_factory(raw) if mocks_factory else None,
            main=project.find(path.resolve().parent).main,
        )
    except (config_mod.ConfigError, tuning_mod.TuningError, TargetNotAvailable, ImageError, ArgsError) as exc:
        plan.error = f"{path.name}: {exc}"
        plan.seconds = time.perf_counter() - started
        return plan
    except Exception as exc:  # the program failed: report it per stack instead of a bare traceback
        plan.error = f"{path.name}: the Pulumi program failed under mocks: {type(exc).__name__}: {exc}"
        plan.crashed = True
        plan.seconds = time.perf_counter() - started
        return plan

    _fill(plan, result, runtime.as_dict(), cfg)
    plan.seconds = time.perf_counter() - started
    return plan


class _Node(Protocol):
    @property
    def urn(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def parent(self) -> str | None: ...


R = TypeVar("R", bound=_Node)


def tree_order(resources: Iterable[R]) -> list[R]:
    """The resources depth-first from the stack, siblings by (type, name): the same order every run.

    Under mocks resources register as their inputs resolve, which varies from run to run with asyncio
    scheduling; a plan posted on a pull request must not change when the program did not.
    """
    items = list(resources)
    urns = {r.urn for r in items}
    children: dict[str | None, list[R]] = {}
    for r in items:
        children.setdefault(r.parent if r.parent in urns else None, []).append(r)
    ordered: list[R] = []
    stack = [sorted(children.get(None, []), key=_sibling_key, reverse=True)]
    while stack:
        level = stack[-1]
        if not level:
            stack.pop()
            continue
        r = level.pop()
        ordered.append(r)
        stack.append(sorted(children.get(r.urn, []), key=_sibling_key, reverse=True))
    return ordered


def _sibling_key(r: _Node) -> tuple[str, str, str]:
    return (r.type, r.name, r.urn)


def _region_line(cfg: Any, path: Path) -> str | None:
    from fastapi_deploy import registry

    spec = registry.find(cfg.target)
    if spec is not None and spec.region_line is not None:
        return spec.region_line(cfg, path.name)
    if cfg.region:
        return f"{cfg.region} (aws:region in {path.name}; never taken from AWS_REGION or a profile)"
    return None


def _fill(plan: StackPlan, result: ProgramResult, tuning: dict[str, Any], cfg: Any) -> None:
    from fastapi_deploy import cost as cost_mod
    from fastapi_deploy import registry
    from fastapi_deploy.mocks import unwrap

    rules = _policy_rules()
    result.resources[:] = tree_order(result.resources)
    secret_env = frozenset(getattr(cfg, "secrets", {}) or {})
    secrets: set[str] = set()
    for r in result.resources:
        secrets |= _secret_strings(r.inputs, secret_env)
    graph = [
        rules.Resource(type=r.type, inputs=unwrap(r.inputs), urn=r.urn, name=r.name, parent=r.parent)
        for r in result.resources
    ]
    plan.violations = [v.as_dict() for v in rules.evaluate(graph)]
    resources = []
    for r in result.resources:
        shown = r.as_json()
        shown["inputs"] = _mask_env_entries(r.type, shown["inputs"])
        resources.append(shown)
    estimate = cost_mod.estimate(
        [
            {"type": r.type, "name": r.name, "urn": r.urn, "inputs": unwrap(r.inputs)}
            for r in result.resources
        ],
        cost_mod.Assumptions.from_config(cfg.cost),
        provider=registry.get(cfg.target).price_provider,
        region=getattr(cfg, "region", None),
        target=cfg.target,
    )
    plan.resources = scrub(resources, secrets)
    plan.outputs = scrub(dict(result.outputs), secrets)
    plan.tuning = scrub(tuning, secrets)
    plan.violations = scrub(plan.violations, secrets)
    plan.cost = estimate.as_dict()


# --- text rendering ----------------------------------------------------------------------------------
def _short(value: Any, limit: int = 60) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # the engine hands numbers over as floats: show 90, not 90.0
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _tree_lines(plan: StackPlan) -> list[str]:
    children: dict[str | None, list[dict[str, Any]]] = {}
    urns = {r["urn"] for r in plan.resources}
    for r in plan.resources:
        parent = r["parent"] if r["parent"] in urns else None
        children.setdefault(parent, []).append(r)
    rows: list[tuple[str, str]] = [("pulumi:pulumi:Stack", f"fastapi-deploy-{plan.stack}")]

    def walk(parent: str | None, prefix: str) -> None:
        kids = children.get(parent, [])
        for i, r in enumerate(kids):
            last = i == len(kids) - 1
            keys = _key_inputs(r["type"])
            shown = " ".join(
                f"{k}={_short(r['inputs'][k], 40)}" for k in keys if r["inputs"].get(k) is not None
            )
            rows.append(
                (
                    f"{prefix}{'└─ ' if last else '├─ '}{r['type']}",
                    r["name"] + (f"  {shown}" if shown else ""),
                )
            )
            walk(r["urn"], prefix + ("   " if last else "│  "))

    walk(None, "")
    width = max(len(label) for label, _ in rows) + 2
    return [f" +   {label:<{width}}{name}" for label, name in rows]


def render_text(plan: StackPlan, out: TextIO) -> None:
    """Print one plan like ``pulumi preview``, then tuning, policy and cost."""
    w = out.write
    if plan.error is not None:
        w(f"error: stack {plan.stack}: {plan.error}\n")
        return
    w(f"Previewing update ({plan.stack}) - offline: the real program under Pulumi mocks, no cloud calls\n")
    if plan.region:
        w(f"Region: {plan.region}\n")
    w("\n")
    w("\n".join(_tree_lines(plan)) + "\n\n")
    w(f"Resources:\n    + {len(plan.resources) + 1} to create\n\n")

    w("Outputs:\n")
    for key, value in plan.outputs.items():
        if key != "tuning":
            w(f"    {key:<18}: {_short(value, 90)}\n")
    t = plan.tuning
    w("\nTuning (injected into the container as env):\n")
    if t:
        idle = t.get("lb_idle_timeout_s")
        # Cloud Run and Lambda have no LB idle timeout the keepalive must beat: say so instead of "None".
        lb_idle = f"LB idle {idle} s" if idle is not None else "no LB idle timeout on this platform"
        w(
            f"    workers {t.get('workers')} on {float(t.get('vcpu') or 0):.2g} vCPU / "
            f"{t.get('memory_mib')} MiB; "
            f"keepalive {t.get('keepalive_s')} s ({lb_idle}); "
            f"timeout {t.get('timeout_s')} s; graceful {t.get('graceful_timeout_s')} s "
            f"(stop grace {t.get('stop_timeout_s')} s)\n"
            f"    DB pool {t.get('pool_class')} {t.get('pool_size')}+{t.get('max_overflow')} per worker, "
            f"timeout {t.get('pool_timeout_s')} s; peak {t.get('max_total_connections')} connections "
            f"({t.get('replicas_during_deploy')} replicas during deploy) "
            f"<= budget {t.get('connection_budget')}\n"
        )
        for key, value in sorted((t.get("env") or {}).items()):
            w(f"    {key}={value}\n")

    mandatory = [v for v in plan.violations if v["enforcement"] == "mandatory"]
    advisory = [v for v in plan.violations if v["enforcement"] == "advisory"]
    w(f"\nPolicy (policy/ pack): {len(mandatory)} mandatory, {len(advisory)} advisory violation(s)\n")
    for v in mandatory + advisory:
        where = v["urn"].rsplit("::", 1)[-1] if v["urn"] else "stack"
        w(f"    [{v['enforcement']}] {v['policy']} ({where}): {v['message']}\n")

    c = plan.cost
    w(f"\nEstimated monthly cost: {c['currency']} {c['monthly_total']:,.2f}\n")
    for line in sorted(c["lines"], key=lambda x: -x["monthly"]):
        w(f"    {line['monthly']:>10,.2f}  {line['resource']:<34} {line['basis']}\n")
    a = c["assumptions"]
    w(
        f"    assumptions: {a['requests_per_month']:,} requests/month, {a['avg_duration_ms']:g} ms average, "
        f"{a['egress_gb_per_month']:g} GB egress, {a['hours_per_month']:g} h/month (app.cost overrides)\n"
        f"    prices as of {a['prices_as_of']} ({a['prices_note']}); ignores {a['ignored']}\n"
    )
    if c.get("price_note"):
        w(f"    prices: {c['price_note']}\n")


# --- entry point -------------------------------------------------------------------------------------
def cli(argv: list[str], out: TextIO | None = None, err: TextIO | None = None) -> int:
    """``infra plan --stack STACK|all [--format text|json] [--diff PREVIOUS.json]``; ``--list``."""
    import argparse

    out = out or sys.stdout
    err = err or sys.stderr
    parser = argparse.ArgumentParser(
        prog="infra plan",
        description="Offline plan: resources, tuning, policy results and monthly cost, without credentials.",
    )
    parser.add_argument("--stack", help="stack name (stacks/Pulumi.<stack>.yaml), a stack file, or 'all'")
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.add_argument(
        "--stacks-dir", type=Path, default=None, help="default: stackConfigDir of the nearest Pulumi.yaml"
    )
    parser.add_argument(
        "--list", action="store_true", help="print the stacks as a GitHub Actions matrix (JSON)"
    )
    parser.add_argument("--prefix", default="", help="with --list: only stacks whose name starts with this")
    parser.add_argument("--timing", action="store_true", help="print the seconds each plan took (to stderr)")
    parser.add_argument(
        "--diff",
        type=Path,
        metavar="PREVIOUS.json",
        help="compare with a previous `infra plan --format json` output: resources added/changed/removed and "
        "the monthly cost delta, as Markdown for a pull-request comment (--format json: the diff as JSON)",
    )
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return EXIT_INVALID if exc.code else EXIT_OK

    if args.stacks_dir is None:
        try:
            args.stacks_dir = project.find().stacks_dir
        except project.ProjectNotFound as exc:
            err.write(f"infra plan: {exc}\n")
            return EXIT_INVALID
    if args.list:
        out.write(json.dumps(list_stacks(args.stacks_dir, args.prefix)) + "\n")
        return EXIT_OK
    if not args.stack:
        err.write("infra plan: --stack is required (a stack name from stacks/, or 'all')\n")
        return EXIT_INVALID
    try:
        paths = (
            stack_files(args.stacks_dir)
            if args.stack == "all"
            else [resolve_stack(args.stack, args.stacks_dir)]
        )
    except FileNotFoundError as exc:
        err.write(f"infra plan: {exc}\n")
        return EXIT_INVALID
    if not paths:
        err.write(f"infra plan: no Pulumi.*.yaml in {args.stacks_dir}\n")
        return EXIT_INVALID
    if args.diff is not None:
        return _cli_diff(args, paths, out, err)

    plans = _plan_each(paths, args, err, out if args.format == "text" else None)
    if args.format == "json":
        doc: Any = plans[0].as_json() if args.stack != "all" else [p.as_json() for p in plans]
        out.write(json.dumps(doc, indent=2, default=str) + "\n")
    return _worst(plans)


def _plan_each(paths: list[Path], args: Any, err: TextIO, text_out: TextIO | None) -> list[StackPlan]:
    """Plan every stack file in turn: errors (and ``--timing``) to ``err``, the text plan to ``text_out``."""
    plans = []
    for path in paths:
        plan = plan_stack(path)
        plans.append(plan)
        if plan.error is not None:
            err.write(f"infra plan: {plan.error}\n")
        if text_out is not None:
            render_text(plan, text_out)
            if len(paths) > 1:
                text_out.write("\n" + "=" * 100 + "\n\n")
        if args.timing:
            err.write(f"infra plan: {plan.stack} planned in {plan.seconds:.2f} s\n")
    return plans


def _worst(plans: Iterable[StackPlan]) -> int:
    codes = {p.exit_code for p in plans}
    return EXIT_INVALID if EXIT_INVALID in codes else (EXIT_FINDINGS if EXIT_FINDINGS in codes else EXIT_OK)


def _cli_diff(args: Any, paths: list[Path], out: TextIO, err: TextIO) -> int:
    """``--diff PREVIOUS.json``: the previous file is checked before any planning (exit 2, one message)."""
    from fastapi_deploy import plandiff

    try:
        previous = plandiff.load_previous(args.diff)
    except plandiff.PreviousPlanError as exc:
        err.write(f"infra plan: --diff {exc}\n")
        return EXIT_INVALID
    plans = _plan_each(paths, args, err, None)
    current = [json.loads(json.dumps(p.as_json(), default=str)) for p in plans]
    doc = plandiff.diff_plans(previous, current, all_stacks=args.stack == "all", source=str(args.diff))
    if args.format == "json":
        out.write(json.dumps(doc, indent=2, default=str) + "\n")
    else:
        out.write(plandiff.render_markdown(doc))
    return _worst(plans)
