"""What makes an email address and a password acceptable for an account."""

from __future__ import annotations

import re

from services.common.api import FieldError

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024
MAX_EMAIL_LENGTH = 254

_LOCAL_PART = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
)
_DOMAIN_LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_TOP_LEVEL = re.compile(r"[A-Za-z]{2,63}")


def email_problem(email: str) -> str | None:
    """Why ``email`` is not a usable address, or None when it is."""
    if len(email) > MAX_EMAIL_LENGTH:
        return f"must be at most {MAX_EMAIL_LENGTH} characters"
    local, at, domain = email.rpartition("@")
    if not at or not local or not domain:
        return "must be an email address like name@example.org"
    if len(local) > 64 or not _LOCAL_PART.fullmatch(local):
        return "has an invalid part before the @"
    labels = domain.split(".")
    if (
        len(labels) < 2
        or not all(_DOMAIN_LABEL.fullmatch(label) for label in labels)
        or not _TOP_LEVEL.fullmatch(labels[-1])
    ):
        return "has an invalid domain after the @"
    return None


def password_problems(password: str, email: str) -> list[str]:
    """Every rule ``password`` breaks; empty when it is strong enough."""
    problems: list[str] = []
    if len(password) < MIN_PASSWORD_LENGTH:
        problems.append(f"must be at least {MIN_PASSWORD_LENGTH} characters long")
    if len(password) > MAX_PASSWORD_LENGTH:
        problems.append(f"must be at most {MAX_PASSWORD_LENGTH} characters long")
    has_letter = any(char.isalpha() for char in password)
    has_other = any(not char.isalpha() and not char.isspace() for char in password)
    if not (has_letter and has_other):
        problems.append("must mix letters with at least one digit or symbol")
    if password.strip().casefold() == email.strip().casefold():
        problems.append("must not be the email address")
    return problems


def registration_errors(email: str, password: str) -> list[FieldError]:
    """The field errors of a registration, in the order of the form's fields."""
    errors: list[FieldError] = []
    email_error = email_problem(email)
    if email_error is not None:
        errors.append(FieldError("email", email_error))
    errors.extend(FieldError("password", p) for p in password_problems(password, email))
    return errors
