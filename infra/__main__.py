"""The Pulumi program: load config -> tune -> resolve the image -> one frozen spec -> the target's
component Args (its adapter) -> the component -> its outputs dict, exported as is.

Run by the Pulumi CLI (``main: infra/`` in Pulumi.yaml, via runpy, so only ``infra/`` is on sys.path and
the project itself must be installed by ``uv sync``), by the tests and by ``infra plan`` under mocks.
With ``infra/`` first on sys.path its modules are also importable as top-level names, so none of them may
be named like a stdlib module (tests/infra/test_program_imports.py); ``fastapi_deploy`` imports resolve
through the installed distribution.
Validation happens before the first resource is registered: a bad config registers nothing.
"""

from __future__ import annotations

import pulumi

from fastapi_deploy import config as config_mod
from fastapi_deploy import image as image_mod
from fastapi_deploy import registry as target_registry
from fastapi_deploy import service_env, spec, targets, tuning
from fastapi_deploy.component import ArgsError
from fastapi_deploy.secret_refs import SecretRefError

#: Errors that mean "the stack config is wrong": one clean message under the CLI, not a traceback.
CONFIG_ERRORS = (
    config_mod.ConfigError,
    tuning.TuningError,
    SecretRefError,
    targets.TargetNotAvailable,
    ArgsError,
    image_mod.ImageError,
)


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

    deploy_spec = spec.build(cfg, runtime, image.ref, image.repository_arn, image.repository_url)
    outputs = module.deploy(targets.DeployContext(spec=deploy_spec, section=targets.config_section(cfg)))
    expected = (*targets.COMMON_OUTPUTS, *target_registry.get(cfg.target).outputs)
    missing = [k for k in expected if k not in outputs]
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
    if isinstance(exc, pulumi.RunError):  # ArgsError is one already (a component refusing an Arg)
        raise
    clean = type(type(exc).__name__, (pulumi.RunError, type(exc)), {"__module__": type(exc).__module__})
    raise clean(str(exc)) from None
