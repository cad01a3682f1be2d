"""Alembic's entry into the users schema (see services.common.migrations)."""

from services.common.migrations import run_online
from services.users import SCHEMA

run_online(SCHEMA, lock_id=0x7573657273)  # "users"
