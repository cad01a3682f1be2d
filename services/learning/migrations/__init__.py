"""Alembic migrations of the ``learning`` schema; run them with
``python -m services.learning.migrate``."""
