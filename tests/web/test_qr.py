"""Reading a certificate's QR code from a stranger's picture, and fetching the presentation its link
names from a holder's node: both are the other side's bytes. Pictures of every kind a phone or the
present page gives are read; a picture too large, of another kind, damaged, without a code or with
several is refused with words before its pixels are decoded where that matters; a link is followed
only in its one published form, and a holder's node that redirects, trickles, floods or encodes its
answer gets nothing taken from it."""

import http.server
import io
import struct
import threading
import time
import zlib

import numpy as np
import pytest
import segno
from PIL import Image

from qdsn.errors import InvalidInput, RateLimited, Unavailable
from qdsn.web import qr

LINK = "http://127.0.0.1:8421/console/enterprise/presentations/" + "Ab_-" * 5 + "xy"


def png(text: str | bytes, scale: int = 6, **kw) -> bytes:
    out = io.BytesIO()
    segno.make(text, error="m", micro=False).save(out, kind="png", scale=scale, **kw)
    return out.getvalue()


def saved(image: Image.Image, kind: str, **kw) -> bytes:
    out = io.BytesIO()
    image.save(out, kind, **kw)
    return out.getvalue()


def photo(code: bytes, size=(3000, 4000), angle=8.0, noise=25) -> Image.Image:
    """The code as a phone photographs it: small in a large grey frame, turned, soft (drawn at a third
    of the size and enlarged smoothly), with sensor noise."""
    small = Image.new("L", (size[0] // 3, size[1] // 3), 170)
    turned = Image.open(io.BytesIO(code)).convert("L").resize((400, 400), Image.BILINEAR)
    small.paste(
        turned.rotate(angle, expand=True, fillcolor=170, resample=Image.BILINEAR), (size[0] // 12, size[1] // 9)
    )
    frame = small.resize(size, Image.BILINEAR)
    if not noise:
        return frame
    grain = np.random.default_rng(7).integers(-noise, noise + 1, frame.size[::-1], dtype=np.int16)
    return Image.fromarray((np.asarray(frame, dtype=np.int16) + grain).clip(0, 255).astype(np.uint8))


def header_only(width: int, height: int) -> bytes:
    """A PNG that says it is `width` × `height` and holds no pixels at all: decoding it would fail as
    damaged, so a refusal that names its size was made before any decoding."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("picture", [
    pytest.param(lambda: png(LINK), id="the present page's PNG"),
    pytest.param(lambda: png(LINK, light=None), id="transparent PNG"),
    pytest.param(lambda: png("x" * 2300, scale=3), id="a presentation-sized code, version 40"),
    pytest.param(lambda: saved(Image.fromarray(np.asarray(Image.open(io.BytesIO(png(LINK))).convert("L"),
                                                          dtype=np.uint16) * 257), "PNG"), id="16-bit grey PNG"),
    pytest.param(lambda: saved(Image.open(io.BytesIO(png(LINK))).convert("CMYK"), "JPEG"), id="CMYK JPEG"),
    pytest.param(lambda: saved(photo(png(LINK)), "JPEG", quality=85), id="phone photo, 12 MP"),
    pytest.param(lambda: saved(photo(png(LINK), size=(8000, 6000), angle=-5, noise=0), "JPEG"),
                 id="48 MP photo, read at half size"),
])  # fmt: skip
def test_pictures_of_a_code_are_read(picture):
    text = qr.read_picture(picture())
    assert text == LINK or text == "x" * 2300


@pytest.mark.parametrize("data,said", [
    (b"", "not a PNG or JPEG"),
    (b"GIF89a" + b"\0" * 64, "not a PNG or JPEG"),
    (b"ftypheic" * 8, "not a PNG or JPEG"),
    (b"just some text the buyer chose by mistake", "not a PNG or JPEG"),
    (header_only(6000, 5000), "6000 × 5000 pixels"),  # 30 MP of PNG: refused from its header alone
    (header_only(16000, 12000), "more than the 96 million pixels"),  # Pillow's own bomb bound, said in words
    (b"\xff" * (qr.MAX_PICTURE + 1), "larger than 8 MB"),
])  # fmt: skip
def test_what_is_not_a_picture_of_bounded_size_is_refused_before_decoding(data, said):
    with pytest.raises(InvalidInput) as e:
        qr.read_picture(data)
    assert said in str(e.value)


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # Pillow's warning, then our refusal
def test_a_large_jpeg_is_refused_from_its_header():
    big = saved(Image.new("L", (12000, 9000), 255), "JPEG", quality=20)  # 108 MP, a small file
    with pytest.raises(InvalidInput, match="12000 × 9000 pixels"):
        qr.read_picture(big)


def test_a_damaged_picture_is_said_to_be_damaged():
    data = saved(photo(png(LINK), size=(1600, 1600)), "JPEG")
    with pytest.raises(InvalidInput, match="damaged or cut short"):
        qr.read_picture(data[: len(data) // 3])


def test_no_code_several_codes_and_binary_codes_are_refused():
    blank = saved(Image.new("L", (640, 480), 255), "PNG")
    with pytest.raises(qr.NoQRCode, match="no QR code"):
        qr.read_picture(blank)
    one, other = (Image.open(io.BytesIO(png(t))).convert("L") for t in (LINK, "another code"))
    both, twice = Image.new("L", (1000, 500), 255), Image.new("L", (1000, 500), 255)
    both.paste(one, (10, 10)), both.paste(other, (520, 10))
    twice.paste(one, (10, 10)), twice.paste(one, (520, 10))
    with pytest.raises(InvalidInput, match="shows 2 QR codes"):
        qr.read_picture(saved(both, "PNG"))
    assert qr.read_picture(saved(twice, "PNG")) == LINK  # the same code twice is that code
    with pytest.raises(InvalidInput, match="binary data"):
        qr.read_picture(png(b"\xff\xfe\x00\x01\x80"))


def test_only_two_pictures_are_decoded_at_once(monkeypatch):
    monkeypatch.setattr(qr, "DECODE_WAIT", 0.2)
    held = [qr._decoding.acquire(timeout=1) for _ in range(qr.DECODING)]
    try:
        with pytest.raises(RateLimited, match="reading other pictures"):
            qr.read_picture(png(LINK))
    finally:
        for _ in held:
            qr._decoding.release()
    assert qr.read_picture(png(LINK)) == LINK


@pytest.mark.parametrize("text,ok", [
    (LINK, True),
    ("https://acme.example/console/enterprise/presentations/" + "a" * 22, True),
    ("http://[::1]:8421/console/enterprise/presentations/" + "a" * 22, True),
    ("http://user:pw@acme.example/console/enterprise/presentations/" + "a" * 22, False),
    (LINK + "?x=1", False),
    (LINK + "#x", False),
    (LINK + "/", False),
    (LINK[:-1], False),
    ("ftp://acme.example/console/enterprise/presentations/" + "a" * 22, False),
    ("http://acme.example/console/enterprise/presentations/../../admin" + "a" * 12, False),
    ("http://acme.example\\@evil/console/enterprise/presentations/" + "a" * 22, False),
    ("http://acme.example /console/enterprise/presentations/" + "a" * 22, False),
    ("http://acme.example/console/regulator/presentations/" + "a" * 22, False),
    ("javascript:alert(1)//console/enterprise/presentations/" + "a" * 22, False),
])  # fmt: skip
def test_only_a_published_presentations_link_is_followed(text, ok):
    assert qr.published_link(text) is ok


class Holder(http.server.BaseHTTPRequestHandler):
    """A holder's node as the other side may run it: each presentation name picks its answer."""

    def do_GET(self):
        name = self.path.rsplit("/", 1)[1]
        if name.startswith("good"):
            self._send(200, b"eyJhbGciOiJFZERTQSJ9.e30.AAAA~WyJzIiwiYSIsMV0~\n")
        elif name.startswith("gone"):
            self._send(404, b"no such presentation here")
        elif name.startswith("away"):
            self.send_response(302)
            self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
            self.end_headers()
        elif name.startswith("huge"):
            self._send(200, b"a" * (qr.MAX_PRESENTATION + 10))
        elif name.startswith("flood"):  # no length given: the reader must stop by itself
            self.send_response(200)
            self.end_headers()
            for _ in range(1000):
                self.wfile.write(b"a" * 65536)
        elif name.startswith("gzip"):
            self.send_response(200)
            self.send_header("Content-Encoding", "gzip")
            body = zlib.compress(b"a" * 100)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif name.startswith("slow"):
            self.send_response(200)
            self.end_headers()
            for _ in range(40):
                self.wfile.write(b"a")
                self.wfile.flush()
                time.sleep(0.1)
        elif name.startswith("bytes"):
            self._send(200, b"\xff\xfe binary")

    def _send(self, status, body):
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def holder():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Holder)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/console/enterprise/presentations/"
    server.shutdown()


def named(base: str, name: str) -> str:
    return base + (name + "_" * 22)[:22]


def test_the_published_presentation_is_fetched(holder):
    assert qr.fetch_published(named(holder, "good")) == "eyJhbGciOiJFZERTQSJ9.e30.AAAA~WyJzIiwiYSIsMV0~"


@pytest.mark.parametrize("name,error,said", [
    ("gone", Unavailable, "HTTP 404"),
    ("away", Unavailable, "HTTP 302"),  # never followed to where it points
    ("huge", Unavailable, "more than the 524,288"),
    ("flood", Unavailable, "more than the 524,288"),
    ("gzip", Unavailable, "content-encoded"),
    ("bytes", InvalidInput, "did not give text"),
])  # fmt: skip
def test_what_a_holders_node_answers_is_bounded(holder, name, error, said):
    with pytest.raises(error) as e:
        qr.fetch_published(named(holder, name))
    assert said in str(e.value)


def test_a_trickling_answer_ends_by_the_deadline(holder, monkeypatch):
    monkeypatch.setattr(qr, "PRESENTATION_SECONDS", 1.0)
    began = time.monotonic()
    with pytest.raises(Unavailable, match="took more than 1 s"):
        qr.fetch_published(named(holder, "slow"))
    assert time.monotonic() - began < 3


def test_a_link_of_another_form_is_not_fetched_and_an_absent_node_is_said():
    with pytest.raises(InvalidInput, match="not the link of a presentation"):
        qr.fetch_published("http://127.0.0.1:9/console/enterprise/presentations/x")
    with pytest.raises(Unavailable, match=r"could not be fetched from the holder's node at http://127\.0\.0\.1:9"):
        qr.fetch_published("http://127.0.0.1:9/console/enterprise/presentations/" + "a" * 22)
