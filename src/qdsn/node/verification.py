"""Verifying a certificate presentation: online from a node — its replica of the ledger for the
issuer, the evidence and the cosigners; the issuer's status list fetched over HTTPS and checked with
the issuer's key from the ledger — or offline from a bundle that carries the log and the status list
token with it."""

from __future__ import annotations

import base64
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import orjson

from qdsn.credentials import certificate, sdjwt
from qdsn.credentials.certificate import Check
from qdsn.credentials.status import StatusLists, read_token
from qdsn.crypto.encoding import b64url_decode
from qdsn.errors import NotFound
from qdsn.ledger import Ledger, tx
from qdsn.ledger.checkpoint import NoteVerifier
from qdsn.node import witness
from qdsn.node.follow import log_key
from qdsn.node.node import Node


def verify_online(node: Node, presentation: str, *, aud: str | None = None, nonce: str | None = None,
                  quorum: int = 0, http: httpx.Client | None = None) -> list[Check]:  # fmt: skip
    """The full report for a presentation, as `certificate.report` gives it."""
    node.catch_up()
    ledger = node.ledger
    local = StatusLists(node.policies.engine)

    def fetch(uri: str) -> tuple[int, str]:
        cred = next((c for c in ledger.state.credentials.values() if c.status_list == uri), None)
        if cred is None:
            raise NotFound(f"no certificate on the ledger uses status list {uri}")
        issuer_key = ledger.state.identities[cred.issuer].key
        if uri in local.uris():
            token = local.token(uri, node.home.key(), kid=node.did)
        else:
            token = (http or httpx).get(uri, timeout=10).raise_for_status().text
        return read_token(token, uri, issuer_key)

    return certificate.report(presentation, ledger, log_key=log_key(ledger), aud=aud, nonce=nonce, status=fetch,
                              cosigners=members(node), quorum=quorum)  # fmt: skip


def members(node: Node) -> Sequence[NoteVerifier]:
    """Every member's cosigner key, as the ledger knows it."""
    return witness.cosigners(node.ledger)


def bundle(node: Node, presentation: str, *, http: httpx.Client | None = None) -> dict[str, Any]:
    """Everything a verifier needs offline: the presentation, the log up to the checkpoint its evidence
    sits under (every entry, to be re-validated on arrival), and the issuer's status list token."""
    node.catch_up()
    p = sdjwt.parse(presentation)
    claims = orjson.loads(b64url_decode(p.jwt.split(".")[1]))
    size = claims["evidence"]["checkpoint"]["size"]
    uri = claims["status"]["status_list"]["uri"]
    local = StatusLists(node.policies.engine)
    token = (local.token(uri, node.home.key(), kid=node.did) if uri in local.uris()
             else (http or httpx).get(uri, timeout=10).raise_for_status().text)  # fmt: skip
    leaves = node.ledger.store.leaves(0, max(size, node.ledger.size))
    return {"presentation": presentation, "origin": node.ledger.origin, "status_list": {"uri": uri, "token": token},
            "log": [base64.b64encode(x).decode() for x in leaves]}  # fmt: skip


def verify_bundle(doc: dict[str, Any], *, aud: str | None = None, nonce: str | None = None,
                  quorum: int = 0) -> list[Check]:  # fmt: skip
    """The report for a bundle, with no network: its log replayed into a scratch replica — every entry's
    signature, schema, role and order checked again — and its status list token checked with the
    issuer's key from that log."""
    with tempfile.TemporaryDirectory(prefix="qdsn-verify-") as d:
        ledger = Ledger.open(str(Path(d) / "ledger.db"), origin=doc["origin"])
        try:
            ledger.append([tx.from_leaf(base64.b64decode(x)) for x in doc["log"]])
            sl = doc["status_list"]

            def fetch(uri: str) -> tuple[int, str]:
                cred = next((c for c in ledger.state.credentials.values() if c.status_list == uri), None)
                if cred is None or uri != sl["uri"]:
                    raise NotFound(f"the bundle holds no status list {uri}")
                return read_token(sl["token"], uri, ledger.state.identities[cred.issuer].key)

            return certificate.report(doc["presentation"], ledger, log_key=log_key(ledger), aud=aud, nonce=nonce,
                                      status=fetch, cosigners=witness.cosigners(ledger), quorum=quorum)  # fmt: skip
        finally:
            ledger.close()
