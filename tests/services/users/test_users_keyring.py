"""The key ring of a folder: newest signs, changes picked up, bad files skipped."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from services.users.errors import KeyStoreError
from services.users.keys import KeyRing, create_key, kid_created, new_kid


def test_new_kid_sorts_by_creation_time():
    earlier = new_kid(datetime(2026, 12, 3, 19, 0, 0, 1, tzinfo=UTC))
    later = new_kid(datetime(2026, 12, 3, 19, 0, 0, 2, tzinfo=UTC))

    assert earlier.startswith("k20261203T190000000001Z-")
    assert earlier < later


def test_keyring_newest_key_signs_and_all_are_published(tmp_path: Path):
    first = create_key(tmp_path)
    second = create_key(tmp_path)
    ring = KeyRing(tmp_path)

    assert ring.reload() is True
    assert ring.reload() is False

    assert ring.signing_key.kid == second.kid
    assert [key["kid"] for key in ring.jwks()["keys"]] == [first.kid, second.kid]


def test_keyring_of_missing_folder_cannot_sign(tmp_path: Path):
    ring = KeyRing(tmp_path / "absent")

    ring.reload()

    with pytest.raises(KeyStoreError, match=r"no signing key in .*absent"):
        ring.signing_key  # noqa: B018
    assert ring.jwks() == {"keys": []}


def test_keyring_skips_unreadable_and_wrong_curve_keys(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    good = create_key(tmp_path)
    (tmp_path / "k0-garbage.pem").write_text("not a key")
    p384 = ec.generate_private_key(ec.SECP384R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    (tmp_path / "k1-p384.pem").write_bytes(p384)
    (tmp_path / "notes.txt").write_text("ignored")
    ring = KeyRing(tmp_path)

    ring.reload()

    assert [key["kid"] for key in ring.jwks()["keys"]] == [good.kid]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert any("k0-garbage.pem" in w and "cannot read the key" in w for w in warnings)
    assert any("k1-p384.pem is not an EC P-256 private key" in w for w in warnings)


def test_keyring_keeps_its_keys_when_every_file_is_gone(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    key = create_key(tmp_path)
    ring = KeyRing(tmp_path)
    ring.reload()

    (tmp_path / f"{key.kid}.pem").unlink()

    assert ring.reload() is False
    assert ring.signing_key.kid == key.kid
    assert any(
        "no usable signing key left" in r.getMessage()
        for r in caplog.records
        if r.levelno == logging.ERROR
    )


def test_keyring_rereads_a_replaced_file(tmp_path: Path):
    key = create_key(tmp_path)
    ring = KeyRing(tmp_path)
    ring.reload()
    before = ring.jwks()["keys"][0]["x"]

    replacement = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path = tmp_path / f"{key.kid}.pem"
    path.write_bytes(replacement + b"\n")

    assert ring.reload() is True
    assert ring.jwks()["keys"][0]["x"] != before


@pytest.mark.anyio
async def test_keyring_watch_survives_an_unreadable_folder(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, eventually: Any
):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    ring = KeyRing(blocker / "keys")
    watcher = asyncio.create_task(ring.watch(0.01))

    try:
        await eventually(
            lambda: asyncio.sleep(0, [r.getMessage() for r in caplog.records]),
            lambda messages: sum("could not rescan" in m for m in messages) >= 2,
            what="two warnings: the watcher goes on after a failed rescan",
        )
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher

    assert watcher.cancelled()


def test_keyring_new_key_is_published_before_it_signs(tmp_path: Path):
    old = create_key(tmp_path)
    ring = KeyRing(tmp_path, activation_s=3600)
    ring.reload()
    assert ring.signing_key.kid == old.kid  # the only key signs at once

    new = create_key(tmp_path)
    ring.reload()

    assert {key["kid"] for key in ring.jwks()["keys"]} == {old.kid, new.kid}
    assert ring.signing_key.kid == old.kid
    ring.activation_s = 0
    assert ring.signing_key.kid == new.kid


def test_kid_created_reads_the_time_of_our_ids_only():
    moment = datetime(2026, 12, 3, 19, 0, 1, 250000, tzinfo=UTC)

    assert kid_created(new_kid(moment)) == moment
    assert kid_created("someone-elses-key") == datetime.min.replace(tzinfo=UTC)
