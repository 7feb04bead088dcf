"""A self-verifying ledger backup: restored only when every entry validates again and the root and
every checkpoint hold; a damaged export or an occupied target is refused and leaves nothing behind."""

import gzip

import orjson
import pytest

from qdsn.errors import BadSignature, Conflict, IntegrityError, InvalidInput
from qdsn.ledger import Ledger, backup
from qdsn.ledger.checkpoint import NoteSigner
from qdsn.node.follow import log_key

from .conftest import ORIGIN, member


@pytest.fixture
def exported(tmp_path, regulator):
    led = Ledger.open(str(tmp_path / "src.db"), origin=ORIGIN)
    led.append([regulator.sign("identity.register", regulator.register_payload())])
    signer = NoteSigner(ORIGIN, regulator.key)
    for _ in range(3):
        led.append([regulator.sign("identity.register", member().register_payload()) for _ in range(1500)])
        led.sign_checkpoint(signer)
    out = tmp_path / "ledger.qdsn.gz"
    seen = []
    assert backup.export(led, out, progress=seen.append) == led.size == 4501
    assert seen[-1] == 4501
    yield led, out
    led.close()


def test_round_trip(exported, tmp_path):
    led, out = exported
    target = str(tmp_path / "new.db")
    got = backup.restore(out, target, log_key)
    assert (got.size, got.root(), got.state.digest()) == (led.size, led.root(), led.state.digest())
    assert [s for s, _ in got.store.checkpoint_notes()] == [1501, 3001, 4501]
    with pytest.raises(Conflict, match="holds 4501 entries"):
        backup.restore(out, target, log_key)
    got.close()


def _rewrite(src, dst, change):
    lines = gzip.decompress(src.read_bytes()).split(b"\n")
    dst.write_bytes(gzip.compress(b"\n".join(change(lines))))


def test_a_damaged_export_is_refused_and_leaves_nothing(exported, tmp_path):
    led, out = exported
    other = member("regulator", "Other")
    cases = {
        "an entry changed": (lambda ls: [*ls[:2], ls[2].replace(b'"Acme"', b'"Acmf"'), *ls[3:]], BadSignature),
        "an entry dropped": (lambda ls: [ls[0], *ls[2:]], IntegrityError),
        "a root that is not its own": (
            lambda ls: [ls[0].replace(led.root().hex().encode(), b"0" * 64), *ls[1:]],
            IntegrityError,
        ),
        "a forged checkpoint": (lambda ls: [_forge(ls[0], other), *ls[1:]], BadSignature),
    }
    for name, (change, error) in cases.items():
        bad = tmp_path / f"{name}.gz"
        _rewrite(out, bad, change)
        target = tmp_path / f"{name}.db"
        with pytest.raises(error):
            backup.restore(bad, str(target), log_key)
        assert not list(tmp_path.glob(f"{name}.db*")), name
    cut = tmp_path / "cut.gz"
    cut.write_bytes(out.read_bytes()[: out.stat().st_size // 2])
    with pytest.raises(IntegrityError, match="damaged"):
        backup.restore(cut, str(tmp_path / "cut.db"), log_key)
    with pytest.raises(InvalidInput, match=r"not other\.example/log"):
        backup.restore(out, str(tmp_path / "other.db"), log_key, origin="other.example/log")
    assert not (tmp_path / "other.db").exists()
    (tmp_path / "junk.gz").write_bytes(gzip.compress(b"hello\n"))
    with pytest.raises(InvalidInput, match="not a QDSN ledger export"):
        backup.restore(tmp_path / "junk.gz", str(tmp_path / "junk.db"), log_key)


def _forge(header: bytes, signer) -> bytes:
    from qdsn.ledger.checkpoint import sign_note

    h = orjson.loads(header)
    h["checkpoints"][-1] = sign_note(h["checkpoints"][-1].split("\n\n")[0] + "\n", NoteSigner(ORIGIN, signer.key))
    return orjson.dumps(h)
