"""``app.database.migrate: release``: the deploy runs ``python -m app.migrate`` once, with the NEW image,
secrets and network, before the new release takes traffic; a failed migration fails ``pulumi up``.

How is each target's own, in its package:

- ECS (fastapi_deploy/ecs/migrate.py): a dynamic resource whose create/update call ``ecs.run_task`` with
  the new task definition and the app container's command replaced by :data:`MIGRATE_COMMAND`, wait for
  the task to stop (bounded) and fail unless the container exited 0; re-run when the task definition
  changes.
- Cloud Run (fastapi_deploy/cloudrun/migrate.py): a ``cloudrunv2.Job`` mirroring the service plus a dynamic
  resource that executes it and polls the execution (bounded); re-run when the job's generation changes.
- Lambda (fastapi_deploy/awslambda/migrate.py): an ``aws.lambda_.Invocation`` of the NEW published version
  with the migrate event; the alias moves only once its result says the migration succeeded.
- VPS: the release-gate container runs the migration first (fastapi_deploy/vps/component.py gate_script).

This module holds what they share: the command, the bounds, the error and the input checks.

Dynamic providers are pickled (dill) into the Pulumi state and run in the engine's provider host: they
capture no client and no config; boto3 / google-cloud-run are imported inside the methods, and region,
project and timeouts are explicit inputs. A provider is pickled by reference to its module: see
:func:`__getattr__` for the ones stacks deployed before the move stored under this module's name.
"""

from __future__ import annotations

import importlib
from typing import Any

from pulumi.dynamic import CheckFailure

#: The one-off command (the image's own module; same as a hand-run migration).
MIGRATE_COMMAND = ["python", "-m", "app.migrate"]
#: Default bound on the whole release step (start-up + migration), seconds.
DEFAULT_TIMEOUT_S = 900
#: The longest a release migration may hold `pulumi up` (an hour), whatever a caller passes.
MAX_TIMEOUT_S = 3600
#: Start-up budget inside the bound (Fargate provisioning + image pull; Cloud Run job start): the app's own
#: MIGRATE_TIMEOUT is the bound minus this, so app.migrate gives up with a readable error first.
STARTUP_MARGIN_S = 120
#: Seconds between status polls.
DEFAULT_POLL_S = 6.0


class ReleaseMigrationError(Exception):
    """The release migration failed or did not finish in time; the message says where to look."""


def app_migrate_timeout_s(timeout_s: float) -> int:
    """MIGRATE_TIMEOUT for the one-off: the step's bound minus the start-up margin (at least 10 s)."""
    return max(10, int(timeout_s) - STARTUP_MARGIN_S)


def common_checks(news: dict[str, Any], required: tuple[str, ...]) -> list[CheckFailure]:
    """The required inputs, the bound and the poll interval of a release migration's dynamic provider."""
    failures = [CheckFailure(k, f"{k} is required") for k in required if news.get(k) in (None, "", [])]
    timeout, poll = news.get("timeout_s"), news.get("poll_s")
    if not isinstance(timeout, int | float) or not 0 < timeout <= MAX_TIMEOUT_S:
        failures.append(
            CheckFailure(
                "timeout_s", f"timeout_s must be a number of seconds in (0, {MAX_TIMEOUT_S}], got {timeout!r}"
            )
        )
    if not isinstance(poll, int | float) or poll < 0:
        failures.append(CheckFailure("poll_s", f"poll_s must be a number of seconds >= 0, got {poll!r}"))
    return failures


#: Providers that lived in this module when stacks were deployed: their state's ``__provider`` is a pickle
#: naming ``fastapi_deploy.release_migrate.<class>``, and the engine unpickles that stored value for a
#: Delete (`pulumi destroy`, a removed resource) or a Read (`pulumi refresh`) - for as long as the
#: resource's last update predates the move, since an unchanged resource keeps its stored outputs. The
#: names must keep resolving, to the same class at its new home. Frozen: new providers are never added.
_MOVED = {
    "EcsMigrationProvider": "fastapi_deploy.ecs.migrate",
    "CloudRunMigrationProvider": "fastapi_deploy.cloudrun.migrate",
}


def __getattr__(name: str) -> Any:
    """The moved providers, for pickles stored in deployed stacks (see ``_MOVED``)."""
    module = _MOVED.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
