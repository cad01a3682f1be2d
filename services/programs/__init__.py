"""The programs service: learning programs, who is assigned to them, and progress."""

# The Postgres schema this service owns. Here rather than in ``migrate`` so
# that the running service does not import Alembic and SQLAlchemy.
SCHEMA = "programs"
