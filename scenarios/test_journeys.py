"""The journeys QA signs off on every merge, told the way the business tells them.

Each step is a call of the client layer (``fixtures/campus.py``), which is
also an allure step, so the report reads like this file. The other modules
of ``scenarios/`` hold each service's contract in detail (statuses, problem
bodies, headers); these hold the paths people actually take.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import allure

from fixtures.campus import Admin, Json, Learner, UnexpectedAnswer, Visitor
from fixtures.factories import DataFactory
from harness.eventually import eventually
from harness.mailbox import Mailbox

# Effects that cross services travel as events; this is how long they may take.
EVENTS_TIMEOUT_S = 30.0

pytestmark = [allure.epic("Campus journeys")]


@allure.feature("Learning")
@allure.story("A learner earns a certificate anyone can verify")
def test_learner_earns_a_certificate_that_anyone_can_verify(
    admin: Admin,
    visitor: Visitor,
    new_learner: Callable[[], Learner],
    factory: DataFactory,
) -> None:
    title, description, lessons = factory.course(lessons=3)
    course = admin.create_course(title, description, lessons)
    learner = new_learner()

    found = learner.browse_courses(q=title)
    assert course["id"] in [item["id"] for item in found["items"]]
    learner.enroll(course["id"])
    done = learner.finish_course(course["id"])
    certificate = done["certificate"]

    assert done["enrollment"]["status"] == "completed"
    assert learner.certificates() == [certificate]
    verified = visitor.verify_certificate(certificate["code"])
    assert verified == {
        "valid": True,
        "user_name": learner.profile["full_name"],
        "course_title": title,
        "issued_at": certificate["issued_at"],
    }


@allure.feature("Programs")
@allure.story("An admin assigns a program and tracks who is done")
def test_admin_assigns_a_program_and_tracks_progress(
    admin: Admin, new_learner: Callable[[], Learner], factory: DataFactory
) -> None:
    first = admin.create_course(*factory.course(lessons=2))
    second = admin.create_course(*factory.course(lessons=1))
    program = admin.create_program(factory.program_title(), [first["id"]])
    admin.add_course(program["id"], second["id"])
    keen, busy = new_learner(), new_learner()
    due = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)

    admin.assign(program["id"], [keen.id, busy.id], due.isoformat())
    with allure.step("Both learners are enrolled in every course of the program"):
        for learner in (keen, busy):
            eventually(
                lambda learner=learner: {e["course_id"] for e in learner.enrollments()},
                until=lambda courses: {first["id"], second["id"]} <= courses,
                timeout_s=EVENTS_TIMEOUT_S,
                what=f"{learner.profile['full_name']} to be enrolled in the program",
            )
    keen.finish_course(first["id"])

    with allure.step("The admin sees one learner halfway and the other not started"):
        progress = eventually(
            lambda: {
                item["user_id"]: item
                for item in admin.program_progress(program["id"])["items"]
            },
            until=lambda found: found.get(keen.id, {}).get("courses_done") == 1,
            timeout_s=EVENTS_TIMEOUT_S,
            what="the program's progress to count the finished course",
        )
    assert (progress[keen.id]["percent"], progress[keen.id]["overdue"]) == (50, False)
    assert (progress[busy.id]["percent"], progress[busy.id]["overdue"]) == (0, False)
    mine = {p["program_id"]: p for p in keen.programs()}
    assert mine[program["id"]]["courses_done"] == 1


@allure.feature("Notifications")
@allure.story("An admin's message is queued, sent by email and tracked")
def test_notification_is_queued_sent_and_tracked(
    admin: Admin, learner: Learner, mailbox: Mailbox
) -> None:
    queued = admin.notify(
        learner.id, "announcement",
        {"subject": "Library hours", "body": "Open until 22:00 this week."},
    )  # fmt: skip
    assert queued["status"] == "queued"

    with allure.step("The email reaches the learner's inbox"):
        [email] = mailbox.wait_for(
            to=learner.profile["email"], subject="Library hours", timeout_s=30
        )
    assert "Open until 22:00 this week." in email.body
    with allure.step("The notification is tracked as sent"):
        tracked = eventually(
            lambda: admin.notification(queued["id"]),
            until=lambda found: found["status"] == "sent",
            timeout_s=EVENTS_TIMEOUT_S,
            what=f"notification {queued['id']} to be sent",
        )
    assert [entry["status"] for entry in tracked["history"]] == ["queued", "sent"]
    assert queued["id"] in [n["id"] for n in learner.notifications()]
    sent = mailbox.messages(to=learner.profile["email"], subject="Library hours")
    assert len(sent) == 1, f"the email arrived {len(sent)} times"


@allure.step("Make sure there is an onboarding program with a course")
def onboarding_program(admin: Admin, factory: DataFactory) -> Json:
    """The stack's onboarding program, made if there is none yet.

    A stack has at most one, and scenarios run in parallel: whichever
    creates it first wins (the other gets 409), and both use that one.
    """
    program = admin.onboarding_program()
    if program is None:
        welcome = admin.create_course(*factory.course(lessons=2))
        try:
            admin.create_program("Onboarding", [welcome["id"]], onboarding=True)
        except UnexpectedAnswer as exc:
            if exc.response.status_code != 409:
                raise
        program = admin.onboarding_program()
    assert program is not None, "no onboarding program, though one was just made"
    if not program["course_ids"]:
        welcome = admin.create_course(*factory.course(lessons=2))
        program = admin.add_course(program["id"], welcome["id"])
    return program


@allure.feature("Onboarding")
@allure.story("A newcomer is onboarded without asking")
def test_newcomer_is_welcomed_and_onboarded_without_asking(
    admin: Admin,
    new_learner: Callable[[], Learner],
    factory: DataFactory,
    mailbox: Mailbox,
) -> None:
    program = onboarding_program(admin, factory)

    newcomer = new_learner()

    with allure.step("A welcome email reaches the newcomer"):
        mailbox.wait_for(to=newcomer.profile["email"], subject="Welcome", timeout_s=30)
    with allure.step("The newcomer is in the onboarding program and its courses"):
        eventually(
            lambda: {e["course_id"] for e in newcomer.enrollments()},
            until=lambda courses: set(program["course_ids"]) <= courses,
            timeout_s=EVENTS_TIMEOUT_S,
            what="the newcomer to be enrolled in the onboarding courses",
        )
    assert program["id"] in [p["program_id"] for p in newcomer.programs()]
    welcomes = mailbox.messages(to=newcomer.profile["email"], subject="Welcome")
    assert len(welcomes) == 1, f"the welcome email arrived {len(welcomes)} times"
