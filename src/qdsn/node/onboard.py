"""Joining a consortium: what a new member learns from the log operator before it has a node, and pins.

The operator's public endpoints say which log this is (`/.well-known/qdsn-trust.json`: origin, log key,
regulator, members), what it holds now (`/ledger/checkpoint`) and who operates it (`/.well-known/did.json`).
The operator is not trusted for any of it: the trust file must match its own fingerprint, the checkpoint
must verify under the log key it names, the regulator's DID document must list that key, and the person
joining confirms the key's fingerprint with the regulator out of band (or pins the key it was given with
`--log-key`). The new home then keeps the log key in its replica (a log whose key history does not hold it
is refused while following) and the checkpoint as the newest it has seen (a replica that later disagrees
with it is reported by `qdsn ledger verify`).
"""

from __future__ import annotations

import json
import shutil
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from qdsn.crypto import sha256
from qdsn.errors import IntegrityError, InvalidInput, QDSNError, Unavailable
from qdsn.identity import ed25519_keys
from qdsn.ledger import tx
from qdsn.ledger.checkpoint import NoteVerifier, open_checkpoint, parse_verifier
from qdsn.node import seen, trust
from qdsn.node.home import NodeHome

CONSORTIUM = "consortium.json"  # the trust file fetched at join, kept in the home
MAX_ANSWER = 4 * 1024 * 1024


@dataclass(frozen=True)
class Consortium:
    """What the operator served, every part checked against the others."""

    url: str
    origin: str
    log_key: NoteVerifier
    regulator: str
    members: list[dict[str, Any]]
    checkpoint: str
    trust_file: dict[str, Any]

    @property
    def size(self) -> int:
        return open_checkpoint(self.checkpoint, self.log_key)[0].size


def key_fingerprint(key: NoteVerifier) -> str:
    """SHA-256 of the log key as a note verifier key, in groups of four hex digits to read aloud."""
    h = sha256(key.text().encode()).hex()
    return " ".join(h[i : i + 4] for i in range(0, 32, 4))


def _get(http: httpx.Client, url: str) -> httpx.Response:
    try:
        r = http.get(url, follow_redirects=False)
    except httpx.HTTPError as e:
        raise Unavailable(
            f"the operator at {url} cannot be reached: {e}",
            "check the URL, and --ca for a node whose certificate a private CA issued",
        ) from None
    if r.status_code != 200:
        raise Unavailable(f"{url} answered HTTP {r.status_code}", "check that the URL is the log operator's node")
    if len(r.content) > MAX_ANSWER:
        raise InvalidInput(f"{url} answered {len(r.content):,} bytes, more than a trust file or checkpoint is")
    return r


def fetch(url: str, ca: Path | None = None, *, http: httpx.Client | None = None) -> Consortium:
    """Read and cross-check what the log operator at `url` says about its consortium."""
    url = url.rstrip("/")
    if not url.startswith(("https://", "http://")):
        raise InvalidInput(f"{url!r} is not a node's URL", "give the operator's API, e.g. https://reg:8420")
    if ca is not None and not ca.is_file():
        raise InvalidInput(f"--ca {ca}: no such file", "give the CA certificate (PEM) the operator's node uses")
    own = http is None
    http = http or httpx.Client(verify=ssl.create_default_context(cafile=str(ca)) if ca else True, timeout=10)
    try:
        try:
            doc = _get(http, url + trust.PATH).json()
            note = _get(http, url + "/ledger/checkpoint").text
            did_doc = _get(http, url + "/.well-known/did.json").json()
        except ValueError:
            raise InvalidInput(f"{url} is not a QDSN log operator: its answers are not JSON") from None
    finally:
        if own:
            http.close()
    anchor = trust.load(doc)  # its fingerprint matches its contents
    try:
        cp, _ = open_checkpoint(note, anchor.log_key)
    except QDSNError as e:
        raise IntegrityError(f"the operator's checkpoint does not verify under the log key its trust file names: "
                             f"{e.what}", "do not join through this node; ask the regulator") from None  # fmt: skip
    if cp.origin != anchor.origin:
        raise IntegrityError(f"the checkpoint is of the log {cp.origin!r}, the trust file of {anchor.origin!r}")
    try:
        keys = ed25519_keys(did_doc)
    except QDSNError as e:
        raise IntegrityError(f"the operator's DID document is not usable: {e.what}") from None
    if not tx.is_did(anchor.regulator):  # it is shown to the person joining beside the fingerprint
        raise IntegrityError(f"the trust file's regulator {anchor.regulator!r} is not a DID",
                             "do not join through this node; ask the regulator")  # fmt: skip
    if did_doc.get("id") != anchor.regulator or anchor.log_key.key.raw not in keys:
        raise IntegrityError(f"the node at {url} is {did_doc.get('id')}, whose DID document does not list the log "
                             f"key of the regulator {anchor.regulator}", "give the log operator's URL")  # fmt: skip
    return Consortium(url, anchor.origin, anchor.log_key, anchor.regulator, list(doc.get("cosigners", [])), note, doc)


def pin(consortium: Consortium, log_key: str | None) -> None:
    """Refuse the consortium unless its log key is `log_key` (given out of band), when one is given."""
    if log_key is None:
        return
    try:
        given = parse_verifier(log_key.strip())
    except QDSNError as e:
        raise InvalidInput(f"--log-key is not a note verifier key: {e.what}",
                           "give it as the regulator printed it: ORIGIN+KEYID+BASE64") from None  # fmt: skip
    if given.text() != consortium.log_key.text():
        raise IntegrityError(
            f"the operator's log key {consortium.log_key.text()} is not the one you were given ({given.text()})",
            "do not join through this node; ask the regulator",
        )


def create_home(path: Path, role: str, name: str, passphrase: str, consortium: Consortium, ca: Path | None,
                **init: Any) -> NodeHome:  # fmt: skip
    """A member home for `consortium`: its origin, node.toml's [service] naming the operator (and its CA,
    copied into the home), the trust file, the pinned log key and the checkpoint seen at join."""
    home = NodeHome.init(path, role, name, passphrase, origin=consortium.origin, **init)
    service = f'\n[service]\noperator = "{_escape(consortium.url)}"\n'
    if ca is not None:
        shutil.copyfile(ca, path / "operator-ca.pem")
        service += f'operator_ca = "{_escape(str((path / "operator-ca.pem").resolve()))}"\n'
    with (path / "node.toml").open("a") as f:
        f.write(service)
    (path / CONSORTIUM).write_text(json.dumps(consortium.trust_file, ensure_ascii=False, indent=1) + "\n")
    ledger = home.ledger()
    try:
        ledger.store.set_meta("log_key", consortium.log_key.text())
    finally:
        ledger.close()
    seen.remember(path, consortium.checkpoint, consortium.log_key)
    return home


def _escape(s: str) -> str:
    return s.replace("\\", "\\\\").replace('"', '\\"')
