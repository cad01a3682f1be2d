"""Create or update the admin account: ``python -m services.users.bootstrap``.

Reads DATABASE_URL, ADMIN_EMAIL and ADMIN_PASSWORD (ADMIN_FULL_NAME is
optional). Running it again resets the admin's password and roles to
``learner, admin``; it never creates a second admin for the same email.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Mapping

import asyncpg

from services.common.database import create_pool, redact
from services.users import accounts
from services.users.errors import ConfigError, DatabaseError
from services.users.passwords import Passwords
from services.users.settings import require
from services.users.validation import email_problem, password_problems

logger = logging.getLogger(__name__)

DEFAULT_FULL_NAME = "Campus administrator"


async def ensure_admin(
    database_url: str, email: str, password: str, full_name: str
) -> tuple[accounts.User, bool]:
    """The admin account after creating or updating it; True when created."""
    passwords = Passwords()
    password_hash = await passwords.hash(password)
    pool = await create_pool(database_url)
    try:
        return await accounts.ensure_admin(
            pool, email=email, password_hash=password_hash, full_name=full_name
        )
    except (OSError, asyncpg.PostgresError) as exc:
        raise DatabaseError(
            f"cannot write the admin to {redact(database_url)}: {exc}; "
            "has `python -m services.users.migrate` run?"
        ) from exc
    finally:
        await pool.close()


def main(env: Mapping[str, str] | None = None) -> int:
    from services.common.logs import configure_logging

    configure_logging("users")
    env = os.environ if env is None else env
    try:
        database_url = require(env, "DATABASE_URL")
        email = require(env, "ADMIN_EMAIL")
        password = require(env, "ADMIN_PASSWORD")
        full_name = env.get("ADMIN_FULL_NAME", "").strip() or DEFAULT_FULL_NAME
        problem = email_problem(email)
        if problem is not None:
            raise ConfigError(f"ADMIN_EMAIL={email!r} {problem}")
        weaknesses = list(password_problems(password, email))
        if weaknesses:
            raise ConfigError(f"ADMIN_PASSWORD is weak: it {'; it '.join(weaknesses)}")
        user, created = asyncio.run(
            ensure_admin(database_url, email, password, full_name)
        )
    except (ConfigError, DatabaseError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ConfigError) else 1
    print(f"admin {user.email} ({user.id}) {'created' if created else 'updated'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
