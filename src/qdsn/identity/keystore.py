"""An on-disk keystore: Ed25519 keys sealed with AES-256-GCM under a scrypt-derived key.

Nothing but ciphertext, salts and public keys reaches the disk. Each key is one JSON file,
written atomically (temp file, fsync, rename) so a crash leaves the old or the new file, never half.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import orjson
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from qdsn.crypto import SigningKey, open_sealed, seal
from qdsn.crypto.encoding import b64url_decode, b64url_encode
from qdsn.errors import IntegrityError, InvalidInput, NotFound, WrongPassphrase
from qdsn.identity.didkey import multikey_from_public_key

FORMAT = "qdsn-keystore/1"
DEFAULT_SCRYPT_N = 2**17  # OWASP's recommendation with r=8, p=1: 128 MiB and ~0.3 s per unlock


@dataclass(frozen=True)
class KeyInfo:
    """A key's public facts as the keystore lists them."""

    kid: str  # the Multikey of the public key
    status: str  # "current" or "retired"
    created: str


def _derive(passphrase: str, salt: bytes, n: int) -> bytes:
    if not passphrase:
        raise InvalidInput("the keystore passphrase is empty", "set QDSN_PASSPHRASE or type one when asked")
    return Scrypt(salt=salt, length=32, n=n, r=8, p=1).derive(passphrase.encode("utf-8"))


def _check(secret: bytes) -> str:
    """A value that tells a wrong passphrase from an altered file: AES-GCM alone fails alike for both.
    It reveals no more than the sealed key's own tag does (either confirms a guess after scrypt)."""
    return b64url_encode(hmac.digest(secret, b"qdsn-keystore/passphrase-check/v1", "sha256"))


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


class Keystore:
    """A folder of passphrase-sealed Ed25519 keys, one of them current."""

    def __init__(
        self, folder: Path | str, passphrase: str | Callable[[], str], *, scrypt_n: int = DEFAULT_SCRYPT_N
    ) -> None:
        """`passphrase` may be a function, asked only when a key is first sealed or unsealed: reading
        the public parts of a home needs no passphrase."""
        self.folder = Path(folder)
        self._passphrase = passphrase
        self._n = scrypt_n
        self._cache: dict[str, SigningKey] = {}

    def __repr__(self) -> str:
        return f"Keystore({str(self.folder)!r})"

    def _secret(self, salt: bytes, n: int) -> bytes:
        if callable(self._passphrase):
            self._passphrase = self._passphrase()
        return _derive(self._passphrase, salt, n)

    def _path(self, kid: str) -> Path:
        return self.folder / f"{kid}.json"

    def _read(self, path: Path) -> dict:
        try:
            doc = orjson.loads(path.read_bytes())
        except (OSError, orjson.JSONDecodeError) as e:
            raise IntegrityError(f"keystore file {path} is unreadable: {e}", "restore it from a backup") from e
        if doc.get("format") != FORMAT:
            raise IntegrityError(f"{path} is not a {FORMAT} file")
        return doc

    def add(self, key: SigningKey, *, created: str, current: bool = True) -> str:
        """Seal and store `key`; if `current`, retire the key that was current. Returns its kid."""
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        kid = multikey_from_public_key(key.verify_key.raw)
        salt = os.urandom(16)
        secret = self._secret(salt, self._n)
        sealed = seal(secret, key.seed(), aad=(FORMAT + kid).encode())
        doc = {
            "format": FORMAT,
            "kid": kid,
            "created": created,
            "status": "current" if current else "retired",
            "kdf": {"name": "scrypt", "salt": b64url_encode(salt), "n": self._n, "r": 8, "p": 1},
            "cipher": "A256GCM",
            "sealed": b64url_encode(sealed),
            "check": _check(secret),
        }
        if current:
            for info in self.list():
                if info.status == "current":
                    old = self._read(self._path(info.kid))
                    old["status"] = "retired"
                    _atomic_write(self._path(info.kid), orjson.dumps(old, option=orjson.OPT_INDENT_2))
        _atomic_write(self._path(kid), orjson.dumps(doc, option=orjson.OPT_INDENT_2))
        self._cache[kid] = key
        return kid

    def list(self) -> list[KeyInfo]:
        """Every key in the folder, oldest first."""
        if not self.folder.exists():
            return []
        infos = []
        for p in self.folder.glob("*.json"):
            d = self._read(p)
            infos.append(KeyInfo(d["kid"], d["status"], d["created"]))
        return sorted(infos, key=lambda i: (i.created, i.kid))

    def load(self, kid: str) -> SigningKey:
        """Unseal the key `kid`; a wrong passphrase raises WrongPassphrase, an altered file IntegrityError."""
        if kid in self._cache:
            return self._cache[kid]
        path = self._path(kid)
        if not path.exists():
            raise NotFound(f"no key {kid} in {self.folder}")
        d = self._read(path)
        kdf = d["kdf"]
        secret = self._secret(b64url_decode(kdf["salt"]), int(kdf["n"]))
        wrong = WrongPassphrase(
            f"wrong passphrase: it does not open the keystore in {self.folder}",
            "type it again, or set QDSN_PASSPHRASE to the passphrase this node was created with",
        )
        if "check" in d and not hmac.compare_digest(str(d["check"]), _check(secret)):
            raise wrong
        try:
            seed = open_sealed(secret, b64url_decode(d["sealed"]), aad=(FORMAT + kid).encode())
        except IntegrityError:
            if "check" not in d:  # written before the check value: a wrong passphrase is by far the likelier
                raise wrong from None
            raise IntegrityError(
                f"keystore file {path} was altered: the passphrase is right but the key does not open",
                "restore the file from a backup",
            ) from None
        key = SigningKey.from_seed(seed)
        if multikey_from_public_key(key.verify_key.raw) != kid:
            raise IntegrityError(f"{path} holds a key that is not {kid}")
        self._cache[kid] = key
        return key

    def current(self) -> SigningKey:
        """The current signing key."""
        cur = [i for i in self.list() if i.status == "current"]
        if len(cur) != 1:
            raise NotFound(f"{self.folder} has {len(cur)} current keys, expected 1", "run `qdsn init` to create a node")
        return self.load(cur[0].kid)
