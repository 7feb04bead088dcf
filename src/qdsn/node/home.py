"""A node's home folder: `node.toml`, the encrypted keystore and the ledger replica.

home/
  node.toml     name, role, DID, the log's origin
  keystore/     passphrase-sealed Ed25519 keys
  ledger.db     this node's replica of the consortium log
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from qdsn.clock import Clock, format_time, system_clock
from qdsn.crypto import SigningKey, hkdf_sha256
from qdsn.crypto.encoding import b64url_encode
from qdsn.data.vault import Batch, Vault
from qdsn.errors import Conflict, InvalidInput, NotFound
from qdsn.identity import Keystore, did_key_from_public_key, multikey_from_public_key
from qdsn.identity.keystore import DEFAULT_SCRYPT_N
from qdsn.ledger import Ledger, tx
from qdsn.ledger.checkpoint import COSIGNATURE_V1, ED25519, NoteSigner
from qdsn.ledger.integrity import absent_reason, present
from qdsn.ledger.ordering.embedded import EmbeddedOrderer
from qdsn.ledger.store import metadata as ledger_tables


def default_home() -> Path:
    return Path(os.environ.get("QDSN_HOME", Path.home() / ".qdsn"))


def _slug(name: str) -> str:
    s = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return s or "node"


@dataclass
class NodeHome:
    """An opened home folder; keys are unsealed on first use with the passphrase."""

    path: Path
    name: str
    role: str
    did: str
    origin: str
    keystore: Keystore
    ledger_url: str = ""  # a SQLAlchemy URL; empty means ledger.db in the home folder

    @classmethod
    def init(
        cls,
        path: Path,
        role: str,
        name: str,
        passphrase: str,
        *,
        origin: str | None = None,
        ledger_url: str = "",
        clock: Clock = system_clock,
        scrypt_n: int = DEFAULT_SCRYPT_N,
    ) -> NodeHome:
        """Create a node: a fresh key, its did:key, `node.toml`; a regulator also starts the log.
        The ledger replica lives in the home folder (SQLite) unless `ledger_url` names a database."""
        role = tx.role_named(role)
        path = Path(path)
        if "://" in ledger_url and make_url(ledger_url).password:
            raise InvalidInput(
                "the ledger URL holds a password, which node.toml would keep in plaintext",
                "leave it out and give it through PGPASSWORD or ~/.pgpass",
            )
        if (path / "node.toml").exists():
            raise Conflict(f"{path} already holds a node", "choose another --home or remove it first")
        if ledger_url and role != "regulator" and not present(ledger_url, ledger_tables):
            # a member joins a log that exists; opening a mistyped one would create an empty log of its own
            raise NotFound(absent_reason(ledger_url, "the ledger database"),
                           "give the log's database, made by qdsn init --role regulator")  # fmt: skip
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = SigningKey.generate()
        did = did_key_from_public_key(key.verify_key.raw)
        if origin is None and ledger_url:  # joining a log that exists: adopt its origin
            joined = Ledger.open(ledger_url)
            origin = joined.origin or None
            joined.close()
        origin = origin or f"qdsn.local/{_slug(name)}"
        ks = Keystore(path / "keystore", passphrase, scrypt_n=scrypt_n)
        ks.add(key, created=format_time(clock()))
        toml = f'name = "{_escape(name)}"\nrole = "{role}"\ndid = "{did}"\norigin = "{_escape(origin)}"\n'
        if ledger_url:
            toml += f'ledger = "{_escape(ledger_url)}"\n'
        (path / "node.toml").write_text(toml)
        home = cls(path, name, role, did, origin, ks, ledger_url)
        if role == "regulator":
            home.submit("identity.register", home.registration(), clock=clock)
        return home

    def registration(self) -> dict:
        """The `identity.register` payload by which the regulator admits this node with its current key."""
        key = multikey_from_public_key(self.key().verify_key.raw)
        return {"did": self.did, "role": self.role, "name": self.name, "key": key}

    @classmethod
    def open(cls, path: Path, passphrase: str | Callable[[], str], *, scrypt_n: int = DEFAULT_SCRYPT_N) -> NodeHome:
        """An existing home; `passphrase` may be a function, asked only when a key is first needed."""
        cfg_path = Path(path) / "node.toml"
        if not cfg_path.exists():
            raise NotFound(f"no node at {path}", "create one with `qdsn init --role ROLE --name NAME --home DIR`")
        cfg = tomllib.loads(cfg_path.read_text())
        return cls(
            Path(path),
            cfg["name"],
            cfg["role"],
            cfg["did"],
            cfg["origin"],
            Keystore(Path(path) / "keystore", passphrase, scrypt_n=scrypt_n),
            os.environ.get("QDSN_LEDGER") or cfg.get("ledger", ""),
        )

    def service(self) -> dict[str, Any]:
        """The `[service]` table of node.toml: how `qdsn node start` serves this node (host, port,
        public_url, operator, operator_ca, tls_cert, tls_key, monitor, isolation, ordering, quorum, retain); options and
        QDSN_* variables override it."""
        cfg = tomllib.loads((self.path / "node.toml").read_text()).get("service", {})
        if not isinstance(cfg, dict):
            raise InvalidInput(f"{self.path / 'node.toml'}: [service] must be a table")
        return cfg

    def key(self) -> SigningKey:
        return self.keystore.current()

    def ledger(self) -> Ledger:
        return Ledger.open(self.ledger_location(), origin=self.origin)

    def ledger_location(self) -> str:
        """The ledger replica's database: a SQLAlchemy URL, or the SQLite file in the home folder."""
        return self.ledger_url or str(self.path / "ledger.db")

    def kek(self, kid: str | None = None) -> tuple[str, bytes]:
        """The vault's key-encryption key: derived from the node key `kid` (default: current), so
        it lives only where the sealed keystore does, and data keys wrapped before a key rotation
        still open with the retired key."""
        key = self.keystore.load(kid) if kid else self.key()
        kid = kid or multikey_from_public_key(key.verify_key.raw)
        return kid, hkdf_sha256(key.seed(), b"qdsn/vault/kek/v1")

    def vault(self) -> Vault:
        """This node's vault of encrypted datasets, beside its ledger replica."""
        url = self.ledger_location()
        return Vault(url if "://" in url else str(self.path / "vault.db"), self.kek)

    def anchor(self, batch: Batch) -> str:
        """Commit a vault batch on the ledger with `dataset.anchor`; returns the transaction id."""
        return tx.txid(self.submit("dataset.anchor", batch.anchor_payload()).leaf())

    def find_anchor(self, dataset: str, first: int) -> tuple[str, Batch] | None:
        """This node's `dataset.anchor` of `dataset` at record `first` in its ledger replica, if one
        landed there: (txid, the batch it anchors). How an ingest after a crash tells whether a batch
        reached the ledger."""
        ledger = self.ledger()
        try:
            return find_anchor(ledger, self.did, dataset, first)
        finally:
            ledger.close()

    def log_signer(self) -> NoteSigner:
        """The key that signs this node's log checkpoints (named by the log's origin)."""
        return NoteSigner(self.origin, self.key(), ED25519)

    def cosigner(self) -> NoteSigner:
        """The key this node cosigns others' checkpoints with (C2SP type 0x04, named by its DID)."""
        return NoteSigner(self.did, self.key(), COSIGNATURE_V1)

    def sign(self, type: str, payload: dict, *, clock: Clock = system_clock) -> tx.Envelope:
        return tx.sign_tx(type, payload, self.key(), self.did, clock=clock)

    def submit(self, type: str, payload: dict, *, clock: Clock = system_clock) -> tx.Envelope:
        """Sign a transaction and append it to this node's own log (embedded ordering)."""
        env = self.sign(type, payload, clock=clock)
        ledger = self.ledger()
        try:
            EmbeddedOrderer(ledger).submit([env])
        finally:
            ledger.close()
        return env

    def rotate_key(self, submit: Callable[[tx.Envelope], object] | None = None, *, clock: Clock = system_clock) -> str:
        """Replace the node's key: the new key is sealed first, then the change is recorded on the
        ledger (through `submit`, default this node's own log) with a proof of possession, then the
        new key becomes current. Returns the new key's Multikey."""
        old = self.key()
        new = SigningKey.generate()
        prev_mk, new_mk = multikey_from_public_key(old.verify_key.raw), multikey_from_public_key(new.verify_key.raw)
        self.keystore.add(new, created=format_time(clock()), current=False)
        proof = b64url_encode(new.sign(tx.rotation_message(self.did, prev_mk, new_mk)))
        payload = {"did": self.did, "previous_key": prev_mk, "new_key": new_mk, "proof": proof}
        if submit is None:
            self.submit("identity.rotate_key", payload, clock=clock)
        else:
            submit(self.sign("identity.rotate_key", payload, clock=clock))
        self.keystore.add(new, created=format_time(clock()), current=True)
        return new_mk


def find_anchor(ledger: Ledger, owner: str, dataset: str, first: int) -> tuple[str, Batch] | None:
    """The `dataset.anchor` by `owner` of `dataset` at record `first` in `ledger`, if any: (txid, batch)."""
    ds = ledger.state.datasets.get(dataset)
    if ds is None or ds.owner != owner or first >= ds.anchored:
        return None
    for row in reversed(ledger.store.rows_of_type("dataset.anchor", ds.declared)):
        p = tx.from_leaf(row.leaf).payload
        if row.submitter == owner and p["dataset"] == dataset and p["first"] == first:
            return row.txid, Batch(dataset, first, p["count"], bytes.fromhex(p["root"]))
    return None


def _escape(s: str) -> str:
    return s.replace("\\", "\\\\").replace('"', '\\"')
