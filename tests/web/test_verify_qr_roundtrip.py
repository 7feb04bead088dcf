"""A certificate's QR code from the manufacturer's present page to a buyer's verify page on another
node, over real HTTP: the code carries the link where the holder's node publishes the presentation (a
presentation is larger than a QR code holds), the verifying node fetches it from there and shows the
whole report, checked against the trust file it serves. A presentation tampered with behind a code
fails with its failing check named. In a real browser (chromium-headless-shell): the PNG the present
page gives is uploaded, with and without the page's script, and the camera (Chromium's fake capture
device playing a video of the code) is read frame by frame until the report appears."""

import base64
import hashlib
import io
import re
import threading
import time
from dataclasses import dataclass

import httpx
import numpy as np
import orjson
import pytest
import segno
import uvicorn
from PIL import Image

from qdsn.api.app import create_app
from qdsn.crypto.encoding import b64url_decode, b64url_encode
from qdsn.web.manufacturer import publish_presentation
from qdsn.web.staff import StaffStore

from ..credentials.consortium import build
from .conftest import ARTIFACTS, Journey, chromium, sign_in
from .test_qr import photo, saved

STAFF, STAFF_PW = "wang.fang", "quality first, always"
NUMBER = "CQC-2026-0001"


@dataclass
class Nodes:
    c: object
    certificate: str  # the SD-JWT as issued to the manufacturer
    holder: str  # the manufacturer's node (it operates the log here), whose present page makes the code
    verifier: str  # the certification body's node, whose public verify page the buyer opens


def serve(app) -> tuple[uvicorn.Server, threading.Thread, str]:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    return server, thread, f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"


@pytest.fixture(scope="module")
def nodes(tmp_path_factory):
    c = build(tmp_path_factory.mktemp("consortium"))
    certificate = c.issue(NUMBER)
    StaffStore(c.maker.path).add(STAFF, "engineer", STAFF_PW)
    running = [serve(create_app(c.plant)), serve(create_app(c.lab))]
    yield Nodes(c, certificate, running[0][2], running[1][2])
    for server, thread, _ in running:
        server.should_exit = True
        thread.join(timeout=10)
    c.close()


def csrf(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html)[1]


def present(nodes: Nodes, disclose=("indicators",)) -> tuple[bytes, str, str]:
    """The manufacturer keeps its certificate and presents it on its console: (the QR code's PNG, the
    link the code carries, the presentation)."""
    with httpx.Client(base_url=nodes.holder, timeout=60) as h:
        r = h.post("/console/login", data={"name": STAFF, "password": STAFF_PW,
                                           "csrf": csrf(h.get("/console/login").text)})  # fmt: skip
        assert r.status_code in (200, 303), r.text
        token = csrf(h.get("/console/enterprise/certificates").text)
        r = h.post("/console/enterprise/certificates/keep", data={"certificate": nodes.certificate, "csrf": token})
        assert r.status_code == 303, r.text
        key = hashlib.sha256(NUMBER.encode()).hexdigest()[:32]
        r = h.post(f"/console/enterprise/certificates/{key}/present", data={"disclose": list(disclose), "csrf": token})
        assert r.status_code == 200, r.text
    data = re.search(r'id="qr-png" href="data:image/png;base64,([^"]+)"', r.text)[1]
    link = re.search(r'id="qr-link">.*?<a href="([^"]+)"', r.text, re.S)[1]
    shown = re.search(r'id="presentation"[^>]*>([^<]+)</textarea>', r.text)[1]
    return base64.b64decode(data), link, shown


def verify(nodes: Nodes, picture: bytes | None = None, name="qr.png", **fields) -> httpx.Response:
    """The buyer sends the verify page of the certification body's node a picture (or pasted text)."""
    with httpx.Client(base_url=nodes.verifier, timeout=60) as b:
        token = csrf(b.get("/console/verify").text)
        files = {"picture": (name, picture, "image/png")} if picture is not None else None
        return b.post("/console/verify", data={"csrf": token, **fields}, files=files)


def report(r: httpx.Response) -> dict[str, tuple[str, str]]:
    """The report's lines: check name → (mark, detail)."""
    rows = re.findall(r'<td>([^<]+)</td><td class="mark">(.)</td><td>(.*?)</td>', r.text, re.S)
    return {name: (mark, detail) for name, mark, detail in rows}


def code_png(text: str) -> bytes:
    out = io.BytesIO()
    segno.make(text, error="m", micro=False).save(out, kind="png", scale=8)
    return out.getvalue()


def forged(shown: str) -> str:
    """The presentation with one disclosed figure raised: a disclosure the issuer never signed."""
    parts = shown.split("~")
    for i, part in enumerate(parts[1:], 1):
        salt, name, value = orjson.loads(b64url_decode(part)) if part and "." not in part else (None, None, None)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            parts[i] = b64url_encode(orjson.dumps([salt, name, value + 1]))
            return "~".join(parts)
    raise AssertionError("no disclosed figure to raise")


def test_the_present_pages_code_verifies_on_another_node(nodes):
    picture, link, shown = present(nodes)
    assert link.startswith(nodes.holder + "/console/enterprise/presentations/")  # too large for the code itself
    assert Image.open(io.BytesIO(picture)).format == "PNG"
    r = verify(nodes, picture)
    assert r.status_code == 200, r.text
    lines = report(r)
    assert "The certificate verifies" in r.text and "✗" not in r.text, lines
    for check in ("consortium", "issuer", "signature", "disclosures", "status", "record", "checkpoint", "attestation"):
        assert lines[check][0] == "✓", (check, lines[check])
    assert f"the presentation its holder&#39;s node publishes at <code>{link}</code>" in r.text
    assert shown.split("~")[0] not in r.text  # what a host answered is never shown back, the link is

    # the same code photographed with a phone: a JPEG, turned, soft and noisy
    r = verify(nodes, saved(photo(picture), "JPEG", quality=85), name="IMG_0042.jpg")
    assert r.status_code == 200 and "The certificate verifies" in r.text and "✗" not in r.text

    # and the link pasted, as a buyer copies it from a message
    r = verify(nodes, presentation=link)
    assert r.status_code == 200 and "The certificate verifies" in r.text


def test_a_tampered_presentation_behind_a_code_fails_with_its_check_named(nodes):
    _, _, shown = present(nodes)
    link = f"{nodes.holder}/console/enterprise/presentations/{publish_presentation(nodes.c.plant, forged(shown))}"
    r = verify(nodes, code_png(link))
    assert r.status_code == 200, r.text
    lines = report(r)
    assert "The certificate does NOT verify" in r.text
    failed = [name for name, (mark, _) in lines.items() if mark == "✗"]
    assert failed == ["certificate"], lines  # the link that breaks: the disclosure the issuer never signed
    assert "disclosure-unreferenced" in lines["certificate"][1] and "match no digest" in lines["certificate"][1]


def test_a_code_whose_presentation_is_not_there_says_so(nodes):
    gone = f"{nodes.holder}/console/enterprise/presentations/{'A' * 22}"
    r = verify(nodes, code_png(gone))  # the one answer for every link not followed: no port or path is told apart
    assert r.status_code == 503 and f"could not be fetched from {nodes.holder}" in r.text
    nowhere = "http://127.0.0.1:9/console/enterprise/presentations/" + "A" * 22
    r = verify(nodes, code_png(nowhere))
    assert r.status_code == 503 and "could not be fetched from http://127.0.0.1:9" in r.text
    r = verify(nodes, code_png(f"{nodes.holder}/console/enterprise/overview"))  # another page of that node
    assert r.status_code == 400 and "carries a link, not a presentation" in r.text


# -- in the browser ---------------------------------------------------------------------------------


def present_in_browser(j: Journey, tmp_path) -> bytes:
    """The manufacturer presents its certificate on its console and downloads the QR code's PNG."""
    sign_in(j, STAFF, STAFF_PW)
    key = hashlib.sha256(NUMBER.encode()).hexdigest()[:32]
    j.goto(f"/console/enterprise/certificates/{key}/present")
    j.page.check("input[value='indicators']")
    j.submit("#present button", "presented")
    with j.page.expect_download() as got:
        j.page.click("#qr-png")
    path = tmp_path / "qr-code.png"
    got.value.save_as(path)
    return path.read_bytes()


def test_in_the_browser_the_presented_png_is_uploaded_and_verified(nodes, journey, browser, tmp_path):
    present(nodes)  # the certificate is kept on the manufacturer's node
    picture = present_in_browser(journey(nodes.holder), tmp_path)
    (tmp_path / "qr.png").write_bytes(picture)
    buyer = journey(nodes.verifier)
    buyer.goto("/console/verify")
    buyer.page.set_input_files("input[name=picture]", str(tmp_path / "qr.png"))
    buyer.submit("form#verify > button", "verified-from-png")
    assert "The certificate verifies" in buyer.page.inner_text("#report")
    assert "✗" not in buyer.page.inner_text("#report")
    assert "/console/enterprise/presentations/" in buyer.page.inner_text("#source")

    # without the page's script: no camera offered, the photo still works
    plain = browser.new_context(java_script_enabled=False)
    try:
        page = plain.new_page()
        page.goto(nodes.verifier + "/console/verify")
        assert page.locator("#scan").is_hidden()
        page.set_input_files("input[name=picture]", str(tmp_path / "qr.png"))
        with page.expect_navigation():
            page.click("form#verify > button")
        assert "The certificate verifies" in page.inner_text("#report")
    finally:
        plain.close()


def y4m(picture: bytes, path, frames: int = 20, size=(640, 480)) -> None:
    """A video (YUV4MPEG2, 4:2:0) for Chromium's fake camera: a few empty frames, then the code held up."""
    w, h = size
    code = Image.open(io.BytesIO(picture)).convert("L")
    side = min(w, h) - 80
    shot = Image.new("L", size, 190)
    shot.paste(code.resize((side, side), Image.NEAREST), ((w - side) // 2, (h - side) // 2))
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F10:1 Ip A1:1 C420jpeg\n".encode())
        for i in range(frames):
            ycc = np.asarray((shot if i >= 4 else Image.new("L", size, 120)).convert("RGB").convert("YCbCr"))
            f.write(b"FRAME\n" + ycc[:, :, 0].tobytes() + ycc[::2, ::2, 1].tobytes() + ycc[::2, ::2, 2].tobytes())


def test_in_the_browser_the_camera_reads_the_code(nodes, browser, tmp_path, request):
    picture, link, _ = present(nodes)
    y4m(picture, tmp_path / "camera.y4m")
    camera = browser.browser_type.launch(executable_path=chromium(), args=[
        "--no-sandbox", "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
        f"--use-file-for-fake-video-capture={tmp_path / 'camera.y4m'}"])  # fmt: skip
    folder = ARTIFACTS / re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):
        old.unlink()
    j = Journey(camera, nodes.verifier, folder)
    try:
        frames = []
        j.page.on("request", lambda r: r.url.endswith("/console/verify/scan") and frames.append(r.method))
        j.goto("/console/verify")
        assert j.page.locator("#scan").is_visible() and j.page.locator("#scan-video").is_hidden()
        with j.page.expect_navigation(timeout=60_000):
            j.page.click("#scan-start")
        j.snap("verified-from-camera")
        assert "The certificate verifies" in j.page.inner_text("#report")
        assert "✗" not in j.page.inner_text("#report")
        assert link in j.page.inner_text("#source")
        if not j.page.evaluate("'BarcodeDetector' in window"):  # this Chromium has none: the node read the frames
            assert frames and set(frames) == {"POST"}, frames
        assert not j.left, f"requests left the node: {j.left}"
    finally:
        j.close()
        camera.close()
