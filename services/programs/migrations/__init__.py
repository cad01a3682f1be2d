"""Alembic migrations of the ``programs`` schema; run them with
``python -m services.programs.migrate``."""
