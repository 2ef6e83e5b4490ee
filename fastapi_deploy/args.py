"""Arg types shared by the four components (``TypedDict``, read by the component-provider analyzer).

No ``from __future__ import annotations`` here or in the Args modules: the analyzer reads the
annotations at runtime and needs real types, not strings. Field docstrings (the string under each field)
become the schema's descriptions and docs/components.md.
"""

from collections.abc import Sequence
from typing import TypedDict

import pulumi

try:
    from typing import NotRequired
except ImportError:  # pragma: no cover - Python < 3.11
    from typing import NotRequired


class HealthArgs(TypedDict):
    """Liveness (process up, no dependencies) and readiness (dependencies reachable) paths."""

    liveness_path: NotRequired[str]
    """Process up, no dependencies checked; a plain path starting with ``/`` (default ``/health``)."""
    readiness_path: NotRequired[str]
    """Dependencies reachable; a plain path starting with ``/`` (default ``/ready``)."""


class ScalingArgs(TypedDict):
    """Replica bounds; ``max`` feeds the database connection budget."""

    min: int
    """Fewest replicas (``min <= desired <= max``)."""
    max: int
    """Most replicas; the connection budget is checked against it."""
    desired: NotRequired[int]
    """Replicas at deploy time (default: ``min``, at least 1)."""


class DatabaseArgs(TypedDict):
    """The connection budget: ``max_connections - reserved_connections``."""

    max_connections: NotRequired[int]
    """PostgreSQL ``max_connections`` (default 100)."""
    reserved_connections: NotRequired[int]
    """Kept free for psql, migrations and monitoring (default 10)."""
    migrate: NotRequired[str]
    """``on_start``: every new task/instance migrates under an advisory lock before its workers fork;
    ``release``: the deploy runs ``python -m app.migrate`` once with the new image, secrets and network
    before the new release takes traffic, and a failed migration fails ``pulumi up`` (ECS: a one-off task;
    Cloud Run: a Job execution; Lambda: an invocation of the new version before the alias moves; VPS: the
    release gate); ``manual``: the operator runs ``python -m app.migrate``. Default: ``on_start``, on Lambda
    ``manual`` (``on_start`` is refused there)."""


class RuntimeOverridesArgs(TypedDict):
    """Overrides of the computed runtime tuning (leave unset to let the tuning decide)."""

    workers: NotRequired[int]
    """Gunicorn workers per replica."""
    db_pool_size: NotRequired[int]
    """SQLAlchemy pool size per worker."""
    db_max_overflow: NotRequired[int]
    """SQLAlchemy max overflow per worker."""
    db_pool_timeout_s: NotRequired[float]
    """Seconds a request waits for a pooled connection."""


class AwsAlertsArgs(TypedDict):
    """Who CloudWatch alarms notify (an SNS topic is created unless ``sns_topic_arn`` is given)."""

    emails: NotRequired[list[str]]
    """Email subscriptions (each confirms by mail)."""
    webhook_url: NotRequired[str]
    """HTTPS endpoint subscribed to the topic."""
    sns_topic_arn: NotRequired[str]
    """An existing SNS topic to notify instead of creating one, in the component's region and partition
    (CloudWatch alarms notify only a topic of their own region; checked before anything registers)."""


class GcpAlertsArgs(TypedDict):
    """Who Cloud Monitoring alert policies notify."""

    emails: NotRequired[list[str]]
    """Email notification channels (created)."""
    gcp_notification_channels: NotRequired[pulumi.Input[Sequence[pulumi.Input[str]]]]
    """Existing channels (``projects/P/notificationChannels/ID``): a list (entries may be Outputs such as
    ``gcp.monitoring.NotificationChannel.name``) or an Output of a list; names are checked when known."""


__all__ = [
    "AwsAlertsArgs",
    "DatabaseArgs",
    "GcpAlertsArgs",
    "HealthArgs",
    "NotRequired",
    "RuntimeOverridesArgs",
    "ScalingArgs",
]
