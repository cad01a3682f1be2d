"""The outbox of events and the record of handled ones (services.common.events).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import op

from services.common.events import schema_ddl

revision = "0002"
down_revision: str | None = "0001"
branch_labels = None
depends_on = None

SCHEMA = "users"


def upgrade() -> None:
    for statement in schema_ddl(SCHEMA):
        op.execute(statement)


def downgrade() -> None:
    op.execute(f"DROP TABLE {SCHEMA}.processed_events")
    op.execute(f"DROP TABLE {SCHEMA}.outbox")
