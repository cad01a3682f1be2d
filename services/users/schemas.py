"""Request and response bodies of the public API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from services.common.text import Storable
from services.users.accounts import User
from services.users.validation import MAX_EMAIL_LENGTH, MAX_PASSWORD_LENGTH

# Registration checks emails and passwords itself, with messages of its own;
# login only caps their length.
Email = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=MAX_EMAIL_LENGTH)
]
Password = Annotated[str, Field(max_length=MAX_PASSWORD_LENGTH)]
FullName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    Storable,
]
OpaqueToken = Annotated[str, Field(min_length=1, max_length=256)]


class Registration(BaseModel):
    email: Annotated[str, StringConstraints(strip_whitespace=True)]
    password: str
    full_name: FullName


class Credentials(BaseModel):
    email: Email
    password: Password


class RefreshRequest(BaseModel):
    refresh_token: OpaqueToken


class UserChanges(BaseModel):
    """Only the fields sent are changed; ``position_id: null`` clears it."""

    model_config = ConfigDict(extra="forbid")

    roles: list[str] | None = None
    position_id: uuid.UUID | None = None


class NewUser(BaseModel):
    id: uuid.UUID
    email: str
    full_name: str
    roles: list[str]

    @classmethod
    def of(cls, user: User) -> NewUser:
        return cls(
            id=user.id, email=user.email, full_name=user.full_name, roles=user.roles
        )


class Profile(NewUser):
    position_id: uuid.UUID | None
    created_at: datetime

    @classmethod
    def of(cls, user: User) -> Profile:
        return cls(
            id=user.id,
            email=user.email,
            full_name=user.full_name,
            roles=user.roles,
            position_id=user.position_id,
            created_at=user.created_at,
        )


class UserPage(BaseModel):
    items: list[Profile]
    total: int


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str = "Bearer"  # noqa: S105 (the scheme's name)
    expires_in: int = Field(description="seconds until the access token expires")


class Jwk(BaseModel):
    kty: str
    crv: str
    x: str
    y: str
    kid: str
    alg: str
    use: str


class Jwks(BaseModel):
    keys: list[Jwk]
