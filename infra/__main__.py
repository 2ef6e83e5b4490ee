"""The Pulumi program: load config -> tune -> resolve the image -> one target component -> outputs.

Run by the Pulumi CLI (``main: infra/`` in Pulumi.yaml, via runpy, so only ``infra/`` is on sys.path and
the project itself must be installed by ``uv sync``), by the tests and by ``infra plan`` under mocks.
Validation happens before the first resource is registered: a bad config registers nothing.
"""

from __future__ import annotations

import os
import sys

# The CLI runs this DIRECTORY with runpy, which puts infra/ itself first on sys.path: any later
# `import secrets` (the stdlib module; uuid, http, botocore... use it) would then load infra/secrets.py.
# Drop infra/ from the path before importing anything else; the project is installed (`uv sync`), so
# `infra.*` imports resolve through the package.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if not p or os.path.abspath(p) != _HERE]
for _shadowed in [
    m for m, mod in sys.modules.items() if os.path.dirname(getattr(mod, "__file__", "") or "") == _HERE
]:
    if _shadowed != "__main__" and not _shadowed.startswith("infra"):
        del sys.modules[_shadowed]

import pulumi  # noqa: E402

from infra import config as config_mod  # noqa: E402
from infra import image as image_mod  # noqa: E402
from infra import service_env, targets, tuning  # noqa: E402
from infra.secrets import SecretRefError  # noqa: E402

#: Errors that mean "the stack config is wrong": one clean message under the CLI, not a traceback.
CONFIG_ERRORS = (config_mod.ConfigError, tuning.TuningError, SecretRefError, targets.TargetNotAvailable)


def main() -> None:
    """Deploy one stack."""
    cfg = config_mod.load()
    runtime = tuning.for_platform(cfg)
    # What the service would refuse at start (a missing DATABASE_URL, LOG_LEVEL: verbose) fails here.
    service_env.check(cfg, runtime)
    module = targets.module_for(cfg.target)
    # Target checks that need the tuning (Lambda's 4 KB env limit, Cloud Run's 10 s SIGTERM grace) run
    # before the first resource (registry, image) is registered.
    precheck = getattr(module, "validate", None)
    if precheck is not None:
        precheck(cfg, runtime)
    name = f"{cfg.name}-{cfg.stack}"
    tags = cfg.resource_tags()

    registry = None
    if cfg.image.build is not None:
        make_registry = getattr(module, "image_registry", None)
        registry = (
            make_registry(targets.RegistryContext(name=name, cfg=cfg, tags=tags))
            if make_registry is not None
            else image_mod.ecr_registry(name, cfg.image, tags)
        )
    image = image_mod.resolve(name, cfg.image, registry)

    outputs = module.deploy(targets.DeployContext(name=name, cfg=cfg, tuning=runtime, image=image, tags=tags))
    missing = [k for k in (*targets.COMMON_OUTPUTS, *targets.TARGET_OUTPUTS[cfg.target]) if k not in outputs]
    if missing:
        raise RuntimeError(f"target {cfg.target} did not export {missing} (contract section 2)")
    for key, value in outputs.items():
        pulumi.export(key, value)
    # The tuning the containers got, for `infra plan` and reviewers (no secrets in it).
    pulumi.export("tuning", runtime.env())


try:
    main()
except CONFIG_ERRORS as exc:
    # The CLI's language host prints a RunError's message alone and a traceback for anything else; a bad
    # stack config deserves one clean message naming the key. The raised error is both a RunError and the
    # original type, so callers running this file under mocks (tests, `infra plan`) still catch ConfigError.
    clean = type(type(exc).__name__, (pulumi.RunError, type(exc)), {"__module__": type(exc).__module__})
    raise clean(str(exc)) from None
