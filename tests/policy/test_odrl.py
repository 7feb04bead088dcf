"""Usage policies: QDSN's ODRL 2.2 profile refuses what it does not name, agreements bind their offer
by hash, and every decision says which rule decided and why."""

from datetime import UTC, datetime, timedelta

import pytest
import rfc8785

from qdsn.errors import IntegrityError, InvalidInput
from qdsn.policy import Request, agreement, check_agreement, decide, load, offer_hash

OWNER = "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"
CERTIFIER = "did:key:z6MkpTHR8VNsBxYAAWHut2Geadd9jSwuBV8xRoAnwWsdvktH"
HASH = "ab" * 32
T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def c(left, op, right):
    return {"leftOperand": left, "operator": op, "rightOperand": right}


def offer(**rule):
    return {
        "@context": "http://www.w3.org/ns/odrl.jsonld",
        "@type": "Offer",
        "uid": "urn:qdsn:offer:zj-line-1:1",
        "profile": "urn:qdsn:odrl:profile:v1",
        "assigner": OWNER,
        "target": "urn:qdsn:dataset:zj-line-1",
        "permission": [
            {
                "action": "compute",
                "constraint": [
                    c("purpose", "eq", "certification"),
                    c("count", "lteq", 3),
                    c("dateTime", "lt", {"@value": "2027-01-01T00:00:00Z", "@type": "xsd:dateTime"}),
                    c("qdsn:role", "isAnyOf", ["certifier", "regulator"]),
                ],
                "duty": [
                    {
                        "action": "compensate",
                        "refinement": [
                            {"leftOperand": "payAmount", "operator": "eq", "rightOperand": 5, "unit": "CNY"}
                        ],
                    }
                ],
            }
            | rule
        ],
    }


def ask(**kw):
    base = {"action": "compute", "assignee": CERTIFIER, "at": T0, "role": "certifier", "purpose": "certification"}
    return Request(**(base | kw))


def test_offer_hash_is_sha256_of_rfc8785():
    import hashlib

    o = load(offer())
    assert offer_hash(o) == hashlib.sha256(rfc8785.dumps(o)).hexdigest()


def test_allowed_with_duties():
    d = decide(offer(), ask())
    assert d.allowed and d.rule == "permission[0]"
    assert d.duties[0] == {"action": "log"} and d.duties[1]["action"] == "compensate"


@pytest.mark.parametrize(
    ("request_", "reason"),
    [
        (ask(purpose="marketing"), "purpose must be eq 'certification', was 'marketing'"),
        (ask(purpose=None), "purpose must be eq 'certification', and the request does not say"),
        (ask(uses=3), "count must be lteq 3, was 4"),
        (ask(at=datetime(2027, 1, 1, tzinfo=UTC)), "dateTime must be lt"),
        (ask(role="enterprise"), "qdsn:role must be isAnyOf"),
        (ask(action="read"), "covers compute, not read"),
    ],
)
def test_denials_say_which_constraint(request_, reason):
    d = decide(offer(), request_)
    assert not d.allowed and d.rule == "permission[0]" and reason in d.reason


def test_count_allows_exactly_n_uses():
    assert [decide(offer(), ask(uses=n)).allowed for n in range(5)] == [True, True, True, False, False]


def test_use_covers_the_narrower_actions_and_assignees_bind():
    broad = offer(action="use", assignee=CERTIFIER)
    assert decide(broad, ask(action="read")).allowed
    other = decide(broad, ask(assignee=OWNER))
    assert not other.allowed and f"is granted to {CERTIFIER}" in other.reason


def test_logic_elapsed_time_model_hash_and_prohibition():
    policy = offer(
        constraint=[
            {
                "or": [
                    {"leftOperand": "qdsn:modelHash", "operator": "eq", "rightOperand": HASH},
                    c("qdsn:role", "eq", "regulator"),
                ]
            },
            c("elapsedTime", "lteq", "P30D"),
        ]
    )
    assert decide(policy, ask(model_hash=HASH, started=T0 - timedelta(days=29))).allowed
    assert decide(policy, ask(role="regulator", started=T0)).allowed
    late = decide(policy, ask(model_hash=HASH, started=T0 - timedelta(days=31)))
    assert not late.allowed and "elapsedTime must be lteq 'P30D'" in late.reason
    neither = decide(policy, ask(model_hash="cd" * 32, started=T0))
    assert "none of: qdsn:modelHash must be eq" in neither.reason
    policy["prohibition"] = [{"action": "compute", "assignee": CERTIFIER}]
    d = decide(policy, ask(model_hash=HASH, started=T0))
    assert not d.allowed and d.rule == "prohibition[0]"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"constraint": [c("spatial", "eq", "CN")]}, "leftOperand 'spatial' is not in QDSN's ODRL profile"),
        ({"constraint": [c("purpose", "hasPart", "x")]}, "operator 'hasPart' is not in"),
        ({"action": "distribute"}, "action 'distribute' is not in"),
        (
            {"duty": [{"action": "compensate", "refinement": [c("payAmount", "eq", 5) | {"unit": "Euro"}]}]},
            "does not match",
        ),
        ({"foo": 1}, "unknown property ('foo' was unexpected)"),
        ({"constraint": [c("count", "lteq", "ten")]}, "count cannot be 'ten'"),
        ({"constraint": [c("dateTime", "lt", "2027-01-01T00:00:00")]}, "needs its UTC offset"),
        ({"constraint": [c("elapsedTime", "lt", "30 days")]}, "xsd:duration"),
        ({"constraint": [c("purpose", "lt", "a")]}, "purpose cannot be compared with lt"),
        ({"constraint": [c("qdsn:role", "isAnyOf", "certifier")]}, "isAnyOf needs a non-empty list"),
        ({"constraint": [c("qdsn:modelHash", "eq", "abc")]}, "64 lowercase hex"),
    ],
)
def test_what_the_profile_does_not_name_is_refused(change, message):
    with pytest.raises(InvalidInput, match=message.replace("(", r"\(").replace(")", r"\)")):
        load(offer(**change))


def test_odrl_spec_example_outside_the_profile_is_refused():
    # ODRL 2.2 Information Model, Example 1: a Set policy with the target on the rule.
    example = {
        "@context": "http://www.w3.org/ns/odrl.jsonld",
        "@type": "Set",
        "uid": "http://example.com/policy:1010",
        "permission": [{"target": "http://example.com/asset:9898.movie", "action": "use"}],
    }
    with pytest.raises(InvalidInput, match="not a valid usage policy"):
        load(example)


def test_agreements_name_their_offer_by_hash():
    o = offer()
    a = agreement(o, CERTIFIER, "urn:qdsn:agreement:1")
    assert a["@type"] == "Agreement" and a["assignee"] == CERTIFIER and a["offer"]["hash"] == offer_hash(o)
    check_agreement(a, o)
    assert decide(a, ask()).allowed and not decide(a, ask(assignee=OWNER)).allowed
    changed = offer()
    changed["permission"][0]["constraint"][1]["rightOperand"] = 300
    with pytest.raises(IntegrityError, match="the offer was changed after it was agreed"):
        check_agreement(a, changed)
    other = offer() | {"uid": "urn:qdsn:offer:zj-line-1:2"}
    with pytest.raises(IntegrityError, match="is for offer urn:qdsn:offer:zj-line-1:1"):
        check_agreement(a, other)
    with pytest.raises(InvalidInput, match="the request time needs its UTC offset"):
        decide(o, ask(at=datetime(2026, 3, 1)))


def test_negotiation_defers_what_only_a_use_can_answer():
    d = decide(offer(), ask(purpose=None, uses=10), point="negotiation")
    assert d.allowed  # purpose and count are checked at each use
    late = decide(offer(), ask(purpose=None, at=datetime(2027, 6, 1, tzinfo=UTC)), point="negotiation")
    assert not late.allowed and "dateTime must be lt" in late.reason
    assert not decide(offer(assignee=OWNER), ask(), point="negotiation").allowed
