"""Signing keys: one PEM file per key in a folder, the newest signs.

A key's file is ``<kid>.pem`` (PKCS#8, mode 0600). Key ids start with the
UTC creation time, so sorting them sorts by age::

    python -m services.users.keys ensure   # create the first key if none exists
    python -m services.users.keys rotate   # add a key; it signs from now on

A running service rescans the folder every ``KEYS_RELOAD_S`` seconds. A new
key is published in the JWKS at once but signs only once it is
``KEYS_ACTIVATION_S`` old, so that every replica and the gateway know it
before the first token signed with it arrives; no restart is needed. An old
key keeps verifying (it stays in the JWKS) until its file is removed.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import logging
import os
import re
import secrets
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from services.users.errors import ConfigError, KeyStoreError

logger = logging.getLogger(__name__)

ALGORITHM = "ES256"
KEYS_DIR_VARIABLE = "USERS_KEYS_DIR"
_KID = re.compile(r"[A-Za-z0-9._-]{1,100}")


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_key: ec.EllipticCurvePrivateKey

    def jwk(self) -> dict[str, str]:
        """The public half as a JWK (RFC 7517/7518)."""
        numbers = self.private_key.public_key().public_numbers()
        return {
            "kty": "EC",
            "crv": "P-256",
            "x": _b64url(numbers.x.to_bytes(32, "big")),
            "y": _b64url(numbers.y.to_bytes(32, "big")),
            "kid": self.kid,
            "alg": ALGORITHM,
            "use": "sig",
        }


def new_kid(now: datetime | None = None) -> str:
    """A key id that sorts after every key created before ``now``."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return f"k{moment:%Y%m%dT%H%M%S%fZ}-{secrets.token_hex(4)}"


def kid_created(kid: str) -> datetime:
    """When the key was created, from its id; the distant past for foreign ids."""
    try:
        stamp = kid[1 : kid.index("Z")]
        return datetime.strptime(stamp, "%Y%m%dT%H%M%S%f").replace(tzinfo=UTC)
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)


def create_key(folder: Path) -> SigningKey:
    """Generate a P-256 key and write it to ``folder`` as ``<kid>.pem``, mode 0600."""
    key = SigningKey(new_kid(), ec.generate_private_key(ec.SECP256R1()))
    pem = key.private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    final = folder / f"{key.kid}.pem"
    partial = folder / f".{key.kid}.pem.partial"
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as file:
            file.write(pem)
        # A service rescanning the folder never sees a half-written key.
        partial.replace(final)
    except OSError as exc:
        raise KeyStoreError(f"cannot write a key to {folder}: {exc}") from exc
    logger.info("created signing key %s in %s", key.kid, folder)
    return key


def key_files(folder: Path) -> dict[str, Path]:
    """The key files in ``folder`` by kid, oldest first."""
    try:
        entries = list(folder.iterdir())
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise KeyStoreError(f"cannot list the keys in {folder}: {exc}") from exc
    found = {
        path.name.removesuffix(".pem"): path
        for path in entries
        if path.name.endswith(".pem") and _KID.fullmatch(path.name[:-4])
    }
    return dict(sorted(found.items()))


def read_key(kid: str, path: Path) -> SigningKey:
    try:
        loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise KeyStoreError(f"cannot read the key {path}: {exc}") from exc
    if not isinstance(loaded, ec.EllipticCurvePrivateKey) or not isinstance(
        loaded.curve, ec.SECP256R1
    ):
        raise KeyStoreError(f"the key {path} is not an EC P-256 private key")
    return SigningKey(kid, loaded)


class KeyRing:
    """The keys of one folder as the service last read them."""

    def __init__(self, folder: Path, activation_s: float = 0.0) -> None:
        self.folder = folder
        self.activation_s = activation_s
        self._keys: dict[str, SigningKey] = {}
        self._seen: dict[str, tuple[int, int]] = {}

    @property
    def signing_key(self) -> SigningKey:
        if not self._keys:
            raise KeyStoreError(
                f"no signing key in {self.folder}; create one with "
                "`python -m services.users.keys ensure`"
            )
        ripe = datetime.now(UTC) - timedelta(seconds=self.activation_s)
        active = [kid for kid in self._keys if kid_created(kid) <= ripe]
        # With no key old enough yet (a fresh folder), the first one signs.
        return self._keys[max(active) if active else min(self._keys)]

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        return {"keys": [key.jwk() for key in self._keys.values()]}

    def reload(self) -> bool:
        """Read added, changed and removed key files; True when anything changed.

        An unreadable file is skipped with a warning. When every file is gone
        the last keys stay in use: a service that cannot sign is worse.
        """
        files = key_files(self.folder)
        seen = {kid: _fingerprint(path) for kid, path in files.items()}
        if seen == self._seen:
            logger.debug("keys in %s unchanged", self.folder)
            return False
        previous, self._seen = self._seen, seen
        keys: dict[str, SigningKey] = {}
        for kid, path in files.items():
            current = self._keys.get(kid)
            unchanged = current is not None and previous.get(kid) == seen[kid]
            try:
                keys[kid] = current if current and unchanged else read_key(kid, path)
            except KeyStoreError as exc:
                logger.warning("skipping a signing key: %s", exc)
        if not keys and self._keys:
            logger.error(
                "no usable signing key left in %s; still using %s",
                self.folder,
                ", ".join(self._keys),
            )
            return False
        added = sorted(set(keys) - set(self._keys))
        removed = sorted(set(self._keys) - set(keys))
        self._keys = keys
        if keys:
            logger.info(
                "signing keys reloaded from %s: %d in use, %s signs, added %s, "
                "removed %s",
                self.folder,
                len(keys),
                max(keys),
                ", ".join(added) or "none",
                ", ".join(removed) or "none",
            )
        return True

    async def watch(self, interval_s: float) -> None:
        """Reload every ``interval_s`` seconds until cancelled."""
        while True:
            await asyncio.sleep(interval_s)
            try:
                self.reload()
            except KeyStoreError as exc:
                logger.warning("could not rescan the signing keys: %s", exc)


def _fingerprint(path: Path) -> tuple[int, int]:
    try:
        status = path.stat()
    except OSError:
        return (0, 0)
    return (status.st_mtime_ns, status.st_size)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _folder(env: Mapping[str, str]) -> Path:
    value = env.get(KEYS_DIR_VARIABLE, "").strip()
    if not value:
        raise ConfigError(
            f"{KEYS_DIR_VARIABLE} is not set; it names the folder of the signing keys"
        )
    return Path(value)


def main(
    argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None
) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m services.users.keys",
        description=f"Manage the access-token signing keys in ${KEYS_DIR_VARIABLE}.",
    )
    parser.add_argument(
        "command",
        choices=("ensure", "rotate", "list"),
        help="ensure: create a key if there is none; rotate: add a key that "
        "signs once published; list: print the key ids, oldest first",
    )
    args = parser.parse_args(argv)
    try:
        folder = _folder(os.environ if env is None else env)
        files = {} if args.command == "rotate" else key_files(folder)
        if args.command == "list":
            for kid in files:
                print(kid)
        elif args.command == "ensure" and files:
            print(f"{max(files)} signs; {len(files)} key(s) in {folder}")
        else:
            kid = create_key(folder).kid
            print(
                f"{kid} created in {folder}; published at the next rescan, it "
                "signs once KEYS_ACTIVATION_S old"
            )
    except (ConfigError, KeyStoreError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ConfigError) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
