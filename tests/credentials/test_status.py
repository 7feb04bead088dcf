"""Token Status List encoding: the draft's own examples (draft-ietf-oauth-status-list, section 4.1
and Appendix C), round trips at every width, and refusals."""

import base64
import zlib

import numpy as np
import pytest

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
