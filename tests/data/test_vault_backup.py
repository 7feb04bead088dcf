"""The vault's encrypted backup: another node keeps it without reading it; only the owner's key
opens it; a cut, changed or foreign file is refused and nothing is written."""

import pytest

from qdsn.data import backup
from qdsn.data.vault import Vault
from qdsn.errors import Conflict, IntegrityError, InvalidInput

from .test_vault import Keys, readings


@pytest.fixture
def filled(vault_url):
    keys = Keys()
    v = Vault(vault_url, keys)
    v.create("line-secret-xyzzy", "measurements")
    v.add_batch("line-secret-xyzzy", readings(20000))  # more than one 1 MiB chunk once dumped
    yield v, keys
    v.close()


def test_round_trip_into_an_empty_vault(filled, tmp_path):
    v, keys = filled
    out = tmp_path / "vault.qbk"
    n = backup.write(v.engine, out, keys(), "did:key:z6MkOwner", "2026-11-25T00:00:00Z")
    assert n > backup.CHUNK and backup.parse_header(out.read_bytes())["owner"] == "did:key:z6MkOwner"
    data = out.read_bytes()
    for needle in (b"line-secret", b"xyzzy", b"measurements", b"resistance"):
        assert needle not in data  # not even the dataset's name
    fresh = Vault(str(tmp_path / "restored.db"), keys)
    assert backup.restore(out, fresh.engine, keys) > 3
    assert fresh.records("line-secret-xyzzy") == readings(20000)
    assert fresh.verify("line-secret-xyzzy") == 20000
    with pytest.raises(Conflict, match="not empty"):
        backup.restore(out, fresh.engine, keys)


def test_another_key_a_cut_or_a_changed_file_is_refused(filled, tmp_path):
    v, keys = filled
    out = tmp_path / "vault.qbk"
    backup.write(v.engine, out, keys(), "did:key:z6MkOwner", "2026-11-25T00:00:00Z")
    target = Vault(str(tmp_path / "restored.db"), keys)
    with pytest.raises(IntegrityError, match="does not open"):
        backup.restore(out, target.engine, Keys())  # another node's keys
    data = out.read_bytes()
    first_chunk = data.index(b"\n", len(backup.MAGIC)) + 1 + 4 + backup.CHUNK + backup.TAG
    cases = {
        "cut": data[: len(data) // 2],
        "later chunks dropped": data[:first_chunk],
        "flipped": data[:-10] + bytes([data[-10] ^ 1]) + data[-9:],
        "header changed": data.replace(b"2026-11-25", b"2026-11-26", 1),
    }
    for name, bad in cases.items():
        (tmp_path / name).write_bytes(bad)
        with pytest.raises(IntegrityError):
            backup.restore(tmp_path / name, target.engine, keys)
    (tmp_path / "other").write_bytes(b"hello")
    with pytest.raises(InvalidInput, match="not a QDSN vault backup"):
        backup.restore(tmp_path / "other", target.engine, keys)
    for header in (b"[1]", b'{"owner": "x"}', b'{"owner": "x", "kid": "k", "created": "c", "prefix": "AAAA"}'):
        with pytest.raises(InvalidInput, match="header is damaged"):
            backup.restore(backup.MAGIC + header + b"\n", target.engine, keys)
    assert target.datasets() == []  # nothing was written
