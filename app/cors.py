"""Starlette's CORSMiddleware, without its per-request cost for requests that carry no ``Origin``.

Starlette builds a ``Headers`` of the request and a ``MutableHeaders`` of the response for every request,
even when there is no ``Origin`` header (health checks, server-to-server calls, same-origin navigation),
where all it does is append ``Vary: Origin``. That was ~3-4 % of a worker's CPU on /health
(BENCHMARKS.md §10). Here a request without ``Origin`` gets exactly that ``Vary`` header from a scan of
the raw headers; anything with an ``Origin`` (simple requests and preflights) goes to Starlette's code.
"""

from __future__ import annotations

from starlette.middleware.cors import CORSMiddleware as StarletteCORSMiddleware

from app.observability import Message, Receive, Scope, Send


def _add_vary_origin(headers: list[tuple[bytes, bytes]]) -> None:
    """What Starlette does for a request without Origin: ``headers["Vary"] = ", ".join([*getlist("Vary"),
    "Origin"])`` - the existing Vary values joined into the first one, any others dropped."""
    found = [i for i, (name, _) in enumerate(headers) if name == b"vary"]
    if not found:
        headers.append((b"vary", b"Origin"))
        return
    value = b", ".join([*(headers[i][1] for i in found), b"Origin"])
    headers[found[0]] = (b"vary", value)
    for i in reversed(found[1:]):
        del headers[i]


class CORSMiddleware(StarletteCORSMiddleware):
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for name, _ in scope["headers"]:
                if name == b"origin":
                    break
            else:

                async def send_vary(message: Message) -> None:
                    if message["type"] == "http.response.start":
                        headers = message["headers"] = list(message.get("headers", ()))
                        _add_vary_origin(headers)
                    await send(message)

                await self.app(scope, receive, send_vary)
                return
        await super().__call__(scope, receive, send)
