"""Quality notifications between node processes: a certification body raises one to a manufacturer
from the command line, its content travels sealed over the signed API to the manufacturer's running
node, which stores it and records RECEIVED; the manufacturer answers, the certification body closes,
the regulator counts. And what the other side controls at the delivery endpoint is refused."""

import base64
import json
import os
import subprocess
import sys

import httpx
import pytest

from qdsn.api.client import NodeClient
from qdsn.api.signatures import sign
from qdsn.crypto import hpke
from qdsn.errors import Conflict, InvalidInput, PermissionDenied, Unavailable
from qdsn.identity.didkey import x25519_from_ed25519
from qdsn.node import NodeHome
from qdsn.node.notify import info
from qdsn.supervision import notifications as qn

from ..api.conftest import FAST
from ..services import free_port
from .test_certifier_cli import PW, serve, start


def qdsn(home: NodeHome, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "QDSN_HOME"} | {
        "QDSN_PASSPHRASE": PW, "QDSN_HOME": str(home.path), "COLUMNS": "200"}  # fmt: skip
    proc = subprocess.run([sys.executable, "-m", "qdsn", *args], env=env, capture_output=True, text=True, timeout=180)
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    assert (proc.returncode == 0) == ok, f"{args}\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def consortium(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("notify")
    reg = NodeHome.init(tmp / "reg", "regulator", "Provincial Bureau", PW, scrypt_n=FAST)
    maker = NodeHome.init(tmp / "maker", "enterprise", "Acme Cable", PW, origin=reg.origin, scrypt_n=FAST)
    lab = NodeHome.init(tmp / "lab", "certifier", "CQC", PW, origin=reg.origin, scrypt_n=FAST)
    for m in (maker, lab):
        reg.submit("identity.register", m.registration())
    ports = {n: free_port() for n in ("reg", "maker", "lab")}
    url = {n: f"http://127.0.0.1:{p}" for n, p in ports.items()}
    serve(reg, ports["reg"])
    serve(maker, ports["maker"], url["reg"])
    serve(lab, ports["lab"], url["reg"])
    procs = {"reg": start(reg, ports["reg"]), "maker": start(maker, ports["maker"]), "lab": start(lab, ports["lab"])}
    yield {"reg": reg, "maker": maker, "lab": lab, "url": url, "procs": procs, "ports": ports}
    for p in procs.values():
        p.terminate()
        p.wait(timeout=30)


def listed(home: NodeHome) -> dict:
    return json.loads(qdsn(home, "notify", "list", "--json").stdout)


def raised(lab: NodeHome, *extra: str) -> str:
    out = qdsn(lab, "notify", "raise", "--to", "Acme Cable", "--classification", "investigation", "--severity",
               "MAJOR", "--description", "Cpk of resistance fell to 0.82 on line 1", "--certificate", "QC-1",
               "--batch", "line-1#0+200", "--target-date", "2026-04-01", *extra).stdout  # fmt: skip
    return out.split("notification ", 1)[1].split()[0]


def test_a_notification_travels_sealed_and_is_answered_step_by_step(consortium):
    reg, maker, lab, url = consortium["reg"], consortium["maker"], consortium["lab"], consortium["url"]
    nid = raised(lab, "--send", url["maker"])
    got = {n["id"]: n for n in listed(maker)["notifications"]}[nid]
    assert got["state"] == "RECEIVED" and got["side"] == "recipient"
    assert got["body"]["description"] == "Cpk of resistance fell to 0.82 on line 1"
    assert got["body"]["affected"]["certificates"] == ["QC-1"] and got["sender_name"] == "CQC"
    assert [h["state"] for h in got["history"]] == ["CREATED", "SENT", "RECEIVED"]

    refused = qdsn(maker, "notify", "close", nid, "--reason", "not mine", ok=False)
    assert "only the sender moves a notification to CLOSED" in refused.stderr
    qdsn(maker, "notify", "ack", nid)
    qdsn(maker, "notify", "accept", nid, "--reason", "line 1 tooling worn; replaced")
    qdsn(lab, "notify", "close", nid, "--reason", "corrective action verified")
    shown = qdsn(lab, "notify", "show", nid).stdout
    for word in ("质量通知", "ACCEPTED", "CLOSED 已关闭", "corrective action verified", "Acme Cable", maker.did):
        assert word in shown, shown
    assert "CANCELED" not in shown

    own = NodeClient(url["lab"], lab.key(), lab.did)  # raised and canceled, never sent: the regulator counts it
    other = own.call("POST", "/notifications", {"recipient": maker.did, "classification": "investigation",
                                                "severity": "MAJOR", "description": "draft"})["id"]  # fmt: skip
    assert own.call("POST", f"/notifications/{other}/transitions", {"state": "CANCELED"})["state"] == "CANCELED"
    doc = listed(reg)
    assert doc["notifications"] == []
    assert doc["others"]["state"] == {"CLOSED": 1, "CANCELED": 1}
    assert doc["others"]["severity"] == {"MAJOR": 2}
    assert "Other members' notifications" in qdsn(reg, "notify", "list").stdout


def post(sender: NodeHome, signed_for: str, sent_to: str, doc: dict | bytes) -> httpx.Response:
    """A delivery signed by `sender` for the node at `signed_for`, posted to `sent_to`."""
    data = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    headers = sign("POST", f"{signed_for}/notifications/inbox", [("content-type", "application/json")], data,
                   sender.key(), sender.did)  # fmt: skip
    return httpx.post(f"{sent_to}/notifications/inbox", content=data, headers=headers, timeout=30)


def sealed_for(maker: NodeHome, content: qn.Notification, context: qn.Notification | None = None) -> str:
    raw = hpke.seal(x25519_from_ed25519(maker.key().verify_key.raw), content.canonical(), info(context or content))
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def test_what_a_sender_controls_at_the_inbox_is_refused(consortium):
    reg, maker, lab, url = consortium["reg"], consortium["maker"], consortium["lab"], consortium["url"]
    own = NodeClient(url["lab"], lab.key(), lab.did)  # the lab's API, as its own organisation uses it
    with pytest.raises(PermissionDenied, match="only this node's own organisation"):
        NodeClient(url["lab"], maker.key(), maker.did).call("GET", "/notifications")
    doc = own.call("POST", "/notifications", {"recipient": maker.did, "classification": "alert",
                                              "severity": "CRITICAL", "description": "Insulation cracks at -20 °C",
                                              "affected": {"serials": ["S-1", "S-2"]}})  # fmt: skip
    nid, body = doc["id"], qn.parse(doc["body"])
    assert doc["state"] == "CREATED" and doc["moves"] == ["SENT", "CANCELED"]
    good = {"notification": nid, "sealed": sealed_for(maker, body)}

    r = post(lab, url["maker"], url["maker"], {"notification": "qn-unknown", "sealed": good["sealed"]})
    assert r.status_code == 404 and "not on the ledger" in r.json()["detail"]
    r = post(lab, url["maker"], url["maker"], good)
    assert r.status_code == 409 and "not SENT" in r.json()["detail"]  # delivered before SENT is on the ledger
    dead = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(Unavailable, match="did not answer"):  # SENT recorded; nobody answered there
        own.call("POST", f"/notifications/{nid}/delivery", {"url": dead})
    assert own.call("GET", f"/notifications/{nid}")["state"] == "SENT"

    r = post(reg, url["maker"], url["maker"], good)  # another participant delivering it
    assert r.status_code == 403 and "cannot deliver it" in r.json()["detail"]
    r = post(lab, url["reg"], url["reg"], good)  # to a node it is not addressed to
    assert r.status_code == 403 and "not to this node" in r.json()["detail"]
    r = post(lab, url["lab"], url["maker"], good)  # signed for another node
    assert r.status_code == 401
    damaged = bytearray(base64.urlsafe_b64decode(good["sealed"] + "=="))
    damaged[-1] ^= 1
    r = post(lab, url["maker"], url["maker"], {"notification": nid, "sealed": base64.urlsafe_b64encode(
        bytes(damaged)).decode()})  # fmt: skip
    assert r.status_code == 422 and "does not open" in r.json()["detail"]
    other = body.model_copy(update={"description": "something else"})
    r = post(lab, url["maker"], url["maker"], {"notification": nid, "sealed": sealed_for(maker, other, body)})
    assert r.status_code == 422 and "does not hash" in r.json()["detail"]
    hidden = body.model_copy(update={"description": "fine\x1b[2J\x1b[Hall clear"})
    r = post(lab, url["maker"], url["maker"], {"notification": nid, "sealed": sealed_for(maker, hidden, body)})
    assert r.status_code == 400 and "control" in r.json()["detail"]
    r = post(lab, url["maker"], url["maker"], {"notification": nid, "sealed": "A" * (2 * qn.MAX_CONTENT + 1)})
    assert r.status_code == 400 and "at most" in r.json()["detail"]
    r = post(lab, url["maker"], url["maker"], b'{"notification": "' + b"x" * (1 << 20) + b'"}')
    assert r.status_code == 413
    assert own.call("GET", f"/notifications/{nid}")["state"] == "SENT"  # none of these was taken

    draft = own.call("POST", "/notifications", {"recipient": maker.did, "classification": "alert",
                                                "severity": "MINOR", "description": "draft"})  # fmt: skip
    own.call("POST", f"/notifications/{draft['id']}/transitions", {"state": "CANCELED"})
    r = post(lab, url["maker"], url["maker"], {"notification": draft["id"],
                                               "sealed": sealed_for(maker, qn.parse(draft["body"]))})  # fmt: skip
    assert r.status_code == 409 and "canceled" in r.json()["detail"]

    # The real delivery, then its replay: refused now and after the maker's node restarted.
    data = json.dumps(good).encode()
    headers = sign("POST", f"{url['maker']}/notifications/inbox", [("content-type", "application/json")], data,
                   lab.key(), lab.did)  # fmt: skip
    first = httpx.post(f"{url['maker']}/notifications/inbox", content=data, headers=headers, timeout=30)
    assert first.status_code == 201 and first.json()["state"] == "RECEIVED", first.text
    again = httpx.post(f"{url['maker']}/notifications/inbox", content=data, headers=headers, timeout=30)
    assert again.status_code == 401 and "nonce" in again.json()["detail"]
    procs = consortium["procs"]
    procs["maker"].terminate()
    procs["maker"].wait(timeout=30)
    procs["maker"] = start(maker, consortium["ports"]["maker"])
    again = httpx.post(f"{url['maker']}/notifications/inbox", content=data, headers=headers, timeout=30)
    assert again.status_code == 401 and "nonce" in again.json()["detail"]
    # Sent again with a fresh request (its first answer lost): the stored content is answered, once.
    assert NodeClient(url["maker"], lab.key(), lab.did).call("POST", "/notifications/inbox", good)["state"] == \
        "RECEIVED"  # fmt: skip
    mine = NodeClient(url["maker"], maker.key(), maker.did).call("GET", f"/notifications/{nid}")
    assert [h["state"] for h in mine["history"]] == ["CREATED", "SENT", "RECEIVED"]
    assert mine["body"]["affected"]["serials"] == ["S-1", "S-2"] and mine["moves"] == ["ACKNOWLEDGED", "DECLINED"]
    mine = NodeClient(url["maker"], maker.key(), maker.did).call(
        "POST", f"/notifications/{nid}/transitions", {"state": "ACKNOWLEDGED"})  # fmt: skip
    assert mine["state"] == "ACKNOWLEDGED"
    answer = NodeClient(url["maker"], maker.key(), maker.did)
    with pytest.raises(InvalidInput, match="needs a reason"):
        answer.call("POST", f"/notifications/{nid}/transitions", {"state": "DECLINED"})
    with pytest.raises(InvalidInput, match="control or invisible"):
        answer.call("POST", f"/notifications/{nid}/transitions", {"state": "DECLINED", "reason": "ok\x1b[2J"})
    with pytest.raises(Conflict, match="cannot move to CANCELED"):
        answer.call("POST", f"/notifications/{nid}/transitions", {"state": "CANCELED", "reason": "done"})
    with pytest.raises(InvalidInput, match="SENT and RECEIVED are recorded by delivering"):
        answer.call("POST", f"/notifications/{nid}/transitions", {"state": "RECEIVED"})


def test_an_undelivered_notification_is_listed_and_delivered_once_its_address_is_given(consortium):
    maker, lab, url = consortium["maker"], consortium["lab"], consortium["url"]
    nid = raised(lab)  # not sent: the certification body's node knows no address of the maker's
    d = {n["id"]: n for n in listed(lab)["notifications"]}[nid]["delivery"]
    assert d["url"] is None and "address is not known" in d["reason"] and "qdsn notify address" in d["next"]
    text = qdsn(lab, "notify", "list").stdout
    assert f"{nid} undelivered 未投递" in text and "qdsn notify address --to" in text
    done = qdsn(lab, "notify", "address", "--to", "Acme Cable", "--url", url["maker"])
    out = done.stdout
    assert f"✓ {nid}: RECEIVED" in out, done.stderr
    assert {n["id"]: n for n in listed(maker)["notifications"]}[nid]["state"] == "RECEIVED"
    assert {n["id"]: n for n in listed(lab)["notifications"]}[nid]["delivery"] is None
    refused = qdsn(lab, "notify", "address", "--to", "Acme Cable", "--url", "maker:8420", ok=False)
    assert "is not a node's API URL" in refused.stderr
