"""Request and response bodies."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class CategoryIn(BaseModel):
    """A new category."""

    name: str = Field(min_length=1, max_length=100)


class CategoryOut(BaseModel):
    """A category as returned by the API."""

    model_config = ConfigDict(from_attributes=True)
    id: int
    name: str


class ReviewIn(BaseModel):
    """A new review of an item."""

    rating: int = Field(ge=1, le=5)
    body: str = Field(default="", max_length=5000)


class ReviewOut(BaseModel):
    """A review as returned by the API."""

    model_config = ConfigDict(from_attributes=True)
    id: int
    rating: int
    body: str


class ItemIn(BaseModel):
    """A new item in an existing category."""

    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=5000)
    price_cents: int = Field(ge=0)
    category_id: int


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

    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class TokenOut(BaseModel):
    """A bearer token."""

    access_token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret
    expires_in: int


class UserOut(BaseModel):
    """The authenticated user."""

    username: str
