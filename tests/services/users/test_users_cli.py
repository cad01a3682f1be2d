"""The command lines the stack's setup runs, and the server entry point, as
subprocesses with the environment they get."""

from __future__ import annotations

import asyncio
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import asyncpg
import httpx
import pytest
from argon2 import PasswordHasher

from harness.endpoints import Endpoints
from services.users.migrate import downgrade

START_DEADLINE_S = 30.0


def run(
    module: str, *args: str, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", f"services.users.{module}", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def fetch(url: str, query: str, *args: object) -> list[asyncpg.Record]:
    async def go() -> list[asyncpg.Record]:
        connection = await asyncpg.connect(url)
        try:
            return list(await connection.fetch(query, *args))
        finally:
            await connection.close()

    return asyncio.run(go())


@pytest.mark.parametrize("module", ["migrate", "bootstrap"])
def test_database_cli_without_database_url_names_it(
    module: str, cli_env: Callable[..., dict[str, str]]
):
    done = run(module, env=cli_env(ADMIN_EMAIL="a@b.org", ADMIN_PASSWORD="x"))

    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        "error: DATABASE_URL is not set; the users service needs it"
    )


def test_migrate_creates_the_schema_and_runs_again_as_a_no_op(
    make_database: Callable[[str], str], cli_env: Callable[..., dict[str, str]]
):
    url = make_database("migrate")

    first = run("migrate", env=cli_env(DATABASE_URL=url))
    second = run("migrate", env=cli_env(DATABASE_URL=url))

    assert first.returncode == second.returncode == 0, first.stderr
    assert first.stdout.strip() == f"users schema of {url} is up to date"
    tables = fetch(
        url,
        "SELECT table_name FROM information_schema.tables "
        "WHERE table_schema = 'users' ORDER BY table_name",
    )
    assert [t["table_name"] for t in tables] == [
        "alembic_version",
        "outbox",
        "processed_events",
        "refresh_tokens",
        "users",
    ]
    indexes = fetch(url, "SELECT indexname FROM pg_indexes WHERE schemaname = 'users'")
    assert {
        "users_email_lower_key",
        "refresh_tokens_token_hash_key",
        "refresh_tokens_family_id_idx",
        "refresh_tokens_user_id_idx",
    } <= {i["indexname"] for i in indexes}

    downgrade(url, "base")

    left = fetch(
        url,
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'users'",
    )
    assert [t["table_name"] for t in left] == ["alembic_version"]


def test_migrate_unreachable_database_fails_naming_it(
    cli_env: Callable[..., dict[str, str]],
):
    url = "postgresql://campus:hunter2@127.0.0.1:9/campus"

    done = run("migrate", env=cli_env(DATABASE_URL=url))

    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(
        "error: cannot upgrade the users schema in "
        "postgresql://campus:***@127.0.0.1:9/campus: "
    )
    assert "hunter2" not in done.stderr


def test_migrate_non_postgres_url_fails_naming_it(
    cli_env: Callable[..., dict[str, str]],
):
    done = run("migrate", env=cli_env(DATABASE_URL="mysql://db/campus"))

    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        "error: DATABASE_URL=mysql://db/campus is not a postgresql:// URL"
    )


def test_keys_without_keys_dir_names_it(cli_env: Callable[..., dict[str, str]]):
    done = run("keys", "ensure", env=cli_env())

    assert done.returncode == 2
    assert done.stderr.strip() == (
        "error: USERS_KEYS_DIR is not set; it names the folder of the signing keys"
    )


def test_keys_ensure_rotate_list(
    tmp_path: Path, cli_env: Callable[..., dict[str, str]]
):
    folder = tmp_path / "keys"
    env = cli_env(USERS_KEYS_DIR=str(folder))

    created = run("keys", "ensure", env=env)
    kept = run("keys", "ensure", env=env)
    rotated = run("keys", "rotate", env=env)
    listed = run("keys", "list", env=env)

    assert [created.returncode, kept.returncode, rotated.returncode] == [0, 0, 0]
    files = sorted(folder.glob("*.pem"))
    first, second = (path.stem for path in files)
    assert created.stdout.strip() == (
        f"{first} created in {folder}; published at the next rescan, it signs once "
        "KEYS_ACTIVATION_S old"
    )
    assert kept.stdout.strip() == f"{first} signs; 1 key(s) in {folder}"
    assert rotated.stdout.strip().startswith(f"{second} created in {folder}")
    assert listed.stdout.split() == [first, second]
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert path.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    for output in (created, kept, rotated, listed):
        assert "PRIVATE KEY" not in output.stdout + output.stderr


def test_keys_unwritable_folder_fails_naming_it(
    tmp_path: Path, cli_env: Callable[..., dict[str, str]]
):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")

    env = cli_env(USERS_KEYS_DIR=str(blocker / "keys"))

    rotated = run("keys", "rotate", env=env)
    listed = run("keys", "list", env=env)

    assert rotated.returncode == listed.returncode == 1
    assert rotated.stderr.startswith(f"error: cannot write a key to {blocker}/keys: ")
    assert listed.stderr.startswith(f"error: cannot list the keys in {blocker}/keys: ")


@pytest.mark.parametrize("missing", ["ADMIN_EMAIL", "ADMIN_PASSWORD"])
def test_bootstrap_without_admin_variable_names_it(
    missing: str, cli_env: Callable[..., dict[str, str]], test_database: str
):
    variables = {
        "DATABASE_URL": test_database,
        "ADMIN_EMAIL": "root@campus.test",
        "ADMIN_PASSWORD": "Admin-pass-123",
    }
    del variables[missing]

    done = run("bootstrap", env=cli_env(**variables))

    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        f"error: {missing} is not set; the users service needs it"
    )


def test_bootstrap_bad_admin_email_names_it(
    cli_env: Callable[..., dict[str, str]], test_database: str
):
    done = run(
        "bootstrap",
        env=cli_env(
            DATABASE_URL=test_database,
            ADMIN_EMAIL="root",
            ADMIN_PASSWORD="Admin-pass-123",
        ),
    )

    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        "error: ADMIN_EMAIL='root' must be an email address like name@example.org"
    )


def test_bootstrap_creates_then_updates_the_admin(
    cli_env: Callable[..., dict[str, str]], test_database: str
):
    email = f"root-{time.time_ns()}@campus.test"
    first_env = cli_env(
        DATABASE_URL=test_database, ADMIN_EMAIL=email, ADMIN_PASSWORD="First-pass-123"
    )
    second_env = cli_env(
        DATABASE_URL=test_database,
        ADMIN_EMAIL=email.upper(),
        ADMIN_PASSWORD="Second-pass-456",
    )

    created = run("bootstrap", env=first_env)
    updated = run("bootstrap", env=second_env)

    assert created.returncode == updated.returncode == 0, created.stderr
    rows = fetch(
        test_database,
        "SELECT id, email, roles, password_hash, full_name FROM users.users "
        "WHERE lower(email) = lower($1)",
        email,
    )
    (row,) = rows
    assert created.stdout.strip() == f"admin {email} ({row['id']}) created"
    assert updated.stdout.strip() == f"admin {email} ({row['id']}) updated"
    assert row["roles"] == ["learner", "admin"]
    assert row["full_name"] == "Campus administrator"
    assert PasswordHasher().verify(row["password_hash"], "Second-pass-456")
    for done in (created, updated):
        assert "pass-" not in done.stdout + done.stderr


def test_bootstrap_weak_password_is_refused_without_echoing_it(
    cli_env: Callable[..., dict[str, str]], test_database: str
):
    done = run(
        "bootstrap",
        env=cli_env(
            DATABASE_URL=test_database,
            ADMIN_EMAIL=f"weak-{time.time_ns()}@campus.test",
            ADMIN_PASSWORD="onlyletterslong",
            ADMIN_FULL_NAME="Weak Admin",
        ),
    )

    assert done.returncode == 2
    assert (
        "error: ADMIN_PASSWORD is weak: it must mix letters with at least one digit "
        "or symbol" in done.stderr
    )
    assert "onlyletterslong" not in done.stdout + done.stderr


def test_bootstrap_without_migrations_fails_with_a_hint(
    make_database: Callable[[str], str], cli_env: Callable[..., dict[str, str]]
):
    url = make_database("bare")

    done = run(
        "bootstrap",
        env=cli_env(
            DATABASE_URL=url, ADMIN_EMAIL="a@campus.test", ADMIN_PASSWORD="Admin-123-x"
        ),
    )

    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: cannot write the admin to {url}: ")
    assert last.endswith("has `python -m services.users.migrate` run?")


def test_bootstrap_unreachable_database_fails_naming_it(
    cli_env: Callable[..., dict[str, str]],
):
    done = run(
        "bootstrap",
        env=cli_env(
            DATABASE_URL="postgresql://u:pw@127.0.0.1:9/campus",
            ADMIN_EMAIL="a@campus.test",
            ADMIN_PASSWORD="Admin-123-x",
        ),
    )

    assert done.returncode == 1
    assert (
        done.stderr.strip()
        .splitlines()[-1]
        .startswith(
            "error: cannot connect to DATABASE_URL=postgresql://u:***@127.0.0.1:9/campus: "
        )
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_server_entry_point_serves_and_logs_json(
    tmp_path: Path,
    test_database: str,
    cli_env: Callable[..., dict[str, str]],
    stack: Endpoints,
):
    keys = tmp_path / "keys"
    env = cli_env(
        DATABASE_URL=test_database,
        REDIS_URL=stack["redis"].url,
        USERS_KEYS_DIR=str(keys),
        JWT_ISSUER="campus-users",
        JWT_AUDIENCE="campus-api",
    )
    assert run("keys", "ensure", env=env).returncode == 0
    port = free_port()
    log = tmp_path / "server.log"
    with log.open("w") as sink:
        server = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "services.users.main:app",
             "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + START_DEADLINE_S
        last_error = ""
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            while time.monotonic() < deadline and server.poll() is None:
                try:
                    ready = client.get("/readyz", headers={"X-Request-ID": "srv-1"})
                    break
                except httpx.TransportError as exc:
                    last_error = str(exc)
                    time.sleep(0.05)
            else:
                pytest.fail(
                    f"the server did not answer /readyz in {START_DEADLINE_S}s "
                    f"(exit code {server.poll()}, last error {last_error!r}): "
                    f"{log.read_text()[-2000:]}"
                )
    finally:
        server.terminate()
        server.wait(timeout=30)

    assert ready.status_code == 200
    lines = log.read_text().splitlines()
    assert any('"request_id": "srv-1"' in line and '"service": "users"' in line
               for line in lines), lines  # fmt: skip
