"""C2SP signed-note v1.0.0, tlog-checkpoint v1.0.0 and tlog-cosignature v1 (Ed25519, type 0x04).

Key text forms follow golang.org/x/mod/sumdb/note: `PRIVATE+KEY+name+keyid+base64(type‖seed)`
and `name+keyid+base64(type‖public key)`, keyid = SHA-256(name ‖ 0x0A ‖ type ‖ public key)[:4].
"""

from __future__ import annotations

import hashlib
import re
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from qdsn.crypto import SigningKey, VerifyKey
from qdsn.crypto.encoding import b64_decode, b64_encode
from qdsn.errors import BadSignature, IntegrityError, InvalidInput

ED25519 = 0x01
COSIGNATURE_V1 = 0x04
MAX_SIGNATURES = 100
_DASH = "\u2014 "


def key_id(name: str, alg: int, public_key: bytes) -> int:
    """The 32-bit key ID of a named key."""
    return int.from_bytes(hashlib.sha256(name.encode() + b"\n" + bytes([alg]) + public_key).digest()[:4], "big")


def _check_name(name: str) -> None:
    if not name or any(c.isspace() or c == "+" for c in name):
        raise InvalidInput(f"key name {name!r} is empty or holds a space or '+'")


@dataclass(frozen=True)
class NoteSigner:
    """A private key with its note name and signature type."""

    name: str
    key: SigningKey
    alg: int = ED25519

    def __post_init__(self) -> None:
        _check_name(self.name)

    @property
    def key_id(self) -> int:
        return key_id(self.name, self.alg, self.key.verify_key.raw)

    def verifier(self) -> NoteVerifier:
        return NoteVerifier(self.name, self.key.verify_key, self.alg)

    def text(self) -> str:
        """`PRIVATE+KEY+name+keyid+base64(type‖seed)` — a secret; never log it."""
        return f"PRIVATE+KEY+{self.name}+{self.key_id:08x}+{b64_encode(bytes([self.alg]) + self.key.seed())}"

    def __repr__(self) -> str:
        return f"NoteSigner({self.name!r}, {self.key_id:08x})"


@dataclass(frozen=True)
class NoteVerifier:
    """A public key with its note name and signature type."""

    name: str
    key: VerifyKey
    alg: int = ED25519

    def __post_init__(self) -> None:
        _check_name(self.name)

    @property
    def key_id(self) -> int:
        return key_id(self.name, self.alg, self.key.raw)

    def text(self) -> str:
        """`name+keyid+base64(type‖public key)`."""
        return f"{self.name}+{self.key_id:08x}+{b64_encode(bytes([self.alg]) + self.key.raw)}"


def _split_key(text: str, parts: int) -> list[str]:
    fields = text.split("+")
    # base64 may itself hold '+': the first parts-1 fields are fixed, the rest is base64.
    if len(fields) < parts:
        raise InvalidInput(f"malformed key {text[:40]!r}…", "expected name+keyid+base64")
    return [*fields[: parts - 1], "+".join(fields[parts - 1 :])]


def _decode_key(name: str, hexid: str, b64: str, size: int, *, what: str) -> tuple[int, bytes]:
    _check_name(name)
    if not re.fullmatch(r"[0-9a-f]{8}", hexid):
        raise InvalidInput(f"malformed {what}: key ID {hexid!r} is not 8 lowercase hex digits")
    raw = b64_decode(b64)
    if len(raw) != 1 + size or raw[0] not in (ED25519, COSIGNATURE_V1):
        raise InvalidInput(f"malformed {what}: unknown algorithm or wrong key length")
    return raw[0], raw[1:]


def parse_signer(skey: str) -> NoteSigner:
    """Read a `PRIVATE+KEY+…` signer key."""
    if not skey.startswith("PRIVATE+KEY+"):
        raise InvalidInput("a signer key starts with PRIVATE+KEY+")
    name, hexid, b64 = _split_key(skey[len("PRIVATE+KEY+") :], 3)
    alg, seed = _decode_key(name, hexid, b64, 32, what="signer key")
    signer = NoteSigner(name, SigningKey.from_seed(seed), alg)
    if f"{signer.key_id:08x}" != hexid:
        raise InvalidInput(f"signer key {name}: key ID {hexid} does not match the key")
    return signer


def parse_verifier(vkey: str) -> NoteVerifier:
    """Read a `name+keyid+base64` verifier key."""
    name, hexid, b64 = _split_key(vkey, 3)
    alg, pub = _decode_key(name, hexid, b64, 32, what="verifier key")
    verifier = NoteVerifier(name, VerifyKey(pub), alg)
    if f"{verifier.key_id:08x}" != hexid:
        raise InvalidInput(f"verifier key {name}: key ID {hexid} does not match the key")
    return verifier


@dataclass(frozen=True)
class NoteSignature:
    """One signature line of a signed note."""

    name: str
    key_id: int
    signature: bytes  # without the key ID

    def line(self) -> str:
        return f"{_DASH}{self.name} {b64_encode(self.key_id.to_bytes(4, 'big') + self.signature)}\n"


@dataclass
class Note:
    """A parsed note: its text and its verified and unverified signatures."""

    text: str
    verified: list[NoteSignature] = field(default_factory=list)
    unverified: list[NoteSignature] = field(default_factory=list)


def _malformed(why: str) -> InvalidInput:
    return InvalidInput(f"malformed note: {why}", "a signed note is text, a blank line, then '— name sig' lines")


def _check_text(text: str) -> None:
    if not text.endswith("\n") or text == "\n":
        raise _malformed("the text must be non-empty and end with a newline")
    if any(ord(c) < 0x20 and c != "\n" for c in text):
        raise _malformed("control characters are not allowed")


def parse_note(note: str | bytes) -> tuple[str, list[NoteSignature]]:
    """Split a signed note into its text and signature lines, checking the syntax only."""
    if isinstance(note, bytes):
        try:
            note = note.decode("utf-8")
        except UnicodeDecodeError:
            raise _malformed("not UTF-8") from None
    cut = note.rfind("\n\n")
    if cut < 0:
        raise _malformed("no blank line before the signatures")
    text, block = note[: cut + 1], note[cut + 2 :]
    _check_text(text)
    if not block.endswith("\n") or any(ord(c) < 0x20 and c != "\n" for c in block):
        raise _malformed("signature lines must end with a newline")
    sigs = []
    for line in block[:-1].split("\n"):
        if not line.startswith(_DASH):
            raise _malformed(f"unexpected line {line[:40]!r}")
        name, _, b64 = line[len(_DASH) :].partition(" ")
        if not name or not b64 or " " in b64 or "+" in name:
            raise _malformed(f"bad signature line {line[:40]!r}")
        try:
            raw = b64_decode(b64)
        except InvalidInput:
            raise _malformed(f"signature of {name} is not base64") from None
        if len(raw) < 5:
            raise _malformed(f"signature of {name} is too short")
        sigs.append(NoteSignature(name, int.from_bytes(raw[:4], "big"), raw[4:]))
    if len(sigs) > MAX_SIGNATURES:
        raise _malformed(f"more than {MAX_SIGNATURES} signatures")
    return text, sigs


def _as_signer(skey: str | NoteSigner) -> NoteSigner:
    return parse_signer(skey) if isinstance(skey, str) else skey


def _as_verifier(vkey: str | NoteVerifier) -> NoteVerifier:
    return parse_verifier(vkey) if isinstance(vkey, str) else vkey


def cosigned_message(text: str, timestamp: int) -> bytes:
    """The bytes an Ed25519 tlog cosigner signs."""
    return f"cosignature/v1\ntime {timestamp}\n".encode() + text.encode()


def _signature_for(text: str, signer: NoteSigner, timestamp: int | None) -> NoteSignature:
    if signer.alg == ED25519:
        return NoteSignature(signer.name, signer.key_id, signer.key.sign(text.encode()))
    if timestamp is None or not 0 <= timestamp < 2**63:
        raise InvalidInput("a cosignature needs a POSIX timestamp below 2^63")
    sig = struct.pack(">Q", timestamp) + signer.key.sign(cosigned_message(text, timestamp))
    return NoteSignature(signer.name, signer.key_id, sig)


def sign_note(text: str, skey: str | NoteSigner, *, timestamp: int | None = None) -> str:
    """Sign `text` and return the signed note. Cosigner keys (type 0x04) need `timestamp`."""
    signer = _as_signer(skey)
    _check_text(text)
    return text + "\n" + _signature_for(text, signer, timestamp).line()


def add_signature(note: str, skey: str | NoteSigner, *, timestamp: int | None = None) -> str:
    """Add a signature (or cosignature) to a signed note, replacing one by the same key."""
    signer = _as_signer(skey)
    body, sigs = parse_note(note)
    sigs = [s for s in sigs if (s.name, s.key_id) != (signer.name, signer.key_id)]
    sigs.append(_signature_for(body, signer, timestamp))
    return body + "\n" + "".join(s.line() for s in sigs)


def open_note(note: str | bytes, vkeys: Iterable[str | NoteVerifier]) -> Note:
    """Parse a note and verify every signature from a known key.

    Unknown keys are ignored; a known key's bad signature rejects the note (BadSignature); a note
    with no verified signature is rejected (BadSignature)."""
    text, sigs = parse_note(note)
    known: dict[tuple[str, int], NoteVerifier] = {}
    ambiguous: set[tuple[str, int]] = set()
    for v in map(_as_verifier, vkeys):
        k = (v.name, v.key_id)
        if k in known and known[k] != v:
            ambiguous.add(k)
        known[k] = v
    out = Note(text)
    seen: set[tuple[str, int]] = set()
    for s in sigs:
        k = (s.name, s.key_id)
        v = known.get(k)
        if v is None:
            out.unverified.append(s)
            continue
        if k in ambiguous:
            raise InvalidInput(f"ambiguous key {s.name}+{s.key_id:08x}")
        if v.alg == ED25519:
            ok = v.key.is_valid(s.signature, text.encode())
        else:
            ok = len(s.signature) == 72 and v.key.is_valid(
                s.signature[8:], cosigned_message(text, struct.unpack(">Q", s.signature[:8])[0])
            )
        if not ok:
            raise BadSignature(f"invalid signature for key {s.name}+{s.key_id:08x}", "reject this note")
        if k not in seen:
            seen.add(k)
            out.verified.append(s)
    if not out.verified:
        raise BadSignature("note has no verifiable signatures", "check the signer's verifier key")
    return out


def verify_note(note: str | bytes, vkeys: Iterable[str | NoteVerifier]) -> str:
    """The text of `note` once at least one known key's signature verifies; raises otherwise."""
    return open_note(note, vkeys).text


def cosignature_time(sig: NoteSignature) -> int:
    """The timestamp inside a tlog-cosignature."""
    if len(sig.signature) != 72:
        raise InvalidInput(f"{sig.name}'s signature is not a timestamped Ed25519 cosignature")
    return struct.unpack(">Q", sig.signature[:8])[0]


@dataclass(frozen=True)
class Checkpoint:
    """A tlog-checkpoint body: origin, tree size, root hash, optional extension lines."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def text(self) -> str:
        lines = [self.origin, str(self.size), b64_encode(self.root), *self.extensions]
        return "\n".join(lines) + "\n"

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """Read a checkpoint body (the text of a note, no signatures)."""
        _check_text(text)
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise InvalidInput("a checkpoint has at least three lines: origin, size, root hash")
        origin, size, root, *ext = lines
        if not origin or not re.fullmatch(r"0|[1-9][0-9]{0,19}", size) or int(size) >= 2**64:
            raise InvalidInput(f"checkpoint origin {origin!r} or size {size!r} is malformed")
        if any(not e for e in ext):
            raise InvalidInput("checkpoint extension lines must not be empty")
        raw = b64_decode(root)
        if len(raw) != 32:
            raise InvalidInput("checkpoint root hash must be 32 bytes")
        return cls(origin, int(size), raw, tuple(ext))


def open_checkpoint(note: str, log_key: str | NoteVerifier) -> tuple[Checkpoint, Note]:
    """Verify a checkpoint note against the log's key (and read its cosignatures, unverified)."""
    log = _as_verifier(log_key)
    opened = open_note(note, [log])
    if not any(s.name == log.name and s.key_id == log.key_id for s in opened.verified):
        raise BadSignature("checkpoint is not signed by the log key")
    cp = Checkpoint.parse(opened.text)
    if cp.origin != log.name:
        raise IntegrityError(f"checkpoint origin {cp.origin!r} is not the log {log.name!r}")
    return cp, opened


def cosigners_verified(note: str, cosigners: Sequence[str | NoteVerifier]) -> list[str]:
    """Names of the cosigners in `cosigners` whose cosignature on `note` verifies, each once (a cosigner
    may be given with several keys: those of its key history that may have signed it)."""
    text, sigs = parse_note(note)
    names: list[str] = []
    for v in map(_as_verifier, cosigners):
        if v.alg != COSIGNATURE_V1:
            raise InvalidInput(f"{v.name} is not a cosignature (type 0x04) key")
        if v.name in names:
            continue
        for s in sigs:
            if (s.name, s.key_id) == (v.name, v.key_id):
                try:
                    open_note(text + "\n" + s.line(), [v])
                except BadSignature:
                    raise BadSignature(f"cosignature of {v.name} does not verify") from None
                names.append(v.name)
                break
    return names
