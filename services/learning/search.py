"""Text search over courses: what a search box's words mean to Postgres.

Courses carry a ``tsvector`` of their title and description in the ``simple``
configuration (no stemming, no stop words, so it works for any language).
A search matches courses that have every word, the last one as a prefix, so
that results follow the user's typing: ``"pyth"`` finds Python. The text is
split into words by Postgres's own parser, in ``learning.search_query``
(migration 0002), so the words of a query are the words of the courses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_TEXT_LENGTH = 200

# What Postgres's parser may take for a word: a letter or a digit.
_WORD = re.compile(r"[^\W_]")


@dataclass(frozen=True)
class Search:
    """A search for courses; ``text`` goes to ``learning.search_query``."""

    text: str

    @property
    def matches_nothing(self) -> bool:
        return not _WORD.search(self.text)


def parse(text: str | None) -> Search | None:
    """The search ``text`` asks for; None when it is blank (no narrowing).

    Nothing in ``text`` is read as tsquery syntax. Text without a word
    (``"?!"``) matches nothing.
    """
    if text is None or not text.strip():
        return None
    return Search(text.strip())
