"""A participant's node: its home folder, keys and ledger replica."""

from qdsn.node.home import NodeHome, default_home
from qdsn.node.node import Node

__all__ = ["Node", "NodeHome", "default_home"]
