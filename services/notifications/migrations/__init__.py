"""Alembic migrations of the ``notifications`` schema; run them with
``python -m services.notifications.migrate``."""
