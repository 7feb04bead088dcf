"""A nonce is used once per signer: a member that saw another member's request before it arrived (a
shared proxy, logs, a relay it runs) cannot use its nonce up, and a node's nonces table of an earlier
version, keyed by the nonce alone, is re-keyed on opening with the nonces it holds still refused."""

import time
import uuid

import pytest
from sqlalchemy import create_engine, text

from qdsn.api import signatures
from qdsn.api.nonces import NonceStore
from qdsn.api.signatures import Nonces, sign, verify
from qdsn.crypto import SigningKey
from qdsn.errors import BadSignature
from qdsn.identity import did_key_from_public_key

from ..services import fresh_database

URL = "https://keeper.example:8443/ledger/transactions"
BODY = b'{"transactions": []}'


def member():
    key = SigningKey.generate()
    return key, did_key_from_public_key(key.verify_key.raw)


def signed_with(nonce: bytes, who, monkeypatch):
    with monkeypatch.context() as m:
        m.setattr(signatures.os, "urandom", lambda n: nonce[:n])
        return sign("POST", URL, [("content-type", "application/json")], BODY, who[0], who[1])


def keys(*members):
    return {did: key.verify_key.raw for key, did in members}.get


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def log(request, tmp_path):
    if request.param == "memory":
        yield Nonces()
        return
    if request.param == "sqlite":
        url = str(tmp_path / "nonces.db")
    else:
        url = fresh_database(request.getfixturevalue("postgres_url"), f"qdsn_{uuid.uuid4().hex[:12]}")
    store = NonceStore(url)
    yield store
    store.close()


def test_a_rival_cannot_use_up_a_victims_nonce(log, monkeypatch):
    victim, rival = member(), member()
    seen = b"\x07" * 16  # the nonce of the victim's request, seen on the way
    verify("POST", URL, signed_with(seen, rival, monkeypatch), BODY, keys(victim, rival), log)
    headers = signed_with(seen, victim, monkeypatch)
    assert verify("POST", URL, headers, BODY, keys(victim, rival), log) == victim[1]
    with pytest.raises(BadSignature, match="replays a nonce"):  # the victim's own replay still is one
        verify("POST", URL, headers, BODY, keys(victim, rival), log)


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_an_earlier_nonces_table_is_rekeyed_and_its_nonces_still_refused(tmp_path, database, request):
    if database == "sqlite":
        url = str(tmp_path / "nonces.db")
        engine = create_engine(f"sqlite:///{url}")
    else:
        url = fresh_database(request.getfixturevalue("postgres_url"), f"qdsn_{uuid.uuid4().hex[:12]}")
        engine = create_engine(url)
    until = int(time.time()) + 300
    with engine.begin() as c:  # the table as deployed nodes have it
        c.execute(
            text(
                "CREATE TABLE api_nonces (nonce VARCHAR(128) NOT NULL PRIMARY KEY, signer VARCHAR(512) "
                'NOT NULL, created BIGINT NOT NULL, "until" BIGINT NOT NULL)'
            )
        )
        c.execute(text('CREATE INDEX ix_api_nonces_until ON api_nonces ("until")'))
        c.execute(
            text("INSERT INTO api_nonces VALUES (:n, :s, :c, :u)"),
            {"n": "a" * 32, "s": "did:key:victim", "c": int(time.time()), "u": until},
        )
    engine.dispose()
    store = NonceStore(url)
    try:
        assert not store.use("a" * 32, int(time.time()), until, "did:key:victim")  # used before the upgrade
        assert store.use("a" * 32, int(time.time()), until, "did:key:rival")
        NonceStore(url).close()  # opening it again changes nothing
        assert not store.use("a" * 32, int(time.time()), until, "did:key:rival")
    finally:
        store.close()
