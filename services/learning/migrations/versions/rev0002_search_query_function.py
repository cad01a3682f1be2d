"""A search box's text as a tsquery, split into words by Postgres's own parser.

The course's ``search`` vector is made by Postgres's parser, which has rules
of its own: ``gw0-2`` is the words ``gw0`` and ``-2``, ``v1.2`` is one word.
A query split in Python ("gw0" and "2") misses such courses; splitting the
text with the same parser (``ts_debug``) cannot. Hyphenated compounds are
left to their parts, so that a half-typed last part still matches as a
prefix.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION learning.search_query(text text) RETURNS tsquery
        LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
            WITH words AS (
                SELECT lexeme,
                       row_number() OVER (ORDER BY token_n, lexeme_n) AS n
                FROM ts_debug('simple', text) WITH ORDINALITY
                         AS token(alias, description, token, dictionaries,
                                  dictionary, lexemes, token_n)
                CROSS JOIN LATERAL unnest(token.lexemes) WITH ORDINALITY
                         AS word(lexeme, lexeme_n)
                WHERE token.alias NOT IN ('asciihword', 'hword', 'numhword')
            )
            SELECT to_tsquery('simple', string_agg(
                quote_literal(lexeme)
                    || CASE WHEN n = (SELECT max(n) FROM words) THEN ':*' ELSE '' END,
                ' & ' ORDER BY n))
            FROM words
        $$
        """
    )


def downgrade() -> None:
    op.execute("DROP FUNCTION learning.search_query(text)")
