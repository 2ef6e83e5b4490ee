"""The lambda target's platform rules for the tuning (fastapi_deploy/tuning.py): one request per process."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi_deploy.tuning import (
    ALB_IDLE_TIMEOUT_S,
    KEEPALIVE_MARGIN_S,
    RuntimeTuning,
    TuningError,
    TuningInput,
)

if TYPE_CHECKING:
    from fastapi_deploy.awslambda.config import LambdaConfig

# Lambda gives one full vCPU at 1769 MB.
LAMBDA_MB_PER_VCPU = 1769
#: A new version takes the alias at once: no old and new side by side.
DEPLOY_SURGE = 1.0


def input_for(cfg: Any, keys: dict[str, str], extra: dict[str, Any]) -> TuningInput:
    c: LambdaConfig = cfg
    lam = c.lambda_
    keys.update(max_replicas="app.lambda.reserved_concurrency", size="app.lambda.memory_mb")
    if lam.reserved_concurrency is None:
        raise TuningError(
            "app.lambda.reserved_concurrency: required — without it Lambda scales to the account limit "
            "(1000 concurrent executions = 1000 DB connections); set it within the database budget "
            f"({c.database.budget})"
        )
    extra["request_timeout_s"] = c.function_timeout_s
    return TuningInput(
        "lambda",
        lam.memory_mb / LAMBDA_MB_PER_VCPU,
        lam.memory_mb,
        lam.reserved_concurrency,
        keys=keys,
        **extra,
    )


def workers(inp: TuningInput) -> int:
    if inp.workers not in (None, 1):
        raise TuningError(
            f"{inp.keys.get('workers', 'app.tuning.workers')}: Lambda runs one request per process; "
            "remove it (must be 1)"
        )
    return 1


def pool(inp: TuningInput) -> tuple[int, int]:
    """One request at a time per execution environment: one connection, no pool kept while frozen."""
    k = inp.keys
    if inp.max_replicas * 1 > inp.db_budget:
        raise TuningError(
            f"{k.get('max_replicas', 'app.lambda.reserved_concurrency')}={inp.max_replicas} concurrent "
            f"executions x 1 connection exceeds the database budget of {inp.db_budget} "
            f"({k.get('budget', 'app.database.max_connections - app.database.reserved_connections')}); "
            "lower the concurrency, raise app.database.max_connections, or put RDS Proxy in front"
        )
    return 1, 0


def platform(inp: TuningInput, common: dict[str, Any]) -> RuntimeTuning:
    rt = inp.request_timeout_s
    return RuntimeTuning(
        **{**common, "timeout_s": rt},
        keepalive_s=ALB_IDLE_TIMEOUT_S + KEEPALIVE_MARGIN_S,  # unused by Mangum; keeps env complete
        graceful_timeout_s=1,
        pool_class="null",
        stop_timeout_s=2,
        lb_idle_timeout_s=None,
        deregistration_delay_s=None,
        health_check_grace_s=None,
        container_health=None,
        lb_health=None,
        container_concurrency=1,
        lambda_timeout_s=rt,
    )
