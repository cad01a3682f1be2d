"""Alembic migrations of the ``users`` schema; run them with
``python -m services.users.migrate``."""
