"""The vps target's `infra doctor` and `infra verify` checks: the host over SSH, the container."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi_deploy.doctor import DoctorContext
    from fastapi_deploy.ops.findings import Finding
    from fastapi_deploy.ops.rollout import Poller
    from fastapi_deploy.verify import Clients, Login
    from fastapi_deploy.vps.config import VpsConfig


def secret_refs(cfg: Any) -> list[tuple[str, str]]:
    """References the vps section holds besides app.secrets (checked by doctor like them)."""
    c: VpsConfig = cfg
    refs = []
    if c.vps.ssh_key_secret:
        refs.append(("app.vps.ssh_key_secret", c.vps.ssh_key_secret))
    if c.vps.registry and c.vps.registry.password_secret:
        refs.append(("app.vps.registry.password_secret", c.vps.registry.password_secret))
    return refs


def check_host(ctx: DoctorContext) -> list[Finding]:
    """SSH as the deploy will: with the key from app.vps.ssh_key_secret when set, else the user's agent."""
    from fastapi_deploy.doctor import read_secret_value
    from fastapi_deploy.ops import vps
    from fastapi_deploy.ops.findings import blocking
    from fastapi_deploy.secret_refs import SecretRef

    cfg: VpsConfig = ctx.cfg  # type: ignore[assignment]
    findings = ctx.findings
    key_ref = cfg.vps.ssh_key_secret
    if key_ref is None:
        return [vps.check_vps_host(cfg.vps.ssh_user, cfg.vps.host, "app.vps.host", port=cfg.vps.ssh_port)]
    if any(f.where == "app.vps.ssh_key_secret" and f.severity.value != "ok" for f in findings) or not any(
        f.where == "app.vps.ssh_key_secret" for f in findings
    ):
        return [
            blocking(
                "vps-ssh-docker",
                "not tried: the SSH key in app.vps.ssh_key_secret could not be read (see above)",
                "app.vps.host",
            )
        ]
    material = read_secret_value(SecretRef.parse(key_ref), cfg, ctx.clients)
    with tempfile.TemporaryDirectory(prefix="infra-doctor-ssh-") as tmp:
        path = os.path.join(tmp, "id")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # ssh refuses group/world-readable
        with os.fdopen(fd, "w") as f:
            f.write(material if material.endswith("\n") else material + "\n")
        return [
            vps.check_vps_host(
                cfg.vps.ssh_user,
                cfg.vps.host,
                "app.vps.host",
                port=cfg.vps.ssh_port,
                identity_file=path,
                key_label="<key of app.vps.ssh_key_secret>",
            )
        ]


def rollout(outputs: Mapping[str, Any], clients: Clients, login: Login) -> Poller:
    """`infra verify`: the container runs the new image and Docker reports it healthy."""
    from fastapi_deploy.ops.rollout import VpsRollout

    return VpsRollout(
        outputs.get("ssh_user") or login.ssh_user,
        outputs["host"],
        outputs["container_name"],
        outputs.get("image"),
        port=login.ssh_port,
        identity_file=login.ssh_identity,
    )


def login(cfg: Any) -> tuple[str, int]:
    """ssh user/port from the stack file (outputs carry only the host)."""
    c: VpsConfig = cfg
    return c.vps.ssh_user, c.vps.ssh_port
