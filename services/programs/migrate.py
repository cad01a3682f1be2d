"""Bring the ``programs`` schema up to date: ``python -m services.programs.migrate``.

Reads DATABASE_URL (``postgresql://user:password@host:port/database``) and
applies every Alembic revision in ``services/programs/migrations`` not applied
yet.
"""

from __future__ import annotations

import sys
from pathlib import Path

from services.common.migrations import Migrations
from services.programs import SCHEMA

MIGRATIONS = Migrations("programs", SCHEMA, Path(__file__).with_name("migrations"))
upgrade = MIGRATIONS.upgrade
downgrade = MIGRATIONS.downgrade

if __name__ == "__main__":
    sys.exit(MIGRATIONS.main())
