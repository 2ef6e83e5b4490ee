"""The deployer refuses what the service would refuse at start, before any resource is registered.

The container's final environment — the tuning's env, ``app.env``, ``app.cors_origins`` and the names in
``app.secrets`` — goes through the service's own settings model (:func:`app.settings.environment_problems`):
every required setting must be present as a value or a secret reference, literal values pass the
service's validators, and a name the service does not read but that looks like one it does gets a
"did you mean". Without this, a typo in a stack file shows up only after ``pulumi up`` as a failed
rollout (the app exits at start, ECS's circuit breaker rolls back).
"""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING

from app import contract
from app.settings import KNOWN_ENV_NAMES, environment_problems

if TYPE_CHECKING:
    from infra.config import StackConfigType
    from infra.tuning import RuntimeTuning

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
    slug = name.lower().replace("_", "-")
    if cfg.target == "cloudrun":
        return f"gcp:{cfg.name}-{slug}"
    return f"ssm:/{cfg.environment}/{cfg.name}/{slug}"


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
    from infra.tuning import container_environment

    env = container_environment(cfg, runtime)
    tuning_env = runtime.env()
    lines: list[str] = []
    for name, problem in environment_problems(env, cfg.secrets):
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
            if name in KNOWN_ENV_NAMES:
                continue
            # A known name plus words of the user's (READ_DATABASE_URL, REDIS_URL_2, LOG_LEVEL_SQL) is a
            # variable of their own; a truncated or misspelt one (JWT_SECRET, LOGIN_RATE_LIMITS) is a typo.
            if any(_extends(name, known) for known in KNOWN_ENV_NAMES):
                continue
            close = difflib.get_close_matches(name, sorted(KNOWN_ENV_NAMES), n=1, cutoff=TYPO_CUTOFF)
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
    """Raise :class:`infra.config.ConfigError` listing every problem (nothing is registered yet)."""
    from infra.config import ConfigError

    found = problems(cfg, runtime)
    if found:
        raise ConfigError("; ".join(found))
