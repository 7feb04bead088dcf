"""The public verify page refuses what is not a presentation with words, never a traceback: text that is
no SD-JWT, a bundle that is not JSON, a file that is not text or too large, nothing at all."""

import re

import pytest
from fastapi.testclient import TestClient

from qdsn.api.app import create_app
from qdsn.node import Node, NodeHome
from qdsn.web.public import MAX_PRESENTATION

from ..api.conftest import FAST
from ..conftest import LOOPBACK


@pytest.fixture
def page(tmp_path):
    reg = NodeHome.init(tmp_path / "reg", "regulator", "SAMR", "pw", scrypt_n=FAST)
    node = Node(reg, operator=True)
    c = TestClient(create_app(node), client=LOOPBACK)
    yield c
    node.close()


def send(c, **fields):
    files = fields.pop("files", None)
    token = re.search(r'name="csrf" value="([^"]+)"', c.get("/console/verify").text)[1]
    return c.post("/console/verify", data={"csrf": token, **fields}, files=files)


@pytest.mark.parametrize("text,said", [
    ("", "paste a presentation"),
    ("not a presentation", "SD-JWT"),
    ("eyJhbGciOiJFZERTQSJ9.e30.AAAA~", ""),
    ("{not json", "not a bundle"),
    ('{"log": 1}', "not a QDSN verification bundle"),
    ("a~b~c~" * 10, ""),
])  # fmt: skip
def test_what_is_not_a_presentation_is_refused_with_words(page, text, said):
    r = send(page, presentation=text)
    assert r.status_code in (200, 400), r.text
    assert "Traceback" not in r.text and "internal" not in r.text.lower()
    if r.status_code == 400:
        assert said in r.text and 'class="error"' in r.text
    else:  # it parsed far enough for a report: the report says it does not verify
        assert "does NOT verify" in r.text


def test_files_that_are_not_presentations_are_refused(page):
    r = send(page, files={"file": ("x.bin", b"\xff\xfe\x00binary")})
    assert r.status_code == 400 and "not text (UTF-8)" in r.text
    r = send(page, files={"file": ("big.txt", b"a" * (MAX_PRESENTATION + 1))})
    assert r.status_code in (400, 413)


def test_the_page_names_the_trust_file_it_checks_against(page):
    html = page.get("/console/verify").text
    fp = page.get("/.well-known/qdsn-trust.json").json()["fingerprint"]
    assert fp in html and "qdsn.local/samr" in html
