"""`infra status | logs | rollback` for the VPS target: Docker over the user's own `ssh` (BatchMode).

- status: ``docker inspect`` of the app container (stack output ``container_name``) and of any rollback
  container started by ``infra rollback`` (label :data:`ROLLBACK_LABEL`), the repo digests of the images
  they run vs the stack's image.
- logs: ``docker logs --timestamps --since`` of the serving container (``--follow`` streams until
  Ctrl-C); ``--grep`` is applied to the lines locally (``docker logs`` has no filter).
- rollback: the previous image of the same repository still on the host (the component keeps pulled
  images: ``keep_locally``) or ``--to DIGEST`` (refused unless the host holds it), started as a new
  container with the serving container's settings (network alias ``app``, limits, health check, env —
  the env goes through a 0600 temporary file on the host fed over stdin, never on a command line), waited
  for until Docker reports it healthy, then the old container is stopped (kept, so ``docker start``
  undoes it). That is the component's own order: the new container joins the alias before the old one
  leaves, so Caddy keeps serving throughout.
"""

from __future__ import annotations

import json
import shlex
import subprocess
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi_deploy.operate import (
    DRIFT_NOTE,
    LogQuery,
    OperateError,
    OpsContext,
    Refused,
    RollbackRequest,
    image_repo,
    rollback_detected,
    short,
)
from fastapi_deploy.ops import access
from fastapi_deploy.ops import vps as vps_ops
from fastapi_deploy.ops.rollout import VpsRollout, digest_of, wait_until_stable

#: Label on containers `infra rollback` starts, naming the stack's app container they replace.
ROLLBACK_LABEL = "fastapi-deploy.rollback-of"
_NS = 1_000_000_000


@dataclass
class Container:
    """The parts of `docker inspect` operate uses (``info`` holds the rest; it contains the env)."""

    name: str
    running: bool
    status: str
    health: str
    image_ref: str
    image_id: str
    info: dict[str, Any]


class Host:
    """Remote docker commands over ssh for one host."""

    def __init__(self, ctx: OpsContext) -> None:
        s = ctx.ssh
        self.host = str(ctx.outputs["host"])
        self.base = vps_ops.ssh_command(s.user, self.host, s.port, s.identity_file)

    def run(self, *argv: str, stdin: str | None = None, timeout: float = vps_ops.SSH_TIMEOUT_S) -> str:
        """The command's stdout; a failure (ssh or docker) is an OperateError with its stderr."""
        cmd = [*self.base, shlex.join(argv)]
        feed: dict[str, Any] = {"input": stdin} if stdin is not None else {"stdin": subprocess.DEVNULL}
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False, **feed)
        if proc.returncode == 255:  # ssh's own failure: login, host key, network
            raise OperateError(
                f"ssh to {self.host} failed: {_last(proc.stderr)} (`infra doctor` diagnoses SSH access)",
                access.EXIT_UNREACHABLE,
            )
        if proc.returncode != 0:
            raise OperateError(
                f"`{argv[0]} {argv[1] if len(argv) > 1 else ''}` on {self.host} failed: "
                f"{_last(proc.stderr or proc.stdout)}"
            )
        return proc.stdout

    def inspect(self, name: str) -> Container | None:
        try:
            info = json.loads(self.run("docker", "inspect", "--type", "container", name))[0]
        except OperateError as exc:
            if "no such" in str(exc).lower():
                return None
            raise
        state = info.get("State", {})
        return Container(
            name=str(info.get("Name", name)).lstrip("/"),
            running=bool(state.get("Running")) or state.get("Status") == "running",
            status=str(state.get("Status")),
            health=str((state.get("Health") or {}).get("Status", "none")),
            image_ref=str(info.get("Config", {}).get("Image", "")),
            image_id=str(info.get("Image", "")),
            info=info,
        )

    def rollback_containers(self, app: str) -> list[Container]:
        names = self.run(
            "docker", "ps", "-a", "--filter", f"label={ROLLBACK_LABEL}={app}", "--format", "{{.Names}}"
        ).split()
        return [c for c in (self.inspect(n) for n in names) if c is not None]

    def image(self, ref: str) -> dict[str, Any]:
        return dict(json.loads(self.run("docker", "image", "inspect", ref))[0])

    def repo_images(self, repo: str) -> list[dict[str, str]]:
        out = self.run("docker", "image", "ls", "--digests", "--no-trunc", "--format", "{{json .}}", repo)
        return [json.loads(line) for line in out.splitlines() if line.strip()]


def _last(text: str) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def _running_image(host: Host, c: Container, repo: str) -> str:
    """``repo@digest`` of what the container runs (Pulumi starts it by image ID, not by digest)."""
    if digest_of(c.image_ref) and not c.image_ref.startswith("sha256:"):
        return c.image_ref
    digests = host.image(c.image_id or c.image_ref).get("RepoDigests") or []
    same = [d for d in digests if image_repo(d) == repo]
    return str((same or digests or [c.image_ref])[0])


def _serving(host: Host, app: str) -> tuple[Container | None, list[Container]]:
    """(app container, running rollback containers, the most recently started last)."""
    running = [c for c in host.rollback_containers(app) if c.running]
    running.sort(key=lambda c: str(c.info.get("State", {}).get("StartedAt", "")))
    return host.inspect(app), running


def status(ctx: OpsContext) -> int:
    host = Host(ctx)
    app = str(ctx.outputs["container_name"])
    repo = image_repo(ctx.deployed_image)
    ctx.out(f"VPS {host.host}, app container {app}")
    container, rollbacks = _serving(host, app)
    failed = False
    if container is None:
        ctx.out(f"last deployment: container {app} does not exist on the host")
        failed = True
    else:
        info = container.info
        ctx.out(
            f"last deployment: {app} {container.status}, health {container.health}, "
            f"restarts {info.get('RestartCount', 0)}, started {info.get('State', {}).get('StartedAt', '?')}"
        )
    for rb in rollbacks:
        ctx.out(f"rollback:        {rb.name} {rb.status}, health {rb.health} (started by `infra rollback`)")
    serving = [c for c in ([container] if container else []) + rollbacks if c.running]
    ctx.out(f"containers:      desired 1, running {len(serving)}")
    running = [_running_image(host, c, repo) for c in serving]
    detected = rollback_detected(ctx, running, "the host")
    if not serving:
        ctx.out("NOT RUNNING: no app container is running")
        failed = True
    elif any(c.health == "unhealthy" for c in serving):
        failed = True
    return 1 if detected or failed else 0


def logs(ctx: OpsContext, query: LogQuery) -> int:
    host = Host(ctx)
    app = str(ctx.outputs["container_name"])
    container, rollbacks = _serving(host, app)
    name = rollbacks[-1].name if rollbacks else app
    if container is None and not rollbacks:
        raise OperateError(f"container {app} does not exist on {host.host}")
    since = query.since.isoformat().replace("+00:00", "Z")
    argv = ["docker", "logs", "--timestamps", "--since", since]
    if query.follow:
        argv.append("--follow")
    cmd = [*host.base, shlex.join([*argv, name])]
    # docker logs writes the container's stderr to ours: merge both, in order.
    with subprocess.Popen(
        cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as proc:
        assert proc.stdout is not None
        try:
            for raw in proc.stdout:
                line = raw.rstrip("\n")
                if query.grep and query.grep not in line:
                    continue
                ctx.out(_docker_line(line))
        finally:
            if proc.poll() is None:
                proc.terminate()
        rc = proc.wait()
    if rc == 255:
        raise OperateError(
            f"ssh to {host.host} failed (`infra doctor` diagnoses SSH access)", access.EXIT_UNREACHABLE
        )
    if rc != 0:
        raise OperateError(f"`docker logs {name}` on {host.host} exited {rc}")
    return 0


def _docker_line(line: str) -> str:
    """``2026-01-31T12:00:00.123456789Z msg`` -> ``2026-01-31T12:00:00.123Z msg`` (the shared format)."""
    from fastapi_deploy.operate import log_line

    stamp, _, message = line.partition(" ")
    try:
        when = datetime.fromisoformat(_trim_fraction(stamp.replace("Z", "+00:00")))
    except ValueError:
        return line
    return log_line(when, message)


def _trim_fraction(stamp: str) -> str:
    head, dot, rest = stamp.partition(".")
    if not dot:
        return stamp
    digits = "".join(ch for ch in rest if ch.isdigit())
    return f"{head}.{digits[:6]}{rest[len(digits) :]}"


# -------------------------------------------------------------------------------------------- rollback


def _choose(host: Host, repo: str, current_digest: str | None, to_digest: str | None) -> dict[str, str]:
    images = [i for i in host.repo_images(repo) if str(i.get("Digest", "")).startswith("sha256:")]
    if to_digest is not None:
        found = next((i for i in images if i["Digest"] == to_digest), None)
        if found is None:
            held = ", ".join(short(i["Digest"]) for i in images) or "none"
            raise Refused(
                f"image {repo}@{to_digest} is not on {host.host} (its images of {repo}: {held}); "
                f"a rollback uses an image already on the host"
            )
        if to_digest == current_digest:
            raise Refused(f"the host already runs {to_digest}")
        return found
    # "previous" = created before the running image (a second rollback goes further back, not forward)
    current = next((i for i in images if i["Digest"] == current_digest), None)
    older = [
        i
        for i in images
        if i["Digest"] != current_digest
        and (current is None or str(i.get("CreatedAt", "")) < str(current.get("CreatedAt", "")))
    ]
    older.sort(key=lambda i: str(i.get("CreatedAt", "")), reverse=True)
    if not older:
        raise OperateError(f"nothing to roll back to: {host.host} holds no older image of {repo}")
    return older[0]


def run_args(info: dict[str, Any], image: str, name: str, app: str) -> list[str]:
    """`docker run` arguments reproducing the serving container's settings (not its env) for ``image``."""
    cfg, hc = info.get("Config", {}), info.get("HostConfig", {})
    args = ["docker", "run", "--detach", "--name", name, "--label", f"{ROLLBACK_LABEL}={app}"]
    for k, v in sorted((cfg.get("Labels") or {}).items()):
        if k != ROLLBACK_LABEL:
            args += ["--label", f"{k}={v}"]
    if cfg.get("User"):
        args += ["--user", str(cfg["User"])]
    restart = (hc.get("RestartPolicy") or {}).get("Name")
    if restart and restart != "no":
        args += ["--restart", str(restart)]
    if hc.get("NanoCpus"):
        args += ["--cpus", f"{int(hc['NanoCpus']) / _NS:g}"]
    if hc.get("Memory"):
        args += ["--memory", str(hc["Memory"])]
    if hc.get("MemorySwap"):
        args += ["--memory-swap", str(hc["MemorySwap"])]
    if hc.get("ReadonlyRootfs"):
        args.append("--read-only")
    for path, opts in sorted((hc.get("Tmpfs") or {}).items()):
        args += ["--tmpfs", f"{path}:{opts}" if opts else path]
    for opt in hc.get("SecurityOpt") or []:
        args += ["--security-opt", str(opt)]
    for cap in hc.get("CapDrop") or []:
        args += ["--cap-drop", str(cap)]
    log = hc.get("LogConfig") or {}
    if log.get("Type"):
        args += ["--log-driver", str(log["Type"])]
        for k, v in sorted((log.get("Config") or {}).items()):
            args += ["--log-opt", f"{k}={v}"]
    health = cfg.get("Healthcheck") or {}
    test = health.get("Test") or []
    if test and test[0] in ("CMD", "CMD-SHELL"):
        args += ["--health-cmd", test[1] if test[0] == "CMD-SHELL" else shlex.join(test[1:])]
        for key, flag in (
            ("Interval", "--health-interval"),
            ("Timeout", "--health-timeout"),
            ("StartPeriod", "--health-start-period"),
        ):
            if health.get(key):
                args += [flag, f"{int(health[key]) / _NS:g}s"]
        if health.get("Retries"):
            args += ["--health-retries", str(health["Retries"])]
    if cfg.get("StopSignal"):
        args += ["--stop-signal", str(cfg["StopSignal"])]
    if cfg.get("StopTimeout"):
        args += ["--stop-timeout", str(cfg["StopTimeout"])]
    networks = (info.get("NetworkSettings") or {}).get("Networks") or {}
    own = {str(info.get("Id", ""))[:12], str(info.get("Name", "")).lstrip("/")}
    for i, (net, settings) in enumerate(sorted(networks.items())):
        if i == 0:  # docker run joins one network; the app container has exactly one (the private bridge)
            args += ["--network", net]
            for alias in (settings or {}).get("Aliases") or []:
                if alias not in own:
                    args += ["--network-alias", str(alias)]
    return [*args, "--env-file", "__ENV_FILE__", image]


def _env_lines(info: dict[str, Any], image_env: list[str]) -> str:
    """The container's own env (not the image's ENV defaults) as an env-file; refuses multi-line values."""
    inherited = set(image_env)
    lines = [e for e in info.get("Config", {}).get("Env") or [] if e not in inherited]
    if any("\n" in e for e in lines):
        raise OperateError(
            "an environment value of the app container spans lines; an env file cannot carry it"
        )
    return "".join(f"{e}\n" for e in lines)


def rollback(ctx: OpsContext, request: RollbackRequest) -> int:
    host = Host(ctx)
    app = str(ctx.outputs["container_name"])
    repo = image_repo(ctx.deployed_image)
    container, rollbacks = _serving(host, app)
    current = rollbacks[-1] if rollbacks else container
    if current is None or not current.running:
        raise OperateError(f"no app container is running on {host.host}: nothing to copy the settings from")
    current_image = _running_image(host, current, repo)
    current_digest = digest_of(current_image)
    chosen = _choose(host, repo, current_digest, request.to_digest)
    digest = chosen["Digest"]
    image = f"{repo}@{digest}"
    name = f"{app}-rollback-{digest.removeprefix('sha256:')[:12]}"
    ctx.out(
        f"rolling back on {host.host}: {current.name} ({short(current_digest)}) -> {name} ({short(digest)})"
    )
    stale = host.inspect(name)
    if stale is not None:
        host.run("docker", "rm", "--force", name)
    env = _env_lines(
        current.info, host.image(current.image_id or current.image_ref).get("Config", {}).get("Env") or []
    )
    argv = run_args(current.info, image, name, app)
    at = argv.index("__ENV_FILE__")
    script = (
        'umask 077; f=$(mktemp) || exit 1; cat >"$f"; '
        + shlex.join(argv[:at])
        + ' "$f" '
        + shlex.join(argv[at + 1 :])
        + '; rc=$?; rm -f "$f"; exit $rc'
    )
    host.run("sh", "-c", script, stdin=env, timeout=120.0)
    poller = VpsRollout(
        ctx.ssh.user, host.host, name, image, port=ctx.ssh.port, identity_file=ctx.ssh.identity_file
    )
    obs = wait_until_stable(
        poller, timeout_s=request.timeout_s, interval_s=request.interval_s, progress=ctx.out, sleep=ctx.sleep
    )
    if obs.state != "stable":
        host.run("docker", "rm", "--force", name)
        ctx.out(
            f"FAILED: {name} did not become healthy: {obs.summary}; removed it, {current.name} still serves"
        )
        for line in (obs.reason or "").splitlines():
            ctx.out(f"  {line}")
        return 1
    stop_timeout = str(current.info.get("Config", {}).get("StopTimeout") or 30)
    host.run("docker", "stop", "--time", stop_timeout, current.name, timeout=float(stop_timeout) + 30)
    ctx.out(f"rolled back: {name} serves {image}; {current.name} is stopped (`docker start` it to undo)")
    ctx.out(
        DRIFT_NOTE + f" On the VPS, after rolling forward remove the rollback container: docker rm -f {name}"
    )
    return 0
