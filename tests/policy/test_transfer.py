"""The DSP transfer process state machine: every allowed move, and a reason for every refused one."""

import pytest

from qdsn.errors import InvalidInput
from qdsn.policy import transfer as tp
from qdsn.policy.negotiation import InvalidTransition


def new(kind="sealed-delivery"):
    return tp.start("urn:uuid:p", "urn:uuid:c", "urn:qdsn:agreement:1", "line-1", kind, first=0, count=10)


def test_a_delivery_runs_suspends_resumes_and_completes():
    t = tp.step(new(), "TransferStartMessage", "provider")
    t = tp.step(t, "TransferSuspensionMessage", "provider", code="maintenance", reason="vault backup running")
    assert (t.state, t.code, t.reason) == ("SUSPENDED", "maintenance", "vault backup running")
    t = tp.step(t, "TransferStartMessage", "consumer")
    assert (t.state, t.code, t.reason) == ("STARTED", None, None)
    t = tp.step(t, "TransferCompletionMessage", "consumer")
    assert t.state == "COMPLETED" and [h[3] for h in t.history] == [
        "REQUESTED", "STARTED", "SUSPENDED", "STARTED", "COMPLETED"]  # fmt: skip
    dsp = t.to_dsp()
    assert dsp["dspace:format"] == "urn:qdsn:transfer:sealed-delivery" and dsp["qdsn:records"] == {
        "first": 0,
        "count": 10,
    }


@pytest.mark.parametrize(
    ("moves", "message", "sender", "match"),
    [
        ([], "TransferStartMessage", "consumer", "the consumer may send: TransferTerminationMessage"),
        ([], "TransferCompletionMessage", "provider", "cannot move a transfer in state REQUESTED"),
        ([("TransferStartMessage", "provider"), ("TransferCompletionMessage", "consumer")],
         "TransferTerminationMessage", "provider", "COMPLETED is final"),
        ([("TransferStartMessage", "provider")], "TransferRequestMessage", "provider", "does not send"),
    ],
)  # fmt: skip
def test_refused_moves_say_what_is_allowed(moves, message, sender, match):
    t = new()
    for m, s in moves:
        t = tp.step(t, m, s)
    with pytest.raises(InvalidTransition, match=match):
        tp.step(t, message, sender)


def test_bad_messages():
    with pytest.raises(InvalidInput, match="unknown transfer message"):
        tp.step(new(), "TransferPauseMessage", "consumer")
    with pytest.raises(InvalidInput, match="says why"):
        tp.step(new(), "TransferTerminationMessage", "consumer")
    with pytest.raises(InvalidInput, match="unknown transfer format"):
        tp.kind_of("HTTP_PULL")
    assert tp.kind_of("urn:qdsn:transfer:compute") == "compute"
    terminated = tp.step(new("compute"), "TransferTerminationMessage", "consumer", reason="no longer needed")
    assert terminated.to_dsp()["dspace:code"] == "terminated"
