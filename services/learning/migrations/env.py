"""Alembic's entry into the learning schema (see services.common.migrations)."""

from services.common.migrations import run_online
from services.learning import SCHEMA

run_online(SCHEMA, lock_id=0x6C6561726E)  # "learn"
