"""Starting the service as the harness does: migrations from the command line,
the app under an ASGI server, and what it refuses to start without."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator

import httpx
import pytest
from notifications_testkit import (
    ADMIN,
    ROOT,
    Serve,
    SinkProcess,
    UsersStandIn,
    free_port,
)

from harness.eventually import eventually
from harness.mailbox import Mailbox
from services.notifications.app import create_app
from services.notifications.errors import ConfigError, DatabaseError
from services.notifications.migrate import downgrade, upgrade
from services.notifications.settings import Settings

SERVICE_VARIABLES = ("DATABASE_URL", "REDIS_URL", "USERS_URLS", "SMTP_HOST",
                     "SMTP_PORT", "MAIL_FROM")  # fmt: skip


def environment(**variables: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if k not in SERVICE_VARIABLES}
    return {**base, "PYTHONPATH": str(ROOT), **variables}


def migrate(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.notifications.migrate"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_migrate_without_database_url_names_it():
    done = migrate(environment())

    assert done.returncode == 2
    assert done.stderr.strip().endswith(
        "error: DATABASE_URL is not set; the notifications service needs it"
    )


def test_migrate_twice_then_down_and_up_again(new_database: Callable[[str], str]):
    url = new_database("migrate")

    first = migrate(environment(DATABASE_URL=url))
    second = migrate(environment(DATABASE_URL=url))
    downgrade(url, "base")
    upgrade(url)

    assert (first.returncode, second.returncode) == (0, 0)
    assert first.stdout.startswith("notifications schema of postgresql://")
    assert first.stdout.strip().endswith("is up to date")


@pytest.fixture
def served(
    test_database: str,
    redis_url: str,
    users: UsersStandIn,
    mail_sink: SinkProcess,
) -> Iterator[str]:
    """The service under uvicorn, as the harness starts it; yields its URL."""
    port = free_port()
    env = environment(
        DATABASE_URL=test_database,
        REDIS_URL=redis_url,
        USERS_URLS=users.url,
        SMTP_HOST="127.0.0.1",
        SMTP_PORT=str(mail_sink.smtp_port),
        MAIL_FROM="Campus <noreply@campus.test>",
        NOTIFY_QUEUE_STREAM=f"test:notifications:{port}",
        EVENTS_STREAM=f"test:events:{port}",
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "services.notifications.main:app",
         "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        eventually(
            lambda: httpx.get(f"{url}/readyz", timeout=1.0).status_code == 200,
            timeout_s=20.0,
            what=f"the notifications service at {url} to be ready",
        )
        yield url
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=20)
        # uvicorn ends with the signal it was stopped by, after a clean shutdown.
        assert process.returncode in (0, -signal.SIGTERM), stderr.decode()[-2000:]
        assert "notifications service stopped" in stderr.decode()


def test_service_under_uvicorn_sends_what_an_admin_triggers(
    served: str, users: UsersStandIn, mail_sink: SinkProcess
):
    email = f"uvicorn-{free_port()}@example.org"
    user_id = users.add(email, "Uma Vick")

    response = httpx.post(
        f"{served}/api/v1/notifications",
        json={"user_id": user_id, "template": "welcome", "data": {}},
        headers=ADMIN,
    )

    assert response.status_code == 202
    with Mailbox(mail_sink.url) as mailbox:
        [mail] = mailbox.wait_for(to=email, timeout_s=15)
    assert mail.subject == "Welcome to Campus, Uma Vick"


@pytest.mark.anyio
async def test_startup_without_settings_names_the_variable(
    monkeypatch: pytest.MonkeyPatch,
):
    for name in SERVICE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    app = create_app()

    with pytest.raises(ConfigError) as raised:
        async with app.router.lifespan_context(app):
            pass

    assert str(raised.value) == (
        "DATABASE_URL is not set; the notifications service needs it"
    )


@pytest.mark.anyio
async def test_startup_with_unreachable_database_names_it(settings: Settings):
    url = "postgresql://nobody:hunter2@127.0.0.1:9/campus"
    app = create_app(dataclasses.replace(settings, database_url=url))

    with pytest.raises(DatabaseError) as raised:
        async with app.router.lifespan_context(app):
            pass

    assert "cannot connect to DATABASE_URL=postgresql://nobody:***@127.0.0.1:9" in str(
        raised.value
    )
    assert "hunter2" not in str(raised.value)


@pytest.mark.anyio
async def test_readiness_without_redis_is_503(settings: Settings, serve: Serve):
    closed = f"redis://127.0.0.1:{free_port()}/0"
    async with serve(settings, workers=False, redis_url=closed) as http:
        response = await http.get("/readyz")

    assert response.status_code == 503
    assert response.json()["detail"].startswith("Redis does not answer: ")
