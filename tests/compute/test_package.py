"""Model packages: a code hash that is the same on every machine, manifests checked, and archives
that are refused unless they are exactly what `pack` writes."""

import io
import json
import os
import shutil
import tarfile

import pytest

from qdsn.compute import package
from qdsn.errors import InvalidInput


@pytest.fixture
def model(tmp_path):
    folder = tmp_path / "m"
    shutil.copytree(package.builtin("process-capability"), folder)
    return folder


def test_the_hash_ignores_times_modes_order_and_caches(model, tmp_path):
    blob, m = package.load(model)
    assert (m.id, m.version, m.entrypoint) == ("process-capability", "1.0.1", "model.py")
    other = tmp_path / "copy"
    other.mkdir()
    for name in ("model.py", "manifest.json"):  # written in another order, with other times and modes
        (other / name).write_bytes((model / name).read_bytes())
        os.utime(other / name, (1, 1))
        (other / name).chmod(0o600)
    (other / "__pycache__").mkdir()
    (other / "__pycache__" / "model.cpython-311.pyc").write_bytes(b"\0")
    (other / ".DS_Store").write_bytes(b"x")
    assert package.load(other)[0] == blob
    (other / "model.py").write_text((model / "model.py").read_text() + "\n# changed\n")
    assert package.code_hash(package.load(other)[0]) != package.code_hash(blob)


def test_an_archive_round_trips_and_must_be_canonical(model, tmp_path):
    blob, _ = package.load(model)
    (tmp_path / "m.tar").write_bytes(blob)
    assert package.load(tmp_path / "m.tar")[0] == blob
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:  # same files, with times
        for path, data in package.unpack(blob):
            info = tarfile.TarInfo(path)
            info.size, info.mtime = len(data), 1_700_000_000
            tar.addfile(info, io.BytesIO(data))
    (tmp_path / "timed.tar").write_bytes(buf.getvalue())
    with pytest.raises(InvalidInput, match="not in canonical form"):
        package.load(tmp_path / "timed.tar")
    evil = io.BytesIO()
    with tarfile.open(fileobj=evil, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo("../escape.py")
        tar.addfile(info, io.BytesIO(b""))
    with pytest.raises(InvalidInput, match="not a plain file inside the package"):
        package.unpack(evil.getvalue())
    with pytest.raises(InvalidInput, match="not a model archive"):
        package.unpack(b"not a tar at all" * 64)


def test_links_and_bad_manifests_are_refused(model):
    (model / "data.csv").symlink_to("/etc/passwd")
    with pytest.raises(InvalidInput, match="symbolic link"):
        package.load(model)
    (model / "data.csv").unlink()
    manifest = json.loads((model / "manifest.json").read_text())
    for change, match in [
        ({"exports": ["pass", "raw_values"]}, r"exports \['raw_values'\] are not properties"),
        ({"reads": {"kinds": ["telemetry"]}}, "unknown dataset kind"),
        ({"parameters": {"type": "nonsense"}}, "not a valid JSON Schema"),
        ({"entrypoint": "main.py"}, "entrypoint main.py is not in the package"),
        ({"version": "1.0"}, "version"),
        ({"network": True}, "network"),
    ]:
        (model / "manifest.json").write_text(json.dumps(manifest | change))
        with pytest.raises(InvalidInput, match=match):
            package.load(model)
    with pytest.raises(InvalidInput, match="no built-in model 'nope'"):
        package.builtin("nope")


def test_only_a_certifier_publishes_and_each_version_once(tmp_path):
    from qdsn.errors import Conflict, PermissionDenied
    from qdsn.node import NodeHome

    reg = NodeHome.init(tmp_path / "reg", "regulator", "SAMR", "pw", scrypt_n=2**4)
    shared = str(tmp_path / "reg" / "ledger.db")
    cqc = NodeHome.init(tmp_path / "cqc", "certifier", "CQC", "pw", ledger_url=shared, scrypt_n=2**4)
    maker = NodeHome.init(tmp_path / "mk", "enterprise", "Maker", "pw", ledger_url=shared, scrypt_n=2**4)
    for h in (cqc, maker):
        reg.submit("identity.register", h.registration())
    blob, m = package.load(package.builtin("process-capability"))
    payload = {
        "model": m.id,
        "version": m.version,
        "hash": package.code_hash(blob),
        "manifest": m.model_dump(mode="json"),
    }
    with pytest.raises(PermissionDenied, match=r"role enterprise may not submit model\.publish"):
        maker.submit("model.publish", payload)
    with pytest.raises(InvalidInput, match="manifest's id and version"):
        cqc.submit("model.publish", payload | {"version": "9.9.9"})
    cqc.submit("model.publish", payload)
    with pytest.raises(Conflict, match="already published"):
        cqc.submit("model.publish", payload)
    ledger = cqc.ledger()
    assert ledger.state.models["process-capability@1.0.1"].hash == package.code_hash(blob)
    ledger.close()
