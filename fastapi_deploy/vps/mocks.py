"""The vps target's answers for the recording mocks (fastapi_deploy/mocks.py): the Docker container
and network on the host."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def _fake_hex(*parts: str, n: int = 64) -> str:
    # Imported when a mock answers, so registering the target never imports pulumi.
    from fastapi_deploy.mocks import fake_hex

    return fake_hex(*parts, n=n)


def _container_container(
    m: Any, name: str, inputs: dict[str, Any], out: dict[str, Any], physical: str
) -> str | None:
    rid: str | None = None
    out["containerLogs"] = None
    # Pulumi auto-names a container without `name` (resource name + random suffix); without this
    # the VPS stack's `container_name` output printed as null in `infra plan`.
    out["name"] = physical
    rid = _fake_hex(name)
    return rid


def _network_network(
    m: Any, name: str, inputs: dict[str, Any], out: dict[str, Any], physical: str
) -> str | None:
    rid: str | None = None
    rid = _fake_hex(name, n=12)
    return rid


RESOURCES: dict[str, Callable[..., str | None]] = {
    "docker:index/container:Container": _container_container,
    "docker:index/network:Network": _network_network,
}

INVOKES: dict[str, Callable[[Any, dict[str, Any]], dict[str, Any]]] = {}
