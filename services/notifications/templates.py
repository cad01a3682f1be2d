"""The emails the service sends: a subject and a plain-text body per template.

Each template is a pair of ``string.Template`` texts. They are filled with the
recipient's ``full_name`` and ``email`` (always from the users service, never
from whoever triggers the notification), the fields of the triggering data,
and a few fields a template derives from that data (``due_note``, ...).
Values are inserted as they are, never interpreted as templates themselves.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from services.notifications.errors import MissingData, UnknownTemplate

PERSON_FIELDS = frozenset({"full_name", "email"})
MAX_FIELD_CHARS = 20_000
MAX_SUBJECT_CHARS = 250
SIGNATURE = "\n\n-- \nThe Campus team\n"

Derive = Callable[[Mapping[str, Any]], dict[str, str]]


def _nothing(data: Mapping[str, Any]) -> dict[str, str]:
    return {}


@dataclass(frozen=True)
class Person:
    """Who receives a notification, as the users service knows them."""

    user_id: str
    email: str
    full_name: str


@dataclass(frozen=True)
class Rendered:
    subject: str
    body: str


@dataclass(frozen=True)
class Template:
    name: str
    subject: string.Template
    body: string.Template
    derive: Derive = _nothing
    derived: frozenset[str] = frozenset()

    @property
    def fields(self) -> list[str]:
        """The data fields the caller must give, in order of appearance."""
        used = self.subject.get_identifiers() + self.body.get_identifiers()
        given = PERSON_FIELDS | self.derived
        return [name for name in dict.fromkeys(used) if name not in given]

    def problems(self, data: Mapping[str, Any]) -> dict[str, str]:
        """What is wrong with ``data`` for this template, by field; empty if fine."""
        found: dict[str, str] = {}
        for name in self.fields:
            value = data.get(name)
            if name not in data:
                found[name] = "is missing"
            elif not isinstance(value, str) or not value.strip():
                found[name] = "must be a non-empty string"
            elif len(value) > MAX_FIELD_CHARS:
                found[name] = f"is longer than {MAX_FIELD_CHARS} characters"
        return found

    def render(self, person: Person, data: Mapping[str, Any]) -> Rendered:
        """The email for ``person``; MissingData naming the fields at fault."""
        problems = self.problems(data)
        if problems:
            raise MissingData(self.name, problems)
        values = {name: str(data[name]) for name in self.fields}
        values.update(self.derive(data))
        values.update(full_name=person.full_name, email=person.email)
        subject = " ".join(self.subject.substitute(values).split())
        if len(subject) > MAX_SUBJECT_CHARS:
            subject = subject[: MAX_SUBJECT_CHARS - 1].rstrip() + "\u2026"
        body = self.body.substitute(values).strip() + SIGNATURE
        return Rendered(subject, body)


def _program_notes(data: Mapping[str, Any]) -> dict[str, str]:
    due_at = data.get("due_at")
    courses = data.get("course_ids")
    if isinstance(courses, list) and courses:
        plural = "course" if len(courses) == 1 else "courses"
        courses_note = f" It has {len(courses)} {plural}, and you are enrolled in each."
    else:
        courses_note = ""
    due_note = (
        f"Please complete it by {due_at}."
        if isinstance(due_at, str) and due_at.strip()
        else "It has no due date."
    )
    return {"courses_note": courses_note, "due_note": due_note}


def _verify_path(data: Mapping[str, Any]) -> dict[str, str]:
    code = str(data.get("code", ""))
    return {"verify_path": f"/api/v1/certificates/{quote(code, safe='')}/verify"}


TEMPLATES: dict[str, Template] = {
    template.name: template
    for template in (
        Template(
            "welcome",
            string.Template("Welcome to Campus, $full_name"),
            string.Template(
                "Hello $full_name,\n\n"
                "your Campus account is ready. Sign in as $email to find your "
                "courses and programs."
            ),
        ),
        Template(
            "program_assigned",
            string.Template("New program for you: $program_title"),
            string.Template(
                "Hello $full_name,\n\n"
                "you have been assigned the program \u201c$program_title\u201d."
                "$courses_note\n\n$due_note"
            ),
            derive=_program_notes,
            derived=frozenset({"courses_note", "due_note"}),
        ),
        Template(
            "certificate_issued",
            string.Template("Your certificate for $course_title"),
            string.Template(
                "Hello $full_name,\n\n"
                "congratulations on completing \u201c$course_title\u201d.\n\n"
                "Your certificate's verification code is $code. Anyone can check "
                "it at $verify_path"
            ),
            derive=_verify_path,
            derived=frozenset({"verify_path"}),
        ),
        Template(
            "announcement",
            string.Template("$subject"),
            string.Template("Hello $full_name,\n\n$body"),
        ),
    )
}


def template(name: str) -> Template:
    """The template called ``name``; UnknownTemplate listing the known ones."""
    found = TEMPLATES.get(name)
    if found is None:
        raise UnknownTemplate(name, sorted(TEMPLATES))
    return found
