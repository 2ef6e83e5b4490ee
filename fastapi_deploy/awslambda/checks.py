"""The lambda target's `infra verify` check (doctor: the common checks; ``ecr_only`` in its TARGET)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi_deploy.ops.rollout import Poller
    from fastapi_deploy.verify import Clients, Login


def rollout(outputs: Mapping[str, Any], clients: Clients, login: Login) -> Poller:
    """`infra verify`: the alias points at a version whose state is Active."""
    from fastapi_deploy.ops.rollout import LambdaRollout

    return LambdaRollout(
        clients.aws_client("lambda", outputs["region"]),
        outputs["function_name"],
        outputs.get("alias_name"),
        outputs.get("image"),
    )
