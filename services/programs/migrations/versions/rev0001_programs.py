"""Programs, their courses, assignments, the progress projection, and events.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from services.common.events import schema_ddl

revision = "0001"
down_revision: str | None = None
branch_labels = None
depends_on = None

SCHEMA = "programs"


def _created_at(name: str = "created_at") -> sa.Column[Any]:
    return sa.Column(
        name,
        sa.TIMESTAMP(timezone=True),
        nullable=False,
        server_default=sa.text("now()"),
    )


def upgrade() -> None:
    op.create_table(
        "programs",
        sa.Column("id", postgresql.UUID(as_uuid=True), primary_key=True),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column(
            "onboarding", sa.Boolean(), nullable=False, server_default=sa.false()
        ),
        _created_at(),
        schema=SCHEMA,
    )
    # At most one onboarding program.
    op.create_index(
        "programs_one_onboarding",
        "programs",
        ["onboarding"],
        unique=True,
        schema=SCHEMA,
        postgresql_where=sa.text("onboarding"),
    )
    op.create_index(
        "programs_created_at_id_idx", "programs", ["created_at", "id"], schema=SCHEMA
    )

    op.create_table(
        "program_courses",
        sa.Column(
            "program_id",
            postgresql.UUID(as_uuid=True),
            sa.ForeignKey(f"{SCHEMA}.programs.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("course_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        _created_at("added_at"),
        sa.PrimaryKeyConstraint("program_id", "course_id"),
        sa.UniqueConstraint(
            "program_id", "position", name="program_courses_position_key"
        ),
        schema=SCHEMA,
    )

    op.create_table(
        "assignments",
        sa.Column(
            "program_id",
            postgresql.UUID(as_uuid=True),
            sa.ForeignKey(f"{SCHEMA}.programs.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("user_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("due_at", sa.TIMESTAMP(timezone=True), nullable=True),
        _created_at("assigned_at"),
        sa.PrimaryKeyConstraint("program_id", "user_id"),
        schema=SCHEMA,
    )
    op.create_index(
        "assignments_user_id_idx", "assignments", ["user_id"], schema=SCHEMA
    )
    op.create_index(
        "assignments_program_id_assigned_at_idx",
        "assignments",
        ["program_id", "assigned_at", "user_id"],
        schema=SCHEMA,
    )

    # The projection of learning's enrollment events, one row per user and course.
    op.create_table(
        "course_progress",
        sa.Column("user_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("course_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("enrollment_id", postgresql.UUID(as_uuid=True), nullable=True),
        sa.Column(
            "progress", sa.SmallInteger(), nullable=False, server_default=sa.text("0")
        ),
        sa.Column("completed_at", sa.TIMESTAMP(timezone=True), nullable=True),
        _created_at("updated_at"),
        sa.PrimaryKeyConstraint("user_id", "course_id"),
        sa.CheckConstraint(
            "progress BETWEEN 0 AND 100", name="course_progress_progress_range"
        ),
        schema=SCHEMA,
    )

    for statement in schema_ddl(SCHEMA):
        op.execute(statement)


def downgrade() -> None:
    op.execute(f"DROP TABLE {SCHEMA}.processed_events")
    op.execute(f"DROP TABLE {SCHEMA}.outbox")
    op.drop_table("course_progress", schema=SCHEMA)
    op.drop_table("assignments", schema=SCHEMA)
    op.drop_table("program_courses", schema=SCHEMA)
    op.drop_table("programs", schema=SCHEMA)
