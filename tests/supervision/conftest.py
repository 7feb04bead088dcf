"""Fixtures shared with the ledger tests: every ledger-backed test here can run on SQLite and PostgreSQL."""

from ..ledger.conftest import store_url  # noqa: F401
