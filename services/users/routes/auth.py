"""Registration, login, token refresh and logout, and the public signing keys."""

from __future__ import annotations

import logging
import uuid

from fastapi import APIRouter, Response

from services.common import events
from services.common.api import Problem, invalid
from services.common.identity import CurrentUser
from services.common.request_log import request_context
from services.users import SCHEMA, accounts, sessions
from services.users.runtime import Runtime, Services
from services.users.schemas import (
    Credentials,
    Jwks,
    NewUser,
    RefreshRequest,
    Registration,
    TokenPair,
)
from services.users.tokens import TOKEN_TYPE, issue_access_token
from services.users.validation import registration_errors

logger = logging.getLogger(__name__)

router = APIRouter()

BAD_CREDENTIALS = "the email or password is incorrect"
CHALLENGE = {"WWW-Authenticate": "Bearer"}


@router.post("/api/v1/auth/register", status_code=201)
async def register(body: Registration, services: Services) -> NewUser:
    """Create a learner account."""
    errors = registration_errors(body.email, body.password)
    if errors:
        raise invalid(errors)
    password_hash = await services.passwords.hash(body.password)
    try:
        async with services.pool.acquire() as conn, conn.transaction():
            user = await accounts.create(
                conn,
                email=body.email,
                password_hash=password_hash,
                full_name=body.full_name,
            )
            await events.record(
                conn,
                SCHEMA,
                "user.registered",
                {
                    "user_id": str(user.id),
                    "email": user.email,
                    "full_name": user.full_name,
                },
            )
    except accounts.EmailTaken as exc:
        raise Problem(409, str(exc)) from exc
    logger.info("registered user %s", user.id, extra=request_context())
    return NewUser.of(user)


@router.post("/api/v1/auth/login")
async def login(body: Credentials, services: Services) -> TokenPair:
    """Exchange an email and password for an access and a refresh token."""
    found = await accounts.with_password_hash(services.pool, body.email)
    password_hash = None if found is None else found[1]
    # Checked even for an unknown email, which costs as long as a wrong password.
    matches = await services.passwords.verify(password_hash, body.password)
    if found is None or not matches:
        logger.info(
            "login refused: unknown email or wrong password", extra=request_context()
        )
        raise Problem(401, BAD_CREDENTIALS, headers=CHALLENGE)
    user, password_hash = found
    if services.passwords.needs_rehash(password_hash):
        new_hash = await services.passwords.hash(body.password)
        await accounts.set_password_hash(services.pool, user.id, new_hash)
    refresh = await sessions.start(
        services.pool, user.id, services.settings.refresh_token_ttl_s
    )
    logger.info(
        "user %s logged in; session %s",
        user.id,
        refresh.family_id,
        extra=request_context(),
    )
    return _pair(services, user.id, user.roles, refresh.token)


@router.post("/api/v1/auth/refresh")
async def refresh(body: RefreshRequest, services: Services) -> TokenPair:
    """Trade a refresh token for a new pair; the old refresh token stops working."""
    try:
        rotated, roles = await sessions.rotate(
            services.pool, body.refresh_token, services.settings.refresh_token_ttl_s
        )
    except sessions.RefreshRejected as exc:
        raise Problem(401, exc.reason, headers=CHALLENGE) from exc
    return _pair(services, rotated.user_id, roles, rotated.token)


@router.post("/api/v1/auth/logout", status_code=204)
async def logout(
    body: RefreshRequest, who: CurrentUser, services: Services
) -> Response:
    """End the session of a refresh token: it and its whole family stop working."""
    found = await sessions.owner_and_family(services.pool, body.refresh_token)
    if found is None or found[0] != who.user_id:
        raise Problem(404, "the caller has no such refresh token")
    revoked = await sessions.revoke_family(services.pool, found[1])
    logger.info(
        "user %s logged out; session %s (%d tokens revoked)",
        who.user_id,
        found[1],
        revoked,
        extra=request_context(),
    )
    return Response(status_code=204)


@router.get("/.well-known/jwks.json")
async def jwks(services: Services) -> Jwks:
    """The public keys that verify access tokens, the signing one among them."""
    return Jwks.model_validate(services.keys.jwks())


def _pair(
    services: Runtime, user_id: uuid.UUID, roles: list[str], refresh_token: str
) -> TokenPair:
    settings = services.settings
    access = issue_access_token(
        services.keys,
        user_id=user_id,
        roles=roles,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        ttl_s=settings.access_token_ttl_s,
    )
    return TokenPair(
        access_token=access.token,
        refresh_token=refresh_token,
        token_type=TOKEN_TYPE,
        expires_in=access.expires_in_s,
    )
