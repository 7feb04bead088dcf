import pytest

from qdsn.crypto import SigningKey, VerifyKey, new_key, open_sealed, seal, sha256, verify_batch
from qdsn.errors import BadSignature, IntegrityError, InvalidInput

# RFC 8032 §7.1, TEST 1 and TEST 2.
RFC8032 = [
    (
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46b"
        "d25bf5f0595bbe24655141438e7a100b",
    ),
    (
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c"
        "387b2eaeb4302aeeb00d291612bb0c00",
    ),
]


@pytest.mark.parametrize("seed,pub,msg,sig", RFC8032)
def test_ed25519_rfc8032_vectors(seed, pub, msg, sig):
    key = SigningKey.from_seed(bytes.fromhex(seed))
    assert key.verify_key.raw.hex() == pub
    assert key.sign(bytes.fromhex(msg)).hex() == sig
    key.verify_key.verify(bytes.fromhex(sig), bytes.fromhex(msg))
    with pytest.raises(BadSignature):
        key.verify_key.verify(bytes.fromhex(sig), bytes.fromhex(msg) + b"x")


def test_repr_hides_private_key():
    key = SigningKey.from_seed(bytes(32))
    assert bytes(32).hex() not in repr(key) and "SigningKey" in repr(key)


def test_key_sizes_are_checked():
    with pytest.raises(InvalidInput):
        VerifyKey(b"short")
    with pytest.raises(InvalidInput):
        SigningKey.from_seed(b"short")


def test_verify_batch_flags_exactly_the_bad_ones():
    keys = [SigningKey.generate() for _ in range(4)]
    items = []
    for i in range(1200):
        k = keys[i % 4]
        msg = f"m{i}".encode()
        sig = k.sign(msg)
        items.append((k.verify_key, sig if i % 97 else sig[:-1] + bytes([sig[-1] ^ 1]), msg))
    ok = verify_batch(items)
    assert [i for i, v in enumerate(ok) if not v] == [i for i in range(1200) if i % 97 == 0]


def test_aead_round_trip_and_tamper():
    key = new_key()
    box = seal(key, b"quality data", aad=b"dataset-1/7")
    assert open_sealed(key, box, aad=b"dataset-1/7") == b"quality data"
    for bad_key, bad_box, aad in [
        (new_key(), box, b"dataset-1/7"),
        (key, box[:-1] + bytes([box[-1] ^ 1]), b"dataset-1/7"),
        (key, box, b"dataset-1/8"),
        (key, box[:10], b"dataset-1/7"),
    ]:
        with pytest.raises(IntegrityError):
            open_sealed(bad_key, bad_box, aad=aad)


def test_sha256():
    assert sha256(b"abc").hex() == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
