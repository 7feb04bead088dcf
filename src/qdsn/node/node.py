"""A running participant: its home (keys, ledger replica, vault) and the services it offers.

One node of the consortium operates the log (the embedded orderer; in the demo, the regulator);
the others submit to it and follow its log, verifying everything they receive.
"""

from __future__ import annotations

import os
from pathlib import Path

from qdsn.errors import NotFound, QDSNError
from qdsn.ledger import Ledger, tx
from qdsn.ledger.ledger import Receipt
from qdsn.ledger.ordering.embedded import EmbeddedOrderer
from qdsn.node.home import NodeHome


class Node:
    """One participant as a service. `operator`: this node orders the log (default: the regulator;
    `QDSN_OPERATOR=0|1` or `operator = true|false` in node.toml decide otherwise)."""

    def __init__(self, home: NodeHome, *, operator: bool | None = None) -> None:
        self.home = home
        self.ledger: Ledger = home.ledger()
        if operator is None:
            env = os.environ.get("QDSN_OPERATOR")
            operator = env == "1" if env in ("0", "1") else home.role == "regulator"
        self.orderer = EmbeddedOrderer(self.ledger) if operator else None

    @classmethod
    def open(cls, path: Path, passphrase: str) -> Node:
        return cls(NodeHome.open(path, passphrase))

    @property
    def did(self) -> str:
        return self.home.did

    def key_of(self, did: str) -> bytes | None:
        """The current public key of a participant, as the ledger knows it."""
        ident = self.ledger.state.identities.get(did)
        return ident.key if ident else None

    def order(self, envelopes: list[tx.Envelope]) -> list[Receipt | QDSNError]:
        """Append transactions to the log this node operates; the batch is taken or refused whole."""
        if self.orderer is None:
            raise NotFound("this node does not operate the log", "submit to the consortium's log operator")
        return self.orderer.submit(envelopes)

    def checkpoint(self) -> str:
        """The log's current checkpoint as a signed note (log operators only)."""
        if self.orderer is None:
            raise NotFound("this node does not operate the log", "ask the consortium's log operator")
        return self.ledger.sign_checkpoint(self.home.log_signer())

    def close(self) -> None:
        self.ledger.close()
