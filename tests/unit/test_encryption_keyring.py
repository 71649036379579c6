"""``taskward.encryption``: envelopes, the key ring's rotation, and refusals that name no key."""

from __future__ import annotations

import base64

import pytest

from taskward.encryption import EncryptionError, KeyRing, generate_key, is_envelope
from taskward.errors import InvalidOptions


def test_seal_and_open_round_trip_with_the_purpose_bound() -> None:
    ring = KeyRing([generate_key()])
    sealed = ring.seal(b'{"card": "4111"}', purpose="args|billing.charge")
    assert is_envelope(sealed)
    assert "4111" not in sealed
    assert sealed.split(".")[1] == ring.primary_id
    assert ring.open(sealed, purpose="args|billing.charge") == b'{"card": "4111"}'
    assert ring.seal(b"x", purpose="p") != ring.seal(b"x", purpose="p")  # fresh nonce each time
    with pytest.raises(EncryptionError, match="another field or task than 'result'"):
        ring.open(sealed, purpose="result|billing.charge")
    with pytest.raises(EncryptionError, match="does not open"):
        ring.open(sealed, purpose="args|billing.refund")


def test_rotation_opens_with_any_key_and_seals_with_the_first() -> None:
    old, new = generate_key(), generate_key()
    before = KeyRing([old])
    sealed_old = before.seal(b"secret", purpose="p")
    after = KeyRing([new, old])
    assert after.key_ids == (after.primary_id, before.primary_id)
    assert after.open(sealed_old, purpose="p") == b"secret"
    assert not after.is_current(sealed_old)
    resealed = after.seal(after.open(sealed_old, purpose="p"), purpose="p")
    assert after.is_current(resealed)
    assert KeyRing([new]).open(resealed, purpose="p") == b"secret"
    with pytest.raises(EncryptionError, match=f"key {before.primary_id}, which is not among"):
        KeyRing([new]).open(sealed_old, purpose="p")


def test_a_wrong_key_with_the_same_id_or_an_altered_value_is_refused() -> None:
    ring = KeyRing([generate_key()])
    sealed = ring.seal(b"secret", purpose="p")
    prefix, key_id, data = sealed.split(".")
    flipped = data[:-2] + ("A" if data[-2] != "A" else "B") + data[-1]
    with pytest.raises(EncryptionError, match="does not open"):
        ring.open(f"{prefix}.{key_id}.{flipped}", purpose="p")
    with pytest.raises(EncryptionError, match="truncated"):
        ring.open(f"{prefix}.{key_id}.AAAA", purpose="p")
    with pytest.raises(EncryptionError, match="not an encrypted value"):
        ring.open("plain text", purpose="p")


def test_keys_in_every_accepted_form_and_bad_keys_never_echoed() -> None:
    raw = bytes(range(32))
    forms = [raw, base64.urlsafe_b64encode(raw).decode(), base64.b64encode(raw).decode()]
    forms.append(base64.urlsafe_b64encode(raw).decode().rstrip("="))
    ids = {KeyRing([form]).primary_id for form in forms}
    assert len(ids) == 1
    assert KeyRing([raw, raw]).key_ids == (ids.pop(),)
    secret_looking = "hunter2-not-a-key"
    with pytest.raises(InvalidOptions) as refused:
        KeyRing([generate_key(), secret_looking])
    assert "#2" in str(refused.value)
    assert secret_looking not in str(refused.value)
    with pytest.raises(InvalidOptions, match="empty"):
        KeyRing([])


def test_fingerprints_are_keyed_and_follow_the_first_key() -> None:
    a, b = generate_key(), generate_key()
    assert KeyRing([a]).fingerprint(b"k") == KeyRing([a, b]).fingerprint(b"k")
    assert KeyRing([a]).fingerprint(b"k") != KeyRing([b]).fingerprint(b"k")
    assert KeyRing([a]).fingerprint(b"k") != KeyRing([a]).fingerprint(b"l")
