"""VPS preflight over the user's own `ssh` client: the host answers and the Docker engine is usable."""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Sequence

from fastapi_deploy.ops.findings import Finding, blocking, ok, warning

# The Docker daemon API version below which pulumi-docker's provider and `--health-*` flags misbehave;
# Docker 20.10 (API 1.41) is the oldest release still receiving security fixes from distributions.
MIN_DOCKER_MAJOR = 20
SSH_TIMEOUT_S = 20.0


def ssh_command(user: str, host: str, port: int = 22, identity_file: str | None = None) -> list[str]:
    """Non-interactive ssh: BatchMode so a missing key fails instead of prompting a CI job forever."""
    cmd = ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5"]
    if port != 22:
        cmd += ["-p", str(port)]
    if identity_file:
        # Only this key, as the deploy's docker provider uses it: an agent key must not mask a bad one.
        cmd += ["-i", identity_file, "-o", "IdentitiesOnly=yes"]
    return [*cmd, f"{user}@{host}"]


def run_ssh(argv: Sequence[str], timeout: float = SSH_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)


def check_vps_host(
    user: str,
    host: str,
    where: str,
    *,
    port: int = 22,
    identity_file: str | None = None,
    key_label: str | None = None,
) -> Finding:
    """`ssh user@host docker version`: classify the failure into the one fix that unblocks the deploy.

    `identity_file` is a temporary file; fixes show `key_label` (e.g. `<key of app.vps.ssh_key_secret>`)
    instead of its soon-deleted path.
    """
    check = "vps-ssh-docker"
    target = f"{user}@{host}" + (f":{port}" if port != 22 else "")
    base = ssh_command(user, host, port, identity_file)
    argv = [*base, "docker", "version", "--format", "{{.Server.Version}}"]
    shown = ssh_command(user, host, port, key_label if identity_file else None)
    login = shlex.join(shown)
    try:
        proc = run_ssh(argv)
    except FileNotFoundError:
        return blocking(check, "no `ssh` client on PATH", where, "apt-get install -y openssh-client")
    except subprocess.TimeoutExpired:
        return blocking(
            check,
            f"ssh to {target} did not finish within {SSH_TIMEOUT_S:.0f} s",
            where,
            f"{login} true   # check host, port and firewall",
        )
    err = (proc.stderr or "").strip()
    low = err.lower()
    out = (proc.stdout or "").strip()
    if proc.returncode == 0 and out:
        major = _major(out)
        if major is not None and major < MIN_DOCKER_MAJOR:
            return warning(
                check,
                f"Docker {out} on {target} is older than {MIN_DOCKER_MAJOR}.10",
                where,
                f"{login} 'sudo apt-get install -y docker-ce'   # or your distribution's docker package",
            )
        return ok(check, f"{target} answers over SSH; Docker server {out}", where)
    if "host key verification failed" in low or "remote host identification has changed" in low:
        return blocking(
            check,
            f"host key of {host} is unknown or changed: {_last(err)}",
            where,
            f"ssh-keyscan -p {port} -H {host} >> ~/.ssh/known_hosts   # after checking the fingerprint",
        )
    if "permission denied (" in low:
        return blocking(
            check,
            f"SSH login as {user} refused (no usable key; BatchMode forbids passwords): {_last(err)}",
            where,
            (
                f"append the public half of {key_label} to ~{user}/.ssh/authorized_keys on {host}"
                if identity_file and key_label
                else f"ssh-copy-id -p {port} {user}@{host}"
            ),
        )
    if any(s in low for s in ("could not resolve hostname", "name or service not known")):
        return blocking(check, f"cannot resolve {host}: {_last(err)}", where, f"dig +short {host}")
    if any(
        s in low for s in ("connection refused", "timed out", "no route to host", "network is unreachable")
    ):
        return blocking(
            check,
            f"cannot connect to {host}:{port}: {_last(err)}",
            where,
            f"nc -vz {host} {port}   # is sshd listening? does the firewall allow your address?",
        )
    if proc.returncode == 127 or "command not found" in low or "no such file" in low:
        return blocking(
            check,
            f"Docker is not installed on {host}",
            where,
            f"{login} 'sudo apt-get install -y docker.io && sudo systemctl enable --now docker'",
        )
    if "permission denied while trying to connect to the docker daemon" in low:
        return blocking(
            check,
            f"{user} may not use the Docker socket on {host}",
            where,
            f"{login} 'sudo usermod -aG docker {user}'   # then log in again",
        )
    if "cannot connect to the docker daemon" in low or "is the docker daemon running" in low:
        return blocking(
            check,
            f"Docker is installed on {host} but the daemon is not running",
            where,
            f"{login} 'sudo systemctl enable --now docker'",
        )
    return blocking(
        check,
        f"`docker version` over SSH failed with exit {proc.returncode}: {_last(err) or out}",
        where,
        f"{login} docker version",
    )


def _last(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


def _major(version: str) -> int | None:
    head = version.split(".", 1)[0]
    return int(head) if head.isdigit() else None
