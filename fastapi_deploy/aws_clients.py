"""boto3 clients for code that runs inside `pulumi up` (the AWS targets' release gates): every call has
bounded network timeouts, so a bounded wait stays bounded. boto3 is imported on first use."""

from __future__ import annotations

from typing import Any


def bounded_client(service: str, region: str) -> Any:
    """A boto3 client with bounded network timeouts and standard retries."""
    import boto3
    from botocore.config import Config

    cfg = Config(connect_timeout=10, read_timeout=20, retries={"max_attempts": 3, "mode": "standard"})
    return boto3.client(service, region_name=region, config=cfg)  # type: ignore[call-overload]
