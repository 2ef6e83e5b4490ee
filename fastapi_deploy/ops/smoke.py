"""HTTP(S) smoke test of the deployed service's liveness and readiness endpoints."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import httpx


@dataclass(frozen=True)
class SmokeResult:
    """One endpoint's answer: status, latency, and on failure the start of the body (it names the cause)."""

    url: str
    ok: bool
    status: int | None
    elapsed_ms: float
    detail: str

    def render(self) -> str:
        status = self.status if self.status is not None else "no answer"
        line = f"{'ok  ' if self.ok else 'FAIL'} GET {self.url} -> {status} ({self.elapsed_ms:.0f} ms)"
        return line if self.ok else f"{line}: {self.detail}"


def smoke_test(
    base_url: str,
    paths: list[str],
    *,
    attempts: int = 3,
    request_timeout_s: float = 5.0,
    backoff_s: float = 2.0,
    verify_tls: bool = True,
    bearer_token: str | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> list[SmokeResult]:
    """GET each path until it answers 200, at most `attempts` times each (DNS/LB propagation lag).

    Bounded: at most attempts * (request_timeout + backoff) seconds per path.
    """
    base = base_url if base_url.endswith("/") else base_url + "/"
    results: list[SmokeResult] = []
    headers = {"user-agent": "infra-verify/1", "accept": "application/json"}
    if bearer_token:
        headers["authorization"] = f"Bearer {bearer_token}"
    with httpx.Client(
        timeout=request_timeout_s, verify=verify_tls, follow_redirects=False, headers=headers
    ) as client:
        for path in paths:
            url = urljoin(base, path.lstrip("/"))
            result = _get(client, url)
            for _ in range(attempts - 1):
                if result.ok or result.status in (401, 403):
                    break
                sleep(backoff_s)
                result = _get(client, url)
            results.append(result)
    return results


def _get(client: httpx.Client, url: str) -> SmokeResult:
    start = time.perf_counter()
    try:
        resp = client.get(url)
    except httpx.HTTPError as exc:
        return SmokeResult(
            url, False, None, (time.perf_counter() - start) * 1000, f"{type(exc).__name__}: {exc}"
        )
    elapsed = (time.perf_counter() - start) * 1000
    if resp.status_code == 200:
        return SmokeResult(url, True, 200, elapsed, "")
    if resp.status_code in (401, 403):
        detail = (
            "the service requires authentication (a Cloud Run service without public invoker does): "
            'rerun with --id-token "$(gcloud auth print-identity-token)"'
        )
    elif resp.is_redirect:
        detail = (
            f"redirects to {resp.headers.get('location')} (the stack url should be the final https:// url)"
        )
    else:
        detail = resp.text.strip().replace("\n", " ")[:300] or resp.reason_phrase
    return SmokeResult(url, False, resp.status_code, elapsed, detail)


def is_plain_http_to_remote(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme == "http" and (parts.hostname or "") not in ("localhost", "127.0.0.1", "::1")
