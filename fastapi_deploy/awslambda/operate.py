"""`infra status | logs | rollback` for a Lambda function behind an alias (boto3; fastapi_deploy/operate.py).

- status: the alias's version, its state and last update status, its resolved image digest vs the stack's
  image, provisioned concurrency (requested/allocated) when configured.
- logs: CloudWatch Logs of the stack output ``log_group`` (FilterLogEvents, ``--grep`` as filterPattern).
- rollback: UpdateAlias to the previous published version (or the newest version whose image has
  ``--to DIGEST``), after ECR confirms it still holds the image, then wait (bounded) with verify's
  :class:`~fastapi_deploy.ops.rollout.LambdaRollout`.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from fastapi_deploy.operate import (
    DRIFT_NOTE,
    LogQuery,
    OperateError,
    OpsContext,
    Refused,
    RollbackRequest,
    by_digest,
    require_in_registry,
    rollback_detected,
    short,
)
from fastapi_deploy.ops import cloudwatch
from fastapi_deploy.ops.rollout import LambdaRollout, digest_of, wait_until_stable


def _client(ctx: OpsContext) -> Any:
    return ctx.clients.aws_client("lambda", ctx.outputs["region"])


def _alias(client: Any, function: str, alias: str) -> dict[str, Any]:
    try:
        return dict(client.get_alias(FunctionName=function, Name=alias))
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            raise OperateError(f"alias {alias} of function {function} not found") from exc
        raise


def _image(fn: dict[str, Any]) -> str:
    code = fn.get("Code", {})
    return by_digest(str(code.get("ResolvedImageUri") or code.get("ImageUri") or ""))


def status(ctx: OpsContext) -> int:
    client = _client(ctx)
    function, alias = str(ctx.outputs["function_name"]), str(ctx.outputs["alias_name"])
    al = _alias(client, function, alias)
    version = str(al["FunctionVersion"])
    fn = client.get_function(FunctionName=function, Qualifier=version)
    cfg = fn["Configuration"]
    ctx.out(f"Lambda function {function}, alias {alias} -> version {version} ({ctx.outputs['region']})")
    weights = (al.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
    if weights:
        ctx.out(f"alias routing:   also {weights} (weighted shift in progress)")
    state, update = cfg.get("State", "Active"), cfg.get("LastUpdateStatus", "Successful")
    reason = cfg.get("StateReason") or cfg.get("LastUpdateStatusReason")
    ctx.out(
        f"last deployment: version {version} State {state}, LastUpdateStatus {update}"
        + (f" ({reason})" if reason else "")
        + f", modified {cfg.get('LastModified', '?')}"
    )
    try:
        pc = client.get_provisioned_concurrency_config(FunctionName=function, Qualifier=alias)
        ctx.out(
            f"concurrency:     provisioned requested {pc.get('RequestedProvisionedConcurrentExecutions')}, "
            f"allocated {pc.get('AllocatedProvisionedConcurrentExecutions')}, {pc.get('Status')}"
        )
    except ClientError:
        ctx.out("concurrency:     on demand (no provisioned concurrency on the alias)")
    image = _image(fn)
    detected = rollback_detected(ctx, [image] if image else [], f"alias {alias} (version {version})")
    failed = state == "Failed" or update == "Failed"
    return 1 if detected or failed else 0


def logs(ctx: OpsContext, query: LogQuery) -> int:
    client = ctx.clients.aws_client("logs", ctx.outputs["region"])
    return cloudwatch.tail(client, str(ctx.outputs["log_group"]), query, ctx.out, ctx.sleep)


def _versions(client: Any, function: str) -> list[int]:
    """Published version numbers, newest first ($LATEST is not a release)."""
    versions: list[int] = []
    marker: str | None = None
    while True:
        kwargs: dict[str, Any] = {"FunctionName": function}
        if marker:
            kwargs["Marker"] = marker
        page = client.list_versions_by_function(**kwargs)
        versions += [int(v["Version"]) for v in page.get("Versions", []) if str(v["Version"]).isdigit()]
        marker = page.get("NextMarker")
        if not marker:
            break
    return sorted(set(versions), reverse=True)


def rollback(ctx: OpsContext, request: RollbackRequest) -> int:
    client = _client(ctx)
    function, alias = str(ctx.outputs["function_name"]), str(ctx.outputs["alias_name"])
    current = str(_alias(client, function, alias)["FunctionVersion"])
    if not current.isdigit():
        raise Refused(f"alias {alias} points at {current}, not a published version; nothing to roll back")
    versions = _versions(client, function)
    target: str | None = None
    image = ""
    if request.to_digest is None:
        earlier = [v for v in versions if v < int(current)]
        if not earlier:
            raise OperateError(f"nothing to roll back to: version {current} is the oldest published version")
        target = str(earlier[0])
        image = _image(client.get_function(FunctionName=function, Qualifier=target))
    else:
        for v in versions:
            candidate = _image(client.get_function(FunctionName=function, Qualifier=str(v)))
            if digest_of(candidate) == request.to_digest:
                target, image = str(v), candidate
                break
        if target is None:
            raise Refused(
                f"no published version of {function} runs {request.to_digest} (checked {len(versions)} "
                "version(s)); deploy that image with `pulumi up` instead"
            )
        if target == current:
            raise Refused(
                f"alias {alias} already points at version {current}, which runs {request.to_digest}"
            )
    if image:
        require_in_registry(ctx, image, f"version {target} of {function}", ctx.outputs["region"])
    current_image = _image(client.get_function(FunctionName=function, Qualifier=current))
    ctx.out(
        f"rolling back alias {alias} of {function}: version {current} ({short(digest_of(current_image))}) -> "
        f"version {target} ({short(digest_of(image))})"
    )
    client.update_alias(FunctionName=function, Name=alias, FunctionVersion=target, RoutingConfig={})
    obs = wait_until_stable(
        LambdaRollout(client, function, alias, image or None),
        timeout_s=request.timeout_s,
        interval_s=request.interval_s,
        progress=ctx.out,
        sleep=ctx.sleep,
    )
    if obs.state != "stable":
        ctx.out(f"FAILED: alias {alias} on version {target} is not stable: {obs.summary}")
        for line in (obs.reason or "").splitlines():
            ctx.out(f"  {line}")
        return 1
    ctx.out(f"rolled back: alias {alias} points at version {target}")
    ctx.out(DRIFT_NOTE)
    return 0
