"""The consumer's side of a negotiation and a sealed delivery: the provider writes every byte of its
answers, so an agreement for another offer or another consumer, an answer of the wrong shape, or a
delivery that is not one is refused with what is wrong — and a signed attestation whose claims are not
in the profile's shape is an integrity error, not a crash."""

import pytest

from qdsn.compute import attest
from qdsn.errors import IntegrityError, PermissionDenied
from qdsn.node import NodeHome
from qdsn.node.consumer import negotiate, receive
from qdsn.policy import agreement

from .conftest import FAST

OFFER = {
    "@context": "http://www.w3.org/ns/odrl.jsonld", "@type": "Offer", "uid": "urn:qdsn:offer:line-1:c",
    "profile": "urn:qdsn:odrl:profile:v1", "assigner": "did:key:z6MkpTHR8VNsBxYAAWHut2Geadd9jSwuBV8xRoAnwWsdvktH",
    "target": "urn:qdsn:dataset:line-1", "permission": [{"action": "compute"}],
}  # fmt: skip
U = "urn:qdsn:agreement:u"
ME = "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp"
OTHER = "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"


class Provider:
    """A provider that answers the contract request with `answer` and records what it was sent."""

    def __init__(self, answer):
        self.answer, self.sent = answer, []

    def call(self, method, path, payload=None, *, signed=True, raw=None):
        self.sent.append(path)
        return self.answer if path == "/negotiations/request" else {}


def agreed(contract):
    return {"dspace:state": "dspace:AGREED", "dspace:providerPid": "urn:uuid:p-1", "dspace:agreement": contract}


def test_an_honest_agreement_is_verified_and_returned():
    p = Provider(agreed(agreement(OFFER, ME, "urn:qdsn:agreement:1")))
    assert negotiate(p, OFFER, ME)["uid"] == "urn:qdsn:agreement:1"
    assert p.sent == ["/negotiations/request", "/negotiations/urn:uuid:p-1/agreement/verification"]


@pytest.mark.parametrize(("answer", "says"), [
    ("<html>", "no ContractNegotiation"),
    ({"dspace:state": 7}, "no ContractNegotiation"),
    (agreed(None), "lacks its providerPid or the agreement"),
    (agreed(agreement(OFFER, ME, U)) | {"dspace:providerPid": "../../ledger/transactions"}, "lacks its"),
    (agreed(agreement(OFFER | {"permission": [{"action": "read"}]}, ME, U)), "does not match offer"),
    (agreed(agreement(OFFER | {"uid": "urn:qdsn:offer:other"}, ME, U)), "is for offer urn:qdsn:offer:other"),
    (agreed(agreement(OFFER, OTHER, U)), "not to this node"),
])  # fmt: skip
def test_agreements_the_consumer_did_not_ask_for_are_refused(answer, says):
    p = Provider(answer)
    with pytest.raises(IntegrityError, match=says):
        negotiate(p, OFFER, ME)
    assert p.sent == ["/negotiations/request"]  # nothing verified, nothing finalized


def test_a_termination_says_why():
    p = Provider({"dspace:state": "dspace:TERMINATED", "dspace:reason": ["purpose must be certification"]})
    with pytest.raises(PermissionDenied, match="purpose must be certification"):
        negotiate(p, OFFER, ME)


@pytest.fixture
def home(tmp_path):
    return NodeHome.init(tmp_path / "reg", "regulator", "Bureau", "pw", scrypt_n=FAST)


@pytest.mark.parametrize("delivery", [
    {}, {"qdsn:provider": "x", "dspace:providerPid": "p", "dspace:agreementId": "a", "qdsn:sealed": 5},
    {"qdsn:provider": "x", "dspace:providerPid": "p", "dspace:agreementId": "a", "qdsn:sealed": "!!!"},
    {"qdsn:provider": "x", "dspace:providerPid": "p", "dspace:agreementId": "a", "qdsn:sealed": "A" * 200},
])  # fmt: skip
def test_a_delivery_that_is_not_one_is_an_integrity_error(home, delivery):
    ledger = home.ledger()
    try:
        with pytest.raises(IntegrityError):
            receive(ledger, home.key(), home.did, delivery)
    finally:
        ledger.close()


@pytest.mark.parametrize("claims", [
    {}, {"measurements": "code"}, {"measurements": {"model": "m", "code_hash": "h"}, "inputs": 5},
])  # fmt: skip
def test_a_signed_attestation_of_the_wrong_shape_is_an_integrity_error(home, claims):
    token = attest.attest(home.key(), home.did, {"iss": home.did, "eat_profile": attest.PROFILE} | claims)
    ledger = home.ledger()
    try:
        with pytest.raises(IntegrityError):
            attest.verify(token, ledger)
    finally:
        ledger.close()
