"""Usage policies: ODRL 2.2 offers and agreements in QDSN's profile, and the decisions they make."""

from qdsn.policy.decide import Decision, Request, decide
from qdsn.policy.odrl import agreement, check_agreement, load, offer_hash, profile_schema

__all__ = ["Decision", "Request", "agreement", "check_agreement", "decide", "load", "offer_hash", "profile_schema"]
