"""Login (JWT) with a rate limit shared across workers and replicas."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, status

from app.db import SessionDep
from app.schemas import (
    BODY_TOO_LARGE,
    DB_UNAVAILABLE,
    INVALID,
    RATE_LIMITED,
    UNAUTHORIZED,
    UNREADABLE_BODY,
    LoginIn,
    TokenOut,
    UserOut,
)
from app.security import current_username, issue_token, verify_password

router = APIRouter(
    prefix="/api/auth",
    tags=["auth"],
    responses={**UNREADABLE_BODY, **BODY_TOO_LARGE, **INVALID, **UNAUTHORIZED},
)
log = logging.getLogger("app.auth")


def client_ip(request: Request) -> str:
    """The peer address as the server reports it. X-Forwarded-For is applied only by uvicorn's
    proxy-headers support when the peer is in FORWARDED_ALLOW_IPS (the load balancer; ECS, VPS), or by
    app/forwarded.py counting FORWARDED_TRUSTED_HOPS entries from the right (Cloud Run), so a client cannot
    dodge the limit by sending its own X-Forwarded-For header."""
    return request.client.host if request.client else "unknown"


@router.post("/login", response_model=TokenOut, responses={**RATE_LIMITED, **DB_UNAVAILABLE})
async def login(body: LoginIn, request: Request, session: SessionDep) -> TokenOut:
    from app import queries  # SQLAlchemy and the models, on first use (see app.queries)

    limiter = request.app.state.resources.login_limiter
    # Counted before the password check, so guessing costs an attempt whatever its outcome. The limits are per
    # (address, username), per address, and on FAILED checks per username across addresses; an account at
    # its failure ceiling stays open to the addresses it was logged in from (app/ratelimit.py).
    decision = await limiter.check(client_ip(request), body.username)
    if not decision.allowed:
        log.warning(
            "login rate limited",
            extra={"username": body.username, "limits": decision.refused_by, "degraded": decision.degraded},
        )
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            "too many login attempts, retry later",
            headers={"Retry-After": str(decision.retry_after)},
        )
    ok: bool | None = None  # None: no verdict (an error before or inside the check)
    try:
        user = await queries.find_user(session, body.username)
        ok = await verify_password(body.password, user.password_hash if user else None)
    finally:
        # Only a wrong password keeps its reservation on the per-username failure counter: a database
        # outage must not push the owner's account to its ceiling.
        if ok is not False:
            await limiter.settle(decision, succeeded=bool(ok))
    if not ok:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "invalid username or password",
            headers={"WWW-Authenticate": "Bearer"},
        )
    token, ttl = issue_token(request.app.state.settings, body.username)
    return TokenOut(access_token=token, expires_in=ttl)


@router.get("/me", response_model=UserOut)
async def me(username: Annotated[str, Depends(current_username)]) -> UserOut:
    return UserOut(username=username)
