"""The SNS side of ``app.alerts`` on the AWS targets (ECS, Lambda).

One topic per stack (``<name>-alerts``) unless ``alerts.sns_topic_arn`` names an existing one; the
emails and the webhook in ``app.alerts`` are subscribed to whichever topic is used. Every CloudWatch
alarm of the stack gets that topic as its ``alarm_actions`` and ``ok_actions`` (so the person hears
both "firing" and "recovered").

An email subscription stays ``PendingConfirmation`` until the address clicks the link AWS mails; an
``https`` subscription until the endpoint confirms (it receives a ``SubscriptionConfirmation`` POST).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pulumi
import pulumi_aws as aws


def alert_actions(
    name: str,
    emails: Sequence[str],
    webhook_url: str | None,
    existing_topic_arn: str | None,
    tags: dict[str, str],
    opts: pulumi.ResourceOptions,
) -> list[Any]:
    """The alarm action list: ``[]`` when ``alerts`` names nobody, else ``[topic ARN]``.

    Creates the topic (when no ARN is given) and one subscription per email and for the webhook.
    """
    if not (emails or webhook_url or existing_topic_arn):
        return []
    topic_arn: Any
    if existing_topic_arn:
        topic_arn = existing_topic_arn
    else:
        topic = aws.sns.Topic(
            f"{name}-alerts",
            display_name=f"{name} alarms",
            tags=tags,
            opts=opts,
        )
        topic_arn = topic.arn
        # CloudWatch publishes to the topic; a topic policy is only needed for encrypted topics.
    for i, email in enumerate(emails):
        aws.sns.TopicSubscription(
            f"{name}-alerts-email-{i}",
            topic=topic_arn,
            protocol="email",
            endpoint=email,
            opts=opts,
        )
    if webhook_url:
        aws.sns.TopicSubscription(
            f"{name}-alerts-webhook",
            topic=topic_arn,
            protocol="https",
            endpoint=webhook_url,
            endpoint_auto_confirms=False,
            opts=opts,
        )
    return [topic_arn]
