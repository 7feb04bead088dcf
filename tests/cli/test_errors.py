"""Every `qdsn` command, found by walking the command tree (a new command is covered as it is added), run
with bad input: a missing file, an empty file, an unknown id, a missing home, a wrong passphrase. Each
must end with a message that says what was wrong and what to do next, a non-zero exit, and no traceback;
nothing may be created by a command that failed or only read."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import types
import typing
from pathlib import Path

import pytest
import typer

from qdsn.cli import failures
from qdsn.cli.main import app, run
from qdsn.node import NodeHome

FAST = 2**4
PASSPHRASE = "right passphrase"
# Commands that serve or publish until stopped, or make what they are given: no bad input to read.
NOT_WALKED = {"init", "demo", "node start", "ingest mqtt", "simulate"}
OUTPUTS = {"out", "qr", "keep", "folder"}  # paths a command writes, not reads
URLS = {"operator", "maker", "to", "from_", "peer", "link", "public_url", "backup_to"}
TAMPER_WORDS = ("altered", "tamper", "damaged", "corrupt")


def commands() -> list[tuple[str, typer.core.TyperCommand]]:
    """Every leaf command of `qdsn`, as its words and its click command."""
    found = []

    def walk(cmd, words):  # type: ignore[no-untyped-def]
        if hasattr(cmd, "commands"):
            for name, sub in cmd.commands.items():
                walk(sub, [*words, name])
        else:
            found.append((" ".join(words), cmd))

    walk(typer.main.get_command(app), [])
    return sorted(found, key=lambda x: x[0])


def _kind(param) -> str:  # type: ignore[no-untyped-def]
    """path, url, bool, int, float or str, from the parameter's annotation."""
    ann = param.type_descriptor.annotation
    parts = set(typing.get_args(ann)) if isinstance(ann, types.UnionType) or typing.get_origin(ann) else {ann}
    parts = {typing.get_args(p)[0] if typing.get_origin(p) is list else p for p in parts} - {type(None)}
    if Path in parts:
        return "home" if param.name == "home" else "output" if param.name in OUTPUTS else "path"
    if param.name in URLS:
        return "url"
    return next((t.__name__ for t in (bool, int, float) if t in parts), "str")


INPUT_OPTIONS = {"db", "trust", "source"}  # optional paths that are read whenever they are given


def arguments(cmd, *, path: Path, home: Path, word: str, out: Path, optional: bool = True) -> list[str]:  # type: ignore[no-untyped-def]
    """A command line for `cmd`: every input path is `path` (`optional`: the optional ones too), every
    required id or name `word`, the home `home`."""
    args: list[str] = []
    for p in cmd.params:
        kind = _kind(p)
        value = {"path": str(path), "home": str(home), "output": str(out), "url": "http://127.0.0.1:9",
                 "int": "1", "float": "1.0", "str": word}.get(kind)  # fmt: skip
        given = kind == "home" or (kind == "path" and optional and p.name in INPUT_OPTIONS)
        if kind == "bool" or not (p.required or given):
            continue
        if p.param_type_name == "argument":
            args.append(value)
        else:
            args += [p.opts[0], value]
    return args


def takes(cmd, kind: str) -> bool:  # type: ignore[no-untyped-def]
    """Whether `cmd` reads a parameter of `kind` it is given (a required one, or an input path)."""
    return any(_kind(p) == kind and (p.required or kind == "home" or p.name in INPUT_OPTIONS) for p in cmd.params)


WALKED = [(name, cmd) for name, cmd in commands() if name not in NOT_WALKED]


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("errors") / "reg"
    NodeHome.init(path, "regulator", "Test Bureau", PASSPHRASE, scrypt_n=FAST)
    return path


@pytest.fixture
def fresh_home(tmp_path) -> Path:
    """A home of its own, for a test that a command may have written to."""
    path = tmp_path / "reg"
    NodeHome.init(path, "regulator", "Test Bureau", PASSPHRASE, scrypt_n=FAST)
    return path


class Said:
    """What a command printed, how it exited, and how each failure was explained."""

    def __init__(self, code: int, out: str, errors: list[failures.Failure]) -> None:
        self.code, self.out, self.errors = code, out, errors

    def __repr__(self) -> str:
        return f"exit {self.code}: {self.out}"


def qdsn(monkeypatch, capsys, words: str, args: list[str], *, passphrase: str | None, home: Path) -> Said:  # type: ignore[no-untyped-def]
    """Run `qdsn WORDS ARGS` in this process through the real entry point, with no terminal to prompt on."""
    seen: list[failures.Failure] = []
    explain = failures.explain
    monkeypatch.setattr(failures, "explain", lambda e: seen.append(explain(e)) or seen[-1])
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    monkeypatch.setenv("QDSN_HOME", str(home))
    monkeypatch.setenv("COLUMNS", "250")
    monkeypatch.delenv(failures.DEBUG_ENV, raising=False)
    if passphrase is None:
        monkeypatch.delenv("QDSN_PASSPHRASE", raising=False)
    else:
        monkeypatch.setenv("QDSN_PASSPHRASE", passphrase)
    capsys.readouterr()
    try:
        run([*words.split(), *args])
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    got = capsys.readouterr()
    return Said(code, got.out + got.err, seen)


def refused(said: Said) -> None:
    """A failure a person can act on: non-zero exit, a message with a next step, no traceback."""
    assert said.code != 0, said
    assert "Traceback" not in said.out, said
    assert "unexpected error" not in said.out and said.code != 70, said
    if said.code == 2 and ("✗ incomplete" in said.out or "not a test vector" in said.out):  # a verdict
        return
    if said.code == 2:  # a usage error, which click words itself: what was wrong and where the help is
        assert "Error" in said.out and "--help" in said.out, said
        return
    assert "error" in said.out.lower() or "✗" in said.out, said
    for f in said.errors:
        assert f.what and f.fix, said


@pytest.mark.parametrize("name,cmd", [(n, c) for n, c in WALKED if takes(c, "path")], ids=lambda x: str(x))
def test_a_missing_file_is_named(name, cmd, home, tmp_path, monkeypatch, capsys):
    missing = tmp_path / "no-such-file.json"
    said = qdsn(monkeypatch, capsys, name, arguments(cmd, path=missing, home=home, word="x1", out=tmp_path / "o"),
                passphrase=PASSPHRASE, home=home)  # fmt: skip
    refused(said)
    assert not missing.exists()


@pytest.mark.parametrize("name,cmd", [(n, c) for n, c in WALKED if takes(c, "path")], ids=lambda x: str(x))
def test_an_empty_file_is_refused(name, cmd, home, tmp_path, monkeypatch, capsys):
    empty = tmp_path / "empty.json"
    empty.write_bytes(b"")
    said = qdsn(monkeypatch, capsys, name, arguments(cmd, path=empty, home=home, word="x1", out=tmp_path / "o"),
                passphrase=PASSPHRASE, home=home)  # fmt: skip
    refused(said)


@pytest.mark.parametrize("name,cmd", [(n, c) for n, c in WALKED if takes(c, "path")], ids=lambda x: str(x))
def test_a_file_of_the_wrong_kind_is_refused(name, cmd, home, tmp_path, monkeypatch, capsys):
    wrong = tmp_path / "wrong.json"
    wrong.write_bytes(b"\xff\xfe not what was asked for, 1,2\n3\n")
    said = qdsn(monkeypatch, capsys, name, arguments(cmd, path=wrong, home=home, word="x1", out=tmp_path / "o"),
                passphrase=PASSPHRASE, home=home)  # fmt: skip
    refused(said)


@pytest.mark.parametrize("name,cmd", [(n, c) for n, c in WALKED if takes(c, "home")], ids=lambda x: str(x))
def test_a_missing_home_is_named_and_not_created(name, cmd, tmp_path, monkeypatch, capsys):
    nowhere = tmp_path / "no-such-home"
    given = tmp_path / "given.json"
    given.write_text("{}")
    said = qdsn(monkeypatch, capsys, name, arguments(cmd, path=given, home=nowhere, word="x1", out=tmp_path / "o"),
                passphrase=PASSPHRASE, home=nowhere)  # fmt: skip
    refused(said)
    assert not nowhere.exists(), f"{name} created {nowhere}"


CREATES = {"dataset create"}  # its id is a new one by nature
ID_COMMANDS = [(n, c) for n, c in WALKED if takes(c, "str") and n not in CREATES]


@pytest.mark.parametrize("name,cmd", ID_COMMANDS, ids=lambda x: str(x))
def test_an_unknown_id_is_refused(name, cmd, fresh_home, tmp_path, monkeypatch, capsys):
    home = fresh_home
    given = tmp_path / "given.json"
    given.write_text("{}")
    said = qdsn(monkeypatch, capsys, name, arguments(cmd, path=given, home=home, word="CQC-404", out=tmp_path / "o"),
                passphrase=PASSPHRASE, home=home)  # fmt: skip
    refused(said)


@pytest.mark.parametrize("name,cmd", [(n, c) for n, c in WALKED if takes(c, "home")], ids=lambda x: str(x))
def test_a_wrong_passphrase_never_looks_like_tampering(name, cmd, fresh_home, tmp_path, monkeypatch, capsys):
    home = fresh_home
    given = tmp_path / "given.json"
    given.write_text("{}")
    said = qdsn(monkeypatch, capsys, name, arguments(cmd, path=given, home=home, word="x1", out=tmp_path / "o",
                optional=False), passphrase="wrong passphrase", home=home)  # fmt: skip
    if said.code != 0:
        refused(said)
    assert not any(w in said.out.lower() for w in TAMPER_WORDS), said


def test_a_wrong_passphrase_is_said_to_be_one(home, monkeypatch, capsys):
    for words, args in [("did rotate", []), ("ledger checkpoint", []),
                        ("ledger append", ["identity.register", '{"did": "x"}'])]:  # fmt: skip
        said = qdsn(monkeypatch, capsys, words, [*args, "--home", str(home)], passphrase="wrong", home=home)
        refused(said)
        assert "wrong passphrase" in said.out, said


PUBLIC_READS = ["ledger show", "did show", "ledger status", "ledger prove --index 0", "cert list", "jobs list",
                "usage report", "dataset list", "trust export"]  # fmt: skip


@pytest.mark.parametrize("words", PUBLIC_READS)
def test_reading_public_parts_asks_for_no_passphrase(words, home, monkeypatch, capsys):
    said = qdsn(monkeypatch, capsys, words, ["--home", str(home)], passphrase=None, home=home)
    assert said.code == 0, said
    assert "passphrase" not in said.out.lower(), said


def test_an_unforeseen_error_is_one_line_and_a_crash_file(home, monkeypatch, capsys):
    from qdsn.cli import did

    def broken(*_a, **_k):  # a fault inside QDSN, not in the input
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(did, "ledger_document", broken)
    said = qdsn(monkeypatch, capsys, "did show", ["--home", str(home)], passphrase=PASSPHRASE, home=home)
    assert said.code == 70 and "Traceback" not in said.out and "unexpected error" in said.out, said
    crash = Path(said.out.split("the details are in ")[1].split(";")[0])
    assert crash.parent == home / "log" and "ZeroDivisionError" in crash.read_text()
    monkeypatch.setenv(failures.DEBUG_ENV, "1")
    with pytest.raises(ZeroDivisionError):
        run(["did", "show", "--home", str(home)])


def test_the_installed_command_prints_one_line(tmp_path):
    """As a person sees it: a real process, its stderr, its exit code."""
    env = {**os.environ, "QDSN_HOME": str(tmp_path / "none"), "COLUMNS": "80"}
    proc = subprocess.run([sys.executable, "-m", "qdsn", "cert", "show", "CQC-1"], capture_output=True, text=True,
                          env=env, timeout=60)  # fmt: skip
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "CQC-1" in proc.stderr and "qdsn cert list" in proc.stderr


def test_subgroups_of_unequal_sizes_are_read_not_a_crash(tmp_path, home, monkeypatch, capsys):
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("1,2,3\n4,5\n6,7,8,9\n")
    said = qdsn(monkeypatch, capsys, "spc capability", [str(ragged), "--lsl", "0", "--usl", "10", "--json"],
                passphrase=PASSPHRASE, home=home)  # fmt: skip
    assert said.code == 0 and '"n":9' in said.out.replace(" ", ""), said
    ragged.write_text("1,2,3\n4\n6,7,8\n")  # a subgroup of one has no spread within
    said = qdsn(monkeypatch, capsys, "spc capability", [str(ragged), "--lsl", "0", "--usl", "10"],
                passphrase=PASSPHRASE, home=home)  # fmt: skip
    refused(said)
    assert "subgroup" in said.out


LISTINGS = [
    (n, c)
    for n, c in commands()
    if (n.split()[-1] in ("list", "report", "quarantined") and n != "stats report") or n == "ledger show"
]


@pytest.mark.parametrize("name,cmd", LISTINGS, ids=lambda x: str(x))
def test_every_listing_prints_json(name, cmd):
    assert any("--json" in p.opts for p in cmd.params), f"qdsn {name} has no --json"


def test_listings_name_participants_and_show_ids_whole(tmp_path, monkeypatch, capsys):
    """A member's dataset and a regulator's view of it: names beside whole DIDs, --json with every id,
    one entry's payload, entries of one type."""
    import json

    reg, acme = tmp_path / "reg", tmp_path / "acme"
    regulator = NodeHome.init(reg, "regulator", "Market Bureau", PASSPHRASE, scrypt_n=FAST)
    maker = NodeHome.init(acme, "enterprise", "Zhejiang Cable", PASSPHRASE, scrypt_n=FAST,
                          ledger_url=str(reg / "ledger.db"))  # fmt: skip
    regulator.submit("identity.register", maker.registration())

    def run_(home, words, *args):  # type: ignore[no-untyped-def]
        said = qdsn(monkeypatch, capsys, words, [*args, "--home", str(home)], passphrase=PASSPHRASE, home=home)
        assert said.code == 0, said
        return said.out

    run_(acme, "dataset create", "line-1-resistance", "--title", "Line 1 conductor resistance")
    table = run_(reg, "dataset list")
    assert "line-1-resistance" in table and "Zhejiang Cable" in table and maker.did in table.replace("\n", "")
    listed = json.loads(run_(reg, "dataset list", "--json"))
    assert listed == [{"dataset": "line-1-resistance", "owner": maker.did, "owner_name": "Zhejiang Cable",
                       "kind": "measurements", "title": "Line 1 conductor resistance", "records": 0, "batches": 0,
                       "shredded": False, "declared_entry": 2}]  # fmt: skip
    assert json.loads(run_(acme, "dataset list", "--mine", "--json"))[0]["owner"] == maker.did
    assert json.loads(run_(reg, "dataset list", "--mine", "--json")) == []

    declared = json.loads(run_(reg, "ledger show", "--type", "dataset.declare", "--json"))
    assert [e["seq"] for e in declared] == [2] and declared[0]["submitter_name"] == "Zhejiang Cable"
    assert declared[0]["payload"]["dataset"] == "line-1-resistance" and len(declared[0]["txid"]) == 64
    shown = run_(reg, "ledger show")
    assert declared[0]["txid"] in shown.replace("\n", "").replace(" ", "").replace("│", "")
    assert "…" not in shown
    for ref in ("2", declared[0]["txid"]):
        assert json.loads(run_(reg, "ledger entry", ref)) == declared[0]
    for bad in ("99", "not-an-entry", "f" * 64):
        said = qdsn(monkeypatch, capsys, "ledger entry", [bad, "--home", str(reg)], passphrase=PASSPHRASE, home=reg)
        refused(said)
    said = qdsn(monkeypatch, capsys, "ledger show", ["--type", "no.such", "--home", str(reg)], passphrase=None,
                home=reg)  # fmt: skip
    refused(said)
    assert "dataset.declare" in said.out


def test_a_member_joining_a_mistyped_log_is_refused_and_nothing_is_made(tmp_path, monkeypatch, capsys):
    typo = tmp_path / "reg" / "ledgr.db"
    acme = tmp_path / "acme"
    said = qdsn(monkeypatch, capsys, "init", ["--role", "enterprise", "--name", "Acme", "--ledger", str(typo),
                "--home", str(acme)], passphrase=PASSPHRASE, home=acme)  # fmt: skip
    refused(said)
    assert "ledgr.db does not exist" in said.out
    assert not typo.exists() and not acme.exists()


def test_attest_verify_says_what_a_job_document_lacks(tmp_path, home, monkeypatch, capsys):
    pending = tmp_path / "job.json"
    pending.write_text('{"id": "job-1", "state": "pending", "result": null}')
    said = qdsn(monkeypatch, capsys, "attest verify", [str(pending), "--home", str(home)], passphrase=None, home=home)
    refused(said)
    assert "which is pending: it has no attested result" in said.out
    pending.write_text('{"result": {"output": {"cpk": 1.5}}}')
    said = qdsn(monkeypatch, capsys, "attest verify", [str(pending), "--home", str(home)], passphrase=None, home=home)
    refused(said)
    assert "holds no attestation" in said.out
