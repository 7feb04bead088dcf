"""A participant's node: its home folder, keys and ledger replica."""

from qdsn.node.home import NodeHome, default_home

__all__ = ["NodeHome", "default_home"]
