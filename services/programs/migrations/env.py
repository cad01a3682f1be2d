"""Alembic's entry into the programs schema (see services.common.migrations)."""

from services.common.migrations import run_online
from services.programs import SCHEMA

run_online(SCHEMA, lock_id=0x70726F6772616D73)  # "programs"
