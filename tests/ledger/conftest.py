import uuid
from dataclasses import dataclass

import pytest

from qdsn.crypto import SigningKey
from qdsn.identity import did_key_from_public_key, multikey_from_public_key
from qdsn.ledger import Ledger, tx

from ..services import fresh_database

ORIGIN = "qdsn.test/log"


@dataclass
class Member:
    key: SigningKey
    role: str
    name: str
    did: str = ""  # fixed at creation: a rotated key keeps the DID

    def __post_init__(self) -> None:
        self.did = self.did or did_key_from_public_key(self.key.verify_key.raw)

    def register_payload(self) -> dict:
        return {
            "did": self.did,
            "role": self.role,
            "name": self.name,
            "key": multikey_from_public_key(self.key.verify_key.raw),
        }

    def sign(self, type: str, payload: dict, **kw) -> tx.Envelope:
        return tx.sign_tx(type, payload, self.key, self.did, **kw)


def member(role: str = "enterprise", name: str = "Acme") -> Member:
    return Member(SigningKey.generate(), role, name)


@pytest.fixture
def regulator() -> Member:
    return member("regulator", "SAMR")


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    """Each ledger test runs on the embedded SQLite default and on a real PostgreSQL server."""
    if request.param == "sqlite":
        return str(tmp_path / "ledger.db")
    return fresh_database(request.getfixturevalue("postgres_url"), f"qdsn_{uuid.uuid4().hex[:12]}")


@pytest.fixture
def ledger(store_url, regulator):
    led = Ledger.open(store_url, origin=ORIGIN)
    led.append([regulator.sign("identity.register", regulator.register_payload())])
    yield led
    led.close()
