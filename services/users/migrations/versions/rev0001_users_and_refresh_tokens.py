"""Accounts and refresh-token families.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision: str | None = None
branch_labels = None
depends_on = None

SCHEMA = "users"


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", postgresql.UUID(as_uuid=True), primary_key=True),
        sa.Column("email", sa.Text(), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("full_name", sa.Text(), nullable=False),
        sa.Column(
            "roles",
            postgresql.ARRAY(sa.Text()),
            nullable=False,
            server_default=sa.text("ARRAY['learner']::text[]"),
        ),
        sa.Column("position_id", postgresql.UUID(as_uuid=True), nullable=True),
        sa.Column(
            "created_at",
            sa.TIMESTAMP(timezone=True),
            nullable=False,
            server_default=sa.text("now()"),
        ),
        sa.CheckConstraint(
            "roles <@ ARRAY['learner', 'admin']::text[]", name="users_roles_known"
        ),
        schema=SCHEMA,
    )
    op.create_index(
        "users_email_lower_key",
        "users",
        [sa.text("lower(email)")],
        unique=True,
        schema=SCHEMA,
    )
    op.create_index(
        "users_created_at_id_idx", "users", ["created_at", "id"], schema=SCHEMA
    )

    op.create_table(
        "refresh_tokens",
        sa.Column("id", postgresql.UUID(as_uuid=True), primary_key=True),
        sa.Column("family_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column(
            "user_id",
            postgresql.UUID(as_uuid=True),
            sa.ForeignKey(f"{SCHEMA}.users.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("token_hash", sa.LargeBinary(), nullable=False),
        sa.Column(
            "parent_id",
            postgresql.UUID(as_uuid=True),
            sa.ForeignKey(f"{SCHEMA}.refresh_tokens.id", ondelete="SET NULL"),
            nullable=True,
        ),
        sa.Column(
            "created_at",
            sa.TIMESTAMP(timezone=True),
            nullable=False,
            server_default=sa.text("now()"),
        ),
        sa.Column("expires_at", sa.TIMESTAMP(timezone=True), nullable=False),
        sa.Column("used_at", sa.TIMESTAMP(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.TIMESTAMP(timezone=True), nullable=True),
        sa.UniqueConstraint("token_hash", name="refresh_tokens_token_hash_key"),
        sa.CheckConstraint(
            "octet_length(token_hash) = 32", name="refresh_tokens_hash_is_sha256"
        ),
        schema=SCHEMA,
    )
    op.create_index(
        "refresh_tokens_family_id_idx", "refresh_tokens", ["family_id"], schema=SCHEMA
    )
    op.create_index(
        "refresh_tokens_user_id_idx", "refresh_tokens", ["user_id"], schema=SCHEMA
    )
    op.create_index(
        "refresh_tokens_parent_id_idx", "refresh_tokens", ["parent_id"], schema=SCHEMA
    )
    op.create_index(
        "refresh_tokens_expires_at_idx", "refresh_tokens", ["expires_at"], schema=SCHEMA
    )


def downgrade() -> None:
    op.drop_table("refresh_tokens", schema=SCHEMA)
    op.drop_table("users", schema=SCHEMA)
