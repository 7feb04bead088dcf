import base64
import json

import pytest

from qdsn.crypto import SigningKey
from qdsn.errors import IntegrityError, InvalidInput, WrongPassphrase
from qdsn.identity import Keystore

FAST = 2**10  # scrypt cost for tests; the default is 2^17


def test_round_trip_and_rotation(tmp_path):
    ks = Keystore(tmp_path, "correct horse", scrypt_n=FAST)
    k1, k2 = SigningKey.generate(), SigningKey.generate()
    ks.add(k1, created="2026-01-01T00:00:00Z")
    ks.add(k2, created="2026-02-01T00:00:00Z")
    again = Keystore(tmp_path, "correct horse", scrypt_n=FAST)
    assert again.current().verify_key == k2.verify_key
    assert [i.status for i in again.list()] == ["retired", "current"]
    assert again.load(again.list()[0].kid).verify_key == k1.verify_key


def test_no_private_key_on_disk_in_any_encoding(tmp_path):
    key = SigningKey.generate()
    Keystore(tmp_path, "pw", scrypt_n=FAST).add(key, created="2026-01-01T00:00:00Z")
    seed = key.seed()
    forms = [seed, seed.hex().encode(), base64.b64encode(seed), base64.urlsafe_b64encode(seed).rstrip(b"=")]
    for f in tmp_path.rglob("*"):
        if f.is_file():
            data = f.read_bytes()
            assert not any(form in data for form in forms), f
            assert f.stat().st_mode & 0o077 == 0


def test_wrong_passphrase_and_tampering(tmp_path):
    key = SigningKey.generate()
    kid = Keystore(tmp_path, "right", scrypt_n=FAST).add(key, created="2026-01-01T00:00:00Z")
    with pytest.raises(WrongPassphrase, match="wrong passphrase"):
        Keystore(tmp_path, "wrong", scrypt_n=FAST).current()
    path = tmp_path / f"{kid}.json"
    path.write_text(path.read_text().replace('"sealed": "A', '"sealed": "B'))
    text = path.read_text()
    i = text.index('"sealed": "') + 20
    path.write_text(text[:i] + ("A" if text[i] != "A" else "B") + text[i + 1 :])
    with pytest.raises(IntegrityError, match="altered"):
        Keystore(tmp_path, "right", scrypt_n=FAST).current()


def test_a_wrong_passphrase_is_told_apart_from_an_altered_file(tmp_path):
    """A wrong passphrase is the user's typing and is said so; never 'altered', whatever the file's age."""
    kid = Keystore(tmp_path, "right", scrypt_n=FAST).add(SigningKey.generate(), created="2026-01-01T00:00:00Z")
    with pytest.raises(WrongPassphrase) as wrong:
        Keystore(tmp_path, "wrong", scrypt_n=FAST).current()
    assert not isinstance(wrong.value, IntegrityError) and "altered" not in str(wrong.value)
    path = tmp_path / f"{kid}.json"
    old = json.loads(path.read_text())
    del old["check"]  # a keystore file written before the check value
    path.write_text(json.dumps(old))
    with pytest.raises(WrongPassphrase):
        Keystore(tmp_path, "wrong", scrypt_n=FAST).current()
    assert Keystore(tmp_path, "right", scrypt_n=FAST).current()


def test_the_passphrase_is_asked_only_when_a_key_is_unsealed(tmp_path):
    Keystore(tmp_path, "right", scrypt_n=FAST).add(SigningKey.generate(), created="2026-01-01T00:00:00Z")
    asked = []
    ks = Keystore(tmp_path, lambda: asked.append(1) or "right", scrypt_n=FAST)
    assert [i.status for i in ks.list()] == ["current"] and not asked
    ks.current()
    ks.current()
    assert asked == [1]


def test_empty_passphrase_is_refused(tmp_path):
    with pytest.raises(InvalidInput):
        Keystore(tmp_path, "", scrypt_n=FAST).add(SigningKey.generate(), created="2026-01-01T00:00:00Z")
