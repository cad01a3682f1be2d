"""Alembic migrations of one service's schema, run in code, no ``alembic.ini``.

A service keeps its revisions in ``services/<name>/migrations/versions`` and
calls ``run_online(SCHEMA, LOCK_ID)`` from its ``migrations/env.py``; its
``migrate`` module's ``main`` is ``Migrations(...).main``. Migrations run
online only, over asyncpg, under an advisory lock so that two migrators take
turns.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from alembic import command, context
from alembic.config import Config
from sqlalchemy import pool, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import create_async_engine

from services.common.database import redact
from services.common.errors import ConfigError, DatabaseError
from services.common.settings import require

logger = logging.getLogger(__name__)


def sqlalchemy_url(database_url: str) -> str:
    """The same database as an SQLAlchemy URL for the asyncpg driver."""
    scheme, separator, rest = database_url.partition("://")
    if not separator or scheme not in ("postgres", "postgresql", "postgresql+asyncpg"):
        raise ConfigError(
            f"DATABASE_URL={redact(database_url)} is not a postgresql:// URL"
        )
    return f"postgresql+asyncpg://{rest}"


@dataclass(frozen=True)
class Migrations:
    """The migrations of one service: where they live and which schema they own."""

    service: str
    schema: str
    folder: Path

    def config(self, database_url: str) -> Config:
        config = Config()
        config.set_main_option("script_location", str(self.folder))
        # Kept out of the ini options, whose % interpolation would mangle passwords.
        config.attributes["database_url"] = database_url
        return config

    def upgrade(self, database_url: str, revision: str = "head") -> None:
        """Apply the migrations up to ``revision``; DatabaseError when that fails."""
        self._run(command.upgrade, database_url, revision)

    def downgrade(self, database_url: str, revision: str) -> None:
        """Undo the migrations after ``revision`` (``base`` undoes them all)."""
        self._run(command.downgrade, database_url, revision)

    def main(self, env: Mapping[str, str] | None = None) -> int:
        """``python -m services.<name>.migrate``: bring the schema up to date."""
        from services.common.logs import configure_logging

        configure_logging(self.service)
        try:
            env = os.environ if env is None else env
            database_url = require(env, "DATABASE_URL", self.service)
            self.upgrade(database_url)
        except (ConfigError, DatabaseError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2 if isinstance(exc, ConfigError) else 1
        print(f"{self.schema} schema of {redact(database_url)} is up to date")
        return 0

    def _run(
        self, step: Callable[[Config, str], None], database_url: str, revision: str
    ) -> None:
        action = step.__name__
        sqlalchemy_url(database_url)  # a clear error before alembic's
        logger.info("%s of %s to %s", action, redact(database_url), revision)
        try:
            step(self.config(database_url), revision)
        except (OSError, SQLAlchemyError, asyncpg.PostgresError) as exc:
            raise DatabaseError(
                f"cannot {action} the {self.schema} schema in "
                f"{redact(database_url)}: {exc}"
            ) from exc


def run_online(schema: str, lock_id: int) -> None:
    """The body of a service's ``migrations/env.py``."""
    if context.is_offline_mode():
        raise NotImplementedError(
            f"the {schema} migrations run online only: "
            f"python -m services.{schema}.migrate"
        )
    asyncio.run(_run_online(context.config.attributes["database_url"], schema, lock_id))


async def _run_online(database_url: str, schema: str, lock_id: int) -> None:
    engine = create_async_engine(sqlalchemy_url(database_url), poolclass=pool.NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_migrate, schema, lock_id)
            await connection.commit()
    finally:
        await engine.dispose()


def _migrate(connection: Connection, schema: str, lock_id: int) -> None:
    connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": lock_id})
    connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    context.configure(
        connection=connection,
        target_metadata=None,
        version_table_schema=schema,
        transaction_per_migration=False,
    )
    with context.begin_transaction():
        context.run_migrations()
