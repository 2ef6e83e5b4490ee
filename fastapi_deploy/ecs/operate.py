"""`infra status | logs | rollback` for an ECS Fargate service (boto3; see fastapi_deploy/operate.py).

- status: the service's PRIMARY deployment (task definition, rollout state, desired/running/pending), the
  image its task definition names and the digests the running tasks actually pulled, vs the stack's image.
- logs: CloudWatch Logs of the stack output ``log_group`` (FilterLogEvents, ``--grep`` as filterPattern).
- rollback: UpdateService to the previous ACTIVE revision of the task definition family (or the newest
  ACTIVE revision whose image has ``--to DIGEST``), after ECR confirms it still holds the image, then wait
  (bounded) with verify's :class:`~fastapi_deploy.ops.rollout.EcsRollout`.
"""

from __future__ import annotations

from typing import Any

from fastapi_deploy.operate import (
    DRIFT_NOTE,
    LogQuery,
    OperateError,
    OpsContext,
    Refused,
    RollbackRequest,
    announce_rollback,
    compare_images,
    require_in_registry,
    short,
)
from fastapi_deploy.ops import cloudwatch
from fastapi_deploy.ops.rollout import EcsRollout, digest_of, wait_until_stable


def _clients(ctx: OpsContext) -> tuple[Any, Any]:
    region = ctx.outputs["region"]
    return ctx.clients.aws_client("ecs", region), ctx.clients.aws_client("elbv2", region)


def _service(ecs: Any, cluster: str, service: str) -> dict[str, Any]:
    resp = ecs.describe_services(cluster=cluster, services=[service])
    if resp.get("failures") or not resp.get("services"):
        why = "; ".join(str(f.get("reason")) for f in resp.get("failures", [])) or "not returned"
        raise OperateError(f"service {service} not found in cluster {cluster} ({why})")
    return dict(resp["services"][0])


def _task_definition(ecs: Any, ref: str) -> dict[str, Any]:
    return dict(ecs.describe_task_definition(taskDefinition=ref)["taskDefinition"])


def _images(td: dict[str, Any]) -> list[str]:
    return [str(c.get("image", "")) for c in td.get("containerDefinitions", [])]


def _label(td: dict[str, Any]) -> str:
    return f"{td.get('family')}:{td.get('revision')}"


def status(ctx: OpsContext) -> int:
    ecs, elbv2 = _clients(ctx)
    cluster, name = ctx.outputs["cluster_name"], ctx.outputs["service_name"]
    svc = _service(ecs, cluster, name)
    deployments = svc.get("deployments", [])
    primary = next((d for d in deployments if d.get("status") == "PRIMARY"), None)
    ctx.out(f"ECS service {name} in cluster {cluster} ({ctx.outputs['region']}): {svc.get('status')}")
    ctx.out(
        f"tasks:           desired {svc.get('desiredCount', 0)}, running {svc.get('runningCount', 0)}, "
        f"pending {svc.get('pendingCount', 0)}"
    )
    failed = False
    td_images: list[str] = []
    td_label = "?"
    if primary is None:
        ctx.out("last deployment: none (no PRIMARY deployment)")
        failed = True
    else:
        td = _task_definition(ecs, str(primary.get("taskDefinition")))
        td_images, td_label = _images(td), _label(td)
        rollout = primary.get("rolloutState") or "n/a"
        reason = primary.get("rolloutStateReason")
        ctx.out(
            f"last deployment: {primary.get('id')} {rollout}"
            + (f" ({reason})" if reason else "")
            + f", task definition {_label(td)}, updated {primary.get('updatedAt', '?')}"
        )
        if len(deployments) > 1:
            ctx.out(f"                 {len(deployments) - 1} older deployment(s) still draining")
        failed = rollout == "FAILED"
    poller = EcsRollout(ecs, elbv2, cluster, name, ctx.outputs.get("target_group_arn"), ctx.deployed_image)
    running = poller.running_images() or td_images
    differs = compare_images(ctx, running)
    primary_is_deployed = not td_images or ctx.deployed_digest in {digest_of(i) for i in td_images}
    detected = False
    if not primary_is_deployed:
        # The circuit breaker's rollback (or `infra rollback`) makes an OLDER task definition PRIMARY.
        announce_rollback(ctx, td_images, f"the PRIMARY deployment ({td_label})")
        detected = True
    elif differs and len(deployments) > 1:
        ctx.out("rollout in progress: tasks of the previous deployment are still running")
    elif differs:
        announce_rollback(ctx, running, "a running task")
        detected = True
    if int(svc.get("desiredCount", 0)) and not int(svc.get("runningCount", 0)):
        ctx.out("NOT RUNNING: no task is running although tasks are desired")
        failed = True
    return 1 if detected or failed else 0


def logs(ctx: OpsContext, query: LogQuery) -> int:
    client = ctx.clients.aws_client("logs", ctx.outputs["region"])
    return cloudwatch.tail(client, str(ctx.outputs["log_group"]), query, ctx.out, ctx.sleep)


def _revisions(ecs: Any, family: str) -> list[str]:
    """ACTIVE task definition ARNs of ``family``, newest revision first."""
    arns: list[str] = []
    token: str | None = None
    while True:
        kwargs: dict[str, Any] = {"familyPrefix": family, "status": "ACTIVE"}
        if token:
            kwargs["nextToken"] = token
        page = ecs.list_task_definitions(**kwargs)
        arns += [
            a for a in page.get("taskDefinitionArns", []) if a.rsplit("/", 1)[-1].split(":")[0] == family
        ]
        token = page.get("nextToken")
        if not token:
            break
    return sorted(arns, key=lambda a: int(a.rsplit(":", 1)[-1]), reverse=True)


def _choose(ecs: Any, current: dict[str, Any], to_digest: str | None) -> dict[str, Any]:
    family, revision = str(current["family"]), int(current["revision"])
    candidates = _revisions(ecs, family)
    if to_digest is None:
        for arn in candidates:
            if int(arn.rsplit(":", 1)[-1]) < revision:
                return _task_definition(ecs, arn)
        raise OperateError(
            f"nothing to roll back to: {family}:{revision} is the oldest ACTIVE revision of {family} "
            "(earlier revisions were deregistered)"
        )
    for arn in candidates:
        td = _task_definition(ecs, arn)
        if any(digest_of(i) == to_digest for i in _images(td)):
            if int(td["revision"]) == revision:
                raise Refused(f"the service already runs {to_digest} ({_label(td)})")
            return td
    raise Refused(
        f"no ACTIVE revision of task definition family {family} runs {to_digest} (checked "
        f"{len(candidates)} revision(s)); deploy that image with `pulumi up` instead"
    )


def rollback(ctx: OpsContext, request: RollbackRequest) -> int:
    ecs, elbv2 = _clients(ctx)
    cluster, name = ctx.outputs["cluster_name"], ctx.outputs["service_name"]
    svc = _service(ecs, cluster, name)
    primary = next((d for d in svc.get("deployments", []) if d.get("status") == "PRIMARY"), None)
    current = _task_definition(ecs, str((primary or svc).get("taskDefinition")))
    target = _choose(ecs, current, request.to_digest)
    images = _images(target)
    app_image = next((i for i in images if digest_of(i)), images[0] if images else "")
    for image in images:
        if digest_of(image):
            require_in_registry(ctx, image, f"task definition {_label(target)}", ctx.outputs["region"])
    ctx.out(
        f"rolling back service {name}: {_label(current)} ({short(_first_digest(current))}) -> "
        f"{_label(target)} ({short(digest_of(app_image))})"
    )
    ecs.update_service(cluster=cluster, service=name, taskDefinition=str(target["taskDefinitionArn"]))
    poller = EcsRollout(ecs, elbv2, cluster, name, ctx.outputs.get("target_group_arn"), app_image)
    obs = wait_until_stable(
        poller,
        timeout_s=request.timeout_s,
        interval_s=request.interval_s,
        progress=ctx.out,
        sleep=ctx.sleep,
    )
    if obs.state != "stable":
        ctx.out(f"FAILED: the rollback to {_label(target)} is not stable: {obs.summary}")
        for line in (obs.reason or "").splitlines():
            ctx.out(f"  {line}")
        return 1
    ctx.out(f"rolled back: service {name} runs {_label(target)} and is stable")
    ctx.out(DRIFT_NOTE)
    return 0


def _first_digest(td: dict[str, Any]) -> str | None:
    return next((d for d in (digest_of(i) for i in _images(td)) if d), None)
