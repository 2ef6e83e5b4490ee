"""Password hashing (argon2 via pwdlib) and JWTs (PyJWT)."""

from __future__ import annotations

import asyncio
import functools
import time
from typing import TYPE_CHECKING, Any

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.settings import Settings

if TYPE_CHECKING:
    from pwdlib import PasswordHash


@functools.cache
def _hasher() -> PasswordHash:
    # Imported on first use: only login and user creation hash, and a Lambda cold start serving anything
    # else should not pay for pwdlib/argon2 (nor PyJWT, imported in the token functions below).
    from pwdlib import PasswordHash
    from pwdlib.hashers.argon2 import Argon2Hasher

    return PasswordHash((Argon2Hasher(),))


# Verifying against this when the user does not exist keeps "unknown user" as slow as "wrong password",
# so response time does not reveal which usernames exist. A literal (the hash of a random password nobody
# kept), not `_hasher.hash(...)` at import: hashing here cost ~190 ms of CPU on every Lambda cold start and
# every gunicorn worker boot (BENCHMARKS.md, cold start). Its argon2 parameters must equal the hasher's,
# or the timing protection is gone: tests/app/test_auth.py checks that.
_DUMMY_HASH = (
    "$argon2id$v=19$m=65536,t=3,p=4$ZVO35NnXo0wxUJBQ0RlAnw$/jjpyEd450T65B4vkCsqj63xTgLxuJDNXxsDWfVXs1M"
)
_bearer = HTTPBearer(auto_error=False)


def hash_password(password: str) -> str:
    return _hasher().hash(password)


async def verify_password(password: str, password_hash: str | None) -> bool:
    """argon2 costs tens of ms of CPU: run it in a thread so the event loop keeps serving other requests."""
    return await asyncio.to_thread(_hasher().verify, password, password_hash or _DUMMY_HASH) and (
        password_hash is not None
    )


def issue_token(settings: Settings, username: str) -> tuple[str, int]:
    import jwt

    ttl = settings.jwt_expire_minutes * 60
    now = int(time.time())
    claims = {"sub": username, "iat": now, "exp": now + ttl}
    return jwt.encode(claims, settings.jwt_key, algorithm=settings.jwt_algorithm), ttl


def decode_token(settings: Settings, token: str) -> dict[str, Any]:
    import jwt

    # algorithms is pinned: accepting the header's alg would allow alg=none / key-confusion forgeries.
    return jwt.decode(
        token, settings.jwt_key, algorithms=[settings.jwt_algorithm], options={"require": ["exp", "sub"]}
    )


def current_username(request: Request, creds: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> str:
    """FastAPI dependency: the username from a valid bearer token, else 401."""
    unauthorized = HTTPException(
        status.HTTP_401_UNAUTHORIZED, "not authenticated", headers={"WWW-Authenticate": "Bearer"}
    )
    if creds is None or creds.scheme.lower() != "bearer":
        raise unauthorized
    import jwt

    try:
        claims = decode_token(request.app.state.settings, creds.credentials)
    except jwt.PyJWTError:
        raise unauthorized from None
    return str(claims["sub"])
