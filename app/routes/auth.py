"""Login (JWT) with a rate limit shared across workers and replicas."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, status

from app.db import SessionDep
from app.schemas import LoginIn, TokenOut, UserOut
from app.security import current_username, issue_token, verify_password

router = APIRouter(prefix="/api/auth", tags=["auth"])
log = logging.getLogger("app.auth")


def client_ip(request: Request) -> str:
    """The peer address as uvicorn reports it. X-Forwarded-For is applied by uvicorn's proxy-headers
    support only when the peer is in FORWARDED_ALLOW_IPS (the load balancer), so a client cannot dodge the
    limit by sending its own X-Forwarded-For header."""
    return request.client.host if request.client else "unknown"


@router.post("/login", response_model=TokenOut)
async def login(body: LoginIn, request: Request, session: SessionDep) -> TokenOut:
    from app import queries  # SQLAlchemy and the models, on first use (see app.queries)

    limiter = request.app.state.resources.login_limiter
    # Counted per client and per account: per-IP alone lets a botnet spray one account, per-account alone
    # lets one client spray many accounts. Counted before the password check so guessing costs an attempt.
    decision = await limiter.hit(f"login:ip:{client_ip(request)}", f"login:user:{body.username.lower()}")
    if not decision.allowed:
        log.warning("login rate limited", extra={"username": body.username, "degraded": decision.degraded})
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            "too many login attempts, retry later",
            headers={"Retry-After": str(decision.retry_after)},
        )
    user = await queries.find_user(session, body.username)
    ok = await verify_password(body.password, user.password_hash if user else None)
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
