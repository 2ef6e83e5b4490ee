"""Post-deploy: wait (bounded) until the platform itself says the new version is stable.

One poller per platform turns the platform's API answers into an `Observation`:
progress (keep waiting), stable (with the image actually running) or failed (with the platform's own
reason: ECS stoppedReason/service events, Cloud Run condition messages, Lambda StateReason).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from fastapi_deploy.ops import vps as vps_ops

State = Literal["progress", "stable", "failed"]
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def digest_of(image: str | None) -> str | None:
    """The last sha256 digest in an image reference (ResolvedImageUri, repo@digest, bare digest)."""
    if not image:
        return None
    found = _DIGEST.findall(image)
    return found[-1] if found else None


@dataclass
class Observation:
    """What the platform reports at one poll."""

    state: State
    summary: str
    reason: str | None = None
    running_images: list[str] = field(default_factory=list)
    #: What the platform serves: the PRIMARY task definition ARN, the alias's version, the latest ready
    #: revision (set by the pollers whenever they know it; the release gate names it in its errors).
    release: str | None = None


class Poller(Protocol):
    """A platform's view of one rollout."""

    def poll(self) -> Observation: ...

    def explain(self) -> str:
        """The platform's reasons why the rollout is not stable (called on timeout)."""
        ...


def wait_until_stable(
    poller: Poller,
    *,
    timeout_s: float,
    interval_s: float,
    progress: Callable[[str], None],
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    heartbeat_s: float = 30.0,
) -> Observation:
    """Poll until stable/failed or `timeout_s`; a progress line whenever the summary changes, and at
    least every `heartbeat_s` while it does not (so a 10-minute wait never looks hung).

    Bounded in time by construction: the deadline is checked before every sleep, and the sleep never
    overshoots it, so `--timeout 600` returns within ~600 s plus one API call.
    """
    start = clock()
    deadline = start + timeout_s
    last = ""
    last_print = start
    while True:
        obs = poller.poll()
        now = clock()
        elapsed = now - start
        if obs.summary != last or obs.state != "progress" or now - last_print >= heartbeat_s:
            progress(f"[{elapsed:5.0f}s] {obs.summary}")
            last, last_print = obs.summary, now
        if obs.state != "progress":
            return obs
        remaining = deadline - clock()
        if remaining <= 0:
            why = poller.explain()
            return Observation(
                "failed",
                f"not stable after {timeout_s:.0f} s: {obs.summary}",
                reason=why or obs.reason,
                running_images=obs.running_images,
                release=obs.release,
            )
        sleep(min(interval_s, remaining))


def _err(exc: ClientError) -> str:
    e = exc.response.get("Error", {})
    return f"{e.get('Code', '')}: {e.get('Message', '')}"


# ------------------------------------------------------------------------------------------------- ECS


class EcsRollout:
    """ECS service: one PRIMARY deployment COMPLETED, running == desired, every target healthy."""

    def __init__(
        self,
        ecs: Any,
        elbv2: Any,
        cluster: str,
        service: str,
        target_group_arn: str | None,
        expected_image: str | None,
        *,
        expected_task_definition: str | None = None,
    ) -> None:
        self.ecs = ecs
        self.elbv2 = elbv2
        self.cluster = cluster
        self.service = service
        self.target_group_arn = target_group_arn
        self.expected_digest = digest_of(expected_image)
        #: The release gate's expectation: the task definition ARN this deploy registered.
        self.expected_task_definition = expected_task_definition
        self._task_def_images: dict[str, list[str]] = {}
        self._primary_id: str | None = None

    def poll(self) -> Observation:
        try:
            resp = self.ecs.describe_services(cluster=self.cluster, services=[self.service])
        except ClientError as exc:
            return Observation("failed", f"cannot describe service {self.service}", reason=_err(exc))
        if resp.get("failures") or not resp.get("services"):
            why = "; ".join(f"{f.get('arn')}: {f.get('reason')}" for f in resp.get("failures", []))
            return Observation("failed", f"service {self.service} not found in {self.cluster}", reason=why)
        svc = resp["services"][0]
        if svc.get("status") != "ACTIVE":
            return Observation(
                "failed", f"service {self.service} is {svc.get('status')}", reason=self.explain()
            )
        deployments = svc.get("deployments", [])
        primary = next((d for d in deployments if d.get("status") == "PRIMARY"), None)
        if primary is None:
            return Observation("progress", "no PRIMARY deployment yet")
        self._primary_id = primary.get("id")
        rollout = primary.get("rolloutState")
        running, desired = int(primary.get("runningCount", 0)), int(primary.get("desiredCount", 0))
        summary = (
            f"ECS {self.service}: {len(deployments)} deployment(s), primary {rollout or 'n/a'}, "
            f"running {running}/{desired}, failed tasks {primary.get('failedTasks', 0)}"
        )
        primary_td = primary.get("taskDefinition", "")
        if rollout == "FAILED":
            reason = primary.get("rolloutStateReason", "")
            return Observation(
                "failed", summary, reason=f"{reason}\n{self.explain()}".strip(), release=primary_td
            )
        if self.expected_task_definition and primary_td != self.expected_task_definition:
            # A circuit-breaker (or alarm) rollback makes the previous task definition PRIMARY again; the
            # failed deployment lingers as ACTIVE with rolloutState FAILED and ECS's reason, until drained.
            failed = [
                f"deployment {d.get('id')} of {d.get('taskDefinition')}: rolloutState {d.get('rolloutState')}"
                + (f": {d['rolloutStateReason']}" if d.get("rolloutStateReason") else "")
                for d in deployments
                if d.get("status") != "PRIMARY" and d.get("taskDefinition") == self.expected_task_definition
            ]
            return Observation(
                "failed",
                summary,
                reason="\n".join([*failed, self.explain()]).strip(),
                running_images=self.running_images(),
                release=primary_td,
            )
        mismatch = self._primary_image_mismatch(primary_td)
        if mismatch:
            # The circuit breaker's rollback creates a new PRIMARY deployment of the OLD task definition
            # that completes normally: without this check a failed release would verify as "stable".
            return Observation(
                "failed",
                summary,
                reason=f"{mismatch}\n{self.explain()}".strip(),
                running_images=self.running_images(),
                release=primary_td,
            )
        if desired == 0:
            return Observation(
                "failed", summary, reason="desired count is 0: nothing will serve traffic", release=primary_td
            )
        if len(deployments) > 1 or rollout not in (None, "COMPLETED") or running != desired:
            return Observation("progress", summary, release=primary_td)
        if self.target_group_arn:
            counts, line = self._targets()
            summary = f"{summary}; targets {line}"
            not_healthy = sum(n for st, n in counts.items() if st != "healthy")
            if counts.get("healthy", 0) < desired or not_healthy:
                return Observation("progress", summary, release=primary_td)
        return Observation("stable", summary, running_images=self.running_images(), release=primary_td)

    def _primary_image_mismatch(self, task_def_arn: str) -> str | None:
        if not self.expected_digest or not task_def_arn:
            return None
        if task_def_arn not in self._task_def_images:
            try:
                td = self.ecs.describe_task_definition(taskDefinition=task_def_arn)["taskDefinition"]
            except ClientError:
                return None
            self._task_def_images[task_def_arn] = [
                c.get("image", "") for c in td.get("containerDefinitions", [])
            ]
        images = self._task_def_images[task_def_arn]
        if any(digest_of(i) == self.expected_digest for i in images):
            return None
        return (
            f"the PRIMARY deployment runs {task_def_arn} with {images}, not the deployed image "
            f"{self.expected_digest}: the deployment circuit breaker rolled back (or another deploy won)"
        )

    def _targets(self) -> tuple[dict[str, int], str]:
        """({state: count}, 'state=n,...'); draining targets are the old tasks leaving and are ignored."""
        try:
            descs = self.elbv2.describe_target_health(TargetGroupArn=self.target_group_arn)[
                "TargetHealthDescriptions"
            ]
        except ClientError as exc:
            return {"unknown": 1}, f"unknown ({_err(exc)})"
        counts: dict[str, int] = {}
        for d in descs:
            st = d["TargetHealth"].get("State", "unknown")
            if st != "draining":
                counts[st] = counts.get(st, 0) + 1
        line = ",".join(f"{k}={v}" for k, v in sorted(counts.items())) or "none registered"
        return counts, line

    def target_reasons(self) -> list[str]:
        if not self.target_group_arn:
            return []
        try:
            descs = self.elbv2.describe_target_health(TargetGroupArn=self.target_group_arn)[
                "TargetHealthDescriptions"
            ]
        except ClientError as exc:
            return [f"target health unavailable: {_err(exc)}"]
        out = []
        for d in descs:
            th = d["TargetHealth"]
            if th.get("State") not in ("healthy", "draining"):
                target = d["Target"]
                out.append(
                    f"target {target.get('Id')}:{target.get('Port')} {th.get('State')}: "
                    f"{th.get('Reason', '')} {th.get('Description', '')}".rstrip()
                )
        return out

    def _tasks(self, desired_status: str, limit: int = 10) -> list[dict[str, Any]]:
        arns = self.ecs.list_tasks(
            cluster=self.cluster, serviceName=self.service, desiredStatus=desired_status, maxResults=limit
        ).get("taskArns", [])
        if not arns:
            return []
        return list(self.ecs.describe_tasks(cluster=self.cluster, tasks=arns[:limit]).get("tasks", []))

    def running_images(self) -> list[str]:
        images: set[str] = set()
        try:
            for task in self._tasks("RUNNING"):
                for c in task.get("containers", []):
                    # imageDigest is what the agent actually pulled; `image` is what was asked for.
                    digest = c.get("imageDigest") or digest_of(c.get("image"))
                    repo = str(c.get("image", "")).split("@", 1)[0]
                    images.add(f"{repo}@{digest}" if digest else str(c.get("image")))
        except (ClientError, BotoCoreError):
            return []
        return sorted(images)

    def explain(self) -> str:
        """stoppedReason of recent stopped tasks, non-healthy targets, and the latest service events."""
        lines: list[str] = []
        try:
            stopped = self._tasks("STOPPED")
            # Tasks of the new deployment carry its id in startedBy; old tasks stopped by the rollout
            # itself ("Scaling activity initiated by deployment ...") are normal and listed after them.
            stopped.sort(key=lambda t: t.get("startedBy") != self._primary_id)
            for task in stopped:
                new = (
                    " (new deployment)"
                    if self._primary_id and task.get("startedBy") == self._primary_id
                    else ""
                )
                reasons = [task.get("stoppedReason") or task.get("stopCode") or "stopped"]
                for c in task.get("containers", []):
                    if c.get("reason"):
                        reasons.append(f"container {c.get('name')}: {c['reason']}")
                    elif c.get("exitCode") not in (None, 0):
                        reasons.append(f"container {c.get('name')} exited {c.get('exitCode')}")
                task_id = str(task.get("taskArn", "")).rsplit("/", 1)[-1]
                lines.append(f"stopped task {task_id}{new}: " + "; ".join(reasons))
            lines.extend(self.target_reasons())
            svc = self.ecs.describe_services(cluster=self.cluster, services=[self.service]).get(
                "services", []
            )
            for ev in (svc[0].get("events", []) if svc else [])[:5]:
                lines.append(f"event {ev.get('createdAt')}: {ev.get('message')}")
        except (ClientError, BotoCoreError) as exc:
            lines.append(f"(could not read task/service details: {exc})")
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- Lambda


class LambdaRollout:
    """Lambda: the alias's version (or $LATEST) is State=Active and LastUpdateStatus=Successful."""

    def __init__(
        self,
        client: Any,
        function_name: str,
        alias: str | None,
        expected_image: str | None,
        *,
        expected_version: str | None = None,
    ) -> None:
        self.client = client
        self.function_name = function_name
        self.alias = alias
        self.expected_digest = digest_of(expected_image)
        #: The release gate's expectation: the version this deploy published (the alias must point at it).
        self.expected_version = expected_version
        self._last_reason = ""

    def poll(self) -> Observation:
        qualifier = None
        try:
            if self.alias:
                qualifier = self.client.get_alias(FunctionName=self.function_name, Name=self.alias)[
                    "FunctionVersion"
                ]
            kwargs = {"FunctionName": self.function_name}
            if qualifier:
                kwargs["Qualifier"] = qualifier
            fn = self.client.get_function(**kwargs)
        except ClientError as exc:
            return Observation("failed", f"cannot read function {self.function_name}", reason=_err(exc))
        if self.alias and self.expected_version and qualifier != self.expected_version:
            return Observation(
                "failed",
                f"Lambda {self.function_name}: alias {self.alias} points at version {qualifier}, "
                f"not {self.expected_version}",
                reason=self._version_state(self.expected_version),
                release=qualifier,
            )
        cfg = fn["Configuration"]
        state, update = cfg.get("State", "Active"), cfg.get("LastUpdateStatus", "Successful")
        where = f"{self.function_name}:{qualifier or '$LATEST'}" + (
            f" (alias {self.alias})" if self.alias else ""
        )
        summary = f"Lambda {where}: State {state}, LastUpdateStatus {update}"
        resolved = fn.get("Code", {}).get("ResolvedImageUri") or fn.get("Code", {}).get("ImageUri")
        running = [resolved] if resolved else []
        release = qualifier or "$LATEST"
        if state == "Failed":
            reason = f"{cfg.get('StateReasonCode', '')}: {cfg.get('StateReason', '')}"
            return Observation("failed", summary, reason=reason, running_images=running, release=release)
        if update == "Failed":
            reason = f"{cfg.get('LastUpdateStatusReasonCode', '')}: {cfg.get('LastUpdateStatusReason', '')}"
            return Observation("failed", summary, reason=reason, running_images=running, release=release)
        if state == "Pending" or update == "InProgress":
            self._last_reason = cfg.get("StateReason") or cfg.get("LastUpdateStatusReason") or ""
            return Observation("progress", summary, release=release)
        if self.expected_digest and digest_of(resolved) != self.expected_digest:
            return Observation(
                "failed",
                summary,
                reason=f"{where} runs {resolved}, not the deployed image {self.expected_digest}",
                running_images=running,
                release=release,
            )
        if self.alias:
            pc = self._provisioned()
            if pc is not None:
                status, why = pc
                summary = f"{summary}, provisioned concurrency {status}"
                if status == "FAILED":
                    return Observation(
                        "failed", summary, reason=f"provisioned concurrency: {why}", release=release
                    )
                if status != "READY":
                    self._last_reason = why
                    return Observation("progress", summary, release=release)
        # State "Inactive" (idle for weeks) is reactivated by the first invocation: the smoke test does it.
        return Observation("stable", summary, running_images=running, release=release)

    def _provisioned(self) -> tuple[str, str] | None:
        try:
            pc = self.client.get_provisioned_concurrency_config(
                FunctionName=self.function_name, Qualifier=self.alias
            )
        except ClientError:
            # ProvisionedConcurrencyConfigNotFoundException (none configured) or no permission to read it:
            # the function's own State already proved the version deploys; don't block on an optional extra.
            return None
        return str(pc.get("Status", "UNKNOWN")), str(pc.get("StatusReason", ""))

    def _version_state(self, version: str) -> str:
        """The published version's State/LastUpdateStatus and reasons (why the alias may not have moved)."""
        try:
            cfg = self.client.get_function(FunctionName=self.function_name, Qualifier=version)[
                "Configuration"
            ]
        except ClientError as exc:
            return f"version {version}: {_err(exc)}"
        parts = [f"version {version}: State {cfg.get('State', 'Active')}"]
        if cfg.get("StateReason"):
            parts.append(f"({cfg.get('StateReasonCode', '')}: {cfg['StateReason']})")
        parts.append(f"LastUpdateStatus {cfg.get('LastUpdateStatus', 'Successful')}")
        if cfg.get("LastUpdateStatusReason"):
            parts.append(f"({cfg.get('LastUpdateStatusReasonCode', '')}: {cfg['LastUpdateStatusReason']})")
        return " ".join(parts)

    def explain(self) -> str:
        return self._last_reason


# ------------------------------------------------------------------------------------------- Cloud Run


def _short(name: str) -> str:
    return name.rsplit("/", 1)[-1]


class CloudRunRollout:
    """Cloud Run: Ready condition true, latest ready revision == latest created, serving 100% of traffic."""

    def __init__(
        self,
        services: Any,
        revisions: Any,
        project: str,
        region: str,
        service: str,
        expected_image: str | None,
        *,
        expected_revision: str | None = None,
        traffic_tag: str | None = None,
    ) -> None:
        self.services = services
        self.revisions = revisions
        self.name = f"projects/{project}/locations/{region}/services/{service}"
        self.service = service
        self.expected_digest = digest_of(expected_image)
        #: The release gate's expectation: the revision this deploy created must be the one serving (100 %,
        #: or behind `traffic_tag`). A settled service (not reconciling) that serves another one fails fast.
        self.expected_revision = _short(expected_revision) if expected_revision else None
        self.traffic_tag = traffic_tag
        self._svc: Any = None

    def poll(self) -> Observation:
        from google.api_core import exceptions as gexc
        from google.cloud import run_v2

        try:
            svc = self.services.get_service(request={"name": self.name}, timeout=15.0)
        except gexc.NotFound as exc:
            return Observation("failed", f"service {self.name} not found", reason=exc.message)
        except gexc.GoogleAPICallError as exc:
            return Observation("failed", f"cannot read {self.name}", reason=f"{exc.code}: {exc.message}")
        self._svc = svc
        cond = svc.terminal_condition
        ready_state = run_v2.Condition.State(cond.state).name if cond else "UNKNOWN"
        latest_ready, latest_created = _short(svc.latest_ready_revision), _short(svc.latest_created_revision)
        percent = self._latest_percent(svc, latest_ready)
        summary = (
            f"Cloud Run {self.service}: Ready {ready_state}, latest created {latest_created or '-'}, "
            f"latest ready {latest_ready or '-'}, serving {percent}%"
            + (", reconciling" if svc.reconciling else "")
        )
        if cond.state == run_v2.Condition.State.CONDITION_FAILED:
            return Observation("failed", summary, reason=self.explain(), release=latest_ready or None)
        expected = self.expected_revision
        if expected and latest_created and latest_created != expected and not svc.reconciling:
            return Observation(
                "failed",
                summary,
                reason=f"the latest created revision is {latest_created}, not {expected} that this deploy "
                "created: another deploy changed the service since\n" + self.explain(),
                release=latest_ready or None,
            )
        if (
            svc.reconciling
            or cond.state != run_v2.Condition.State.CONDITION_SUCCEEDED
            or not latest_ready
            or latest_ready != latest_created
        ):
            created_failure = self._revision_failure(svc.latest_created_revision)
            if created_failure and not svc.reconciling:
                return Observation("failed", summary, reason=created_failure, release=latest_ready or None)
            return Observation("progress", summary, release=latest_ready or None)
        serving = self._tag_revision(svc, latest_ready) if self.traffic_tag else latest_ready
        if self.traffic_tag:
            summary = f"{summary}, tag {self.traffic_tag} -> {serving or 'nothing'}"
            if expected and serving != expected:
                return Observation("failed", summary, reason=self.traffic_lines(svc), release=serving)
        elif percent != 100:
            if expected:
                # Ready, settled, and the traffic split is not on the new revision: it was pinned elsewhere.
                top = self._top_revision(svc, latest_ready)
                return Observation("failed", summary, reason=self.traffic_lines(svc), release=top)
            return Observation("progress", summary, release=latest_ready)
        images = self._revision_images(svc.latest_ready_revision)
        if self.expected_digest and images and not any(digest_of(i) == self.expected_digest for i in images):
            return Observation(
                "failed",
                summary,
                reason=f"revision {latest_ready} runs {images}, not the deployed {self.expected_digest}",
                running_images=images,
                release=latest_ready,
            )
        return Observation("stable", summary, running_images=images, release=serving)

    def _tag_revision(self, svc: Any, latest_ready: str) -> str | None:
        """The revision `traffic_tag` routes to (a LATEST-type tag follows the latest ready revision)."""
        from google.cloud import run_v2

        latest_type = run_v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST
        for t in svc.traffic_statuses:
            if t.tag == self.traffic_tag:
                return latest_ready if t.type_ == latest_type else _short(t.revision) or None
        return None

    @staticmethod
    def _top_revision(svc: Any, latest_ready: str) -> str | None:
        """The revision taking the largest share of the traffic."""
        from google.cloud import run_v2

        latest_type = run_v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST
        shares: dict[str, int] = {}
        for t in svc.traffic_statuses:
            rev = latest_ready if t.type_ == latest_type else _short(t.revision)
            if rev:
                shares[rev] = shares.get(rev, 0) + int(t.percent)
        return max(shares, key=lambda r: shares[r]) if shares else None

    @staticmethod
    def traffic_lines(svc: Any) -> str:
        """Where the traffic actually goes, one line per traffic target Cloud Run reports."""
        from google.cloud import run_v2

        latest_type = run_v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST
        lines = []
        for t in svc.traffic_statuses:
            where = (
                "the latest ready revision" if t.type_ == latest_type else f"revision {_short(t.revision)}"
            )
            tag = f" (tag {t.tag})" if t.tag else ""
            lines.append(f"traffic: {int(t.percent)}% -> {where}{tag}")
        return "\n".join(lines) or "traffic: no traffic targets reported"

    @staticmethod
    def _latest_percent(svc: Any, latest_ready: str) -> int:
        from google.cloud import run_v2

        latest_type = run_v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST
        total = 0
        for t in svc.traffic_statuses:
            if t.type_ == latest_type or (t.revision and _short(t.revision) == latest_ready):
                total += int(t.percent)
        return total

    def _revision(self, name: str) -> Any:
        from google.api_core import exceptions as gexc

        if not name:
            return None
        try:
            return self.revisions.get_revision(request={"name": name}, timeout=15.0)
        except gexc.GoogleAPICallError:
            return None

    def _revision_failure(self, name: str) -> str | None:
        from google.cloud import run_v2

        rev = self._revision(name)
        if rev is None:
            return None
        failed = run_v2.Condition.State.CONDITION_FAILED
        msgs = [
            f"revision {_short(name)} {c.type_}: {c.message}" for c in rev.conditions if c.state == failed
        ]
        return "\n".join(msgs) or None

    def _revision_images(self, name: str) -> list[str]:
        rev = self._revision(name)
        return [c.image for c in rev.containers] if rev is not None else []

    def explain(self) -> str:
        from google.cloud import run_v2

        svc = self._svc
        if svc is None:
            return ""
        lines = []
        cond = svc.terminal_condition
        if cond and cond.message:
            lines.append(f"service {cond.type_}: {cond.message}")
        for c in svc.conditions:
            if c.state == run_v2.Condition.State.CONDITION_FAILED and c.message:
                lines.append(f"service {c.type_}: {c.message}")
        rev_failure = self._revision_failure(svc.latest_created_revision)
        if rev_failure:
            lines.append(rev_failure)
        return "\n".join(lines)


# ------------------------------------------------------------------------------------------------- VPS


class VpsRollout:
    """VPS: `docker inspect` over SSH: container running, health `healthy`, running the deployed image."""

    def __init__(
        self,
        user: str,
        host: str,
        container: str,
        expected_image: str | None,
        *,
        port: int = 22,
        identity_file: str | None = None,
    ) -> None:
        self.base = vps_ops.ssh_command(user, host, port, identity_file)
        self.container = container
        self.expected_digest = digest_of(expected_image)
        self._last_reason = ""

    def poll(self) -> Observation:
        import subprocess

        try:
            proc = vps_ops.run_ssh([*self.base, "docker", "inspect", self.container])
        except (subprocess.TimeoutExpired, FileNotFoundError) as exc:
            return Observation("failed", f"cannot inspect {self.container} over SSH", reason=str(exc))
        if proc.returncode != 0:
            return Observation(
                "failed",
                f"docker inspect {self.container} failed",
                reason=(proc.stderr or proc.stdout).strip(),
            )
        try:
            info = json.loads(proc.stdout)[0]
        except (ValueError, IndexError, KeyError) as exc:
            return Observation("failed", "unexpected docker inspect output", reason=str(exc))
        st = info.get("State", {})
        health = (st.get("Health") or {}).get("Status", "none")
        image = str(info.get("Config", {}).get("Image", ""))
        restarts = info.get("RestartCount", 0)
        summary = f"VPS {self.container}: {st.get('Status')}, health {health}, restarts {restarts}"
        log = (st.get("Health") or {}).get("Log") or []
        self._last_reason = str(log[-1].get("Output", "")).strip() if log else str(st.get("Error", ""))
        if st.get("OOMKilled"):
            return Observation("failed", summary, reason="container was OOM-killed: raise the memory limit")
        if st.get("Status") in ("exited", "dead") or health == "unhealthy":
            reason = self._last_reason or f"exit code {st.get('ExitCode')}"
            return Observation("failed", summary, reason=reason, running_images=[image])
        if st.get("Status") != "running" or health == "starting":
            return Observation("progress", summary)
        if self.expected_digest and digest_of(image) != self.expected_digest:
            return Observation(
                "failed",
                summary,
                reason=f"container runs {image}, not {self.expected_digest}",
                running_images=[image],
            )
        return Observation("stable", summary, running_images=[image])

    def explain(self) -> str:
        return self._last_reason
