"""The vps target's stack-config models (``app.vps`` and the ``target: vps`` stack)."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from fastapi_deploy.config import (
    _GCP_MANAGED_ZONE,
    AppConfigBase,
    MemoryMiB,
    Scaling,
    _Model,
    parse_memory_mib,
    route53_zone_problem,
)
from fastapi_deploy.secret_refs import SecretRef, SecretRefError


class RegistryAuth(_Model):
    """Credentials the VPS uses to pull the image (password is a secret reference)."""

    server: str
    """Registry host, e.g. ``ghcr.io``."""
    username: str
    """Registry user."""
    password_secret: str | None = None
    """Secret reference to the password or token."""

    @field_validator("password_secret")
    @classmethod
    def _ref(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                SecretRef.parse(v)
            except SecretRefError as exc:
                raise ValueError(str(exc)) from None
        return v


class VpsSettings(_Model):
    """An existing Linux host reached over SSH, running Docker."""

    host: str
    """Hostname or IP address."""
    ssh_port: int = Field(default=22, ge=1, le=65535)
    """SSH port."""
    ssh_user: str = "deploy"
    """SSH user (must be allowed to run Docker)."""
    ssh_key_secret: str | None = None
    """Reference to the private key (else the local ssh-agent is used)."""
    cpus: float = Field(default=1.0, gt=0, le=256)
    """CPUs of the host given to the app container (drives the worker count)."""
    memory: MemoryMiB = 1024
    """Memory limit of the app container: MiB, or a string like ``512Mi``, ``2Gi``."""
    registry: RegistryAuth | None = None
    acme_email: str | None = None
    """Contact email for Caddy's ACME account."""
    zone: str | None = None
    """Optional DNS zone of ``app.domain`` where the deployer makes the record to ``host`` (A for an IPv4
    address, AAAA for IPv6, CNAME for a hostname): a Route 53 hosted zone id or name, or a Cloud DNS
    managed zone name (``zone_provider``). Without it the record is yours; Caddy's ACME works either way."""
    zone_provider: Literal["route53", "clouddns"] | None = None
    """Where ``zone`` lives: ``route53`` (needs ``aws:region``) or ``clouddns`` (needs ``gcp:project``)."""

    @field_validator("memory", mode="before")
    @classmethod
    def _mem(cls, v: Any) -> int:
        return parse_memory_mib(v)

    @field_validator("ssh_key_secret")
    @classmethod
    def _ref(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                SecretRef.parse(v)
            except SecretRefError as exc:
                raise ValueError(str(exc)) from None
        return v

    @field_validator("host")
    @classmethod
    def _host(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9.\-:]+", v):
            raise ValueError(f"{v!r} is not a hostname or IP address")
        return v

    @property
    def dns_record_type(self) -> Literal["A", "AAAA", "CNAME"]:
        """The record ``app.domain`` gets for ``host``: A (IPv4), AAAA (IPv6) or CNAME (a hostname)."""
        import ipaddress

        try:
            return "A" if ipaddress.ip_address(self.host).version == 4 else "AAAA"
        except ValueError:
            return "CNAME"


class VpsConfig(AppConfigBase):
    """``target: vps`` — Docker over SSH on one host, Caddy in front for TLS.

    ``domain`` is required. Secrets: any scheme, read at deploy time (a ``gcp:`` reference needs its
    project: in the reference or the stack's ``gcp:project``).
    """

    target: Literal["vps"] = "vps"
    scaling: Scaling = Field(default_factory=lambda: Scaling(min=1, max=1, desired=1))
    """Fixed: one app container (min 1, max 1)."""
    vps: VpsSettings

    def _alerts_fit_the_target(self) -> None:
        a = self.alerts
        if a.emails or a.webhook_url or a.sns_topic_arn or a.gcp_notification_channels:
            raise ValueError(
                "alerts: a VPS has no managed alarms to notify (docs/targets.md, alarms); remove app.alerts "
                "and monitor the host with the external checks described there"
            )

    @model_validator(mode="after")
    def _vps_rules(self) -> VpsConfig:
        for key, ref in self.secret_refs().items():
            if ref.scheme == "gcp" and not ref.project and not self.providers.get("gcp:project"):
                raise ValueError(
                    f"secrets.{key}: a gcp: reference on a VPS needs its project: write "
                    f"gcp:projects/PROJECT/secrets/{ref.name} or set gcp:project in the stack file"
                )
        if self.scaling.max != 1 or self.scaling.min > 1:
            raise ValueError("scaling: a VPS runs one app container; use min 1, max 1 (or another target)")
        if self.domain is None:
            raise ValueError("domain: required for target vps (Caddy obtains its TLS certificate for it)")
        zone, provider = self.vps.zone, self.vps.zone_provider
        if (zone is None) != (provider is None):
            raise ValueError(
                "vps.zone_provider: set vps.zone and vps.zone_provider together (route53: a hosted zone id "
                "or name; clouddns: a managed zone name)"
            )
        if zone is not None and provider == "route53":
            problem = route53_zone_problem(zone, self.domain, "vps.zone")
            if problem:
                raise ValueError(problem)
            if self.vps.dns_record_type == "CNAME" and zone.rstrip(".").lower() == self.domain:
                raise ValueError(
                    f"vps.host: {self.vps.host!r} is a hostname and app.domain is the zone apex, where DNS "
                    "allows no CNAME; use the host's IP address in vps.host"
                )
        if zone is not None and provider == "clouddns":
            if not _GCP_MANAGED_ZONE.match(zone):
                raise ValueError(f"vps.zone: {zone!r} is not a Cloud DNS managed zone name")
            if not self.providers.get("gcp:project"):
                raise ValueError("vps.zone: a Cloud DNS zone needs gcp:project in the stack file")
        return self
