"""A certification model run on the owner's anchored data: only declared fields leave, the result is
attested, and a verifier holding the ledger checks every claim — and names the one that fails."""

import json
import random

import pytest

from qdsn.compute import attest, package
from qdsn.compute.job import Range, execute
from qdsn.errors import BadSignature, IntegrityError, InvalidInput, PermissionDenied
from qdsn.ledger import tx
from qdsn.node import Node, NodeHome
from qdsn.node.jobs import owner, record

FAST = 2**4


def publish(node, cqc, blob, m):
    """The certifier publishes `m` through the log this test's node operates."""
    node.order([cqc.sign("model.publish", {"model": m.id, "version": m.version, "hash": package.code_hash(blob),
                                           "manifest": m.model_dump(mode="json")})])  # fmt: skip


CLOSED = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "pass": {"type": "boolean"},
        "values": {"type": "array", "items": {"type": "number"}, "maxItems": 100},
    },
}


def tiny(tmp_path, source, exports=("pass",), outputs=CLOSED):
    """A published-to-be model that prints what `source` prints."""
    folder = tmp_path / f"tiny-{len(list(tmp_path.glob('tiny-*')))}"
    folder.mkdir()
    (folder / "m.py").write_text(source)
    schema = outputs
    (folder / "manifest.json").write_text(json.dumps({
        "id": "tiny", "version": "1.0.0", "entrypoint": "m.py", "description": "test model",
        "reads": {"kinds": ["measurements"]}, "parameters": {"type": "object"}, "outputs": schema,
        "exports": list(exports),
    }))  # fmt: skip
    return package.load(folder)


@pytest.fixture
def plant(tmp_path):
    reg = NodeHome.init(tmp_path / "reg", "regulator", "SAMR", "pw", scrypt_n=FAST)
    shared = str(tmp_path / "reg" / "ledger.db")
    cqc = NodeHome.init(tmp_path / "cqc", "certifier", "CQC", "pw", ledger_url=shared, scrypt_n=FAST)
    maker = NodeHome.init(tmp_path / "maker", "enterprise", "Maker", "pw", ledger_url=shared, scrypt_n=FAST)
    for h in (cqc, maker):
        reg.submit("identity.register", h.registration())
    node = Node(maker, operator=True)
    decl = {"dataset": "line-1", "title": "Line 1", "kind": "measurements", "characteristics": [
        {"name": "resistance", "unit": "Ω/km", "lsl": 17.0, "usl": 18.1, "critical": True}]}  # fmt: skip
    node.submit([maker.sign("dataset.declare", decl)])
    node.vault.create("line-1", "measurements")
    rng = random.Random(7)
    for start in (0, 150):
        rows = [{"characteristic": "resistance", "value": round(rng.gauss(17.55, 0.08), 3),
                 "time": f"2026-03-01T08:{(start + i) // 60:02d}:{(start + i) % 60:02d}Z"}
                for i in range(150)]  # fmt: skip
        batch = node.vault.add_batch("line-1", rows)
        node.vault.mark_anchored(batch, node.order([maker.sign("dataset.anchor", batch.anchor_payload())])[0].txid)
    blob, m = package.load(package.builtin("process-capability"))
    publish(node, cqc, blob, m)
    yield node, cqc, blob
    node.close()


def test_a_capability_run_is_attested_and_verified(plant):
    node, _, blob = plant
    r = execute(owner(node), blob, {"threshold": 1.33}, [Range("line-1", 10, 280)], "nonce-1", job="job-1")
    assert r.status == "ok" and r.dropped == [] and r.output["pass"] is True
    (c,) = r.output["characteristics"]
    assert c["name"] == "resistance" and c["n"] == 280 and c["cpk_lower"] >= 1.33
    claims = attest.verify(r.attestation, node.ledger, output=r.output, nonce="nonce-1")
    assert claims["measurements"]["isolation"] == "bwrap" and claims["inputs"][0]["count"] == 280
    assert claims["measurements"]["unenforced"] == []  # every protection of the sandbox held
    assert [b["first"] for b in claims["inputs"][0]["batches"]] == [0, 150]
    env = record(node, r)
    last = tx.from_leaf(node.ledger.store.leaves(node.ledger.size - 1, node.ledger.size)[0])
    assert last.type == "compute.attest" and last.payload["binding"] == env.payload["binding"]
    with pytest.raises(IntegrityError, match=r"^output:"):
        attest.verify(r.attestation, node.ledger, output=r.output | {"pass": False})
    with pytest.raises(IntegrityError, match=r"^nonce:"):
        attest.verify(r.attestation, node.ledger, nonce="another")
    h, p, s = r.attestation.split(".")
    with pytest.raises(BadSignature):
        attest.verify(f"{h}.{p}.{s[:-4]}AAAA", node.ledger)


def test_claims_are_checked_one_by_one(plant):
    node, _, blob = plant
    r = execute(owner(node), blob, {}, [Range("line-1", 0, 300)], "n", job="job-2")
    good = attest.verify(r.attestation, node.ledger)
    key = node.home.key()
    for change, match in [
        ({"measurements": good["measurements"] | {"code_hash": "ab" * 32}}, "^model:"),
        ({"inputs": [good["inputs"][0] | {"batches": good["inputs"][0]["batches"][:1]}]}, "^inputs: the batches"),
        ({"inputs": [good["inputs"][0] | {"count": 299}]}, "^inputs: the input commitment"),
        ({"output_hash": "00" * 32}, "^binding:"),
    ]:
        forged = attest.attest(key, node.did, good | change)  # signed by the right key, yet wrong
        with pytest.raises(IntegrityError, match=match):
            attest.verify(forged, node.ledger)


def test_what_may_not_run_or_leave(plant, tmp_path):
    node, cqc, blob = plant
    with pytest.raises(InvalidInput, match="parameters do not fit"):
        execute(owner(node), blob, {"threshold": "high"}, [Range("line-1", 0, 10)], "n", job="j")
    with pytest.raises(InvalidInput, match="not all anchored"):
        execute(owner(node), blob, {}, [Range("line-1", 250, 100)], "n", job="j")
    tblob, tm = tiny(tmp_path, "import json\nprint(json.dumps({'pass': True, 'values': [17.5]}))\n")
    with pytest.raises(PermissionDenied, match="is not published"):
        execute(owner(node), tblob, {}, [Range("line-1", 0, 10)], "n", job="j")
    publish(node, cqc, tblob, tm)
    r = execute(owner(node), tblob, {}, [Range("line-1", 0, 10)], "n", job="j")
    assert r.status == "ok" and r.output == {"pass": True} and r.dropped == ["values"]  # raw values stay home
    assert attest.verify(r.attestation, node.ledger)["dropped"] == ["values"]  # and the withholding is on record


def test_a_second_document_is_invalid_output(plant, tmp_path):
    node, cqc, _ = plant
    tblob, tm = tiny(tmp_path, "print('{\"pass\": true}')\nprint('{\"pass\": false}')\n")
    publish(node, cqc, tblob, tm)
    r = execute(owner(node), tblob, {}, [Range("line-1", 0, 10)], "n", job="j")
    assert r.status == "invalid-output" and "exactly one JSON document" in r.reason and r.attestation is None


def test_nothing_undeclared_leaves_at_any_depth(plant, tmp_path):
    """The built-in capability manifest, and a model that hides 50 readings inside a characteristic."""
    node, cqc, blob = plant
    folder = tmp_path / "smuggler"
    folder.mkdir()
    files = dict(package.unpack(blob))
    manifest = json.loads(files["manifest.json"]) | {"version": "9.9.9"}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    (folder / "model.py").write_bytes(files["model.py"].replace(
        b'"pass": bool(low >= threshold),', b'"pass": bool(low >= threshold), "raw_values": x[:50],'))  # fmt: skip
    sblob, sm = package.load(folder)
    publish(node, cqc, sblob, sm)
    r = execute(owner(node), sblob, {}, [Range("line-1", 0, 300)], "n", job="j")
    assert r.status == "invalid-output" and r.output is None and r.attestation is None
    assert r.reason == "output has an undeclared field in characteristics[0]"
    assert "'raw_values'" in r.log  # the owner reads which

    nested = {
        "type": "object",
        "additionalProperties": False,
        "required": ["pass"],
        "properties": {
            "pass": {"type": "boolean"},
            "detail": {"type": "object", "additionalProperties": False, "properties": {"n": {"type": "integer"}}},
        },
    }
    tblob, tm = tiny(tmp_path, "import json\nprint(json.dumps({'pass': True, 'detail': {'n': 3, 'x': [17.5]}}))\n",
                     exports=("pass", "detail"), outputs=nested)  # fmt: skip
    publish(node, cqc, tblob, tm)
    r = execute(owner(node), tblob, {}, [Range("line-1", 0, 10)], "n", job="j")
    assert r.status == "invalid-output" and r.reason == "output has an undeclared field in detail"


def test_what_the_model_writes_elsewhere_does_not_leave_in_the_reason(plant, tmp_path):
    """A run's reason reaches the requester: it names what went wrong, never text the model chose."""
    node, cqc, _ = plant
    leak = "17.512,17.498,17.533,17.561"
    tblob, tm = tiny(tmp_path, f"import sys\nsys.stderr.write('{leak}\\n')\nsys.exit(1)\n")
    publish(node, cqc, tblob, tm)
    r = execute(owner(node), tblob, {}, [Range("line-1", 0, 10)], "n", job="j")
    assert r.status == "failed" and leak not in r.reason and r.reason == "it exited with an error"
    assert leak in r.log and "exit code 1" in r.log  # for the owner's eyes

    tblob, tm = tiny(tmp_path, f'print(\'{{"pass": "{leak}"}}\')\n', outputs=CLOSED)
    tm = tm.model_copy(update={"version": "1.0.1"})
    files = dict(package.unpack(tblob)) | {"manifest.json": json.dumps(tm.model_dump(mode="json")).encode()}
    tblob = package.archive(list(files.items()))
    publish(node, cqc, tblob, tm)
    r = execute(owner(node), tblob, {}, [Range("line-1", 0, 10)], "n", job="j")
    assert r.status == "invalid-output" and leak not in r.reason and leak in r.log
    assert r.reason == "output field pass does not fit the manifest's schema (its type rule)"


def test_a_weaker_run_says_in_its_attestation_what_was_not_enforced(plant, tmp_path, monkeypatch):
    from qdsn.compute import cgroups

    node, _, blob = plant
    info = tmp_path / "mountinfo"
    info.write_text("22 1 0:21 / /proc rw,nosuid - proc proc rw\n")  # no cgroup to be had
    monkeypatch.setattr(cgroups, "MOUNTINFO", info)
    with pytest.raises(PermissionDenied, match="cgroup"):
        execute(owner(node), blob, {}, [Range("line-1", 0, 10)], "n", job="j")
    r = execute(owner(node), blob, {}, [Range("line-1", 0, 10)], "n", job="j", isolation="process")
    m = attest.verify(r.attestation, node.ledger)["measurements"]
    assert m["isolation"] == "process" and {"memory (per process only)", "seccomp"} <= set(m["unenforced"])


def test_a_large_output_is_refused_at_its_first_misfit_in_bounded_time_and_memory():
    """1 MiB of output once cost the node 1.5 GB and 15 s: jsonschema made an error for every item."""
    import time
    import tracemalloc

    import orjson

    from qdsn.compute.job import _misfit

    capability = package.load(package.builtin("process-capability"))[1].outputs
    for schema, doc, reason in [
        (CLOSED, {"pass": True, "values": [""] * 340_000},
         "output field values does not fit the manifest's schema (its maxItems rule)"),
        (capability, {"pass": True, "characteristics": [0] * 520_000},
         "output field characteristics does not fit the manifest's schema (its maxItems rule)"),
        (CLOSED, {"pass": True, "values": [""] * 100},
         "output field values[0] does not fit the manifest's schema (its type rule)"),
        (CLOSED, {"pass": True, "values": [0] * 99 + [{"x": 1}]},
         "output field values[99] does not fit the manifest's schema (its type rule)"),
    ]:  # fmt: skip
        doc = orjson.loads(orjson.dumps(doc))  # as the model's stdout is read
        tracemalloc.start()
        t = time.monotonic()
        try:
            why, detail = _misfit(doc, schema)
            seconds, peak = time.monotonic() - t, tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert seconds < 0.5 and peak < 50 << 20, (seconds, peak)
        assert why == reason and len(detail) <= 4096
    assert _misfit({"pass": True, "values": [17.5] * 100}, CLOSED) is None


def test_a_failed_run_tells_the_requester_nothing_the_model_chose(plant, tmp_path):
    """A name, an exit code, where its JSON broke, or the run's exact duration would each carry bits of
    the owner's readings to the requester: the reason holds none of them, the owner's log holds them all."""
    node, cqc, _ = plant
    readings = "import json,sys\nd=json.load(sys.stdin)\nv=[r['value'] for r in d['datasets'][0]['records']]\n"
    cases = [
        ("print(json.dumps({'pass': True, ','.join(map(str, v))[:40]: 1}))\n", "output has an undeclared field",
         "17."),
        ("print(json.dumps({'pass': True, 'values': [1], 'detail': {'x': v[0]}}))\n", "output has an undeclared field",
         "'detail'"),
        ("sys.exit(int(v[0] * 1000) % 256)\n", "it exited with an error", "exit code "),
        ("print('{\"pass\": true}' + ' ' * int(v[0] * 100) + 'x')\n",
         "the model's output is not exactly one JSON document", "char"),
        ("import time\ntime.sleep(0.3)\nprint(json.dumps({'pass': True}))\n", None, None),
    ]  # fmt: skip
    for i, (source, reason, log) in enumerate(cases):
        tblob, tm = tiny(tmp_path, readings + source)
        tm = tm.model_copy(update={"version": f"2.0.{i}"})
        files = dict(package.unpack(tblob)) | {"manifest.json": json.dumps(tm.model_dump(mode="json")).encode()}
        tblob = package.archive(list(files.items()))
        publish(node, cqc, tblob, tm)
        r = execute(owner(node), tblob, {}, [Range("line-1", 0, 10)], "n", job="j")
        assert r.seconds == int(r.seconds) >= 1  # whole seconds only, up
        if reason is None:
            assert r.status == "ok"
            continue
        assert r.status != "ok" and r.reason == reason, r.reason
        assert log in r.log


def test_bytecode_beside_the_source_the_owner_read_never_runs(plant, tmp_path):
    """A hand-made archive: a harmless helper.py and a .pyc of other code in __pycache__, published by
    its hash. The node refuses it before anything runs, so the model folder holds only checked files."""
    node, cqc, _ = plant
    tblob, tm = tiny(tmp_path, "import sys\nsys.path.append('/model')\nimport helper\nprint(helper.out)\n")
    pyc = b"\xa7\r\r\n\x00\x00\x00\x00" + bytes(8) + b"\xe3\x00\x00\x00"
    entries = [*package.unpack(tblob), ("helper.py", b"out = '{\"pass\": true}'\n"),
               ("__pycache__/helper.cpython-311.pyc", pyc)]  # fmt: skip
    evil = package.archive(entries)
    publish(node, cqc, evil, tm)
    with pytest.raises(InvalidInput, match="is Python bytecode"):
        execute(owner(node), evil, {}, [Range("line-1", 0, 10)], "n", job="j")
