"""Who is calling: the identity the gateway passes after verifying the token.

The gateway removes any ``X-User-Id`` and ``X-User-Roles`` a client sends and
sets its own from the access token; the checks here are defence in depth.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from services.common.api import Problem

ADMIN = "admin"
USER_ID_HEADER = "X-User-Id"
ROLES_HEADER = "X-User-Roles"


@dataclass(frozen=True)
class Caller:
    user_id: uuid.UUID
    roles: frozenset[str]


def caller(request: Request) -> Caller:
    """The authenticated caller; a 401 problem when the gateway named none."""
    raw = request.headers.get(USER_ID_HEADER, "").strip()
    if not raw:
        raise Problem(
            401,
            "this route needs an authenticated user; send an access token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    try:
        user_id = uuid.UUID(raw)
    except ValueError:
        raise Problem(
            401,
            f"the {USER_ID_HEADER} header is not a user id",
            headers={"WWW-Authenticate": "Bearer"},
        ) from None
    roles = request.headers.get(ROLES_HEADER, "")
    return Caller(user_id, frozenset(r.strip() for r in roles.split(",") if r.strip()))


def admin(who: Annotated[Caller, Depends(caller)]) -> Caller:
    """The caller, when an admin; a 403 problem otherwise."""
    if ADMIN not in who.roles:
        raise Problem(403, "this route is for admins only")
    return who


CurrentUser = Annotated[Caller, Depends(caller)]
Admin = Annotated[Caller, Depends(admin)]
