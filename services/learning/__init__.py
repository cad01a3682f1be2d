"""The learning service: courses and their lessons, enrollments, certificates."""

# The Postgres schema this service owns. Here rather than in ``migrate`` so
# that the running service does not import Alembic and SQLAlchemy.
SCHEMA = "learning"
