"""`qdsn staff`: accounts made, listed, re-passworded and removed on the node's machine."""

import json

import pytest

from qdsn.cli.main import run
from qdsn.node import NodeHome
from qdsn.web.staff import StaffStore

from ..api.conftest import FAST


def qdsn(capsys, monkeypatch, *args, password="a long staff password"):
    monkeypatch.setenv("QDSN_STAFF_PASSWORD", password)
    capsys.readouterr()
    try:
        run(list(args))
        code = 0
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out + out.err


def test_staff_accounts_from_the_command_line(tmp_path, capsys, monkeypatch):
    home = NodeHome.init(tmp_path / "acme", "enterprise", "Acme", "pw", scrypt_n=FAST).path
    h = ["--home", str(home)]
    assert qdsn(capsys, monkeypatch, "staff", "add", "wang.fang", "--role", "approver", *h)[0] == 0
    code, said = qdsn(capsys, monkeypatch, "staff", "add", "wang.fang", "--role", "viewer", *h)
    assert code == 1 and "exists already" in said
    code, said = qdsn(capsys, monkeypatch, "staff", "add", "li", "--role", "boss", *h)
    assert code == 1 and "viewer, engineer, approver" in said
    code, said = qdsn(capsys, monkeypatch, "staff", "add", "li", "--role", "viewer", *h, password="short")
    assert code == 1 and "at least 10 characters" in said
    code, said = qdsn(capsys, monkeypatch, "staff", "list", "--json", *h)
    assert [(r["name"], r["role"]) for r in json.loads(said)["staff"]] == [("wang.fang", "approver")]
    store = StaffStore(home)
    token = store.login("wang.fang", "a long staff password", "127.0.0.1")
    assert qdsn(capsys, monkeypatch, "staff", "passwd", "wang.fang", "--role", "engineer", *h,
                password="another long one")[0] == 0  # fmt: skip
    assert store.session(token) is None  # the old session ended with the old password
    assert store.session(store.login("wang.fang", "another long one", "127.0.0.1")).role == "engineer"
    assert qdsn(capsys, monkeypatch, "staff", "remove", "wang.fang", *h)[0] == 0
    with pytest.raises(Exception, match="wrong name or password"):
        store.login("wang.fang", "another long one", "127.0.0.1")
    code, said = qdsn(capsys, monkeypatch, "staff", "remove", "wang.fang", *h)
    assert code == 1 and "no staff account" in said
