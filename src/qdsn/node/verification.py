"""Verifying a certificate presentation from a node: its replica of the ledger for the issuer, the
evidence and the cosigners; the issuer's status list fetched over HTTPS and checked with the issuer's
key from the ledger (or read locally when this node is the issuer)."""

from __future__ import annotations

from collections.abc import Sequence

import httpx

from qdsn.credentials import certificate
from qdsn.credentials.certificate import Check
from qdsn.credentials.status import StatusLists, read_token
from qdsn.crypto import VerifyKey
from qdsn.errors import NotFound
from qdsn.ledger.checkpoint import COSIGNATURE_V1, NoteVerifier
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
    return [NoteVerifier(i.did, VerifyKey(i.key), COSIGNATURE_V1) for i in node.ledger.state.identities.values()
            if i.role != "regulator"]  # fmt: skip
