"""Bring the ``users`` schema up to date: ``python -m services.users.migrate``.

Reads DATABASE_URL (``postgresql://user:password@host:port/database``) and
applies every Alembic revision in ``services/users/migrations`` not applied
yet. No ``alembic.ini`` is involved: the configuration is built here.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

import asyncpg
from alembic import command
from alembic.config import Config
from sqlalchemy.exc import SQLAlchemyError

from services.users.db import redact
from services.users.errors import ConfigError, DatabaseError
from services.users.settings import require

logger = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")


def sqlalchemy_url(database_url: str) -> str:
    """The same database as an SQLAlchemy URL for the asyncpg driver."""
    scheme, separator, rest = database_url.partition("://")
    if not separator or scheme not in ("postgres", "postgresql", "postgresql+asyncpg"):
        raise ConfigError(
            f"DATABASE_URL={redact(database_url)} is not a postgresql:// URL"
        )
    return f"postgresql+asyncpg://{rest}"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # Kept out of the ini options, whose % interpolation would mangle passwords.
    config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Apply the migrations up to ``revision``; DatabaseError when that fails."""
    _run(command.upgrade, database_url, revision)


def downgrade(database_url: str, revision: str) -> None:
    """Undo the migrations after ``revision`` (``base`` undoes them all)."""
    _run(command.downgrade, database_url, revision)


def _run(step: Callable[[Config, str], None], database_url: str, revision: str) -> None:
    action = step.__name__
    sqlalchemy_url(database_url)  # a clear error before alembic's
    config = alembic_config(database_url)
    logger.info("%s of %s to %s", action, redact(database_url), revision)
    try:
        step(config, revision)
    except (OSError, SQLAlchemyError, asyncpg.PostgresError) as exc:
        raise DatabaseError(
            f"cannot {action} the users schema in {redact(database_url)}: {exc}"
        ) from exc


def main(env: Mapping[str, str] | None = None) -> int:
    from services.common.logs import configure_logging

    configure_logging("users")
    try:
        database_url = require(os.environ if env is None else env, "DATABASE_URL")
        upgrade(database_url)
    except (ConfigError, DatabaseError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ConfigError) else 1
    print(f"users schema of {redact(database_url)} is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
