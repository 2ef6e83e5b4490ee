"""The ``infra`` console script: ``infra plan|doctor|verify|status|logs|rollback``.

``plan`` is the offline plan (:mod:`fastapi_deploy.plan`); ``doctor`` (preflight) and ``verify`` (post-deploy)
belong to their own modules, which own their arguments. Subcommand modules are imported only when
used, so ``infra plan`` does not pay for boto3 and ``infra --help`` starts instantly.

Every command first registers the project's own targets, the modules its pyproject.toml names in
``[tool.fastapi-deploy] targets`` (:func:`fastapi_deploy.registry.load_project_targets`).

Exit codes: 0 ok, 1 findings/failed, 2 invalid config or usage.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

USAGE = """usage: infra <command> [options]

commands:
  plan     offline plan of a stack: resources, tuning, policy, monthly cost (no credentials)
  doctor   preflight checks against the cloud before a deploy (secrets, certificates, registry)
  verify   post-deploy checks of a stack's outputs (rollout, health, readiness, smoke test)
  status   deployed vs running image, counts, the last deployment, a rollback detected
  logs     the service's logs (CloudWatch, Cloud Logging, docker logs over SSH): --since, --follow, --grep
  rollback back to the previous release, or --to DIGEST (outside Pulumi: drift until the next deploy)

Run `infra <command> --help` for the options of a command.
"""

#: command -> module exposing ``cli(argv: list[str]) -> int`` (contract section 3), or ``module:function``
#: when one module serves several commands.
COMMANDS = {
    "plan": "fastapi_deploy.plan",
    "doctor": "fastapi_deploy.doctor",
    "verify": "fastapi_deploy.verify",
    "status": "fastapi_deploy.operate:status_cli",
    "logs": "fastapi_deploy.operate:logs_cli",
    "rollback": "fastapi_deploy.operate:rollback_cli",
}


def _cache_bytecode_outside_the_tree() -> None:
    """Let `infra plan` cache bytecode even when PYTHONDONTWRITEBYTECODE is set.

    Importing the provider SDKs from source costs ~5 s of CPU per plan (pulumi_aws.ec2 alone is thousands
    of generated classes); from cached bytecode ~2.5 s. PYTHONDONTWRITEBYTECODE is usually set to keep
    __pycache__ out of source trees, so the cache goes to the user's cache directory instead
    (sys.pycache_prefix), never next to the sources. INFRA_NO_BYTECODE_CACHE=1 turns this off.
    """
    if not sys.dont_write_bytecode or sys.pycache_prefix or os.environ.get("INFRA_NO_BYTECODE_CACHE"):
        return
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    prefix = base / "fastapi-deploy" / "pycache"
    try:
        prefix.mkdir(parents=True, exist_ok=True)
    except OSError:
        return
    sys.pycache_prefix = str(prefix)
    sys.dont_write_bytecode = False


@contextlib.contextmanager
def _set_up_for_planning() -> Iterator[None]:
    """The `infra plan` process: provider SDKs loaded on demand, the cyclic GC paused; undone afterwards.

    * Only the provider SDK modules the program uses are imported (:mod:`fastapi_deploy.lazysdk`): a plan
      is mostly
      Python importing generated provider classes (``pulumi_aws.ec2`` alone is ~180 modules). Must be in
      place before anything imports ``pulumi_aws``. ``INFRA_PLAN_EAGER_SDK=1`` turns it off; the plan is
      byte-identical either way (tests/infra/test_lazysdk.py).
    * The cyclic GC is paused: importing a few hundred thousand long-lived objects (generated classes)
      made it rescan them repeatedly; peak memory for `--stack all` is the same ~120 MB either way.
      Reference counting still frees memory.

    Together they take the ECS plan from ~2.1 s to ~1.4 s on a 2-vCPU machine (bench/bench_plan.py,
    BENCHMARKS.md section 9). Both are undone on the way out, so a caller that runs `main(["plan", ...])`
    in-process (tests) gets its interpreter back as it was (modules already loaded on demand stay so).
    """
    from fastapi_deploy import lazysdk

    installed = not os.environ.get("INFRA_PLAN_EAGER_SDK")
    if installed:
        lazysdk.install()
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if gc_was_enabled:
            gc.enable()
        if installed:
            lazysdk.uninstall()


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch to the subcommand's ``cli(argv)`` and return its exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in {"-h", "--help", "help"}:
        sys.stdout.write(USAGE)
        return 0 if args else 2
    command, rest = args[0], args[1:]
    entry = COMMANDS.get(command)
    if entry is None:
        sys.stderr.write(f"infra: unknown command {command!r}; choose one of {', '.join(COMMANDS)}\n")
        return 2
    module_name, _, function = entry.partition(":")
    with contextlib.ExitStack() as stack:
        if command == "plan":
            _cache_bytecode_outside_the_tree()
            stack.enter_context(_set_up_for_planning())
        # The project's own targets (pyproject.toml [tool.fastapi-deploy] targets) are registered before
        # any command reads a stack file or an outputs file naming one of them.
        from fastapi_deploy import registry

        try:
            registry.load_project_targets()
        except registry.ProjectTargetsError as exc:
            sys.stderr.write(f"infra {command}: {exc}\n")
            return 2
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            missing = module_name.replace(".", "/") + ".py"
            sys.stderr.write(f"infra {command}: not available in this checkout ({missing} is missing)\n")
            return 2
        try:
            return int(getattr(module, function or "cli")(rest))
        except BrokenPipeError:  # `infra plan | head`: the reader left; no traceback for that
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 141  # 128 + SIGPIPE, as shells report it


if __name__ == "__main__":
    sys.exit(main())
