"""Text a service can store: Postgres takes any character in ``text`` but NUL.

A NUL (U+0000) in a query parameter or a ``text``/``jsonb`` value makes
Postgres refuse the statement, so request fields that reach the database are
checked where they enter. ``Storable``, last in a field's or parameter's
``Annotated`` metadata (after its length constraints, which it would
otherwise hide), answers a NUL with a 422 naming the field.
"""

from __future__ import annotations

from typing import TypeVar

from pydantic import AfterValidator

NUL = "\x00"

S = TypeVar("S", bound=str | None)


def without_nul(value: S) -> S:
    """``value``, when it has no NUL; ValueError otherwise."""
    if value is not None and NUL in value:
        raise ValueError("must not contain the NUL character (U+0000)")
    return value


Storable = AfterValidator(without_nul)
