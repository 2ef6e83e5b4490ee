"""`infra verify`: after `pulumi up`, prove the service is actually up.

Reads the stack outputs (contract section 2), waits (bounded) until the platform reports the new version
stable, smoke-tests the liveness and readiness endpoints over HTTP(S), and reports the image digest that
is actually running. Exit 0 when all of that holds, 1 with the platform's own reason when not,
2 for unusable arguments/outputs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi_deploy import registry
from fastapi_deploy.ops import access
from fastapi_deploy.ops.outputs import OutputsError, read_outputs, validate_outputs
from fastapi_deploy.ops.rollout import Observation, Poller, digest_of, wait_until_stable
from fastapi_deploy.ops.smoke import is_plain_http_to_remote, smoke_test

Printer = Callable[[str], None]


@dataclass
class Clients:
    """Where verify gets its platform clients; tests pass clients whose transport is faked."""

    aws: Callable[[str, str], Any] | None = None
    cloudrun_services: Any = None
    cloudrun_revisions: Any = None

    def aws_client(self, service: str, region: str) -> Any:
        if self.aws is not None:
            return self.aws(service, region)
        import boto3

        return boto3.client(service, region_name=region)  # type: ignore[call-overload]

    def cloudrun(self) -> tuple[Any, Any]:
        if self.cloudrun_services is None or self.cloudrun_revisions is None:
            from google.cloud import run_v2

            self.cloudrun_services = self.cloudrun_services or run_v2.ServicesClient()
            self.cloudrun_revisions = self.cloudrun_revisions or run_v2.RevisionsClient()
        return self.cloudrun_services, self.cloudrun_revisions


@dataclass(frozen=True)
class Login:
    """How verify logs in to a host the platform is reached over (SSH); unused by managed platforms."""

    ssh_user: str = "deploy"
    ssh_port: int = 22
    ssh_identity: str | None = None


def build_poller(
    outputs: dict[str, Any],
    clients: Clients,
    *,
    ssh_user: str = "deploy",
    ssh_port: int = 22,
    ssh_identity: str | None = None,
) -> Poller:
    """The target's rollout check (``Target.verify_poller``) for these outputs."""
    spec = registry.get(outputs["target"])
    if spec.verify_poller is None:
        raise registry.UnknownTarget(f"target {spec.key} has no verify check")
    return spec.verify_poller(outputs, clients, Login(ssh_user, ssh_port, ssh_identity))


def run_verify(
    outputs: dict[str, Any],
    *,
    clients: Clients | None = None,
    timeout_s: float = 600.0,
    interval_s: float = 10.0,
    smoke: bool = True,
    smoke_attempts: int = 3,
    smoke_backoff_s: float = 2.0,
    ssh_user: str = "deploy",
    ssh_port: int = 22,
    ssh_identity: str | None = None,
    id_token: str | None = None,
    out: Printer = print,
) -> int:
    """Wait for stability, smoke-test, report the running digest. Returns the exit code."""
    clients = clients or Clients()
    target = outputs["target"]
    out(f"verify: {target} stack, expecting image {outputs['image']}")
    poller = build_poller(outputs, clients, ssh_user=ssh_user, ssh_port=ssh_port, ssh_identity=ssh_identity)
    obs: Observation = wait_until_stable(poller, timeout_s=timeout_s, interval_s=interval_s, progress=out)
    if obs.state != "stable":
        out(f"FAILED: {obs.summary}")
        if obs.reason:
            out("platform says:")
            for line in obs.reason.splitlines():
                out(f"  {line}")
        _report_images(obs, outputs, out)
        return 1
    failed = False
    if smoke:
        url = str(outputs["url"])
        if is_plain_http_to_remote(url):
            out(f"warning: {url} is plain HTTP; the smoke test cannot prove TLS works")
        paths = [outputs["health_path"], outputs["ready_path"]]
        results = smoke_test(
            url, paths, attempts=smoke_attempts, bearer_token=id_token, backoff_s=smoke_backoff_s
        )
        if not id_token and any(r.status in (401, 403) for r in results):
            # A non-public service: retry once with a token when the target mints one (Target.smoke_token).
            token = _smoke_token(outputs)
            if token:
                out("the service requires authentication; retrying with an ID token from your credentials")
                results = smoke_test(
                    url, paths, attempts=smoke_attempts, bearer_token=token, backoff_s=smoke_backoff_s
                )
        for res in results:
            out(res.render())
            failed = failed or not res.ok
    _report_images(obs, outputs, out)
    if failed:
        out("FAILED: the platform reports the release stable but the smoke test did not pass")
        return 1
    out("verified: platform stable, health and readiness answer 200")
    return 0


def _smoke_token(outputs: dict[str, Any]) -> str | None:
    """A bearer token for a service that refuses anonymous calls, when the target can mint one
    (``Target.smoke_token``: Cloud Run with the caller's ADC)."""
    spec = registry.find(outputs.get("target"))
    if spec is None or spec.smoke_token is None:
        return None
    return spec.smoke_token(outputs)


def _report_images(obs: Observation, outputs: dict[str, Any], out: Printer) -> None:
    expected = digest_of(outputs.get("image"))
    for image in obs.running_images:
        match = (
            ""
            if expected is None
            else (" (= stack output)" if digest_of(image) == expected else " (DIFFERS)")
        )
        out(f"running image: {image}{match}")
    if not obs.running_images:
        out("running image: unknown (the platform did not report one)")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="infra verify",
        description="After a deploy: wait until the platform reports the release stable, then smoke-test it.",
        epilog=access.EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--stack", help="stack name (outputs read via `pulumi stack output` when the CLI exists)")
    p.add_argument("--outputs", metavar="FILE", help="stack outputs JSON file (`pulumi stack output --json`)")
    p.add_argument("--outputs-json", metavar="JSON", help="stack outputs as a JSON object")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for stability (default 600)")
    p.add_argument("--interval", type=float, default=10.0, help="seconds between polls (default 10)")
    p.add_argument("--no-smoke", action="store_true", help="skip the HTTP smoke test")
    p.add_argument(
        "--id-token",
        help="bearer token for a non-public Cloud Run service (e.g. $(gcloud auth print-identity-token))",
    )
    p.add_argument(
        "--stacks-dir",
        default=None,
        help="where Pulumi.<stack>.yaml lives (VPS ssh user/port; default: stackConfigDir of Pulumi.yaml)",
    )
    p.add_argument(
        "--ssh-user", help="VPS ssh user (default: app.vps.ssh_user of the stack file, else deploy)"
    )
    p.add_argument(
        "--ssh-identity", metavar="FILE", help="VPS ssh private key file (default: your ssh agent)"
    )
    return p


def cli(argv: list[str], *, clients: Clients | None = None, out: Printer = print) -> int:
    """Entry point for `infra verify ...` (dispatched by fastapi_deploy/cli.py)."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:
        return 0 if exc.code == 0 else 2
    if args.timeout <= 0 or args.interval <= 0:
        print("--timeout and --interval must be positive", file=sys.stderr)
        return 2
    try:
        outputs, source = read_outputs(args.stack, args.outputs, args.outputs_json)
        validate_outputs(outputs, source)
    except OutputsError as exc:
        print(f"infra verify: {exc}", file=sys.stderr)
        return 2
    out(f"outputs from {source}")
    ssh_user, ssh_port = _ssh_login(args.stack, args.stacks_dir)
    return access.unreachable_is_exit_3(
        lambda: run_verify(
            outputs,
            clients=clients,
            timeout_s=args.timeout,
            interval_s=args.interval,
            smoke=not args.no_smoke,
            ssh_user=args.ssh_user or ssh_user,
            ssh_port=ssh_port,
            ssh_identity=args.ssh_identity,
            id_token=args.id_token,
            out=out,
        ),
        "infra verify",
        f"stack {args.stack}" if args.stack else f"the stack in {source}",
    )


def _ssh_login(stack: str | None, stacks_dir: str | None) -> tuple[str, int]:
    """ssh user/port from the stack file when there is one (outputs carry only the host); the stack file
    is found like `infra plan` finds it (``--stacks-dir``, else the project's stackConfigDir)."""
    from fastapi_deploy import project
    from fastapi_deploy.config import ConfigError, load_stack_file

    if not stack:
        return "deploy", 22
    try:
        path = project.stack_path(stack, stacks_dir)
    except project.ProjectNotFound:
        return "deploy", 22
    if path.is_file():
        try:
            cfg = load_stack_file(path)
        except ConfigError:
            return "deploy", 22
        login = registry.get(cfg.target).verify_login
        if login is not None:
            return login(cfg)
    return "deploy", 22
