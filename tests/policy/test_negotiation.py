"""Contract negotiation: the Dataspace Protocol 2025-1 state machine, agreements bound to the offer
by hash, and terminations that say why."""

import pytest

from qdsn.errors import IntegrityError, InvalidInput
from qdsn.policy import agreement
from qdsn.policy.negotiation import TERMINAL, InvalidTransition, start, step

from .test_odrl import CERTIFIER, offer

REQ, OFF, AGR = "ContractRequestMessage", "ContractOfferMessage", "ContractAgreementMessage"
ACC, FIN = "ContractNegotiationEventMessage:ACCEPTED", "ContractNegotiationEventMessage:FINALIZED"
VER, TERM = "ContractAgreementVerificationMessage", "ContractNegotiationTerminationMessage"


def opened():
    return start(REQ, "consumer", "urn:uuid:p-1", "urn:uuid:c-1", offer())


def test_consumer_initiated_to_finalized():
    n = opened()
    assert n.state == "REQUESTED"
    n = step(n, AGR, "provider", agreement=agreement(n.offer, CERTIFIER, "urn:qdsn:agreement:1"))
    n = step(n, VER, "consumer")
    n = step(n, FIN, "provider")
    assert n.state == "FINALIZED" and n.state in TERMINAL
    assert [h[3] for h in n.history] == ["REQUESTED", "AGREED", "VERIFIED", "FINALIZED"]
    assert n.to_dsp()["dspace:state"] == "dspace:FINALIZED" and n.to_dsp()["dspace:providerPid"] == "urn:uuid:p-1"


def test_provider_initiated_with_a_counter_offer():
    n = start(OFF, "provider", "urn:uuid:p-2", "urn:uuid:c-2", offer())
    counter = offer(action="read") | {"uid": "urn:qdsn:offer:zj-line-1:counter"}
    n = step(n, REQ, "consumer", offer=counter)
    assert n.state == "REQUESTED" and n.offer["uid"].endswith("counter")
    n = step(n, OFF, "provider", offer=offer())
    n = step(n, ACC, "consumer")
    n = step(n, AGR, "provider", agreement=agreement(n.offer, CERTIFIER, "urn:qdsn:agreement:2"))
    assert n.state == "AGREED"


def test_invalid_transitions_name_the_state_and_the_way_on():
    n = opened()
    with pytest.raises(InvalidTransition, match="cannot move a negotiation in state REQUESTED") as e:
        step(n, VER, "consumer")
    assert "the consumer may send: ContractNegotiationTerminationMessage" in str(e.value)
    with pytest.raises(InvalidTransition, match="the consumer does not send ContractAgreementMessage"):
        step(n, AGR, "consumer", agreement={})
    with pytest.raises(InvalidTransition, match="cannot move a new negotiation"):
        start(AGR, "provider", "p", "c", offer())
    with pytest.raises(InvalidInput, match="unknown negotiation message"):
        step(n, "Hello", "consumer")
    done = step(n, TERM, "provider", code="policy", reason="purpose marketing is not allowed")
    with pytest.raises(InvalidTransition, match="TERMINATED is final"):
        step(done, REQ, "consumer")


def test_terminations_follow_the_parties_and_keep_the_reason():
    n = opened()
    n = step(n, AGR, "provider", agreement=agreement(n.offer, CERTIFIER, "urn:qdsn:agreement:3"))
    with pytest.raises(InvalidTransition):  # AGREED: only the consumer terminates
        step(n, TERM, "provider", reason="changed my mind")
    with pytest.raises(InvalidInput, match="a termination says why"):
        step(n, TERM, "consumer")
    t = step(n, TERM, "consumer", code="price", reason="too expensive")
    assert (t.state, t.code, t.reason) == ("TERMINATED", "price", "too expensive")


def test_an_agreement_must_name_the_negotiated_offer():
    n = opened()
    other = offer() | {"uid": "urn:qdsn:offer:zj-line-1:9"}
    with pytest.raises(IntegrityError, match="is for offer urn:qdsn:offer:zj-line-1:9"):
        step(n, AGR, "provider", agreement=agreement(other, CERTIFIER, "urn:qdsn:agreement:4"))
    tampered = agreement(n.offer, CERTIFIER, "urn:qdsn:agreement:5")
    tampered["offer"]["hash"] = "00" * 32
    with pytest.raises(IntegrityError, match="the offer was changed after it was agreed"):
        step(n, AGR, "provider", agreement=tampered)
    assert n.state == "REQUESTED"  # nothing moved
