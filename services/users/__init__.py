"""The users service: accounts, passwords, access and refresh tokens, signing keys.

It owns the Postgres schema ``users``, signs access tokens (ES256) with the
newest key in ``USERS_KEYS_DIR`` and publishes every key at
``/.well-known/jwks.json`` for the gateway. Requests arrive through the
gateway, which verifies tokens and passes ``X-User-Id`` and ``X-User-Roles``.
"""

# The Postgres schema this service owns. Here rather than in ``migrate`` so
# that the running service does not import Alembic and SQLAlchemy.
SCHEMA = "users"
