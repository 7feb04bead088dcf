"""What an issuer controls in a certificate cannot crash its verifier, and what the holder hides stays
hidden: a certification body on the ledger may sign any claims, of any shape, and every verifier —
`report`, `POST /verify` — answers with a refusal naming what is wrong, never an exception. The run's
output is the holder's to show; shown, it must give every indicator and the volume the certificate
claims."""

import json
import os
import re
import subprocess
import sys

import orjson
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qdsn.api.app import create_app
from qdsn.credentials import certificate, sdjwt
from qdsn.crypto.encoding import b64url_decode
from qdsn.crypto.jose import sign_jws
from qdsn.node import certify, trust
from qdsn.node.follow import log_key
from qdsn.node.verification import bundle, verify_online

from ..conftest import LOOPBACK
from .consortium import build

OUTPUT = "evidence.attestations[].output"
AUD, NONCE = "did:web:buyer.example", "n-1"


@pytest.fixture(scope="module")
def issued(tmp_path_factory):
    c = build(tmp_path_factory.mktemp("consortium"))
    c.sd = c.issue()
    yield c
    c.close()


def resign(c, sd, change):
    """The certificate with its issuer-signed payload changed by `change` and signed again by its issuer."""
    jwt, *rest = sd.split("~")
    claims = orjson.loads(b64url_decode(jwt.split(".")[1]))
    change(claims)
    return "~".join([sign_jws(claims, c.cqc.key(), typ="dc+sd-jwt", kid=c.cqc.did), *rest])


def by_name(checks):
    return {x.name: x for x in checks}


@pytest.mark.parametrize("change, where", [
    (lambda cl: cl.__setitem__("evidence", "x"), "$.evidence"),
    (lambda cl: cl["evidence"].__setitem__("checkpoint", []), "$.evidence.checkpoint"),
    (lambda cl: cl.__setitem__("enterprise", "x"), "$.enterprise"),
    (lambda cl: cl["evidence"]["checkpoint"].__setitem__("size", "9"), "$.evidence.checkpoint.size"),
    (lambda cl: cl["evidence"]["attestations"][0].__setitem__("proof", [7]), "$.evidence.attestations[0].proof[0]"),
])  # fmt: skip
def test_malformed_issuer_claims_are_refused_not_a_500(issued, change, where):
    c = issued
    good = sdjwt.present(c.sd, ["indicators"], c.maker.key(), aud=AUD, nonce=NONCE)
    assert all(x.ok for x in verify_online(c.lab, good, aud=AUD, nonce=NONCE))
    shown = sdjwt.present(resign(c, c.sd, change), ["indicators"], c.maker.key(), aud=AUD, nonce=NONCE)
    (refused,) = verify_online(c.lab, shown, aud=AUD, nonce=NONCE)
    assert (refused.name, refused.ok) == ("claims", False) and f"at {where}:" in refused.detail
    client = TestClient(
        create_app(c.lab, public_url="http://testserver"), raise_server_exceptions=False, client=LOOPBACK
    )
    r = client.post("/verify", json={"presentation": shown, "aud": AUD, "nonce": NONCE})
    assert r.status_code == 200 and r.json()["ok"] is False, r.text
    assert r.json()["checks"][0]["detail"].startswith("not a QDSN quality certificate's claims at ")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


def _path(data, value):
    """A path into `value`, drawn one level at a time: shallow paths as likely as deep ones."""
    path = []
    while isinstance(value, dict | list) and value and (not path or data.draw(st.booleans())):
        key = data.draw(st.sampled_from(sorted(value) if isinstance(value, dict) else range(len(value))))
        path.append(key)
        value = value[key]
    return path


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_json_anywhere_in_the_claims_is_a_refusal_never_an_exception(issued, data):
    c = issued
    payload = orjson.loads(b64url_decode(c.sd.split("~")[0].split(".")[1]))
    path = _path(data, payload)
    value = data.draw(json_values)

    def change(claims):
        *up, last = path
        for k in up:
            claims = claims[k]
        claims[last] = value

    disclose = data.draw(st.sampled_from([[], ["indicators"], [OUTPUT], ["indicators", OUTPUT, "volumes"]]))
    shown = sdjwt.present(resign(c, c.sd, change), disclose, None)
    checks = certificate.report(shown, c.plant.ledger, log_key=log_key(c.plant.ledger))
    assert checks and all(isinstance(x, certificate.Check) for x in checks)


def test_the_runs_output_is_the_holders_to_show(issued):
    c = issued
    hidden = sdjwt.present(c.sd, [], c.maker.key(), aud=AUD, nonce=NONCE)
    claims = sdjwt.verify(hidden, lambda i, h: c.lab.ledger.state.identities[i].key, aud=AUD, nonce=NONCE).claims
    assert "indicators" not in claims and all("output" not in a for a in claims["evidence"]["attestations"])
    assert b"cpk" not in b"".join(b64url_decode(p) for p in hidden.split("~")[0].split(".")[:2])
    by = by_name(checks := verify_online(c.lab, hidden, aud=AUD, nonce=NONCE))
    assert all(x.ok for x in checks)
    assert not by["criteria"].checked and "did not show" in by["criteria"].detail
    assert "judged by the issuer at issue" in by["criteria"].detail

    shown = sdjwt.present(c.sd, ["indicators", OUTPUT, "volumes"], c.maker.key(), aud=AUD, nonce=NONCE)
    by = by_name(checks := verify_online(c.lab, shown, aud=AUD, nonce=NONCE))
    assert all(x.ok and x.checked for x in checks), [x for x in checks if not (x.ok and x.checked)]
    assert "meets scheme process-capability" in by["criteria"].detail and "indicators shown" in by["criteria"].detail
    assert by["volumes"].detail.startswith("300 records")


def test_indicators_and_volumes_must_be_the_runs(tmp_path, monkeypatch):
    c = build(tmp_path)
    real = certificate.issue

    def rogue(claims, *a, **kw):  # a certification body that writes better figures than its run found
        claims["indicators"] = {k: (9.99 if "cpk" in k else v) for k, v in claims["indicators"].items()}
        claims["volumes"] = {"records": 10**6}
        return real(claims, *a, **kw)

    try:
        honest = c.issue()
        monkeypatch.setattr(certify.certificate, "issue", rogue)
        inflated = c.issue("CQC-2026-0002")
        for sd, ok in ((honest, True), (inflated, False)):
            shown = sdjwt.present(sd, ["indicators.resistance_cpk", OUTPUT], c.maker.key(), aud=AUD, nonce=NONCE)
            by = by_name(verify_online(c.lab, shown, aud=AUD, nonce=NONCE))
            assert by["criteria"].ok is ok and by["criteria"].checked, by["criteria"]
            shown = sdjwt.present(sd, ["volumes", OUTPUT], c.maker.key(), aud=AUD, nonce=NONCE)
            by = by_name(verify_online(c.lab, shown, aud=AUD, nonce=NONCE))
            assert by["volumes"].ok is ok, by["volumes"]
        assert re.match(
            r"indicators: the certificate shows resistance_cpk\w* = 9\.99, the attested run found 2\.",
            by_name(verify_online(c.lab, sdjwt.present(inflated, ["indicators", OUTPUT], None)))["criteria"].detail,
        )
        assert "shows 1000000 records; its attested runs read 300" in by["volumes"].detail
    finally:
        c.close()


def test_the_key_binding_line_says_whom_it_binds_and_whether_it_was_checked(issued):
    c = issued
    shown = sdjwt.present(c.sd, [], c.maker.key(), aud="did:web:buyer-x.example", nonce="x-nonce")
    line = by_name(verify_online(c.lab, shown))["key binding"]
    assert line.ok and "for this verifier" not in line.detail
    assert "did:web:buyer-x.example with nonce x-nonce" in line.detail and "did not check" in line.detail
    line = by_name(verify_online(c.lab, shown, aud="did:web:buyer-x.example", nonce="x-nonce"))["key binding"]
    assert line.ok and "for this verifier (did:web:buyer-x.example, nonce x-nonce)" in line.detail


def test_qdsn_verify_shows_a_check_not_made_as_not_shown(issued, tmp_path):
    c = issued
    doc = bundle(c.lab, sdjwt.present(c.sd, ["indicators"], c.maker.key(), aud=AUD, nonce=NONCE))
    (tmp_path / "b.json").write_text(json.dumps(doc))
    (tmp_path / "t.json").write_text(json.dumps(trust.export(c.plant.ledger)))
    r = subprocess.run([sys.executable, "-m", "qdsn", "verify", "--trust", str(tmp_path / "t.json"), "--aud", AUD,
                        "--nonce", NONCE, str(tmp_path / "b.json")], capture_output=True, text=True, timeout=60,
                       env=os.environ | {"COLUMNS": "200"})  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    (line,) = [x for x in r.stdout.splitlines() if "criteria" in x]
    assert "–" in line and "✓" not in line and "did not show" in line
