"""Model packages: a code hash that is the same on every machine, manifests checked, and archives
that are refused unless they are exactly what `pack` writes."""

import io
import json
import os
import shutil
import tarfile
import tracemalloc

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
    assert (m.id, m.version, m.entrypoint) == ("process-capability", "1.0.2", "model.py")
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
    assert ledger.state.models["process-capability@1.0.2"].hash == package.code_hash(blob)
    ledger.close()


# What a certifier sends is checked header by header before a byte of member data is read.


def header(name, size=0, kind=b"0", magic=b"ustar\x0000", linkname=""):
    """One 512-byte tar header, its checksum right, whatever it claims."""
    info = tarfile.TarInfo(name)
    info.size, info.type, info.linkname = size, kind, linkname
    fmt = tarfile.GNU_FORMAT if magic.startswith(b"ustar ") else tarfile.USTAR_FORMAT
    block = bytearray(info.tobuf(fmt)[-512:])
    block[124:136] = b"%011o\0" % size
    block[257:265] = magic
    return _checksummed(block)


def _checksummed(block):
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % sum(block)
    return bytes(block)


def gnu_sparse(name, real):
    """A GNU sparse member: 0 bytes stored, `real` bytes once its holes are filled — tarfile fills them."""
    block = bytearray(header(name, 0, tarfile.GNUTYPE_SPARSE, magic=b"ustar  \0"))
    block[386:398] = b"%011o\0" % (real - 1)  # one stored region: 0 bytes at the very end
    block[398:410] = b"%011o\0" % 0
    block[483:495] = b"%011o\0" % real
    return _checksummed(block)


def end(blob):
    blob += bytes(1024)
    return blob + bytes(-len(blob) % tarfile.RECORDSIZE)


def refused_cheaply(blob, match):
    """`unpack` refuses `blob` with a reason matching `match`, having allocated under 1 MiB on the way."""
    tracemalloc.start()
    try:
        with pytest.raises(InvalidInput, match=match):
            package.unpack(blob)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20, f"{peak:,} bytes allocated to refuse a {len(blob):,}-byte archive"


def test_a_sparse_member_is_refused_before_it_is_read():
    blob = gnu_sparse("model.py", 129 << 20) + bytes(1024)
    assert len(blob) == 1536
    refused_cheaply(blob, "'model.py' is a GNU sparse file")


def test_declared_sizes_are_checked_before_any_member_is_read():
    refused_cheaply(end(header("model.py", 2 << 30)), r"declares 2,147,483,648 bytes.*8 MiB")
    many = b"".join(header(f"m{i}.py", 3 << 20) + bytes(3 << 20) for i in range(2)) + header("m3.py", 3 << 20)
    with pytest.raises(InvalidInput, match=r"members declare 9,437,184 bytes.*8 MiB"):  # 9 MiB in all
        package.unpack(end(many))
    refused_cheaply(bytes(package.MAX_ARCHIVE + 1), r"larger than the .* a model archive may be")


def test_only_plain_ustar_files_are_members():
    def tar(fmt, *members):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
            for info, data in members:
                t.addfile(info, io.BytesIO(data) if data is not None else None)
        return buf.getvalue()

    def info(name, kind=tarfile.REGTYPE, size=0, **kw):
        i = tarfile.TarInfo(name)
        i.type, i.size = kind, size
        for k, v in kw.items():
            setattr(i, k, v)
        return i

    pax = info("model.py", size=1, pax_headers={"comment": "x" * 50})
    sparse = info("model.py", size=1, pax_headers={"GNU.sparse.major": "1", "GNU.sparse.minor": "0",
                                                   "GNU.sparse.realsize": str(129 << 20)})  # fmt: skip
    cases = [
        (tar(tarfile.PAX_FORMAT, (sparse, b"x")), r"is a GNU sparse file \(in pax form\)"),
        (tar(tarfile.PAX_FORMAT, (pax, b"x")), "is a pax extended header"),
        (tar(tarfile.GNU_FORMAT, (info("a" * 120 + ".py", size=1), b"x")), "is a GNU long name"),
        (tar(tarfile.USTAR_FORMAT, (info("link.py", tarfile.LNKTYPE, linkname="model.py"), None)), "is a hard link"),
        (tar(tarfile.USTAR_FORMAT, (info("ln.py", tarfile.SYMTYPE, linkname="/etc/passwd"), None)), "symbolic link"),
        (tar(tarfile.USTAR_FORMAT, (info("pkg", tarfile.DIRTYPE), None)), "'pkg/' is a directory"),
        (tar(tarfile.USTAR_FORMAT, (info("null", tarfile.CHRTYPE), None)), "is a character device"),
        (tar(tarfile.USTAR_FORMAT, (info("fifo", tarfile.FIFOTYPE), None)), "is a FIFO"),
        (end(header("model.py", magic=b"ustar  \0")), "not a POSIX ustar header"),
    ]
    for blob, match in cases:
        refused_cheaply(blob, match)


def test_paths_that_collide_are_refused(model):
    blob, _ = package.load(model)
    entries = package.unpack(blob)
    for extra, match in [
        ([("model.py/x.py", b"")], "'model.py' is both a file and a folder"),
        ([("model.py", b"print(1)")], "'model.py' is in the package twice"),
        ([("./model.py", b"")], r"'\./model\.py' is not a plain file inside"),
        ([("sub//x.py", b"")], r"'sub//x\.py' is not a plain file inside"),
        ([("x\x1b[2K.py", b"")], "control or invisible character"),
    ]:
        bad = package.archive(entries + extra)
        with pytest.raises(InvalidInput, match=match):
            package.unpack(bad)
        with pytest.raises(InvalidInput, match=match):
            package.manifest_of(entries + extra)


def test_an_output_schema_must_be_closed_at_every_level(model):
    manifest = json.loads((model / "manifest.json").read_text())
    out = manifest["outputs"]
    at = "outputs.properties.characteristics.items"

    def opened(path, change):
        """The output schema with `change` merged into the subschema at `path` (keys to None are removed)."""
        doc = json.loads(json.dumps(out))
        node = doc
        for key in path:
            node = node[key]
        node.update(change)
        for k in [k for k, v in change.items() if v is None]:
            del node[k]
        return doc

    items = ["properties", "characteristics", "items"]
    for schema, match in [
        (opened(items, {"additionalProperties": None}), rf'{at}: an object must say "additionalProperties": false'),
        (opened(items, {"additionalProperties": True}), rf'{at}: an object must say "additionalProperties": false'),
        (opened([], {"additionalProperties": {"type": "number"}}), "outputs: an object must say"),
        (opened(items, {"patternProperties": {"^raw": {"type": "array"}}}), rf"{at}: patternProperties is not allowed"),
        (opened(items, {"unevaluatedProperties": True}), rf"{at}: unevaluatedProperties is not allowed"),
        (
            opened(["properties", "characteristics"], {"maxItems": None}),
            r"outputs.properties.characteristics: an array must say its maxItems",
        ),
        (
            opened(items + ["properties", "name"], {"maxLength": None}),
            rf"{at}.properties.name: a string must say its maxLength",
        ),
        (opened(items + ["properties"], {"raw": True}), rf"{at}.properties.raw: `true` lets anything through"),
        (opened(items + ["properties"], {"raw": {}}), rf"{at}.properties.raw: say what the value is"),
        (opened(items + ["properties"], {"raw": {"$ref": "#"}}), rf"{at}.properties.raw: \$ref is not allowed"),
        (opened(items + ["properties"], {"raw": {"anyOf": [{"type": "number"}]}}), rf"{at}.properties.raw: anyOf is"),
        (opened(items + ["properties", "name"], {"pattern": "^(a+)+$"}), rf"{at}.properties.name: pattern is not"),
        (
            opened(items + ["properties"], {"raw": {"type": "array", "maxItems": 9}}),
            rf"{at}.properties.raw: an array must say its items",
        ),
    ]:
        (model / "manifest.json").write_text(json.dumps(manifest | {"outputs": schema}))
        with pytest.raises(InvalidInput, match=match):
            package.load(model)
    closed = opened(items + ["properties"], {"note": {"enum": ["a", "b", None]}})
    (model / "manifest.json").write_text(json.dumps(manifest | {"outputs": closed}))
    assert package.load(model)[1].outputs == closed


def test_every_built_in_model_has_a_closed_output_schema():
    folder = package.builtin("process-capability").parent
    for name in sorted(p.name for p in folder.iterdir() if (p / "manifest.json").is_file()):
        m = package.load(package.builtin(name))[1]
        package.closed(m.outputs)  # what load checked, said once more by name


def test_source_is_utf_8_so_the_owner_reads_what_python_runs(model):
    blob, _ = package.load(model)
    entries = package.unpack(blob)
    # under UTF-7, "+AAo-" is a newline: the owner would read one comment, Python would run a second line
    hidden = b"# -*- coding: utf-7 -*-\n# harmless +AAo-import os+ADs- os.system(+ACI-id+ACI-)\n"
    with pytest.raises(InvalidInput, match=r"helper\.py declares the source encoding utf-7"):
        package.unpack(package.archive([*entries, ("helper.py", hidden)]))
    with pytest.raises(InvalidInput, match=r"helper\.py has a source encoding declaration Python cannot read"):
        package.manifest_of([*entries, ("helper.py", b"# coding: no-such-codec\n")])
    package.unpack(package.archive([*entries, ("helper.py", b"# -*- coding: utf-8 -*-\nx = 1\n")]))


def test_files_too_large_are_refused_before_they_are_read(model, tmp_path):
    with open(model / "data.bin", "wb") as f:
        f.truncate(1 << 40)  # a terabyte, sparse on disk
    refused = tmp_path / "huge.tar"
    with open(refused, "wb") as f:
        f.truncate(1 << 40)
    for source, match in [(model, "larger than 8 MiB"), (refused, "larger than the .* a model archive may be")]:
        tracemalloc.start()
        try:
            with pytest.raises(InvalidInput, match=match):
                package.load(source)
            assert tracemalloc.get_traced_memory()[1] < 1 << 20
        finally:
            tracemalloc.stop()


def test_a_manifest_uses_only_schema_keywords_checked_in_linear_time(model):
    """`pattern` (Python's `re` backtracks while holding the GIL), `$ref` (`"$ref": "#"` recursed without
    end) and every other keyword outside the allowlist are refused, in parameters and outputs alike."""
    manifest = json.loads((model / "manifest.json").read_text())
    params, out = manifest["parameters"], manifest["outputs"]
    threshold = params["properties"]["threshold"]
    deep = {"type": "object"}
    for _ in range(40):
        deep = {"type": "object", "properties": {"x": deep}}
    for change, match in [
        ({"parameters": params | {"properties": {"x": {"type": "string", "pattern": "^(a+)+$"}}}},
         r"parameters.properties.x: pattern is not allowed"),
        ({"parameters": params | {"patternProperties": {"^(a+)+$": {"type": "string"}}}}, "patternProperties is not"),
        ({"parameters": params | {"$ref": "#"}}, r"parameters: \$ref is not allowed"),
        ({"parameters": params | {"$defs": {"a": {"type": "string"}}}}, r"parameters: \$defs is not allowed"),
        ({"parameters": params | {"properties": {"x": {"type": "string", "format": "regex"}}}}, "format is not"),
        ({"parameters": params | {"properties": {"x": {"anyOf": [threshold]}}}}, "anyOf is not allowed"),
        ({"parameters": params | {"properties": {"x": {"not": threshold}}}}, "not is not allowed"),
        ({"parameters": params | {"if": {"type": "object"}}}, "if is not allowed"),
        ({"parameters": params | {"properties": {"x": {"type": "array", "uniqueItems": True}}}}, "uniqueItems is"),
        ({"parameters": params | {"properties": {"x": threshold | {"multipleOf": 1e-300}}}}, "multipleOf is"),
        ({"parameters": params | {"additionalProperties": {"$ref": "#"}}}, r"additionalProperties: \$ref is"),
        ({"parameters": params | {"$schema": "http://json-schema.org/draft-04/schema#"}}, r"\$schema must be"),
        ({"parameters": deep}, "nest more than 16 levels"),
        ({"parameters": params | {"properties": {"x": {"enum": list(range(65))}}}}, "at most 64 values"),
        ({"outputs": out | {"properties": out["properties"] | {"note": {"type": "string", "pattern": "^(a+)+$"}}}},
         "outputs.properties.note: pattern is not allowed"),
    ]:  # fmt: skip
        (model / "manifest.json").write_text(json.dumps(manifest | change))
        with pytest.raises(InvalidInput, match=match):
            package.load(model)
    (model / "manifest.json").write_text('{"parameters": ' * 100_000 + "{}" + "}" * 100_000)
    with pytest.raises(InvalidInput, match="nests too deeply"):
        package.load(model)


def test_parameters_are_checked_against_their_schema_with_one_error(model):
    _, m = package.load(model)
    package.check_parameters(m, {"threshold": 1.5})
    with pytest.raises(InvalidInput, match=r"process-capability's schema at threshold: 'high' is not of type"):
        package.check_parameters(m, {"threshold": "high"})
    with pytest.raises(InvalidInput, match="schema: Additional properties are not allowed"):
        package.check_parameters(m, {f"x{i}": i for i in range(100_000)})


def archive_with(model, *extra):
    return package.archive([*package.files(model), *extra])


def test_what_the_owner_reads_is_what_runs(model, tmp_path):
    """Bytecode, native code and binaries are refused; so are look-alike names and two files that import
    as one module — whether they come in an archive or in a folder."""
    blob, _ = package.load(model)
    helper = ("helper.py", b"def summary(x):\n    return len(x)\n")
    pyc = b"\xa7\r\r\n\x00\x00\x00\x00" + bytes(8) + b"\xe3\x00\x00\x00"  # an unchecked-hash .pyc of other code
    for extra, match in [
        ([helper, ("__pycache__/helper.cpython-311.pyc", pyc)], "is Python bytecode"),
        ([helper, ("__pycache__/helper.cpython-311.py", b"x = 1\n")], "is Python bytecode"),
        ([("helper.pyc", pyc)], "is Python bytecode"),
        ([helper, ("helper.so", b"\x7fELF\x02\x01\x01\x00")], "helper.so is not a kind of file a package may"),
        ([helper, ("helper.cpython-311-x86_64-linux-gnu.so", b"\x7fELF")], "is not a kind of file"),
        ([("lib.zip", b"PK\x03\x04")], "lib.zip is not a kind of file"),
        ([("data.csv", b"\x7fELF\x02\x01\x01\x00")], r"data\.csv holds NUL bytes"),
        ([("data.csv", b"\xff\xfe1,2\n")], r"data\.csv is not UTF-8 text"),
        ([helper, ("helper/__init__.py", b"x = 1\n")], r"'helper\.py' and the folder 'helper/' both import as"),
        ([("sub/stats.py", b""), ("sub/stats/x.py", b"")], r"both import as the module 'sub\.stats'"),
        ([("m\u0430in.py", b"x = 1\n")], r"the path 'm\\u0430in\.py' is not plain"),
        ([(".hidden.py", b"x = 1\n")], "is not plain"),
        ([("a b.py", b"x = 1\n")], "is not plain"),
    ]:
        entries = [*package.unpack(blob), *extra]
        with pytest.raises(InvalidInput, match=match):
            package.unpack(package.archive(entries))
        with pytest.raises(InvalidInput, match=match):
            package.manifest_of(entries)
    for name, data, match in [("helper.so", b"\x7fELF", "not a kind of file"), ("m\u0430in.py", b"", "not plain"),
                              ("helper/__init__.py", b"", "both import as")]:  # fmt: skip
        folder = tmp_path / f"f{len(list(tmp_path.iterdir()))}"
        shutil.copytree(model, folder)
        (folder / "helper.py").write_bytes(helper[1])
        (folder / name).parent.mkdir(exist_ok=True)
        (folder / name).write_bytes(data)
        with pytest.raises(InvalidInput, match=match):
            package.load(folder)
    ok = [*package.unpack(blob), helper, ("notes.md", "# Notes ±\n".encode()), ("limits.json", b"{}"),
          ("table.csv", b"a,b\n"), ("README.txt", b"read me\n"), ("lib/stats.py", b"x = 1\n")]  # fmt: skip
    assert package.unpack(package.archive(ok)) == sorted(ok)
