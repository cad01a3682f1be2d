"""Text search over courses: what a search box's words mean to Postgres.

Courses carry a ``tsvector`` of their title and description in the ``simple``
configuration (no stemming, no stop words, so it works for any language).
A search matches courses that have every word, the last one as a prefix, so
that results follow the user's typing: ``"pyth"`` finds Python.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_TEXT_LENGTH = 200

# Postgres's parser splits on what is not a letter or digit, underscore included.
_WORD = re.compile(r"[^\W_]+")


@dataclass(frozen=True)
class Search:
    """A search for courses; ``tsquery`` is ``to_tsquery('simple', ...)`` text."""

    tsquery: str

    @property
    def matches_nothing(self) -> bool:
        return not self.tsquery


def parse(text: str | None) -> Search | None:
    """The search ``text`` asks for; None when it is blank (no narrowing).

    Each word is quoted as a lexeme, so nothing in ``text`` is read as
    tsquery syntax. Text without a word (``"?!"``) matches nothing.
    """
    if text is None or not text.strip():
        return None
    terms = [f"'{word}'" for word in _WORD.findall(text.lower())]
    if terms:
        terms[-1] += ":*"
    return Search(" & ".join(terms))
