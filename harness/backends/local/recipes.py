"""One recipe per component kind: how to prepare, launch and address it locally."""

from __future__ import annotations

import os
import pwd
import signal
import stat
import sys
from collections.abc import Callable
from pathlib import Path

from harness.backends.local import binaries
from harness.backends.local.backend import Launch, Recipe, Unit
from harness.endpoints import Endpoint
from harness.errors import ComponentStartError, ConfigError
from harness.topology import Probe

POSTGRES_USER = "postgres"
INITDB_TIMEOUT_S = 60


class ProcessRecipe:
    """Any command; an ``http`` port gets http:// URLs."""

    def prepare(self, unit: Unit) -> None:
        pass

    def launch(self, unit: Unit, replica: int) -> Launch:
        key = f"components.{unit.name}.command"
        argv = unit.render_argv(unit.component.command, key=key, replica=replica)
        return Launch(argv, unit.env(replica))

    def default_probe(self, unit: Unit) -> Probe:
        return Probe("tcp", port=unit.component.ports[0])

    def endpoint(self, unit: Unit) -> Endpoint:
        urls = tuple(
            f"http://{unit.host}:{p['http']}" for p in unit.ports if "http" in p
        )
        return Endpoint(
            unit.name, unit.component.kind, unit.host, tuple(unit.ports), urls
        )

    def after_ready(self, unit: Unit) -> None:
        pass


class AsgiRecipe(ProcessRecipe):
    """An ASGI application under uvicorn, one process per replica.

    ``options.server_args`` adds uvicorn flags, e.g. ``["--http", "pkg:Protocol"]``.
    """

    def launch(self, unit: Unit, replica: int) -> Launch:
        port = (
            unit.ports[replica]["http"]
            if "http" in unit.ports[replica]
            else next(iter(unit.ports[replica].values()))
        )
        argv = [
            sys.executable, "-m", "uvicorn", str(unit.component.app),
            "--host", unit.host, "--port", str(port),
            "--no-access-log", "--log-level", "info",
            # Every client is on loopback here: X-Forwarded-For must not be believed.
            "--no-proxy-headers",
            "--timeout-graceful-shutdown", "3",
            *_strings(unit, "server_args"),
        ]  # fmt: skip
        return Launch(argv, unit.env(replica))

    def default_probe(self, unit: Unit) -> Probe:
        return Probe("tcp", port=unit.component.ports[0])

    def endpoint(self, unit: Unit) -> Endpoint:
        first = unit.component.ports[0]
        name = "http" if "http" in unit.component.ports else first
        urls = tuple(f"http://{unit.host}:{p[name]}" for p in unit.ports)
        return Endpoint(unit.name, "asgi", unit.host, tuple(unit.ports), urls)


class MailsinkRecipe(ProcessRecipe):
    """The harness's own SMTP sink with its HTTP API (``harness.mailsink``)."""

    def launch(self, unit: Unit, replica: int) -> Launch:
        ports = unit.ports[replica]
        argv = [
            sys.executable, "-m", "harness.mailsink", "--host", unit.host,
            "--smtp-port", str(ports["smtp"]), "--http-port", str(ports["http"]),
        ]  # fmt: skip
        return Launch(argv, unit.env(replica))

    def default_probe(self, unit: Unit) -> Probe:
        return Probe("http", port="http", path="/healthz")

    def endpoint(self, unit: Unit) -> Endpoint:
        ports = unit.ports[0]
        return Endpoint(
            unit.name,
            "mailsink",
            unit.host,
            tuple(unit.ports),
            urls=(f"http://{unit.host}:{ports['http']}",),
            extra={
                "smtp": f"smtp://{unit.host}:{ports['smtp']}",
                "smtp_host": unit.host,
                "smtp_port": str(ports["smtp"]),
            },
        )


class RedisRecipe(ProcessRecipe):
    """redis-server; with ``options.persistent`` it keeps an append-only file, so
    its data survives a restart of the process (e.g. streams of events)."""

    def launch(self, unit: Unit, replica: int) -> Launch:
        persistent = unit.component.options.get("persistent", False)
        if not isinstance(persistent, bool):
            raise ConfigError(
                f"components.{unit.name}.options.persistent must be true or false, "
                f"not {persistent!r}"
            )
        argv = [
            str(_found(unit, binaries.redis_server)),
            "--port", str(unit.ports[replica]["redis"]), "--bind", unit.host,
            "--save", "", "--dir", str(unit.workdir),
            "--appendonly", "yes" if persistent else "no",
            "--appendfsync", "everysec",
            "--daemonize", "no", "--protected-mode", "no",
        ]  # fmt: skip
        return Launch(argv, unit.env(replica))

    def endpoint(self, unit: Unit) -> Endpoint:
        port = unit.ports[0]["redis"]
        return Endpoint(
            unit.name,
            "redis",
            unit.host,
            tuple(unit.ports),
            urls=(f"redis://{unit.host}:{port}/0",),
        )


class PostgresRecipe(ProcessRecipe):
    """A throwaway cluster: initdb into the stack's folder, fsync off, trust auth.

    Postgres refuses to run as root; as root the server runs as the
    ``postgres`` OS user.
    """

    def prepare(self, unit: Unit) -> None:
        bindir = _found(unit, binaries.postgres_bindir)
        user = _postgres_user(unit)
        if user is not None:
            entry = pwd.getpwnam(user)
            _check_reachable(unit, entry)
            for folder in (unit.workdir, unit.workdir / "run"):
                folder.mkdir(exist_ok=True)
                os.chown(folder, entry.pw_uid, entry.pw_gid)
        else:
            (unit.workdir / "run").mkdir(exist_ok=True)
        unit.run(
            [
                str(bindir / "initdb"), "-D", str(unit.workdir / "data"),
                "-U", POSTGRES_USER, "-A", "trust", "-E", "UTF8", "--locale=C",
                "--no-sync", "--no-instructions",
            ],
            what="initdb",
            user=user,
        )  # fmt: skip

    def launch(self, unit: Unit, replica: int) -> Launch:
        bindir = binaries.postgres_bindir()
        argv = [
            str(bindir / "postgres"), "-D", str(unit.workdir / "data"),
            "-p", str(unit.ports[replica]["postgres"]), "-h", unit.host,
            "-k", str(unit.workdir / "run"),
            "-c", "fsync=off", "-c", "synchronous_commit=off",
            "-c", "full_page_writes=off", "-c", "max_connections=300",
        ]  # fmt: skip
        # The data is thrown away: an immediate shutdown is safe and fastest.
        return Launch(argv, unit.env(replica), _postgres_user(unit), signal.SIGQUIT)

    def default_probe(self, unit: Unit) -> Probe:
        isready = binaries.postgres_bindir() / "pg_isready"
        if not isready.is_file():
            return Probe("tcp", port="postgres")
        command = (
            str(isready),
            "-q",
            "-h",
            unit.host,
            "-p",
            "{port}",
            "-U",
            POSTGRES_USER,
        )
        return Probe("command", command=command)

    def after_ready(self, unit: Unit) -> None:
        database = _database(unit)
        if database != "postgres":
            bindir = binaries.postgres_bindir()
            port = str(unit.ports[0]["postgres"])
            unit.run(
                [str(bindir / "createdb"), "-h", unit.host, "-p", port,
                 "-U", POSTGRES_USER, database],
                what="createdb",
            )  # fmt: skip

    def endpoint(self, unit: Unit) -> Endpoint:
        port = unit.ports[0]["postgres"]
        database = _database(unit)
        return Endpoint(
            unit.name,
            "postgres",
            unit.host,
            tuple(unit.ports),
            dsn=f"postgresql://{POSTGRES_USER}@{unit.host}:{port}/{database}",
            extra={"user": POSTGRES_USER, "database": database},
        )


RECIPES: dict[str, Recipe] = {
    "process": ProcessRecipe(),
    "asgi": AsgiRecipe(),
    "mailsink": MailsinkRecipe(),
    "redis": RedisRecipe(),
    "postgres": PostgresRecipe(),
}


def recipe_for(kind: str) -> Recipe:
    return RECIPES[kind]


def _strings(unit: Unit, option: str) -> list[str]:
    value = unit.component.options.get(option, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(
            f"components.{unit.name}.options.{option} must be a list of strings, "
            f"not {value!r}"
        )
    return [
        unit.render(v, key=f"components.{unit.name}.options.{option}") for v in value
    ]


def _database(unit: Unit) -> str:
    database = unit.component.options.get("database", "postgres")
    if not isinstance(database, str) or not database.isidentifier():
        raise ConfigError(
            f"components.{unit.name}.options.database must be a plain identifier, "
            f"not {database!r}"
        )
    return database


def _postgres_user(unit: Unit) -> str | None:
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(POSTGRES_USER)
    except KeyError:
        raise ComponentStartError(
            unit.name,
            reason="cannot run as root",
            last_error="PostgreSQL refuses to run as root, and this machine has no "
            f"{POSTGRES_USER!r} user to run it as",
            hint=f"create one (useradd --system {POSTGRES_USER}) or run the harness "
            "as a user other than root",
        ) from None
    return POSTGRES_USER


def _check_reachable(unit: Unit, entry: pwd.struct_passwd) -> None:
    """Fail clearly when the server's user cannot enter the stack's folder."""
    for folder in unit.workdir.parents:
        info = folder.stat()
        if info.st_uid == entry.pw_uid:
            allowed = info.st_mode & stat.S_IXUSR
        elif info.st_gid == entry.pw_gid:
            allowed = info.st_mode & stat.S_IXGRP
        else:
            allowed = info.st_mode & stat.S_IXOTH
        if not allowed:
            raise ComponentStartError(
                unit.name,
                reason="cannot start",
                last_error=f"PostgreSQL runs as the {entry.pw_name!r} user here (it "
                f"refuses root), and that user cannot enter {folder}",
                hint="set TMPDIR to a folder every user can reach, such as /tmp",
            )


def _found(unit: Unit, finder: Callable[[], Path]) -> Path:
    try:
        found = finder()
    except binaries.BinaryNotFound as exc:
        raise ComponentStartError(
            unit.name, reason="cannot start", last_error=str(exc)
        ) from exc
    return found
