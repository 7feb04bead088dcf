"""base64url decoded strictly (RFC 7515 §2): one text for each byte string, nothing else taken — no
character outside the alphabet, no padding, no whitespace, no impossible length, no data in the
unused trailing bits."""

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qdsn.crypto.encoding import b64url_decode, b64url_encode
from qdsn.errors import InvalidInput

RFC9901 = ["WyJfMjZiYzRMVC1hYzZxMktJNmNCVzVlcyIsICJmYW1pbHlfbmFtZSIsICJNw7ZiaXVzIl0",  # §4.2.1
           "WyJsa2x4RjVqTVlsR1RQVW92TU5JdkNBIiwgIkZSIl0"]  # §4.2.2  # fmt: skip


@given(st.binary(max_size=200))
def test_every_byte_string_round_trips(data):
    assert b64url_decode(b64url_encode(data)) == data


def test_the_rfc_examples_decode():
    for text in RFC9901:
        assert b64url_decode(text) == base64.urlsafe_b64decode(text + "==")


NOT_BASE64URL = [
    *("QUJD!!!!", "QUJD\n", " QUJD", "QU\tJD", "QUJD====", "QUI=", "QUJ+", "QUJ/", "QUJDé"),  # outside the alphabet
    *("Q", "QUJDR", "AAAAA"),  # lengths no byte string has
    *("QB", "QUC", "QUJDRB"),  # unused bits set
]


@pytest.mark.parametrize("text", NOT_BASE64URL)
def test_anything_else_is_refused(text):
    with pytest.raises(InvalidInput, match="base64url"):
        b64url_decode(text)


@given(st.binary(min_size=1, max_size=60), st.integers(0, 200), st.sampled_from("!=+/ \n\t.~é\x00"))
def test_a_foreign_character_anywhere_is_refused(data, at, char):
    text = b64url_encode(data)
    at %= len(text) + 1
    with pytest.raises(InvalidInput):
        b64url_decode(text[:at] + char + text[at:])


@given(st.binary(min_size=1, max_size=60))
def test_unused_trailing_bits_are_refused(data):
    text = b64url_encode(data)
    if len(text) % 4 == 0:
        return  # no unused bits to set
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    tweaked = text[:-1] + alphabet[alphabet.index(text[-1]) | 1]  # the lowest bit carries no data
    with pytest.raises(InvalidInput, match="unused bits"):
        b64url_decode(tweaked)


def test_not_text_is_refused():
    for value in (b"QUJD", None, 7):
        with pytest.raises(InvalidInput):
            b64url_decode(value)
