"""Courses and their lessons, enrollments and the lessons done, certificates,
and the event outbox.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from services.common.events import schema_ddl

revision = "0001"
down_revision: str | None = None
branch_labels = None
depends_on = None

SCHEMA = "learning"
UUID = postgresql.UUID(as_uuid=True)


def _created(name: str) -> sa.Column[object]:
    return sa.Column(
        name,
        sa.TIMESTAMP(timezone=True),
        nullable=False,
        server_default=sa.text("now()"),
    )


def upgrade() -> None:
    for statement in schema_ddl(SCHEMA):
        op.execute(statement)

    op.create_table(
        "courses",
        sa.Column("id", UUID, primary_key=True),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False, server_default=""),
        sa.Column("lesson_count", sa.Integer(), nullable=False),
        _created("created_at"),
        sa.Column(
            "search",
            postgresql.TSVECTOR(),
            sa.Computed(
                "to_tsvector('simple', title || ' ' || description)", persisted=True
            ),
            nullable=False,
        ),
        sa.CheckConstraint(
            "char_length(title) BETWEEN 1 AND 200", name="courses_title_length"
        ),
        sa.CheckConstraint("lesson_count > 0", name="courses_have_lessons"),
        schema=SCHEMA,
    )
    # Both listings walk this index: offset pages and keyset (cursor) pages.
    op.create_index(
        "courses_created_at_id_idx",
        "courses",
        [sa.text("created_at DESC"), sa.text("id DESC")],
        schema=SCHEMA,
    )
    op.create_index(
        "courses_search_idx",
        "courses",
        ["search"],
        postgresql_using="gin",
        schema=SCHEMA,
    )

    op.create_table(
        "lessons",
        sa.Column("id", UUID, primary_key=True),
        sa.Column(
            "course_id",
            UUID,
            sa.ForeignKey(f"{SCHEMA}.courses.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        # Also the index of a course's lessons, in order.
        sa.UniqueConstraint(
            "course_id", "position", name="lessons_course_position_key"
        ),
        sa.CheckConstraint(
            "char_length(title) BETWEEN 1 AND 200", name="lessons_title_length"
        ),
        sa.CheckConstraint("position >= 1", name="lessons_position_positive"),
        schema=SCHEMA,
    )

    op.create_table(
        "enrollments",
        sa.Column("id", UUID, primary_key=True),
        sa.Column("user_id", UUID, nullable=False),
        sa.Column(
            "course_id",
            UUID,
            sa.ForeignKey(f"{SCHEMA}.courses.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("status", sa.Text(), nullable=False, server_default="enrolled"),
        _created("enrolled_at"),
        sa.Column("completed_at", sa.TIMESTAMP(timezone=True), nullable=True),
        sa.UniqueConstraint("user_id", "course_id", name="enrollments_user_course_key"),
        sa.CheckConstraint(
            "status IN ('enrolled', 'in_progress', 'completed')",
            name="enrollments_status_known",
        ),
        sa.CheckConstraint(
            "(status = 'completed') = (completed_at IS NOT NULL)",
            name="enrollments_completed_when_dated",
        ),
        schema=SCHEMA,
    )
    # A learner's enrollments, newest first.
    op.create_index(
        "enrollments_user_enrolled_at_idx",
        "enrollments",
        ["user_id", sa.text("enrolled_at DESC"), sa.text("id DESC")],
        schema=SCHEMA,
    )

    op.create_table(
        "enrollment_lessons",
        sa.Column(
            "enrollment_id",
            UUID,
            sa.ForeignKey(f"{SCHEMA}.enrollments.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "lesson_id",
            UUID,
            sa.ForeignKey(f"{SCHEMA}.lessons.id", ondelete="CASCADE"),
            nullable=False,
        ),
        _created("completed_at"),
        sa.PrimaryKeyConstraint(
            "enrollment_id", "lesson_id", name="enrollment_lessons_pkey"
        ),
        schema=SCHEMA,
    )

    op.create_table(
        "certificates",
        sa.Column("id", UUID, primary_key=True),
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column(
            "enrollment_id",
            UUID,
            sa.ForeignKey(f"{SCHEMA}.enrollments.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("user_id", UUID, nullable=False),
        sa.Column("course_id", UUID, nullable=False),
        # As they were at completion: a certificate does not change afterwards.
        sa.Column("user_name", sa.Text(), nullable=False),
        sa.Column("course_title", sa.Text(), nullable=False),
        _created("issued_at"),
        sa.UniqueConstraint("code", name="certificates_code_key"),
        sa.UniqueConstraint("enrollment_id", name="certificates_enrollment_key"),
        schema=SCHEMA,
    )
    # A learner's certificates, newest first.
    op.create_index(
        "certificates_user_issued_at_idx",
        "certificates",
        ["user_id", sa.text("issued_at DESC"), sa.text("id DESC")],
        schema=SCHEMA,
    )


def downgrade() -> None:
    for table in (
        "certificates",
        "enrollment_lessons",
        "enrollments",
        "lessons",
        "courses",
        "processed_events",
        "outbox",
    ):
        op.drop_table(table, schema=SCHEMA)
