"""Starting the app: what it refuses to start without, and how it says so."""

from __future__ import annotations

import dataclasses
import uuid
from pathlib import Path

import pytest

from services.users.app import create_app
from services.users.errors import DatabaseError, KeyStoreError
from services.users.settings import Settings

pytestmark = pytest.mark.anyio


async def test_startup_without_keys_names_the_folder(
    settings: Settings, tmp_path: Path
):
    empty = tmp_path / "no-keys"
    app = create_app(dataclasses.replace(settings, keys_dir=empty))

    with pytest.raises(KeyStoreError, match="no signing key in") as raised:
        async with app.router.lifespan_context(app):
            pass

    assert str(empty) in str(raised.value)
    assert "python -m services.users.keys ensure" in str(raised.value)


async def test_startup_with_unreachable_database_names_database_url(
    settings: Settings,
):
    url = f"postgresql://nobody:hunter2@127.0.0.1:9/{uuid.uuid4().hex}"
    app = create_app(dataclasses.replace(settings, database_url=url))

    with pytest.raises(
        DatabaseError, match="cannot connect to DATABASE_URL="
    ) as raised:
        async with app.router.lifespan_context(app):
            pass

    assert "nobody:***@127.0.0.1:9" in str(raised.value)
    assert "hunter2" not in str(raised.value)


async def test_startup_with_malformed_database_url_names_it(settings: Settings):
    url = "postgresql://u:hunter2@127.0.0.1:notaport/campus"
    app = create_app(dataclasses.replace(settings, database_url=url))

    with pytest.raises(DatabaseError) as raised:
        async with app.router.lifespan_context(app):
            pass

    assert str(raised.value).startswith(
        "DATABASE_URL=postgresql://u:***@127.0.0.1:notaport/campus is not a "
        "Postgres URL: "
    )
