"""Image digest check for registries other than ECR, over the OCI Distribution API.

`HEAD /v2/<name>/manifests/<digest>` answers 200 when the digest exists. Registries demand a bearer token
first (401 + `WWW-Authenticate: Bearer realm=...,service=...,scope=...`): we fetch one anonymously (public
images on ghcr.io / Docker Hub), or for Artifact Registry / gcr.io with the caller's Application Default
Credentials (the `oauth2accesstoken` login `gcloud auth configure-docker` uses). For other private
registries we cannot see the user's `docker login` secrets, so the finding says so and gives the command
that checks with them.
"""

from __future__ import annotations

import re
from typing import Any

import requests

from fastapi_deploy.ops.findings import Finding, blocking, ok, warning

_REF = re.compile(
    r"^(?:(?P<host>[a-z0-9\-]+(?:\.[a-z0-9\-]+)+(?::\d+)?|localhost(?::\d+)?|[a-z0-9\-.]+:\d+)/)?"
    r"(?P<name>[a-z0-9._\-/]+?)(?::[\w.\-]+)?@(?P<digest>sha256:[0-9a-f]{64})$"
)
_ACCEPT = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)
_CHALLENGE = re.compile(r'(\w+)="([^"]*)"')


def parse_ref(ref: str) -> tuple[str, str, str] | None:
    """(registry host, repository name, digest); Docker Hub when the reference names no host."""
    m = _REF.match(ref)
    if not m:
        return None
    host = m["host"] or "registry-1.docker.io"
    name = m["name"]
    if host == "registry-1.docker.io" and "/" not in name:
        name = f"library/{name}"
    return host, name, m["digest"]


def _google_password(host: str) -> str | None:
    if not (host.endswith("-docker.pkg.dev") or host.endswith("gcr.io")):
        return None
    try:
        import google.auth
        import google.auth.transport.requests

        creds, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
        creds.refresh(google.auth.transport.requests.Request())
        return str(creds.token)
    except Exception:  # no ADC on this machine: fall back to an anonymous token
        return None


def _token(session: Any, challenge: str, host: str) -> str | None:
    if not challenge.lower().startswith("bearer "):
        return None
    params = dict(_CHALLENGE.findall(challenge))
    realm = params.pop("realm", None)
    if not realm:
        return None
    password = _google_password(host)
    auth = ("oauth2accesstoken", password) if password else None
    resp = session.get(realm, params=params, auth=auth, timeout=10)
    if resp.status_code != 200:
        return None
    body = resp.json()
    token = body.get("token") or body.get("access_token")
    return str(token) if token else None


def check_oci_image(ref: str, where: str, *, session: Any = None) -> Finding:
    check = "image"
    parsed = parse_ref(ref)
    if parsed is None:
        return blocking(check, f"{ref!r} is not a registry/repo@sha256:<digest> reference", where)
    host, name, digest = parsed
    session = session or requests.Session()
    plain = host.split(":")[0] in ("localhost", "127.0.0.1")
    url = f"{'http' if plain else 'https'}://{host}/v2/{name}/manifests/{digest}"
    headers = {"Accept": _ACCEPT}
    inspect = f"docker manifest inspect {ref}   # uses your docker login"
    try:
        resp = session.head(url, headers=headers, timeout=10)
        if resp.status_code == 401:
            token = _token(session, resp.headers.get("WWW-Authenticate", ""), host)
            if token:
                resp = session.head(url, headers={**headers, "Authorization": f"Bearer {token}"}, timeout=10)
    except requests.RequestException as exc:
        return warning(check, f"cannot reach registry {host}: {exc}", where, inspect)
    if resp.status_code == 200:
        return ok(check, f"{digest[:19]}... exists in {host}/{name}", where)
    if resp.status_code == 404:
        return blocking(
            check,
            f"digest {digest} is not in {host}/{name}",
            where,
            f"docker buildx build --platform linux/amd64 -t {host}/{name}:<tag> --push .   "
            f"# then put the pushed digest in app.image.digest",
        )
    if resp.status_code in (401, 403):
        return warning(
            check,
            f"{host} requires credentials doctor does not have (HTTP {resp.status_code}); the deploy's pull "
            f"credentials must be able to read {name}",
            where,
            inspect,
        )
    return warning(
        check, f"registry {host} answered HTTP {resp.status_code} for {name}@{digest}", where, inspect
    )
