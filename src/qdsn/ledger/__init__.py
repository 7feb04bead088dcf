"""The consortium's append-only, verifiable log of signed transactions."""

from qdsn.ledger.ledger import Ledger, Receipt

__all__ = ["Ledger", "Receipt"]
