"""A scenario that fails on purpose, to show what a failure report holds.

It is left out of every run unless asked for by marker or by name:

    python -m pytest scenarios -m demo_failure --alluredir reports/allure-results

A learner completes a course before doing its lessons and expects a
certificate; the learning service rightly answers 409. The failure shows the
HTTP exchanges of the test (tokens and passwords redacted), the learning
service's log lines that carry their request ids, and the command that
reruns it with the same data.
"""

from __future__ import annotations

import allure
import pytest

from fixtures.campus import Admin, Learner
from fixtures.factories import DataFactory


@pytest.mark.demo_failure
@allure.epic("Campus journeys")
@allure.feature("Failure reports")
@allure.story("A failing journey explains itself")
def test_demo_failure_certificate_before_the_lessons(
    admin: Admin, learner: Learner, factory: DataFactory
) -> None:
    course = admin.create_course(*factory.course(lessons=2))
    enrollment = learner.enroll(course["id"])

    learner.complete(enrollment["id"])  # expects 200: this is the demonstrated bug
