"""Rendering the templates: the right fields, what is missing, and what the
data cannot change."""

from __future__ import annotations

import pytest

from services.notifications.errors import MissingData, UnknownTemplate
from services.notifications.templates import (
    MAX_FIELD_CHARS,
    MAX_SUBJECT_CHARS,
    TEMPLATES,
    Person,
    template,
)

ANN = Person("6a1d3c52-8c38-4f4a-9d0e-1b2c3d4e5f60", "ann@example.org", "Ann Lee")
SIGNATURE = "\n\n-- \nThe Campus team\n"


def test_templates_are_the_four_documented():
    assert sorted(TEMPLATES) == [
        "announcement",
        "certificate_issued",
        "program_assigned",
        "welcome",
    ]
    assert {name: t.fields for name, t in TEMPLATES.items()} == {
        "welcome": [],
        "program_assigned": ["program_title"],
        "certificate_issued": ["course_title", "code"],
        "announcement": ["subject", "body"],
    }


def test_welcome_renders_the_recipients_name_and_address():
    rendered = template("welcome").render(ANN, {"email": "eve@example.org"})

    assert rendered.subject == "Welcome to Campus, Ann Lee"
    assert rendered.body == (
        "Hello Ann Lee,\n\nyour Campus account is ready. Sign in as "
        "ann@example.org to find your courses and programs." + SIGNATURE
    )


def test_program_assigned_without_courses_or_due_date():
    rendered = template("program_assigned").render(
        ANN, {"program_title": "Onboarding", "due_at": None}
    )

    assert rendered.subject == "New program for you: Onboarding"
    assert rendered.body == (
        "Hello Ann Lee,\n\nyou have been assigned the program \u201cOnboarding\u201d."
        "\n\nIt has no due date." + SIGNATURE
    )


def test_certificate_issued_quotes_the_code_in_the_verify_path():
    rendered = template("certificate_issued").render(
        ANN, {"course_title": "Go", "code": "A/B 1"}
    )

    assert rendered.subject == "Your certificate for Go"
    assert "verification code is A/B 1." in rendered.body
    assert "/api/v1/certificates/A%2FB%201/verify" in rendered.body


def test_announcement_inserts_data_literally():
    rendered = template("announcement").render(
        ANN,
        {"subject": "Costs $5 for ${full_name}", "body": "Bring $email.", "x": 1},
    )

    assert rendered.subject == "Costs $5 for ${full_name}"
    assert rendered.body == "Hello Ann Lee,\n\nBring $email." + SIGNATURE


def test_data_cannot_change_the_recipients_name():
    rendered = template("announcement").render(
        ANN, {"subject": "Hi", "body": "B", "full_name": "Eve"}
    )

    assert rendered.body.startswith("Hello Ann Lee,")


def test_subject_is_one_line_and_capped():
    rendered = template("announcement").render(
        ANN, {"subject": "Line one\r\nBcc: eve@example.org " + "x" * 300, "body": "B"}
    )

    assert "\n" not in rendered.subject
    assert rendered.subject.startswith("Line one Bcc: eve@example.org xxx")
    assert len(rendered.subject) == MAX_SUBJECT_CHARS
    assert rendered.subject.endswith("\u2026")


def test_missing_data_names_each_field():
    with pytest.raises(MissingData) as raised:
        template("certificate_issued").render(
            ANN, {"course_title": 7, "code": "x" * (MAX_FIELD_CHARS + 1)}
        )

    assert raised.value.problems == {
        "course_title": "must be a non-empty string",
        "code": f"is longer than {MAX_FIELD_CHARS} characters",
    }
    assert str(raised.value) == (
        "the certificate_issued template cannot be rendered: course_title must be "
        f"a non-empty string; code is longer than {MAX_FIELD_CHARS} characters"
    )


def test_unknown_template_lists_the_known_ones():
    with pytest.raises(UnknownTemplate) as raised:
        template("Welcome")

    assert str(raised.value) == (
        "there is no template 'Welcome'; the templates are announcement, "
        "certificate_issued, program_assigned, welcome"
    )
