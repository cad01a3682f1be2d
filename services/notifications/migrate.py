"""Bring the ``notifications`` schema up to date:
``python -m services.notifications.migrate``.

Reads DATABASE_URL (``postgresql://user:password@host:port/database``) and
applies every Alembic revision in ``services/notifications/migrations`` not
applied yet.
"""

from __future__ import annotations

import sys
from pathlib import Path

from services.common.migrations import Migrations
from services.notifications import SCHEMA

MIGRATIONS = Migrations("notifications", SCHEMA, Path(__file__).with_name("migrations"))
upgrade = MIGRATIONS.upgrade
downgrade = MIGRATIONS.downgrade

if __name__ == "__main__":
    sys.exit(MIGRATIONS.main())
