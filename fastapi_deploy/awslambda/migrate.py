"""The Lambda release migration (``app.database.migrate: release``; fastapi_deploy/release_migrate.py):
:func:`lambda_release_migration` is an ``aws.lambda_.Invocation`` of the NEW published version with
:data:`LAMBDA_MIGRATE_EVENT` (app/lambda_handler.py) and the version the alias may move to, known only
once the invocation's result says the migration succeeded.
"""

from __future__ import annotations

import json
from typing import Any

import pulumi

from fastapi_deploy.release_migrate import ReleaseMigrationError

#: The Lambda event app/lambda_handler.py answers with a migration (and only this exact shape).
LAMBDA_MIGRATE_EVENT = {"fastapi_deploy": "migrate"}


def require_lambda_migration_ok(values: list[Any]) -> str:
    """The version the alias may move to, once the invocation's result says the migration succeeded."""
    result, version = values
    try:
        parsed = json.loads(result) if isinstance(result, str) else result
    except ValueError:
        parsed = None
    if (
        not isinstance(parsed, dict)
        or parsed.get("fastapi_deploy") != "migrate"
        or parsed.get("ok") is not True
    ):
        shown = result if isinstance(result, str) else json.dumps(result, default=str)
        raise ReleaseMigrationError(
            f"release migration failed on Lambda version {version}: the migrate event returned "
            f"{shown[:500]}; "
            "the alias was NOT moved (see the function's log group for the `app.migrate` line)"
        )
    return str(version)


def lambda_release_migration(
    name: str,
    *,
    function_name: pulumi.Input[str],
    version: pulumi.Input[str],
    image: pulumi.Input[str],
    opts: pulumi.ResourceOptions | None = None,
) -> tuple[Any, pulumi.Output[str]]:
    """Invoke the NEW published version with the migrate event; return (invocation, checked version).

    Use the checked version as the alias's ``function_version`` (and ``depends_on`` the invocation): the
    alias can only move once the result said ``ok``. A migration that fails makes the handler raise, the
    invocation's create fails and nothing is recorded, so the next ``pulumi up`` retries it. A new version
    (new image or env) replaces the invocation (``triggers``), so every release migrates once.
    """
    import pulumi_aws as aws

    invocation = aws.lambda_.Invocation(
        f"{name}-migrate",
        function_name=function_name,
        qualifier=version,
        input=json.dumps(LAMBDA_MIGRATE_EVENT),
        triggers={"version": version, "image": image},
        opts=opts,
    )
    checked = pulumi.Output.all(invocation.result, version).apply(require_lambda_migration_ok)
    return invocation, checked
