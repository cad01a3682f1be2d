"""Alembic's entry into the database: online only, over asyncpg.

``services.users.migrate`` builds the configuration in code and passes the
database URL in ``config.attributes["database_url"]``.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import pool, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from services.users.db import SCHEMA
from services.users.migrate import sqlalchemy_url

# Two migrators at once (e.g. two stacks sharing a server) take turns.
LOCK_ID = 0x7573657273  # "users"


def run_migrations(connection: Connection) -> None:
    connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": LOCK_ID})
    connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{SCHEMA}"'))
    context.configure(
        connection=connection,
        target_metadata=None,
        version_table_schema=SCHEMA,
        transaction_per_migration=False,
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_online(database_url: str) -> None:
    engine = create_async_engine(sqlalchemy_url(database_url), poolclass=pool.NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(run_migrations)
            await connection.commit()
    finally:
        await engine.dispose()


if context.is_offline_mode():
    raise NotImplementedError(
        "the users migrations run online only: python -m services.users.migrate"
    )
asyncio.run(run_online(context.config.attributes["database_url"]))
