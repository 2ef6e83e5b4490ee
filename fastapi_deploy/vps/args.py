"""Args of :class:`fastapi_deploy.vps.VpsService` (TypedDicts).

No ``from __future__ import annotations``: the schema analyzer needs real types
(see fastapi_deploy/args.py).
"""

from typing import TypedDict

import pulumi

from fastapi_deploy.args import DatabaseArgs, HealthArgs, NotRequired, RuntimeOverridesArgs


class VpsRegistryArgs(TypedDict):
    """Credentials the host uses to pull the image."""

    server: str
    """Registry host, e.g. ``ghcr.io``."""
    username: str
    """Registry user."""
    password_secret: NotRequired[str]
    """Secret reference to the password or token."""


class VpsServiceArgs(TypedDict):
    """Inputs of one app container on a Docker host reached over SSH, with Caddy in front for TLS."""

    image: pulumi.Input[str]
    """Image reference by digest."""
    host: str
    """Hostname or IP address of the Docker host."""
    domain: str
    """Public host name Caddy serves (and gets a certificate for)."""
    ssh_port: NotRequired[int]
    """SSH port (default 22)."""
    ssh_user: NotRequired[str]
    """SSH user allowed to run Docker (default ``deploy``)."""
    ssh_key_secret: NotRequired[str]
    """Secret reference to the private key (default: the local ssh-agent)."""
    cpus: NotRequired[float]
    """CPUs given to the app container (default 1)."""
    memory: NotRequired[int]
    """Memory limit of the app container in MiB (default 1024)."""
    port: NotRequired[int]
    """Container port, 1024..65535 (default 8000)."""
    registry: NotRequired[VpsRegistryArgs]
    """Registry credentials (for a private image)."""
    acme_email: NotRequired[str]
    """Contact email for Caddy's ACME account."""
    environment: NotRequired[str]
    """APP_ENV: ``production`` (default), ``staging`` or ``development``."""
    env: NotRequired[dict[str, pulumi.Input[str]]]
    """Plain environment variables (the tuning's variables are added and win)."""
    secrets: NotRequired[dict[str, str]]
    """Secret references by env name (any scheme); read at deploy time into the container's env file."""
    health: NotRequired[HealthArgs]
    """Liveness and readiness paths."""
    database: NotRequired[DatabaseArgs]
    """Database connection budget."""
    request_timeout_s: NotRequired[int]
    """Longest request in seconds (default 30)."""
    max_request_body_bytes: NotRequired[int]
    """Largest request body the app (and Caddy) accept."""
    overrides: NotRequired[RuntimeOverridesArgs]
    """Overrides of the computed tuning (workers, pool)."""
    repository_url: NotRequired[pulumi.Input[str]]
    """ECR repository the image was just pushed to (the host then logs in to ECR with a 12-hour token)."""
    gcp_project: NotRequired[str]
    """Project of ``gcp:`` secret references that name none."""
    tags: NotRequired[dict[str, str]]
    """Labels on the container."""
