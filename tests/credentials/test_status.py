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
