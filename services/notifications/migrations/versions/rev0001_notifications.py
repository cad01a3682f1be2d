"""People, notifications with their history, and the outbox of the send queue.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

from alembic import op

from services.common.events import schema_ddl

revision = "0001"
down_revision: str | None = None
branch_labels = None
depends_on = None

SCHEMA = "notifications"


def upgrade() -> None:
    op.execute(
        f"""CREATE TABLE {SCHEMA}.people (
            user_id uuid PRIMARY KEY,
            email text NOT NULL,
            full_name text NOT NULL,
            updated_at timestamptz NOT NULL DEFAULT now()
        )"""
    )
    # status: queued -> sending -> sent | retrying -> sending ... | failed.
    op.execute(
        f"""CREATE TABLE {SCHEMA}.notifications (
            id uuid PRIMARY KEY,
            user_id uuid NOT NULL,
            template text NOT NULL,
            data jsonb NOT NULL,
            dedupe_key text NOT NULL,
            to_email text NOT NULL,
            to_name text NOT NULL,
            subject text NOT NULL,
            body text NOT NULL,
            status text NOT NULL DEFAULT 'queued',
            attempts integer NOT NULL DEFAULT 0,
            attempt_started_at timestamptz,
            next_attempt_at timestamptz,
            last_error text,
            created_at timestamptz NOT NULL DEFAULT now(),
            sent_at timestamptz,
            failed_reason text,
            CONSTRAINT notifications_dedupe_key_key UNIQUE (dedupe_key),
            CONSTRAINT notifications_status_known CHECK (
                status IN ('queued', 'sending', 'retrying', 'sent', 'failed')
            ),
            CONSTRAINT notifications_attempts_counted CHECK (attempts >= 0)
        )"""
    )
    op.execute(
        f"""CREATE INDEX notifications_user_id_created_at_idx
            ON {SCHEMA}.notifications (user_id, created_at DESC, id DESC)"""
    )
    op.execute(
        f"""CREATE TABLE {SCHEMA}.history (
            seq bigserial PRIMARY KEY,
            notification_id uuid NOT NULL
                REFERENCES {SCHEMA}.notifications (id) ON DELETE CASCADE,
            at timestamptz NOT NULL DEFAULT clock_timestamp(),
            status text NOT NULL,
            attempt integer,
            detail text NOT NULL
        )"""
    )
    op.execute(
        f"""CREATE INDEX history_notification_id_seq_idx
            ON {SCHEMA}.history (notification_id, seq)"""
    )
    for statement in schema_ddl(SCHEMA):
        op.execute(statement)


def downgrade() -> None:
    for table in ("processed_events", "outbox", "history", "notifications", "people"):
        op.execute(f"DROP TABLE {SCHEMA}.{table}")
