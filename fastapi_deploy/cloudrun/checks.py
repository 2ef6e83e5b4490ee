"""The cloudrun target's `infra verify` checks (doctor: the common checks)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi_deploy.ops.rollout import Poller
    from fastapi_deploy.verify import Clients, Login


def rollout(outputs: Mapping[str, Any], clients: Clients, login: Login) -> Poller:
    """`infra verify`: the latest revision is ready and serves all traffic."""
    from fastapi_deploy.ops.rollout import CloudRunRollout

    services, revisions = clients.cloudrun()
    return CloudRunRollout(
        services,
        revisions,
        outputs["project"],
        outputs["region"],
        outputs["service_name"],
        outputs.get("image"),
    )


def id_token(outputs: Mapping[str, Any]) -> str | None:
    """An ID token for the service URL when the caller's ADC can mint one (service accounts can; user
    credentials cannot: then `--id-token` is the way). Public services ignore it."""
    try:
        import google.auth.transport.requests
        import google.oauth2.id_token

        return str(
            google.oauth2.id_token.fetch_id_token(
                google.auth.transport.requests.Request(), str(outputs["url"])
            )
        )
    except Exception:  # no ADC / user credentials: fall back to an unauthenticated request
        return None
