"""What a failed scenario leaves behind, tested from outside with real pytest runs
against a stack whose gateway is a small stand-in for the Campus API.

The terminal, the JUnit XML and the allure results must explain the failure
(JUnit XML keeps the test's HTTP exchanges and log lines as its output), and
none of them may hold a password or a token.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Registers, logs in and refreshes like the users service, with tokens that are
# easy to look for; prints one line per request with its request id.
FAKE_API = """
import itertools, json

issued = itertools.count(1)
users = {}

def tokens():
    n = next(issued)
    return {"access_token": f"eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ1In0.sig{n}",
            "refresh_token": f"refresh-secret-{n:04d}",
            "token_type": "Bearer", "expires_in": 900}

def answer(method, path, data):
    if path == "/api/v1/auth/register":
        users[data["email"]] = data
        return 201, {"id": f"u{len(users)}", "email": data["email"],
                     "full_name": data["full_name"], "roles": ["learner"]}
    if path == "/api/v1/auth/login":
        user = users.get(data["email"])
        if user is None or user["password"] != data["password"]:
            return 401, {"type": "about:blank", "title": "Unauthorized", "status": 401,
                         "detail": "the email or password is incorrect"}
        return 200, tokens()
    if path == "/api/v1/auth/refresh":
        return 200, tokens()
    if path == "/api/v1/users/me":
        return 200, {"id": "u1", "email": "ann@campus.test", "full_name": "Ann",
                     "roles": ["learner"]}
    return 404, {"type": "about:blank", "title": "Not Found", "status": 404,
                 "detail": path}

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body, more = b"", True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    request_id = dict(scope["headers"]).get(b"x-request-id", b"-").decode()
    print("handled", scope["method"], scope["path"], "request_id=" + request_id,
          flush=True)
    status, data = answer(scope["method"], scope["path"], json.loads(body or b"{}"))
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": json.dumps(data).encode()})
"""

TOPOLOGY = """
[components.gateway]
kind = "asgi"
app = "fake_api:app"
"""

SCENARIOS = """
import os, pathlib
from fixtures.campus import Visitor, sign_up

def keep(password):
    out = pathlib.Path(os.environ["RECORD_DIR"])
    out.mkdir(exist_ok=True)
    with open(out / "passwords.txt", "a") as passwords:
        passwords.write(password + "\\n")

def test_login_with_a_typo(http, factory):
    person = factory.person()
    keep(person.password)
    sign_up(http, person)
    Visitor(http).login(person.email, person.password + "x")

def test_refresh_that_should_have_failed(http, factory):
    person = factory.person()
    keep(person.password)
    learner = sign_up(http, person)
    learner.call("POST", "/api/v1/auth/refresh", expect=401,
                 json={"refresh_token": learner.tokens["refresh_token"]})

def test_sign_up(http, factory):
    person = factory.person()
    keep(person.password)
    assert sign_up(http, person).tokens["token_type"] == "Bearer"
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyprojecttoml('[tool.harness]\ntopology = "stack.toml"\n')
    pytester.path.joinpath("stack.toml").write_text(TOPOLOGY)
    pytester.makepyfile(fake_api=FAKE_API, test_scenarios=SCENARIOS)
    pytester._monkeypatch.setenv("PYTHONPATH", str(ROOT))
    pytester._monkeypatch.setenv("RECORD_DIR", str(pytester.path / "records"))
    return pytester


def run(project: pytest.Pytester, *args: str) -> pytest.RunResult:
    result = project.runpytest_subprocess(
        "-p", "fixtures.plugin", "-p", "no:cacheprovider", "--seed", "4242",
        "--junitxml=junit.xml", "--alluredir=allure", *args,
    )  # fmt: skip
    result.assert_outcomes(failed=2, passed=1)
    return result


def junit_cases(project: pytest.Pytester) -> dict[str, ET.Element]:
    tree = ET.parse(project.path / "junit.xml")
    return {case.attrib["name"]: case for case in tree.iter("testcase")}


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["alone", "xdist"])
def test_failed_tests_leave_no_password_or_token_anywhere(
    project: pytest.Pytester, workers: list[str]
) -> None:
    result = run(project, *workers)

    passwords = (project.path / "records" / "passwords.txt").read_text().split()
    assert len(passwords) == 3
    outputs = {
        "terminal": result.stdout.str() + result.stderr.str(),
        "junit.xml": (project.path / "junit.xml").read_text(),
        **{
            f"allure/{path.name}": path.read_text()
            for path in (project.path / "allure").iterdir()
        },
    }
    assert any(path.endswith("-result.json") for path in outputs)
    for where, text in outputs.items():
        assert "eyJ" not in text, where
        assert "refresh-secret-" not in text, where
        for password in passwords:
            assert password not in text, where
    terminal = outputs["terminal"]
    assert "got 401 from POST /api/v1/auth/login: " in terminal
    assert (
        'got 200 from POST /api/v1/auth/refresh: {"access_token": "***", '
        '"refresh_token": "***", "token_type": "***", "expires_in": 900}'
    ) in terminal


def test_junit_keeps_a_failed_tests_exchanges_and_log_lines_as_its_output(
    project: pytest.Pytester,
) -> None:
    run(project, "-n", "2")

    cases = junit_cases(project)
    failed = cases["test_login_with_a_typo"]
    [failure] = failed.iter("failure")
    assert "HTTP exchanges" not in (failure.text or "")
    assert failure.attrib["message"].startswith(
        "fixtures.campus.UnexpectedAnswer: log in as "
    )
    [output] = [element.text or "" for element in failed.iter("system-out")]
    exchanges, logs = output.split(" service log lines of these requests ")
    assert exchanges.startswith(" HTTP exchanges ".center(80, "-") + "\n")
    assert "> POST http://127.0.0.1:" in exchanges
    assert '"password": "***"' in exchanges
    assert "< 401" in exchanges
    request_ids = [
        line.split(": ")[1]
        for line in exchanges.splitlines()
        if line.startswith("> x-request-id: ")
    ]
    assert len(request_ids) == 4  # register, log in, me, log in again
    for request_id in request_ids:
        assert f"request_id={request_id}" in logs
    assert list(cases["test_sign_up"].iter("system-out")) == []
