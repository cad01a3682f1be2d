"""Alembic's entry into the notifications schema (see services.common.migrations)."""

from services.common.migrations import run_online
from services.notifications import SCHEMA

run_online(SCHEMA, lock_id=0x6E6F7469667931)  # "notify1"
