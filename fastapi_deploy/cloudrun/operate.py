"""`infra status | logs | rollback` for a Cloud Run service (google-cloud-run; see fastapi_deploy/operate.py).

- status: the service's Ready condition, where traffic goes (revision and percent), the latest created
  and latest ready revision, the scaling bounds, and the image digest of every revision serving traffic
  vs the stack's image.
- logs: Cloud Logging (``entries:list`` over REST with the caller's Application Default Credentials;
  google-cloud-logging is not a dependency), the ``cloud_run_revision`` entries of this service, with
  ``--since`` and ``--grep`` in the server-side filter.
- rollback: UpdateService moving 100 % of traffic to the previous ready revision (or the newest ready one
  running ``--to DIGEST``) after the registry confirms it still holds the image; no new revision is
  created. Waits (bounded) until the service reports the traffic there.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from fastapi_deploy.operate import (
    DRIFT_NOTE,
    LogQuery,
    OperateError,
    OpsContext,
    Refused,
    RollbackRequest,
    log_line,
    require_in_registry,
    rollback_detected,
    short,
)
from fastapi_deploy.ops.rollout import Observation, digest_of, wait_until_stable

_FRACTION = re.compile(r"(\.\d{6})\d+")


def _name(ctx: OpsContext) -> str:
    o = ctx.outputs
    return f"projects/{o['project']}/locations/{o['region']}/services/{o['service_name']}"


def _short(name: str) -> str:
    return name.rsplit("/", 1)[-1]


def _get_service(services: Any, name: str) -> Any:
    from google.api_core import exceptions as gexc

    try:
        return services.get_service(request={"name": name}, timeout=15.0)
    except gexc.NotFound as exc:
        raise OperateError(f"service {name} not found: {exc.message}") from exc


def _traffic(svc: Any) -> dict[str, int]:
    """revision short name -> percent of traffic it serves now (LATEST resolved to the latest ready)."""
    from google.cloud import run_v2

    latest = run_v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST
    out: dict[str, int] = {}
    for t in svc.traffic_statuses:
        rev = _short(svc.latest_ready_revision) if t.type_ == latest else _short(t.revision)
        if rev:
            out[rev] = out.get(rev, 0) + int(t.percent)
    return out


def _images(rev: Any) -> list[str]:
    return [c.image for c in rev.containers]


def _failed(rev: Any) -> list[str]:
    from google.cloud import run_v2

    return [
        f"{c.type_}: {c.message}"
        for c in rev.conditions
        if c.state == run_v2.Condition.State.CONDITION_FAILED
    ]


def _ready(rev: Any) -> bool:
    from google.cloud import run_v2

    ready = [c for c in rev.conditions if c.type_ == "Ready"]
    succeeded = run_v2.Condition.State.CONDITION_SUCCEEDED
    return not _failed(rev) and all(c.state == succeeded for c in ready)


def status(ctx: OpsContext) -> int:
    from google.cloud import run_v2

    services, revisions = ctx.clients.cloudrun()
    name = _name(ctx)
    svc = _get_service(services, name)
    cond = svc.terminal_condition
    ready_state = run_v2.Condition.State(cond.state).name
    ctx.out(
        f"Cloud Run service {ctx.outputs['service_name']} ({ctx.outputs['project']}/{ctx.outputs['region']})"
    )
    traffic = _traffic(svc)
    ctx.out(
        "traffic:         "
        + (
            ", ".join(f"{rev} {pct}%" for rev, pct in sorted(traffic.items(), key=lambda kv: -kv[1]))
            or "none"
        )
    )
    scaling = svc.template.scaling
    ctx.out(
        f"instances:       min {scaling.min_instance_count}, max {scaling.max_instance_count or 'default'} "
        "(running instance counts are not in the Cloud Run Admin API: Cloud Monitoring "
        "run.googleapis.com/container/instance_count)"
    )
    created, latest_ready = _short(svc.latest_created_revision), _short(svc.latest_ready_revision)
    line = f"last deployment: revision {created or '-'}, service Ready {ready_state}"
    failed = cond.state == run_v2.Condition.State.CONDITION_FAILED
    if created and created != latest_ready and not svc.reconciling:
        rev = revisions.get_revision(request={"name": svc.latest_created_revision}, timeout=15.0)
        why = _failed(rev)
        if why:
            line += f"; FAILED: {'; '.join(why)}"
            failed = True
    elif svc.reconciling:
        line += " (reconciling)"
    if cond.message:
        line += f" ({cond.message})"
    ctx.out(line)
    running: list[str] = []
    for rev_name, pct in traffic.items():
        if pct > 0:
            rev = revisions.get_revision(request={"name": f"{name}/revisions/{rev_name}"}, timeout=15.0)
            running += _images(rev)
    detected = rollback_detected(ctx, running, "the revision serving traffic")
    deployed_rev = str(ctx.outputs.get("revision") or "")
    if deployed_rev and traffic and traffic.get(deployed_rev, 0) < 100 and not detected:
        ctx.out(
            f"DRIFT: the deployed revision {deployed_rev} serves {traffic.get(deployed_rev, 0)}% of traffic"
        )
        detected = True
    return 1 if detected or failed else 0


# ------------------------------------------------------------------------------------------------ logs


def log_filter(ctx: OpsContext, since: datetime, grep: str | None) -> str:
    """The Cloud Logging query for this service's entries since ``since`` (containing ``grep``)."""
    stamp = since.astimezone(UTC).isoformat().replace("+00:00", "Z")
    parts = [
        'resource.type="cloud_run_revision"',
        f"resource.labels.service_name={json.dumps(str(ctx.outputs['service_name']))}",
        f"resource.labels.location={json.dumps(str(ctx.outputs['region']))}",
        f'timestamp>="{stamp}"',
    ]
    if grep:
        parts.append(json.dumps(grep))  # a bare quoted string: any field contains it
    return " AND ".join(parts)


def _message(entry: dict[str, Any]) -> str:
    if "textPayload" in entry:
        return str(entry["textPayload"])
    payload = entry.get("jsonPayload")
    if isinstance(payload, dict):
        msg = payload.get("message") or payload.get("msg")
        return str(msg) if msg is not None else json.dumps(payload, sort_keys=True)
    req = entry.get("httpRequest")
    if isinstance(req, dict):
        return (
            f"{req.get('requestMethod', '')} {req.get('requestUrl', '')} {req.get('status', '')} "
            f"{req.get('latency', '')}".strip()
        )
    return ""


def _when(stamp: str) -> datetime:
    return datetime.fromisoformat(_FRACTION.sub(r"\1", stamp.replace("Z", "+00:00")))


def _raise_http(resp: Any) -> None:
    from google.api_core import exceptions as gexc

    try:
        message = resp.json().get("error", {}).get("message", "")
    except ValueError:
        message = resp.text[:200]
    if resp.status_code in (401, 403):
        raise gexc.from_http_status(resp.status_code, f"Cloud Logging entries:list: {message}")
    raise OperateError(f"Cloud Logging entries:list answered HTTP {resp.status_code}: {message}")


def logs(ctx: OpsContext, query: LogQuery) -> int:
    session = ctx.clients.cloud_logging()
    url = f"{ctx.clients.logging_endpoint.rstrip('/')}/v2/entries:list"
    since = query.since
    seen: set[str] = set()
    polls = 0
    while True:
        body: dict[str, Any] = {
            "resourceNames": [f"projects/{ctx.outputs['project']}"],
            "filter": log_filter(ctx, since, query.grep),
            "orderBy": "timestamp asc",
            "pageSize": 1000,
        }
        newest = since
        while True:
            resp = session.post(url, json=body, timeout=30)
            if resp.status_code != 200:
                _raise_http(resp)
            page = resp.json()
            for entry in page.get("entries", []):
                key = str(entry.get("insertId") or (entry.get("timestamp"), _message(entry)))
                if key in seen:
                    continue
                seen.add(key)
                when = _when(str(entry.get("timestamp") or entry.get("receiveTimestamp")))
                newest = max(newest, when)
                ctx.out(log_line(when, _message(entry)))
            token = page.get("nextPageToken")
            if not token:
                break
            body["pageToken"] = token
        polls += 1
        if not query.follow or (query.max_polls is not None and polls >= query.max_polls):
            return 0
        since = newest
        ctx.sleep(query.interval_s)


# -------------------------------------------------------------------------------------------- rollback


class _TrafficPoller:
    """Stable once the service is reconciled, Ready, and the chosen revision serves 100 %."""

    def __init__(self, services: Any, name: str, revision: str, images: list[str]) -> None:
        self.services, self.name, self.revision, self.images = services, name, revision, images
        self._why = ""

    def poll(self) -> Observation:
        from google.cloud import run_v2

        svc = _get_service(self.services, self.name)
        pct = _traffic(svc).get(self.revision, 0)
        cond = svc.terminal_condition
        summary = f"Cloud Run {_short(self.name)}: {self.revision} serves {pct}%" + (
            ", reconciling" if svc.reconciling else ""
        )
        self._why = cond.message
        if cond.state == run_v2.Condition.State.CONDITION_FAILED:
            return Observation("failed", summary, reason=cond.message)
        if svc.reconciling or pct != 100:
            return Observation("progress", summary)
        return Observation("stable", summary, running_images=self.images)

    def explain(self) -> str:
        return self._why


def _list_revisions(revisions: Any, parent: str) -> list[Any]:
    revs = list(revisions.list_revisions(request={"parent": parent}, timeout=30.0))
    return sorted(revs, key=lambda r: (r.create_time, r.name), reverse=True)


def rollback(ctx: OpsContext, request: RollbackRequest) -> int:
    from google.cloud import run_v2

    services, revisions = ctx.clients.cloudrun()
    name = _name(ctx)
    svc = _get_service(services, name)
    traffic = _traffic(svc)
    current = max(traffic.items(), key=lambda kv: kv[1])[0] if traffic else _short(svc.latest_ready_revision)
    revs = _list_revisions(revisions, name)
    by_name = {_short(r.name): r for r in revs}
    target: Any = None
    if request.to_digest is None:
        cur = by_name.get(current)
        older = [r for r in revs if cur is None or (r.create_time, r.name) < (cur.create_time, cur.name)]
        target = next((r for r in older if _ready(r)), None)
        if target is None:
            raise OperateError(f"nothing to roll back to: no ready revision older than {current}")
    else:
        matching = [r for r in revs if any(digest_of(i) == request.to_digest for i in _images(r))]
        target = next((r for r in matching if _ready(r)), None)
        if target is None:
            why = "none of them is ready" if matching else f"checked {len(revs)} revision(s)"
            raise Refused(
                f"no revision of {ctx.outputs['service_name']} runs {request.to_digest} ({why}); deploy that "
                "image with `pulumi up` instead"
            )
        if _short(target.name) == current and traffic.get(current) == 100:
            raise Refused(f"revision {current}, running {request.to_digest}, already serves 100% of traffic")
    target_name = _short(target.name)
    images = _images(target)
    for image in images:
        require_in_registry(ctx, image, f"revision {target_name}")
    current_images = _images(by_name[current]) if current in by_name else []
    ctx.out(
        f"rolling back service {ctx.outputs['service_name']}: {current} "
        f"({short(digest_of(current_images[0]) if current_images else None)}) -> {target_name} "
        f"({short(digest_of(images[0]) if images else None)}), 100% of traffic"
    )
    updated = run_v2.Service(svc)
    updated.traffic = [
        run_v2.TrafficTarget(
            type_=run_v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION,
            revision=target_name,
            percent=100,
        )
    ]
    operation = services.update_service(request=run_v2.UpdateServiceRequest(service=updated))
    operation.result(timeout=request.timeout_s)
    obs = wait_until_stable(
        _TrafficPoller(services, name, target_name, images),
        timeout_s=request.timeout_s,
        interval_s=request.interval_s,
        progress=ctx.out,
        sleep=ctx.sleep,
    )
    if obs.state != "stable":
        ctx.out(f"FAILED: traffic did not move to {target_name}: {obs.summary}")
        for line in (obs.reason or "").splitlines():
            ctx.out(f"  {line}")
        return 1
    ctx.out(f"rolled back: {target_name} serves 100% of traffic")
    ctx.out(
        DRIFT_NOTE
        + " On Cloud Run the service's traffic block pins this revision until a deploy sets it again."
    )
    return 0
