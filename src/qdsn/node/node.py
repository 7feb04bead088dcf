"""A running participant: its home (keys, ledger replica, vault) and the services it offers.

One node of the consortium operates the log (the embedded orderer; in the demo, the regulator);
the others submit to it and follow its log, verifying everything they receive.
"""

from __future__ import annotations

import os
import threading
from functools import cached_property

from qdsn.data.vault import Vault
from qdsn.errors import InvalidInput, NotFound, QDSNError
from qdsn.ledger import Ledger, tx
from qdsn.ledger.ledger import Receipt
from qdsn.ledger.ordering.embedded import EmbeddedOrderer
from qdsn.node.follow import Operator, pull
from qdsn.node.home import NodeHome
from qdsn.policy.store import PolicyStore


class Node:
    """One participant as a service. `operator`: this node orders the log (default: the regulator,
    unless QDSN_OPERATOR=0|1 says otherwise); `link` reaches the operator when this node is not it;
    `ledger`: a replica already open (the node then leaves closing it to its owner); `isolation`: how
    certification models run here (see `compute.sandbox`)."""

    def __init__(
        self,
        home: NodeHome,
        *,
        operator: bool | None = None,
        link: Operator | None = None,
        ledger: Ledger | None = None,
        isolation: str = "bwrap",
    ) -> None:
        if isolation not in ("bwrap", "process"):
            raise InvalidInput(f"isolation is bwrap or process, not {isolation!r}")
        self.home = home
        self.isolation = isolation  # how models run here: bwrap, or "process" only when the owner chose it
        self.ledger: Ledger = ledger or home.ledger()
        self._owns_ledger = ledger is None
        url = home.ledger_location()
        self.policies = PolicyStore(url if "://" in url else str(home.path / "policy.db"))
        self.link = link
        if operator is None:
            env = os.environ.get("QDSN_OPERATOR")
            operator = env == "1" if env in ("0", "1") else home.role == "regulator"
        self.orderer = EmbeddedOrderer(self.ledger) if operator else None
        self.deciding = threading.Lock()  # one use decision at a time: each counts the uses before it
        self.following = threading.Lock()  # one puller at a time appends to the replica

    @cached_property
    def vault(self) -> Vault:
        """The node's vault of encrypted datasets (opened on first use)."""
        return self.home.vault()

    @property
    def did(self) -> str:
        return self.home.did

    def key_of(self, did: str) -> bytes | None:
        """The current public key of a participant, as the ledger knows it (after catching up with
        the log when the DID is new to this replica)."""
        ident = self.ledger.state.identities.get(did)
        if ident is None and self.link is not None:
            self.catch_up()
            ident = self.ledger.state.identities.get(did)
        return ident.key if ident else None

    def role_of(self, did: str) -> str | None:
        """A participant's role as the ledger knows it."""
        ident = self.ledger.state.identities.get(did)
        return ident.role if ident else None

    def catch_up(self, until: int | None = None) -> int:
        """Pull the operator's new entries into this replica, validating each (nothing to do on the
        operator's own node); returns how many. Decisions are made on the log as it stands."""
        if self.link is None:
            return 0
        with self.following:
            return pull(self.ledger, self.link, until=until)

    def order(self, envelopes: list[tx.Envelope]) -> list[Receipt | QDSNError]:
        """Append transactions to the log this node operates; the batch is taken or refused whole."""
        if self.orderer is None:
            raise NotFound("this node does not operate the log", "submit to the consortium's log operator")
        return self.orderer.submit(envelopes)

    def submit(self, envelopes: list[tx.Envelope]) -> None:
        """Put this node's transactions on the log: ordered here if it operates the log, else sent to
        the operator and pulled back, so that this replica holds its own decisions before it decides
        again (a count limit is counted on the ledger)."""
        if self.orderer is not None:
            self.orderer.submit(envelopes)
            return
        if self.link is None:
            raise NotFound("this node knows no log operator", "start it with --operator URL")
        got = self.link.call("POST", "/ledger/transactions", {"transactions": [e.to_json() for e in envelopes]})
        self.catch_up(until=max(r["seq"] for r in got["receipts"]) + 1)  # type: ignore[index]

    def checkpoint(self) -> str:
        """The log's current checkpoint as a signed note (log operators only)."""
        if self.orderer is None:
            raise NotFound("this node does not operate the log", "ask the consortium's log operator")
        return self.ledger.sign_checkpoint(self.home.log_signer())

    def close(self) -> None:
        if "vault" in self.__dict__:
            self.vault.close()
        self.policies.close()
        if self._owns_ledger:
            self.ledger.close()
