"""Request and response bodies, and the bounds every input shares.

Hostile input must get a 4xx, never reach PostgreSQL in a form it refuses (that would be a 500):

* integers are bounded to their column type (:data:`INT32_MAX` for ``INTEGER`` ids, prices, LIMIT/OFFSET);
* every string goes through :data:`Text`, which refuses NUL (PostgreSQL ``text``/``varchar`` cannot hold
  ``\\x00``) and lone surrogates (JSON can spell ``"\\ud800"``, but it has no UTF-8 encoding).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

#: PostgreSQL ``INTEGER`` (ids are ``SERIAL``; price_cents and rating are ``INTEGER``).
INT32_MAX = 2**31 - 1

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _storable(value: str) -> str:
    m = _UNSTORABLE.search(value)
    if m is not None:
        if m.group() == "\x00":
            raise ValueError("must not contain NUL characters")
        raise ValueError("must be valid Unicode (no lone surrogates)")
    return value


#: Every string the API accepts (body fields and the login form).
Text = Annotated[str, AfterValidator(_storable)]
#: A row id (``SERIAL``): positive and within ``INTEGER``.
Id = Annotated[int, Field(ge=1, le=INT32_MAX)]
#: A non-negative ``INTEGER`` (price_cents, OFFSET).
NonNegativeInt32 = Annotated[int, Field(ge=0, le=INT32_MAX)]


class CategoryIn(BaseModel):
    """A new category."""

    name: Text = Field(min_length=1, max_length=100)


class CategoryOut(BaseModel):
    """A category as returned by the API."""

    model_config = ConfigDict(from_attributes=True)
    id: int
    name: str


class ReviewIn(BaseModel):
    """A new review of an item."""

    rating: int = Field(ge=1, le=5)
    body: Text = Field(default="", max_length=5000)


class ReviewOut(BaseModel):
    """A review as returned by the API."""

    model_config = ConfigDict(from_attributes=True)
    id: int
    rating: int
    body: str


class ItemIn(BaseModel):
    """A new item in an existing category."""

    name: Text = Field(min_length=1, max_length=200)
    description: Text = Field(default="", max_length=5000)
    price_cents: NonNegativeInt32
    category_id: Id


class ItemOut(BaseModel):
    """An item with its category and reviews (loaded eagerly)."""

    model_config = ConfigDict(from_attributes=True)
    id: int
    name: str
    description: str
    price_cents: int
    created_at: datetime
    category: CategoryOut
    reviews: list[ReviewOut]


class LoginIn(BaseModel):
    """Credentials for /api/auth/login."""

    username: Text = Field(min_length=1, max_length=64)
    password: Text = Field(min_length=1, max_length=1024)


class TokenOut(BaseModel):
    """A bearer token."""

    access_token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret
    expires_in: int


class UserOut(BaseModel):
    """The authenticated user."""

    username: str


# ------------------------------------------------------------------------------------------------ errors
class ErrorOut(BaseModel):
    """Every error except validation: one human-readable sentence."""

    detail: str


class FieldError(BaseModel):
    """Where a request was invalid and why; never the value that was sent."""

    loc: list[str | int]
    msg: str
    type: str


class ValidationErrorOut(BaseModel):
    """422: one entry per invalid field (path, query, header or body)."""

    detail: list[FieldError]


class ReadyOut(BaseModel):
    """/ready: which dependencies answered; ``failed`` names the ones that did not (nothing more)."""

    status: str
    checks: dict[str, str]
    failed: list[str]
    breaker: dict[str, str]  # per dependency: closed, half_open or open (this worker process)
    duration_ms: float


Responses = dict[int | str, dict[str, Any]]


def _resp(status: int, model: type[BaseModel], description: str) -> Responses:
    return {status: {"model": model, "description": description}}


#: Responses any operation can produce (declared so the OpenAPI document matches what is served).
UNREADABLE_BODY: Responses = _resp(400, ErrorOut, "request body could not be read (e.g. not UTF-8)")
BODY_TOO_LARGE: Responses = _resp(413, ErrorOut, "request body larger than MAX_REQUEST_BODY_BYTES")
INVALID: Responses = _resp(
    422, ValidationErrorOut, "invalid input: locations and messages, never the values sent"
)
DB_UNAVAILABLE: Responses = _resp(503, ErrorOut, "database unavailable (Retry-After)")
UNAUTHORIZED: Responses = _resp(401, ErrorOut, "missing, invalid or expired bearer token")
NOT_FOUND: Responses = _resp(404, ErrorOut, "no such item")
CONFLICT: Responses = _resp(409, ErrorOut, "already exists")
RATE_LIMITED: Responses = _resp(429, ErrorOut, "too many login attempts (Retry-After)")
