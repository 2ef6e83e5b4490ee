"""The deployer refuses what the service would refuse at start, before any resource is registered.

The container's final environment — the tuning's env, ``app.env``, ``app.cors_origins`` and the names in
``app.secrets`` — goes through the service's own settings model:
every required setting must be present as a value or a secret reference, literal values pass the
service's validators, and a name the service does not read but that looks like one it does gets a
"did you mean". Without this, a typo in a stack file shows up only after ``pulumi up`` as a failed
rollout (the app exits at start, ECS's circuit breaker rolls back).

Which settings model: the library does not import any service. A project names its service's settings
module in its ``pyproject.toml``::

    [tool.fastapi-deploy]
    service-settings = "app.settings"   # a module with KNOWN_ENV_NAMES and environment_problems(env, secrets)

(this repository names its sample service's). Without it the check uses the contract alone
(:class:`ContractModel`: required settings, the URL and JWT validators, the deployer's own names), which
every service deployed with this library shares.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from fastapi_deploy import contract

if TYPE_CHECKING:
    from fastapi_deploy.config import StackConfigType
    from fastapi_deploy.tuning import RuntimeTuning


class ServiceModel(Protocol):
    """What the check needs from a service's settings module."""

    KNOWN_ENV_NAMES: frozenset[str]

    def environment_problems(
        self, env: Mapping[str, str], secret_names: Iterable[str] = ()
    ) -> list[tuple[str, str]]: ...


class ContractModel:
    """The settings every service deployed with this library reads (the contract), and their checks."""

    KNOWN_ENV_NAMES = frozenset(
        contract.TUNING_ENV_NAMES
        | contract.CREDENTIAL_ENV_NAMES
        | set(contract.REQUIRED_ENV)
        | set(contract.REQUIRED_OUTSIDE_DEVELOPMENT)
        | {"APP_ENV", "LOG_LEVEL"}
    )

    @staticmethod
    def environment_problems(
        env: Mapping[str, str], secret_names: Iterable[str] = ()
    ) -> list[tuple[str, str]]:
        secrets = {name.upper() for name in secret_names}
        given = {k.upper(): v for k, v in env.items() if k.upper() not in secrets}
        problems: list[tuple[str, str]] = []
        for name in contract.REQUIRED_ENV:
            if name not in given and name not in secrets:
                problems.append((name, "is required but not set"))
        app_env = given.get("APP_ENV", "development")
        if app_env not in contract.APP_ENVS:
            problems.append(("APP_ENV", f"must be one of {', '.join(contract.APP_ENVS)}"))
        level = given.get("LOG_LEVEL", "info").lower()
        if level not in contract.LOG_LEVELS:
            problems.append(("LOG_LEVEL", f"must be one of {', '.join(contract.LOG_LEVELS)}"))
        checks = {
            "DATABASE_URL": contract.database_url_problem,
            "REDIS_URL": contract.redis_url_problem,
        }
        for name, check in checks.items():
            if name in given and (found := check(given[name])):
                problems.append((name, found))
        if "JWT_SECRET_KEY" in given and (
            found := contract.jwt_secret_problem(given["JWT_SECRET_KEY"], app_env)
        ):
            problems.append(("JWT_SECRET_KEY", found))
        if app_env != "development":
            for name in contract.REQUIRED_OUTSIDE_DEVELOPMENT:
                if name not in given and name not in secrets:
                    problems.append((name, f"required when APP_ENV={app_env}"))
        return problems


@cache
def service_model(start: Path | None = None) -> ServiceModel:
    """The settings module the nearest ``pyproject.toml`` names, else :class:`ContractModel`."""
    from fastapi_deploy import project

    found, table = project.tool_table(start)
    name = table.get("service-settings")
    if not name:
        return ContractModel()
    try:
        module = importlib.import_module(name)
    except ImportError as exc:
        from fastapi_deploy.config import ConfigError

        raise ConfigError(
            f"[tool.fastapi-deploy] service-settings in {found}: cannot import {name!r} ({exc}); "
            "install the service into this environment or remove the setting"
        ) from None
    return module


#: How alike an unknown name must be to a known one to be called a typo (difflib ratio).
TYPO_CUTOFF = 0.8
#: The stack key behind a tuning-owned env name, for "did you mean" advice.
_KNOBS = {
    "CORS_ORIGINS": "app.cors_origins",
    "APP_ENV": "app.environment",
    "PORT": "app.port",
    "WEB_CONCURRENCY": "app.tuning.workers (or the target's cpu)",
    "DB_POOL_SIZE": "app.tuning.db_pool_size",
    "DB_MAX_OVERFLOW": "app.tuning.db_max_overflow",
    "DB_POOL_TIMEOUT": "app.tuning.db_pool_timeout_s",
    "MIGRATE_ON_START": "app.database.migrate",
}


def _example_reference(cfg: StackConfigType, name: str) -> str:
    from fastapi_deploy import registry

    slug = name.lower().replace("_", "-")
    return registry.get(cfg.target).secrets.example.format(env=cfg.environment, name=cfg.name, slug=slug)


def _where(cfg: StackConfigType, name: str, tuning_env: dict[str, str]) -> str:
    if name in cfg.env:
        return f"app.env.{name}"
    if name in cfg.secrets:
        return f"app.secrets.{name}"
    if name == "CORS_ORIGINS":
        return "app.cors_origins"
    if name == "APP_ENV":
        return "app.environment"
    if name in tuning_env:
        return f"the deployer's {name} (app.tuning, the target's size or app.database)"
    if name in contract.CREDENTIAL_ENV_NAMES or name in contract.REQUIRED_ENV:
        return f"app.secrets.{name}"
    return f"app.env.{name}"


def _extends(name: str, known: str) -> bool:
    """``name`` is ``known`` plus whole ``_``-separated words (REDIS_URL_2, READ_DATABASE_URL)."""
    return name.startswith(known + "_") or name.endswith("_" + known) or f"_{known}_" in name


def problems(cfg: StackConfigType, runtime: RuntimeTuning) -> list[str]:
    """One line per setting the service would refuse, naming the stack key and the fix; never a value."""
    from fastapi_deploy.tuning import container_environment

    env = container_environment(cfg, runtime)
    tuning_env = runtime.env()
    lines: list[str] = []
    model = service_model()
    known_names = model.KNOWN_ENV_NAMES
    for name, problem in model.environment_problems(env, cfg.secrets):
        where = _where(cfg, name, tuning_env)
        if problem.startswith("is required but not set") or problem.startswith("required when"):
            problem = (
                f"the service refuses to start without {name}; add a secret reference, e.g. "
                f"app.secrets.{name}: {_example_reference(cfg, name)}"
                if where.startswith("app.secrets.")
                else f"the service refuses to start without {name}; set it"
            )
        lines.append(f"{where}: {problem}")
    for section, names in (("env", cfg.env), ("secrets", cfg.secrets)):
        for name in sorted(names):
            if name in known_names:
                continue
            # A known name plus words of the user's (READ_DATABASE_URL, REDIS_URL_2, LOG_LEVEL_SQL) is a
            # variable of their own; a truncated or misspelt one (JWT_SECRET, LOGIN_RATE_LIMITS) is a typo.
            if any(_extends(name, known) for known in known_names):
                continue
            close = difflib.get_close_matches(name, sorted(known_names), n=1, cutoff=TYPO_CUTOFF)
            if not close:
                continue
            meant = close[0]
            fix = (
                f"{meant} is computed by the deployer: set {_KNOBS.get(meant, 'app.tuning')} instead"
                if meant in contract.TUNING_ENV_NAMES
                else f"rename the key to {meant}, or give your own variable a name unlike the service's"
            )
            lines.append(
                f"app.{section}.{name}: the service reads no setting {name}; did you mean {meant}? ({fix})"
            )
    return lines


def check(cfg: StackConfigType, runtime: RuntimeTuning) -> None:
    """Raise :class:`fastapi_deploy.config.ConfigError` listing every problem (nothing is registered yet)."""
    from fastapi_deploy.config import ConfigError

    found = problems(cfg, runtime)
    if found:
        raise ConfigError("; ".join(found))
