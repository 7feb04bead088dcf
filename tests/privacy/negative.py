"""Failing test vectors in the draft's form, built as the draft's generator builds its own (poc
gen_test_vec.py, gen_prio3_negative_test_vec): an honest report with one message altered, and the
operation that must refuse it marked `success: false`."""

from __future__ import annotations

from typing import Any

from qdsn.privacy import Field64, Prio3, Prio3Count, Prio3Histogram

CTX = b"some application"
VERIFY_KEY = bytes(range(32))
NONCE = bytes(range(16))


def _rand(n: int) -> bytes:
    return bytes(i % 256 for i in range(n))


def _params(vdaf: Prio3) -> dict[str, Any]:
    valid = vdaf.flp.valid
    out: dict[str, Any] = {"shares": vdaf.SHARES}
    for key in ("length", "chunk_length", "max_measurement", "max_weight"):
        if hasattr(valid, key):
            out[key] = getattr(valid, key)
    return out


def _message_failure(vdaf: Prio3, public_share: Any, shares: list[Any]) -> dict[str, Any]:
    """Both verify_init succeed; verifier_shares_to_message must refuse."""
    verifier_shares = [vdaf.verify_init(VERIFY_KEY, CTX, j, None, NONCE, public_share, shares[j])[1] for j in range(2)]
    return {
        **_params(vdaf),
        "verify_key": VERIFY_KEY.hex(),
        "ctx": CTX.hex(),
        "agg_param": "",
        "operations": [
            {"operation": "verify_init", "aggregator_id": 0, "report_index": 0, "success": True},
            {"operation": "verify_init", "aggregator_id": 1, "report_index": 0, "success": True},
            {"operation": "verifier_shares_to_message", "round": 0, "report_index": 0, "success": False},
        ],
        "reports": [
            {
                "measurement": None,
                "rand": "",
                "nonce": NONCE.hex(),
                "public_share": vdaf.encode_public_share(public_share).hex(),
                "input_shares": [vdaf.encode_input_share(s).hex() for s in shares],
                "verifier_shares": [[vdaf.encode_verifier_share(s).hex() for s in verifier_shares]],
                "verifier_messages": [],
                "out_shares": [],
            }
        ],
        "agg_shares": [],
        "agg_result": None,
    }


def negative_vectors() -> dict[str, dict[str, Any]]:
    """File name → failing vector, one for each kind of alteration the draft's generator makes."""
    out = {}
    count = Prio3Count(2)
    public, (leader, helper) = count.shard(CTX, 1, NONCE, _rand(count.RAND_SIZE))
    meas, proof, blind = leader
    out["Prio3Count_bad_meas_share.json"] = _message_failure(
        count, public, [([(meas[0] + 1) % Field64.MODULUS], proof, blind), helper]
    )
    out["Prio3Count_bad_wire_seed.json"] = _message_failure(
        count, public, [(meas, [(proof[0] + 1) % Field64.MODULUS, *proof[1:]], blind), helper]
    )
    out["Prio3Count_bad_gadget_poly.json"] = _message_failure(
        count, public, [(meas, [*proof[:-1], (proof[-1] + 1) % Field64.MODULUS], blind), helper]
    )
    out["Prio3Count_bad_helper_seed.json"] = _message_failure(
        count, public, [leader, (bytes([helper[0][0] ^ 1]) + helper[0][1:], helper[1])]
    )

    hist = Prio3Histogram(2, 5, 2)
    public, (leader, helper) = hist.shard(CTX, 3, NONCE, _rand(hist.RAND_SIZE))
    meas, proof, blind = leader
    out["Prio3Histogram_bad_leader_jr_blind.json"] = _message_failure(
        hist, public, [(meas, proof, bytes([blind[0] ^ 1]) + blind[1:]), helper]
    )
    out["Prio3Histogram_bad_helper_jr_blind.json"] = _message_failure(
        hist, public, [leader, (helper[0], bytes([helper[1][0] ^ 1]) + helper[1][1:])]
    )
    out["Prio3Histogram_bad_public_share.json"] = _message_failure(
        hist, [bytes([public[0][0] ^ 1]) + public[0][1:], public[1]], [leader, helper]
    )

    _, verifier_share = hist.verify_init(VERIFY_KEY, CTX, 0, None, NONCE, public, leader)
    vec = _message_failure(hist, public, [leader, helper])
    vec["operations"] = [
        {"operation": "verify_init", "aggregator_id": 0, "report_index": 0, "success": True},
        {"operation": "verify_next", "aggregator_id": 0, "round": 1, "report_index": 0, "success": False},
    ]
    vec["reports"][0]["verifier_shares"] = [[hist.encode_verifier_share(verifier_share).hex()]]
    vec["reports"][0]["verifier_messages"] = [bytes(32).hex()]
    out["Prio3Histogram_bad_verifier_message.json"] = vec
    return out
