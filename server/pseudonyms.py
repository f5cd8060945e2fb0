"""User ids never reach the state file: the server keys every shopper by a keyed hash of their id.

``UserIdKey.pseudonym`` is HMAC-SHA256 under a per-deployment secret, so the same shopper always
maps to the same key (their value-model state, a retried quote's fingerprint) while nobody holding
only the state file can test guesses of an id against it, as they could against a plain hash. The
secret is 32 random bytes kept as hex in ``<data-dir>/user-id.key`` (created 0600 on first start)
or in a file the operator names; it must be backed up with the state file, and the store refuses
to serve with another key than the one its users were stored under.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from learner.errors import KeyFileError

KEY_FILENAME = "user-id.key"
KEY_BYTES = 32
PSEUDONYM_HEX_DIGITS = 32
"""128 bits: collisions between two shoppers are out of reach for any shop's user count."""


class UserIdKey:
    """The per-deployment secret that turns user ids into pseudonyms."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("a user-id key needs at least 16 bytes")
        self._secret = secret

    def pseudonym(self, user_id: str) -> str:
        digest = hmac.new(self._secret, user_id.encode(), hashlib.sha256).hexdigest()
        return "u:" + digest[:PSEUDONYM_HEX_DIGITS]

    @property
    def check_value(self) -> str:
        """Identifies the key without revealing it: stored in the state file to catch a wrong key."""
        return hmac.new(self._secret, b"pricebandit user-id key check", hashlib.sha256).hexdigest()[:16]

    @classmethod
    def read(cls, path: Path) -> UserIdKey:
        try:
            text = path.read_text().strip()
        except FileNotFoundError:
            raise KeyFileError(f"user-id key: {path} does not exist") from None
        except OSError as exc:
            raise KeyFileError(f"user-id key: {path} cannot be read ({exc.strerror})") from None
        try:
            return cls(bytes.fromhex(text))
        except ValueError:
            raise KeyFileError(f"user-id key: {path} must hold at least 32 hex digits (a key made by "
                               "pricebandit-server, or `openssl rand -hex 32`)") from None

    @classmethod
    def create(cls, path: Path) -> UserIdKey:
        """Write a new random key, readable by its owner only, and fsync it before using it."""
        secret = secrets.token_bytes(KEY_BYTES)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".new")
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secret.hex() + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, path)
        return cls(secret)


def user_id_key(data_dir: Path | str, configured: Path | None, *, may_create: bool) -> UserIdKey:
    """The configured key file, or the data dir's own; created only when ``may_create`` (the state
    file holds no users keyed yet). A state file whose key file is gone is refused rather than given
    a new key: every stored shopper would silently become a stranger."""
    if configured is not None:
        return UserIdKey.read(configured)
    path = Path(data_dir) / KEY_FILENAME
    if path.exists():
        return UserIdKey.read(path)
    if not may_create:
        raise KeyFileError(f"user-id key: {path} does not exist, but the state file's users were "
                           "keyed by it: restore it from your backup, or start with a new --data-dir")
    return UserIdKey.create(path)
