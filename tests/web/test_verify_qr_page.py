"""The public verify page with a photo of a QR code, in process: what the code carries is verified
exactly as if it had been pasted; a picture that is no code, several codes, a code of something else
or a link of another form is a line on the page, never a 500; and the page, its photo and the camera's
frames keep their CSRF token and their limits, the verifications on the same budget as the API's."""

import io
import re
import time

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from qdsn.api.app import create_app
from qdsn.node import Node, NodeHome
from qdsn.web import MAX_PICTURE_FORM
from qdsn.web.qr import MAX_PICTURE

from ..api.conftest import FAST
from ..conftest import LOOPBACK
from .test_qr import header_only, png, saved


@pytest.fixture
def page(tmp_path):
    reg = NodeHome.init(tmp_path / "reg", "regulator", "SAMR", "pw", scrypt_n=FAST)
    node = Node(reg, operator=True)
    c = TestClient(create_app(node), client=LOOPBACK)
    yield c
    node.close()


def token(c) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', c.get("/console/verify").text)[1]


def send(c, picture: bytes | None = None, name="qr.png", **fields):
    files = {"picture": (name, picture, "image/png")} if picture is not None else None
    return c.post("/console/verify", data={"csrf": token(c), **fields}, files=files)


def error_of(r) -> str:
    said = re.search(r'<p class="error" role="alert">(.*?)</p>', r.text, re.S)
    return said[1] if said else ""


def two_codes() -> bytes:
    both = Image.new("L", (1000, 500), 255)
    both.paste(Image.open(io.BytesIO(png("one"))), (10, 10))
    both.paste(Image.open(io.BytesIO(png("two"))), (520, 10))
    return saved(both, "PNG")


@pytest.mark.parametrize("picture,said", [
    (lambda: saved(Image.new("L", (640, 480), 255), "PNG"), "no QR code was found in the picture"),
    (lambda: b"GIF89a" + b"\0" * 64, "not a PNG or JPEG picture"),
    (lambda: header_only(7000, 5000), "7000 × 5000 pixels"),
    (two_codes, "shows 2 QR codes"),
    (lambda: png("hello, this is a product page"), "the QR code is not a presentation"),
    (lambda: png("a~b~c~" * 10), "the QR code is not a presentation"),
    (lambda: png("https://shop.example/cable?id=7"), "the QR code carries a link, not a presentation"),
    (lambda: png("http://169.254.169.254/latest/meta-data/"), "the QR code carries a link, not a presentation"),
    (lambda: png(b"\x00\xff\xfe binary"), "binary data"),
    (lambda: b"\xff" * (MAX_PICTURE + 1), "larger than 8 MB"),
])  # fmt: skip
def test_a_picture_that_does_not_carry_a_presentation_is_refused_on_the_page(page, picture, said):
    r = send(page, picture(), presentation="an earlier presentation")
    assert r.status_code == 400, r.text
    assert said in error_of(r), error_of(r)
    assert "Traceback" not in r.text and "internal" not in r.text.lower()
    assert 'id="report"' not in r.text


def test_a_larger_form_is_refused_before_it_is_read(page):
    r = send(page, b"\xff" * (MAX_PICTURE_FORM + 1))
    assert r.status_code == 413 and "limited to" in r.text


@pytest.mark.parametrize("text", [
    "eyJhbGciOiJFZERTQSJ9.e30.AAAA~",
    "eyJhbGciOiJFZERTQSJ9.eyJpc3MiOiJ4In0.AAAA~WyJzIiwiYSIsMV0~bm90IGpzb24~",
    "{not json",
    '{"log": 1}',
])  # fmt: skip
def test_what_a_code_carries_is_verified_exactly_as_pasted(page, text):
    pasted = send(page, presentation=text)
    scanned = send(page, png(text))
    assert scanned.status_code == pasted.status_code
    if pasted.status_code == 400:  # the same refusal, said to come from the code
        assert error_of(scanned) == f"the QR code does not carry a presentation: {error_of(pasted)}"
    else:  # the same report, line by line
        rows = re.compile(r'<tr class="(\w+)">\s*<td>(.*?)</td>')
        assert rows.findall(scanned.text) == rows.findall(pasted.text) != []
        assert 'id="source"' in scanned.text and "Read from the QR code" in scanned.text


def test_a_picture_wins_over_the_text_left_in_the_page(page):
    r = send(page, png("{not json"), presentation="eyJhbGciOiJFZERTQSJ9.e30.AAAA~")
    assert "not a bundle" in error_of(r)


def test_verifications_share_the_apis_budget(page):
    frozen(page.app.state.public_work)
    for _ in range(10):  # the API's burst for one client
        assert page.post("/verify", json={"presentation": "x~"}).status_code != 429
    r = send(page, png("eyJhbGciOiJFZERTQSJ9.e30.AAAA~"))
    assert r.status_code == 429 and "too many verifications from this address" in error_of(r)
    assert int(r.headers["retry-after"]) >= 1
    r = send(page, presentation="x~")  # pasting is the same work, on the same budget
    assert r.status_code == 429 and "too many verifications" in error_of(r)


def test_the_page_alone_is_limited_too(page):
    frozen(page.app.state.public_work)
    codes = [send(page, presentation="x~").status_code for _ in range(14)]
    assert codes[0] == 200 and 429 in codes, codes
    # counted before the form is read: a refused photo is not even received (no token is checked either)
    r = page.post("/console/verify", files={"picture": ("big.jpg", b"\xff" * (MAX_PICTURE // 2), "image/jpeg")})
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1


def frozen(throttle) -> None:
    """Stop `throttle`'s clock, so that no budget refills while a loaded machine runs the test."""
    now = time.monotonic()
    throttle.clock = lambda: now


def scan(c, picture: bytes, csrf: str | None = None):
    headers = {"X-CSRF-Token": csrf} if csrf else {}
    return c.post("/console/verify/scan", files={"picture": ("frame.jpg", picture, "image/jpeg")}, headers=headers)


def test_a_camera_frame_is_read_for_the_script(page):
    csrf = token(page)
    frame = Image.new("L", (1280, 720), 200)
    frame.paste(Image.open(io.BytesIO(png("http://acme.example/x"))), (500, 200))
    r = scan(page, saved(frame, "JPEG"), csrf)
    assert r.status_code == 200 and r.json() == {"text": "http://acme.example/x"}
    r = scan(page, saved(Image.new("L", (1280, 720), 200), "JPEG"), csrf)
    assert r.status_code == 422 and r.json()["none"] is True and "no QR code" in r.json()["error"]
    r = scan(page, two_codes(), csrf)
    assert r.status_code == 422 and r.json()["none"] is False and "2 QR codes" in r.json()["error"]
    assert "default-src 'self'" in r.headers["content-security-policy"]


def test_camera_frames_need_the_token_and_are_limited(page):
    blank = saved(Image.new("L", (320, 240), 200), "JPEG")
    assert scan(page, blank).status_code == 403
    assert scan(page, blank, "0" * 64).status_code == 403
    csrf = token(page)
    frozen(page.app.state.console.frames)
    codes = [scan(page, blank, csrf).status_code for _ in range(14)]
    assert codes[0] == 422 and 429 in codes, codes
    r = scan(page, blank, csrf)
    assert r.status_code == 429 and "too many camera frames" in r.text and int(r.headers["retry-after"]) >= 1
    # the frames' budget is their own: the buyer can still send what the camera read
    assert send(page, presentation="x~").status_code == 200


def test_the_page_offers_the_photo_and_the_camera_to_its_script(page):
    html = page.get("/console/verify").text
    assert 'name="picture"' in html and 'accept="image/png,image/jpeg"' in html
    assert '<div id="scan" hidden' in html  # shown by the script only where a camera can be used
    assert '<script src="/console/static/scan.js" defer></script>' in html
    js = page.get("/console/static/scan.js")
    assert js.status_code == 200 and "/console/verify/scan" in js.text and "getUserMedia" in js.text
