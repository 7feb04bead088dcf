"""Token Status List encoding: the draft's own examples (draft-ietf-oauth-status-list, section 4.1
and Appendix C), round trips at every width, and refusals."""

import base64
import zlib

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qdsn.credentials.status import decode_status_list, encode_status_list, status_at
from qdsn.errors import InvalidInput

ONE_BIT = [1, 0, 0, 1, 1, 1, 0, 1, 1, 1, 0, 0, 0, 1, 0, 1]  # bytes 0xB9 0xA3
TWO_BITS = [1, 2, 0, 3, 0, 1, 0, 1, 1, 2, 3, 3]  # bytes 0xC9 0x44 0xF9


def test_the_drafts_examples():
    assert encode_status_list(ONE_BIT, 1) == "eNrbuRgAAhcBXQ"
    assert encode_status_list(TWO_BITS, 2) == "eNo76fITAAPfAgc"
    assert zlib.decompress(base64.urlsafe_b64decode("eNo76fITAAPfAgc=")) == bytes([0xC9, 0x44, 0xF9])
    assert decode_status_list("eNrbuRgAAhcBXQ", 1) == ONE_BIT
    assert decode_status_list("eNo76fITAAPfAgc", 2) == TWO_BITS


@pytest.mark.parametrize("bits", [1, 2, 4, 8])
def test_round_trips_at_every_width(bits):
    x = np.random.default_rng(bits).integers(0, 1 << bits, 131_072)
    lst = encode_status_list(x, bits)
    assert decode_status_list(lst, bits) == x.tolist()
    assert status_at(lst, bits, 77_777) == x[77_777]


def test_refusals():
    with pytest.raises(InvalidInput, match="1, 2, 4 or 8 bits"):
        encode_status_list([0, 1], 3)
    with pytest.raises(InvalidInput, match="below 4"):
        encode_status_list([0, 4], 2)
    with pytest.raises(InvalidInput, match="not a status list"):
        decode_status_list("not-zlib", 1)
    with pytest.raises(InvalidInput, match="outside the status list"):
        status_at("eNrbuRgAAhcBXQ", 1, 16)


def test_an_issuers_lists_and_their_tokens(tmp_path):
    from qdsn.credentials.status import StatusLists, read_token
    from qdsn.crypto import SigningKey
    from qdsn.errors import BadSignature, IntegrityError
    from qdsn.ledger.store import open_engine

    lists = StatusLists(open_engine(str(tmp_path / "status.db")))
    uri = "https://cqc.example/status-lists/1"
    with pytest.raises(InvalidInput, match="at least 131072"):
        lists.create("https://cqc.example/small", size=1000)
    lists.create(uri)
    taken = {lists.allocate(uri, f"C-{i}") for i in range(200)}
    assert len(taken) == 200 and max(taken) > 1000  # random, not sequential
    idx = sorted(taken)[50]
    lists.set(uri, idx, 2)
    key = SigningKey.generate()
    token = lists.token(uri, key, kid="did:key:z#z")
    bits, lst = read_token(token, uri, key.verify_key.raw)
    assert status_at(lst, bits, idx) == 2 and status_at(lst, bits, sorted(taken)[51]) == 0
    with pytest.raises(IntegrityError, match="not https://other"):
        read_token(token, "https://other", key.verify_key.raw)
    with pytest.raises(BadSignature):
        read_token(token, uri, SigningKey.generate().verify_key.raw)


# -- what a verifier takes from a status list token's issuer, or from whoever hands it one ----------

URI = "https://cqc.example/status-lists/1"
T0 = 1_800_000_000


def _token(key, claims, typ="statuslist+jwt"):
    from qdsn.crypto.jose import sign_jws

    return sign_jws(claims, key, typ=typ)


def _claims(**changes):
    base = {"sub": URI, "iat": T0, "exp": T0 + 3600, "ttl": 300, "status_list": {"bits": 1, "lst": "eNrbuRgAAhcBXQ"}}
    return {k: v for k, v in (base | changes).items() if v is not None}


def _at(seconds):
    from datetime import UTC, datetime

    return datetime.fromtimestamp(T0 + seconds, UTC)


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"iat": None}, "status-iat"),  # None: left out
        ({"iat": "1800000000"}, "status-iat"),
        ({"iat": True}, "status-iat"),
        ({"iat": T0 + 3600}, "status-iat"),  # issued an hour from now
        ({"exp": T0 - 1}, "status-expired"),
        ({"exp": "tomorrow"}, "status-token"),
        ({"ttl": 0}, "status-token"),
        ({"ttl": "300"}, "status-token"),
        ({"sub": "https://other.example/1"}, "status-token"),
        ({"status_list": {"bits": 3, "lst": "eNrbuRgAAhcBXQ"}}, "status-token"),
        ({"status_list": {"bits": True, "lst": "eNrbuRgAAhcBXQ"}}, "status-token"),
        ({"status_list": {"bits": 1, "lst": 7}}, "status-token"),
        ({"status_list": "eNrbuRgAAhcBXQ"}, "status-token"),
        ({"status_list": {"bits": 1, "lst": "eNrbuRgAAhcBXQ!!"}}, "status-list"),
        ({"status_list": {"bits": 1, "lst": "bm90LXpsaWI"}}, "status-list"),
    ],
)
def test_a_status_list_token_is_refused_for_each_fault(changes, code):
    from qdsn.credentials.sdjwt import Reason
    from qdsn.credentials.status import read_token
    from qdsn.crypto import SigningKey

    key = SigningKey.generate()
    assert read_token(_token(key, _claims()), URI, key.verify_key.raw, now=_at(0)) == (1, "eNrbuRgAAhcBXQ")
    with pytest.raises(Reason) as e:
        read_token(_token(key, _claims(**changes)), URI, key.verify_key.raw, now=_at(0))
    assert e.value.code == code


def test_a_status_list_token_of_another_type_or_with_crit_is_refused():
    from qdsn.credentials.sdjwt import Reason
    from qdsn.credentials.status import read_token
    from qdsn.crypto import SigningKey
    from qdsn.crypto.encoding import b64url_encode

    key = SigningKey.generate()
    with pytest.raises(Reason, match="not 'statuslist\\+jwt'") as e:
        read_token(_token(key, _claims(), typ="JWT"), URI, key.verify_key.raw, now=_at(0))
    assert e.value.code == "status-token"
    header = {"alg": "EdDSA", "typ": "statuslist+jwt", "crit": ["urn:example:fresh"], "urn:example:fresh": True}
    signing_input = f"{b64url_encode(orjson.dumps(header))}.{b64url_encode(orjson.dumps(_claims()))}"
    token = f"{signing_input}.{b64url_encode(key.sign(signing_input.encode()))}"
    with pytest.raises(Reason, match="critical") as e:
        read_token(token, URI, key.verify_key.raw, now=_at(0))
    assert e.value.code == "status-token"


def test_a_zlib_bomb_is_refused_without_being_inflated():
    """64 MiB of zeros in 64 KiB of zlib: refused after inflating no more than the bound."""
    import tracemalloc

    from qdsn.credentials.sdjwt import Reason
    from qdsn.credentials.status import MAX_LIST_BYTES, read_token
    from qdsn.crypto import SigningKey

    bomb = base64.urlsafe_b64encode(zlib.compress(bytes(64 << 20), 9)).rstrip(b"=").decode()
    assert len(bomb) < 100_000
    tracemalloc.start()
    try:
        with pytest.raises(InvalidInput, match="more than"):
            decode_status_list(bomb, 1)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 3 * MAX_LIST_BYTES  # never the 64 MiB it claims
    key = SigningKey.generate()
    with pytest.raises(Reason) as e:
        read_token(_token(key, _claims(status_list={"bits": 1, "lst": bomb})), URI, key.verify_key.raw, now=_at(0))
    assert e.value.code == "status-list"
    fits = base64.urlsafe_b64encode(zlib.compress(bytes(MAX_LIST_BYTES - 1) + b"\x80")).rstrip(b"=").decode()
    assert status_at(fits, 1, 8 * MAX_LIST_BYTES - 1) == 1  # exactly the bound: taken, its last entry read
    assert status_at(fits, 1, 8 * MAX_LIST_BYTES - 2) == 0
    truncated = base64.urlsafe_b64encode(zlib.compress(bytes(1000))[:-3]).rstrip(b"=").decode()
    with pytest.raises(InvalidInput, match="truncated"):
        decode_status_list(truncated, 1)


def test_an_issuer_cannot_make_a_list_larger_than_verifiers_take(tmp_path):
    from qdsn.credentials.status import MAX_LIST_BYTES, StatusLists
    from qdsn.ledger.store import open_engine

    lists = StatusLists(open_engine(str(tmp_path / "status.db")))
    with pytest.raises(InvalidInput, match="larger than verifiers take"):
        lists.create(URI, bits=8, size=MAX_LIST_BYTES + 1)


def test_a_cached_token_is_kept_for_its_ttl_and_never_past_its_exp():
    from qdsn.credentials.sdjwt import Reason
    from qdsn.credentials.status import TokenCache
    from qdsn.crypto import SigningKey

    key = SigningKey.generate()
    served = []

    def fetch(uri):
        assert uri == URI
        served.append(claims := dict(current))
        return _token(key, claims)

    current = _claims(iat=T0, exp=T0 + 1000, ttl=100)
    cache = TokenCache(fetch, max_ttl=600)
    assert cache.read(URI, key.verify_key.raw, now=_at(0)) == (1, "eNrbuRgAAhcBXQ")
    assert cache.read(URI, key.verify_key.raw, now=_at(99)) == (1, "eNrbuRgAAhcBXQ") and len(served) == 1
    current = _claims(iat=T0 + 100, exp=T0 + 150, ttl=600, status_list={"bits": 2, "lst": "eNo76fITAAPfAgc"})
    assert cache.read(URI, key.verify_key.raw, now=_at(100)) == (2, "eNo76fITAAPfAgc") and len(served) == 2  # ttl
    assert cache.read(URI, key.verify_key.raw, now=_at(140)) == (2, "eNo76fITAAPfAgc") and len(served) == 2
    current = _claims(iat=T0 + 10, exp=T0 + 150)  # the issuer serves a stale token: expired when fetched
    with pytest.raises(Reason) as e:
        cache.read(URI, key.verify_key.raw, now=_at(151))  # past exp, though within ttl: fetched again
    assert e.value.code == "status-expired" and len(served) == 3
    other = SigningKey.generate()  # a token is never served for a key other than the one it was checked with
    with pytest.raises(Exception, match="signature"):
        cache.read(URI, other.verify_key.raw, now=_at(0))


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["sub", "iat", "exp", "ttl", "status_list", "bits", "lst", "x"]), st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12) | st.sampled_from([URI, "eNrbuRgAAhcBXQ", 1, 2, T0, T0 + 3600]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["bits", "lst", "x"]), inner,
                                                                max_size=3), max_leaves=6)))  # fmt: skip
def test_any_claims_an_issuer_signs_give_a_list_or_a_refusal(changes):
    """Whatever claims a status list token's issuer signs, read_token answers (bits, lst) or a refusal."""
    from qdsn.credentials.sdjwt import Reason
    from qdsn.credentials.status import read_token
    from qdsn.crypto import SigningKey

    key = SigningKey.generate()
    try:
        bits, lst = read_token(_token(key, _claims() | changes), URI, key.verify_key.raw, now=_at(0))
    except Reason as e:
        assert e.code.startswith("status-")
    else:
        assert bits in (1, 2, 4, 8) and all(0 <= x < 1 << bits for x in decode_status_list(lst, bits))
