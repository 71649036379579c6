"""Encryption at rest of job payloads: AES-256-GCM envelopes and a key ring that rotates.

Why AES-GCM (``cryptography``'s ``AESGCM``) rather than Fernet: an envelope names the key
that sealed it, so rotation opens each value with the right key at once (a ``MultiFernet``
tries every key in turn); GCM authenticates *associated data*, which binds a sealed value to
what it is (``purpose``: the field and the task), so a value copied into another job's field or
another task's job does not open; and the envelope is shorter (28 bytes of nonce and tag, no
timestamp, no CBC padding).

An envelope is text, so every store keeps it where JSON text goes::

    twenc1.<key id>.<urlsafe base64 of nonce (12 bytes) + ciphertext + tag (16 bytes)>

The key id is 8 characters of an HMAC of the key: it identifies a key without revealing
anything of it. Nonces are random (96 bits): rotate a key well before 2**32 seals.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import os
from collections.abc import Iterable
from typing import Final, TypeGuard

from taskward.errors import InvalidOptions, TaskwardError

__all__ = ["ENVELOPE_PREFIX", "EncryptionError", "KeyRing", "generate_key", "is_envelope"]

ENVELOPE_PREFIX: Final = "twenc1"
KEY_BYTES: Final = 32
NONCE_BYTES: Final = 12
TAG_BYTES: Final = 16
_KEY_ID_LABEL: Final = b"taskward key id"
_FINGERPRINT_LABEL: Final = b"taskward fingerprint"


class EncryptionError(TaskwardError):
    """A sealed value cannot be opened: no key of the ring sealed it, or it was altered.

    The message names the key id the value asks for, never a key or the value.
    """


def generate_key() -> str:
    """Return a new random key as urlsafe base64 text (what ``encryption_keys`` takes)."""
    return base64.urlsafe_b64encode(os.urandom(KEY_BYTES)).decode("ascii")


def is_envelope(value: object) -> TypeGuard[str]:
    """True for text shaped like an envelope (``twenc1.<id>.<data>``); nothing is opened."""
    return isinstance(value, str) and value.startswith(ENVELOPE_PREFIX + ".")


def _parse_key(key: str | bytes, position: int) -> bytes:
    """A key given as 32 raw bytes or as (urlsafe or standard) base64 text of 32 bytes."""
    if isinstance(key, bytes) and len(key) == KEY_BYTES:
        return key
    text = key.decode("ascii", "replace") if isinstance(key, bytes) else key
    if not isinstance(text, str):
        raise InvalidOptions(f"encryption key #{position} must be text or bytes")
    stripped = text.strip()
    raw = b""
    with contextlib.suppress(binascii.Error, ValueError):
        raw = base64.urlsafe_b64decode(stripped + "=" * (-len(stripped) % 4))
    if len(raw) != KEY_BYTES:
        try:
            raw = base64.b64decode(stripped + "=" * (-len(stripped) % 4), validate=True)
        except (binascii.Error, ValueError):
            raw = b""
    if len(raw) != KEY_BYTES:
        # Never echo the key: only where it sits in the list and what shape was expected.
        raise InvalidOptions(
            f"encryption key #{position} is not {KEY_BYTES} bytes in base64 "
            "(make one with `taskward keys generate` or taskward.encryption.generate_key())"
        )
    return raw


def _key_id(key: bytes) -> str:
    digest = hmac.new(key, _KEY_ID_LABEL, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:6]).decode("ascii")


class KeyRing:
    """The keys of a manager: the first seals, every one opens (rotation).

    ``purpose`` is authenticated with each value (the field and the task, e.g.
    ``"args|billing.charge"``): opening with another purpose fails as a wrong key does.
    """

    def __init__(self, keys: Iterable[str | bytes]) -> None:
        # Imported here: `cryptography` is the optional extra `taskward[encryption]`.
        try:
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        except ImportError as missing:  # pragma: no cover - depends on the environment
            raise InvalidOptions(
                "encryption needs the `cryptography` package: pip install 'taskward[encryption]'"
            ) from missing
        raw = [_parse_key(key, i) for i, key in enumerate(keys, start=1)]
        if not raw:
            raise InvalidOptions("encryption_keys is empty: give at least one key")
        self._ciphers: dict[str, AESGCM] = {}
        for key in raw:
            # Two equal keys are one key; the first place in the list wins.
            self._ciphers.setdefault(_key_id(key), AESGCM(key))
        self.primary_id: str = _key_id(raw[0])
        """The id of the key that seals (the first one)."""
        self._fingerprint_key = hmac.new(raw[0], _FINGERPRINT_LABEL, hashlib.sha256).digest()

    @property
    def key_ids(self) -> tuple[str, ...]:
        """The ids of every key of the ring, the sealing one first."""
        return tuple(self._ciphers)

    def seal(self, plaintext: bytes, *, purpose: str) -> str:
        """Encrypt ``plaintext`` with the first key, bound to ``purpose``; return an envelope."""
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[self.primary_id].encrypt(nonce, plaintext, purpose.encode())
        data = base64.urlsafe_b64encode(nonce + sealed).decode("ascii").rstrip("=")
        return f"{ENVELOPE_PREFIX}.{self.primary_id}.{data}"

    def open(self, envelope: str, *, purpose: str) -> bytes:
        """Decrypt an envelope sealed for ``purpose`` by any key of the ring."""
        from cryptography.exceptions import InvalidTag

        key_id, data = _split(envelope)
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise EncryptionError(
                f"sealed with key {key_id}, which is not among this process's encryption keys "
                f"({', '.join(self._ciphers)})"
            )
        try:
            raw = base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
        except (binascii.Error, ValueError):
            raise EncryptionError(f"a value sealed with key {key_id} is not base64") from None
        if len(raw) < NONCE_BYTES + TAG_BYTES:
            raise EncryptionError(f"a value sealed with key {key_id} is truncated")
        try:
            return cipher.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], purpose.encode())
        except InvalidTag:
            raise EncryptionError(
                f"a value sealed with key {key_id} does not open: it was altered, or it "
                f"belongs to another field or task than {purpose.split('|')[0]!r}"
            ) from None

    def is_current(self, envelope: str) -> bool:
        """True if ``envelope`` was sealed by the first key (rotation leaves it alone)."""
        return _split(envelope)[0] == self.primary_id

    def can_open(self, envelope: str) -> bool:
        """True if a key of the ring has the id the envelope names (not a proof it opens)."""
        return _split(envelope)[0] in self._ciphers

    def fingerprint(self, data: bytes) -> str:
        """Return a keyed hash of ``data`` (hex), in place of a plain hash of sealed values.

        A unique key of sealed arguments is one: the store learns nothing it could test
        guesses against. Derived from the first key: rotating keys changes every fingerprint.
        """
        return hmac.new(self._fingerprint_key, data, hashlib.sha256).hexdigest()


def _split(envelope: str) -> tuple[str, str]:
    prefix, _, rest = envelope.partition(".")
    key_id, _, data = rest.partition(".")
    if prefix != ENVELOPE_PREFIX or not key_id or not data:
        raise EncryptionError("not an encrypted value of this version (expected twenc1.<id>.…)")
    return key_id, data
