"""Who decides the order of transactions: `embedded` (one node writes) or `etcd` (a consortium's
cluster). Validation and state stay in `Ledger`; an orderer only sequences envelopes and hands them to
each replica."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from qdsn.errors import QDSNError
from qdsn.ledger.ledger import Receipt
from qdsn.ledger.tx import Envelope


class Orderer(Protocol):
    def submit(self, envelopes: Sequence[Envelope]) -> list[Receipt | QDSNError]:
        """Order a batch, taken or refused whole: where each transaction landed, or the refusal raised.
        A batch the log holds already gets the receipts it got then (the idempotent resubmission)."""
        ...
