"""The client address from X-Forwarded-For by hop count (FORWARDED_TRUSTED_HOPS), for platforms whose
proxies cannot be named by address.

uvicorn's proxy-headers support (FORWARDED_ALLOW_IPS) trusts X-Forwarded-For only from peers it can list
and walks the header right to left past the listed ones: right on ECS and the VPS, where the ALB / Caddy
have private addresses. On Cloud Run the proxies' addresses are Google's and unpublished, and `*` makes
uvicorn take the LEFTMOST entry — the one the client writes itself, since Google's front end appends
what it saw (docs/service.md "Client address"). What is known there is how MANY entries Google's proxies
append: the client's address is the N-th entry from the right, N = FORWARDED_TRUSTED_HOPS.

:class:`TrustedHopsMiddleware` sets ``scope["client"]`` (and ``scope["scheme"]`` from
X-Forwarded-Proto, as uvicorn does) from that entry, before anything reads the address (it is the
outermost middleware: the access log and the login limiter see the rewritten client). A request whose
header has fewer than N entries, or whose N-th entry is not an IP address, did not come through the
expected proxies: it keeps its TCP peer. When the setting is on, gunicorn_conf.py turns uvicorn's own
rewriting off (it would already have replaced the peer with the leftmost entry under `*`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]

_SCHEMES = frozenset({"http", "https", "ws", "wss"})
_MAX_PORT = 65535


def _host_port(entry: str) -> tuple[str, int] | None:
    """``203.0.113.9``, ``203.0.113.9:4711``, ``2001:db8::1``, ``[2001:db8::1]:443`` -> (canonical
    address, port or 0); None when the entry is not an IP address (a name, ``unknown``, garbage)."""
    host, port = entry, 0
    if entry.startswith("["):
        end = entry.find("]")
        if end == -1:
            return None
        host, rest = entry[1:end], entry[end + 1 :]
        if rest:
            if not rest.startswith(":") or not rest[1:].isdigit():
                return None
            port = int(rest[1:])
    elif entry.count(":") == 1:  # IPv4 with a port (a bare IPv6 address has at least two colons)
        host, _, raw_port = entry.partition(":")
        if not raw_port.isdigit():
            return None
        port = int(raw_port)
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if port > _MAX_PORT:
        return None
    # Canonical text: one client is one rate-limit key however its address was spelled.
    return str(address), port


def client_from_forwarded_for(values: Iterable[bytes], hops: int) -> tuple[str, int] | None:
    """The address ``hops`` entries from the right of the X-Forwarded-For header(s) (several headers are
    one list, in order), or None: no header, fewer entries than hops, or not an IP address there."""
    if hops < 1:
        return None
    raw = [v.decode("latin-1") for v in values]
    if not raw:
        return None
    entries = [e.strip() for e in ",".join(raw).split(",")]
    if len(entries) < hops:
        return None
    return _host_port(entries[-hops])


class TrustedHopsMiddleware:
    """Pure ASGI: the client is the ``hops``-th X-Forwarded-For entry from the right (see the module)."""

    def __init__(self, app: ASGIApp, hops: int) -> None:
        if hops < 1:
            raise ValueError("hops must be >= 1")
        self.app = app
        self.hops = hops

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            forwarded_for: list[bytes] = []
            proto: bytes | None = None
            for name, value in scope.get("headers") or ():
                if name == b"x-forwarded-for":
                    forwarded_for.append(value)
                elif name == b"x-forwarded-proto":
                    proto = value
            client = client_from_forwarded_for(forwarded_for, self.hops)
            if client is not None:  # came through the expected proxies
                scope["client"] = client
                if proto is not None:
                    # The last proxy's word; a list ("https, http") ends with what the nearest proxy added.
                    scheme = proto.decode("latin-1").split(",")[-1].strip().lower()
                    if scheme in _SCHEMES:
                        if scope["type"] == "websocket":
                            scheme = scheme.replace("http", "ws")
                        scope["scheme"] = scheme
        await self.app(scope, receive, send)
