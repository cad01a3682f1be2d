"""Profiles: the caller's own, and the admins' list and changes."""

from __future__ import annotations

import logging
import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from services.common.api import FieldError, Problem, invalid
from services.common.identity import Admin, CurrentUser
from services.common.request_log import request_context
from services.users import accounts
from services.users.runtime import Services
from services.users.schemas import Profile, UserChanges, UserPage

logger = logging.getLogger(__name__)

router = APIRouter()

MAX_PAGE = 200


@router.get("/api/v1/users/me")
async def me(who: CurrentUser, services: Services) -> Profile:
    """The caller's profile, with roles and position."""
    user = await accounts.by_id(services.pool, who.user_id)
    if user is None:
        raise Problem(404, f"there is no user {who.user_id}")
    return Profile.of(user)


@router.get("/api/v1/users")
async def list_users(
    who: Admin,
    services: Services,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> UserPage:
    """Every user, oldest first, a page at a time."""
    users, total = await accounts.page(services.pool, limit=limit, offset=offset)
    return UserPage(items=[Profile.of(user) for user in users], total=total)


@router.patch("/api/v1/users/{user_id}")
async def change_user(
    user_id: uuid.UUID, body: UserChanges, who: Admin, services: Services
) -> Profile:
    """Set a user's roles and/or position; the fields left out stay as they are."""
    sent = body.model_fields_set
    if "roles" in sent:
        _check_roles(body.roles)
    roles = None if body.roles is None else list(dict.fromkeys(body.roles))
    user = await accounts.update(
        services.pool,
        user_id,
        roles=roles,
        position_id=body.position_id,
        set_position="position_id" in sent,
    )
    if user is None:
        raise Problem(404, f"there is no user {user_id}")
    logger.info(
        "admin %s changed user %s: %s",
        who.user_id,
        user_id,
        ", ".join(sorted(sent)),
        extra=request_context(),
    )
    return Profile.of(user)


def _check_roles(roles: list[str] | None) -> None:
    known = ", ".join(accounts.ROLES)
    if not roles:
        raise invalid([FieldError("roles", f"must list at least one of {known}")])
    unknown = [role for role in roles if role not in accounts.ROLES]
    if unknown:
        names = ", ".join(repr(role) for role in unknown)
        raise invalid(
            [FieldError("roles", f"unknown role(s) {names}; known roles: {known}")]
        )


@router.get("/internal/users", include_in_schema=False)
async def internal_users(services: Services, ids: str = "") -> UserPage:
    """Users by id, for the other services; the gateway does not route here."""
    wanted: list[uuid.UUID] = []
    for raw in filter(None, (part.strip() for part in ids.split(","))):
        try:
            wanted.append(uuid.UUID(raw))
        except ValueError:
            raise invalid([FieldError("ids", f"{raw!r} is not a user id")]) from None
    found = await accounts.by_ids(services.pool, wanted)
    return UserPage(items=[Profile.of(user) for user in found], total=len(found))
