"""The embedded orderer: one node is the single writer and its replica's order is the order."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from qdsn.errors import Conflict, QDSNError
from qdsn.ledger.ledger import Ledger, Receipt
from qdsn.ledger.ordering.budget import Budget
from qdsn.ledger.tx import Envelope

STARTED = "ordering.embedded"  # meta of a database that is the log itself, started by an embedded orderer


def is_the_log(ledger: Ledger) -> bool:
    """Whether this database is the log an embedded orderer started, not a replica that follows one
    (whose entries only ever come from the log)."""
    return ledger.store.get_meta(STARTED) is not None


class EmbeddedOrderer:
    """Orders by appending straight to the operator's replica; a bad batch is refused whole, and a
    batch sent again (its answer was lost) gets the receipts it got the first time. With a `budget`,
    each new batch is first charged to its submitters (the node's door for everyone else's batches)."""

    def __init__(self, ledger: Ledger, budget: Budget | None = None) -> None:
        self.ledger, self.budget = ledger, budget

    def submit(self, envelopes: Sequence[Envelope]) -> list[Receipt | QDSNError]:
        if (done := self.ledger.recorded(envelopes)) is not None:
            return list(done)
        refund = self.budget.charge(envelopes) if self.budget is not None else None
        try:
            return self.ledger.append(envelopes, meta={STARTED: "1"} if self.ledger.size == 0 else None)
        except Conflict:
            if (done := self.ledger.recorded(envelopes)) is not None:  # the same batch, sent twice at once
                return list(done)
            if refund is not None:
                refund()
            raise
        except QDSNError:
            if refund is not None:  # refused whole: a draft that never landed does not count
                refund()
            raise

    def submit_stream(self, batches: Iterable[Sequence[Envelope]]) -> Iterator[list[Receipt | QDSNError]]:
        """Order queued batches as a pipeline; yields each batch's receipts once it is durable."""
        return self.ledger.append_stream(batches)
