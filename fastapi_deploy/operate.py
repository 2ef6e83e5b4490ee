"""`infra status | logs | rollback`: operate a deployed stack from its outputs.

One argument parser for the three commands; the work is done by the target's own module
(``fastapi_deploy/<target>/operate.py``, named by the target's ``Target.operations_module``), each exposing

``status(ctx: OpsContext) -> int``
    deployed vs running image digest, desired/running counts, the last deployment's state, and a
    rollback (or any other drift between what Pulumi deployed and what runs) detected;
``logs(ctx: OpsContext, query: LogQuery) -> int``
    ``timestamp message`` lines since ``query.since``, filtered by ``query.grep`` server-side where the
    platform's API can, following with a bounded poll interval when ``query.follow``;
``rollback(ctx: OpsContext, request: RollbackRequest) -> int``
    move the service back to the previous release (or the one running ``request.to_digest``), refusing a
    digest that no earlier release ran or that the registry no longer holds, then wait (bounded) for it.

Outputs come from the Pulumi CLI or ``--outputs FILE`` exactly as for ``infra verify``
(:mod:`fastapi_deploy.ops.outputs`); credential, permission and network errors are one line and exit 3
(:mod:`fastapi_deploy.ops.access`). A rollback made here is outside Pulumi: the stack's state still names
the newer release, and the next ``pulumi up`` rolls forward again (see docs/operations.md).
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi_deploy.ops import access
from fastapi_deploy.ops.findings import Finding, Severity
from fastapi_deploy.ops.outputs import OutputsError, read_outputs, validate_outputs
from fastapi_deploy.ops.rollout import digest_of
from fastapi_deploy.verify import Clients, _ssh_login

Printer = Callable[[str], None]

#: target -> module implementing status/logs/rollback (to be folded into the target registry).

EXIT_CODES_HELP = """exit codes:
  0  status: the deployed image is the one running and the last deployment succeeded;
     logs: the lines were printed (or --follow was stopped with Ctrl-C);
     rollback: the earlier release is live and the platform reports it stable
  1  status: a rollback or other drift detected, or the last deployment failed/is not running;
     rollback: nothing earlier to roll back to, or the release did not become stable within --timeout
  2  invalid usage, stack outputs, --since or --to (a digest no earlier release ran, or that the registry
     no longer holds): refused before anything changed
  3  missing or expired credentials, a denied permission, or an unreachable cloud API or host
     (one line says which)
  130  interrupted with Ctrl-C (except logs --follow, which exits 0): check with `infra status`"""

DRIFT_NOTE = (
    "note: this rollback happened outside Pulumi and is drift: the stack state still names the newer "
    "release. `pulumi up --refresh` (or the next deploy that changes the service) rolls forward to it again. "
    "To stay on this release, pin the stack to the image you rolled back to (app.image.digest in the stack "
    "file) and run `pulumi up --refresh`; otherwise fix forward and deploy a new image."
)

_DIGEST = re.compile(r"^(?:.*@)?(sha256:[0-9a-f]{64})$")
_RELATIVE = re.compile(r"^(\d+)\s*([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


class OperateError(Exception):
    """The command cannot do what was asked; the message says why. ``code`` is the exit code."""

    def __init__(self, message: str, code: int = access.EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


class Refused(OperateError):
    """Refused before anything changed (an unknown digest, nothing to roll back to): exit 2."""

    def __init__(self, message: str) -> None:
        super().__init__(message, access.EXIT_INVALID)


@dataclass(frozen=True)
class SshLogin:
    """How to reach a VPS (the outputs carry only the host)."""

    user: str = "deploy"
    port: int = 22
    identity_file: str | None = None


@dataclass
class OpsClients(Clients):
    """verify's clients plus what logs and rollback need; tests inject fakes for each."""

    #: requests-compatible session for the Cloud Logging REST API (default: ADC AuthorizedSession).
    logging_session: Any = None
    logging_endpoint: str = "https://logging.googleapis.com"
    #: ``(image ref, where) -> Finding`` for registries other than ECR (default: the OCI HEAD check).
    oci_image_check: Callable[[str, str], Finding] | None = None

    def cloud_logging(self) -> Any:
        if self.logging_session is None:
            import google.auth
            from google.auth.transport.requests import AuthorizedSession

            creds, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/logging.read"])
            self.logging_session = AuthorizedSession(creds)
        return self.logging_session


@dataclass
class OpsContext:
    """Everything a target's status/logs/rollback needs."""

    outputs: dict[str, Any]
    clients: OpsClients = field(default_factory=OpsClients)
    out: Printer = print
    ssh: SshLogin = field(default_factory=SshLogin)
    sleep: Callable[[float], None] = time.sleep
    now: Callable[[], datetime] = lambda: datetime.now(UTC)

    @property
    def deployed_image(self) -> str:
        return str(self.outputs.get("image") or "")

    @property
    def deployed_digest(self) -> str | None:
        return digest_of(self.deployed_image)


@dataclass(frozen=True)
class LogQuery:
    """`infra logs` arguments. ``max_polls`` bounds --follow (tests); None polls until Ctrl-C."""

    since: datetime
    follow: bool = False
    grep: str | None = None
    interval_s: float = 2.0
    max_polls: int | None = None


@dataclass(frozen=True)
class RollbackRequest:
    """`infra rollback` arguments."""

    to_digest: str | None = None
    timeout_s: float = 600.0
    interval_s: float = 10.0


# --------------------------------------------------------------------------------------------- helpers


def parse_since(text: str, now: datetime) -> datetime:
    """``10m``/``2h``/``1d``/``30s`` before ``now``, or an ISO 8601 time (naive means UTC)."""
    value = text.strip()
    m = _RELATIVE.match(value)
    if m:
        return now - timedelta(**{_UNITS[m[2]]: int(m[1])})
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise OperateError(
            f"--since {text!r}: expected a duration such as 10m, 2h, 1d or an ISO time such as "
            "2026-01-31T12:00:00Z",
            access.EXIT_INVALID,
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def parse_digest(text: str) -> str:
    """``sha256:<64 hex>`` (or an image reference ending in it) -> the digest."""
    m = _DIGEST.match(text.strip())
    if not m:
        raise OperateError(
            f"--to {text!r}: expected an image digest sha256:<64 hex digits> (or repo@sha256:...)",
            access.EXIT_INVALID,
        )
    return m[1]


def image_repo(ref: str) -> str:
    """The repository of an image reference (``host/repo:tag@sha256:..`` -> ``host/repo``)."""
    name = ref.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return name.rsplit(":", 1)[0] if ":" in last else name


def by_digest(ref: str) -> str:
    """``repo@digest`` for a reference that carries a digest (tags dropped), else the reference itself."""
    digest = digest_of(ref)
    return f"{image_repo(ref)}@{digest}" if digest else ref


def short(digest: str | None) -> str:
    return f"{digest[:19]}..." if digest else "unknown"


def log_line(when: datetime, message: str) -> str:
    """``2026-01-31T12:00:00.123Z message`` (one line per event; trailing newlines dropped)."""
    stamp = when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return f"{stamp} {message.rstrip()}"


def require_in_registry(ctx: OpsContext, image: str, where: str, region: str | None = None) -> None:
    """Refuse (exit 2) an image whose digest the registry does not hold; warn when it cannot be checked.

    ECR references are checked with DescribeImages (doctor's check), others with the OCI manifest HEAD.
    """
    from fastapi_deploy.ops.aws_checks import check_ecr_image, parse_ecr_image
    from fastapi_deploy.ops.registry import check_oci_image

    ecr = parse_ecr_image(image)
    if ecr is not None:
        findings = check_ecr_image(ctx.clients.aws_client, image, region or ecr.region, where)
    else:
        check = ctx.clients.oci_image_check or check_oci_image
        findings = [check(image, where)]
    for f in findings:
        if f.severity is Severity.BLOCKING:
            raise Refused(f"refusing to roll back to {image}: {f.what}")
        if f.severity is Severity.WARNING:
            ctx.out(f"warning: {f.what}")


def compare_images(ctx: OpsContext, running: list[str]) -> bool:
    """Print the deployed image and each running one, `(= deployed)` or `(DIFFERS)`; True if any differs."""
    expected = ctx.deployed_digest
    ctx.out(f"deployed image:  {ctx.deployed_image} (stack output)")
    if not running:
        ctx.out("running image:   unknown (the platform reports none running)")
        return False
    differs = False
    for image in running:
        same = expected is not None and digest_of(image) == expected
        differs = differs or not same
        ctx.out(f"running image:   {image}" + (" (= deployed)" if same else " (DIFFERS)"))
    return differs


def announce_rollback(ctx: OpsContext, running: list[str], what: str) -> None:
    digests = ", ".join(sorted({short(digest_of(i)) for i in running}))
    ctx.out(
        f"ROLLBACK DETECTED: {what} runs {digests}, not the deployed {short(ctx.deployed_digest)}: the "
        "platform rolled back (circuit breaker, `infra rollback` or a change outside Pulumi)"
    )


def rollback_detected(ctx: OpsContext, running: list[str], what: str) -> bool:
    """Print the deployed-vs-running comparison; True (and say so) when what runs is not what was deployed."""
    differs = compare_images(ctx, running)
    if differs:
        announce_rollback(ctx, running, what)
    return differs


# ------------------------------------------------------------------------------------------------- CLI


def _parser(command: str) -> argparse.ArgumentParser:
    descriptions = {
        "status": "What runs vs what the stack deployed: image digests, counts, the last deployment, "
        "a rollback detected.",
        "logs": "The service's logs (CloudWatch Logs, Cloud Logging, or `docker logs` over SSH) as "
        "`timestamp message` lines.",
        "rollback": "Move the service back to the previous release (task definition revision, Cloud Run "
        "revision, Lambda version, VPS image) or to the one running --to DIGEST. Outside Pulumi: the next "
        "`pulumi up` rolls forward again unless the stack is pinned to that digest.",
    }
    p = argparse.ArgumentParser(
        prog=f"infra {command}",
        description=descriptions[command],
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--stack", help="stack name (outputs read via `pulumi stack output` when the CLI exists)")
    p.add_argument("--outputs", metavar="FILE", help="stack outputs JSON file (`pulumi stack output --json`)")
    p.add_argument("--outputs-json", metavar="JSON", help="stack outputs as a JSON object")
    if command == "logs":
        p.add_argument("--since", default="10m", help="10m, 2h, 1d or an ISO time (default 10m)")
        p.add_argument("--follow", "-f", action="store_true", help="keep polling for new lines until Ctrl-C")
        p.add_argument(
            "--grep", metavar="TEXT", help="only lines containing TEXT (server-side when possible)"
        )
        p.add_argument(
            "--interval", type=float, default=2.0, help="seconds between polls with --follow (default 2)"
        )
    if command == "rollback":
        p.add_argument(
            "--to", metavar="DIGEST", help="roll back to the release running this image digest (sha256:...)"
        )
        p.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for stability (600)")
        p.add_argument("--interval", type=float, default=10.0, help="seconds between polls (default 10)")
    p.add_argument(
        "--stacks-dir",
        default=None,
        help="where Pulumi.<stack>.yaml lives (VPS ssh user/port; default: stackConfigDir of Pulumi.yaml)",
    )
    p.add_argument("--ssh-user", help="VPS ssh user (default: app.vps.ssh_user of the stack file)")
    p.add_argument("--ssh-identity", metavar="FILE", help="VPS ssh private key file (default: your agent)")
    return p


def target_module(target: str) -> Any:
    """The target's operations module, from its registration (``Target.operations_module``)."""
    from fastapi_deploy import registry

    path = registry.get(target).operations_module
    if path is None:
        raise LookupError(f"target {target!r} offers no status/logs/rollback")
    return importlib.import_module(path)


def run(
    command: str,
    argv: list[str],
    *,
    clients: OpsClients | None = None,
    out: Printer = print,
    sleep: Callable[[float], None] = time.sleep,
    max_polls: int | None = None,
) -> int:
    """Parse, read the outputs, call the target module; errors become one line and an exit code."""
    name = f"infra {command}"
    try:
        args = _parser(command).parse_args(argv)
    except SystemExit as exc:
        return 0 if exc.code == 0 else access.EXIT_INVALID
    try:
        outputs, source = read_outputs(args.stack, args.outputs, args.outputs_json)
        target = validate_outputs(outputs, source)
    except OutputsError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return access.EXIT_INVALID
    user, port = _ssh_login(args.stack, args.stacks_dir)
    ctx = OpsContext(
        outputs=outputs,
        clients=clients or OpsClients(),
        out=out,
        ssh=SshLogin(args.ssh_user or outputs.get("ssh_user") or user, port, args.ssh_identity),
        sleep=sleep,
    )
    try:
        module = target_module(target)
    except LookupError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return access.EXIT_INVALID

    def call() -> int:
        if command == "status":
            return int(module.status(ctx))
        if command == "logs":
            if args.interval <= 0:
                raise OperateError("--interval must be positive", access.EXIT_INVALID)
            query = LogQuery(
                since=parse_since(args.since, ctx.now()),
                follow=args.follow,
                grep=args.grep or None,
                interval_s=args.interval,
                max_polls=max_polls,
            )
            try:
                return int(module.logs(ctx, query))
            except KeyboardInterrupt:  # the way to stop --follow
                return access.EXIT_OK
        if args.timeout <= 0 or args.interval <= 0:
            raise OperateError("--timeout and --interval must be positive", access.EXIT_INVALID)
        request = RollbackRequest(
            to_digest=parse_digest(args.to) if args.to else None,
            timeout_s=args.timeout,
            interval_s=args.interval,
        )
        return int(module.rollback(ctx, request))

    def guarded() -> int:
        try:
            return call()
        except OperateError as exc:
            print(f"{name}: {exc}", file=sys.stderr)
            return exc.code
        except KeyboardInterrupt:
            print(f"{name}: interrupted; run `infra status` to see where the service stands", file=sys.stderr)
            return 130

    what = f"stack {args.stack}" if args.stack else f"the stack in {source}"
    return access.unreachable_is_exit_3(guarded, name, what)


def status_cli(argv: list[str], **kwargs: Any) -> int:
    """Entry point for `infra status` (fastapi_deploy/cli.py COMMANDS)."""
    return run("status", argv, **kwargs)


def logs_cli(argv: list[str], **kwargs: Any) -> int:
    """Entry point for `infra logs`."""
    return run("logs", argv, **kwargs)


def rollback_cli(argv: list[str], **kwargs: Any) -> int:
    """Entry point for `infra rollback`."""
    return run("rollback", argv, **kwargs)
