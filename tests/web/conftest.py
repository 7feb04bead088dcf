"""The console in a real browser: Debian's chromium-headless-shell (installed by scripts/test) driven by
Playwright for Python through `executable_path` — Playwright's own browser download cannot work
offline. Every request that would leave the node is refused and fails the test, and a screenshot of
every page a journey visits is saved under tests/artifacts/web/<test>/ (kept by CI as the journey's
record; QDSN_ARTIFACTS names another folder)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

CHROMIUM = ("/usr/lib/chromium/chromium-headless-shell", "/usr/bin/chromium-headless-shell")
ARTIFACTS = Path(os.environ.get("QDSN_ARTIFACTS") or Path(__file__).parents[1] / "artifacts") / "web"


def chromium() -> str:
    """The headless Chromium that Debian's chromium-headless-shell installs; the test fails without it."""
    for path in CHROMIUM:
        if os.access(path, os.X_OK):
            return path
    pytest.fail("no chromium-headless-shell: run scripts/test as root, or apt-get install chromium-headless-shell")


@pytest.fixture(scope="session")
def browser() -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        yield b
        b.close()


class Journey:
    """A browser tab on one node's console: every request to another origin is aborted and remembered,
    and every page it shows is saved as a screenshot (`goto`, `submit` and `snap`)."""

    def __init__(self, browser, base: str, folder: Path, lang: str = "en", shots: list | None = None) -> None:
        self.base = base.rstrip("/")
        self.origins = {self._origin(self.base)}
        self.left: list[str] = []  # requests refused for leaving the node
        self.folder = folder
        self.shots: list[Path] = [] if shots is None else shots  # shared by a test's journeys: one numbering
        self.visited: list[str] = []
        self.snapped: list[str] = []
        self.context = browser.new_context(locale=lang, extra_http_headers={"Accept-Language": lang},
                                           viewport={"width": 1280, "height": 900})  # fmt: skip
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.set_default_timeout(90_000)  # a chart page drawn on a loaded 2-core machine; journeys are timed
        self.page.on("framenavigated", lambda f: f == self.page.main_frame and self.visited.append(f.url))

    @staticmethod
    def _origin(url: str) -> str:
        u = urlsplit(url)
        return f"{u.scheme}://{u.netloc}"

    def _route(self, route) -> None:
        url = route.request.url
        if url.startswith(("data:", "blob:", "about:")) or self._origin(url) in self.origins:
            route.continue_()
        else:
            self.left.append(url)
            route.abort("blockedbyclient")

    def add_origin(self, base: str) -> None:
        """Another node of the consortium this journey may open (its own console), never a third party."""
        self.origins.add(self._origin(base))

    def snap(self, name: str = "") -> Path:
        """A screenshot of the page as it is now."""
        self.page.wait_for_load_state("load")
        path = self.page.url.split("?")[0].removeprefix(self.base)
        slug = re.sub(r"[^A-Za-z0-9]+", "-", name or path).strip("-") or "page"
        out = self.folder / f"{len(self.shots) + 1:02d}-{slug}.png"
        self.page.screenshot(path=str(out), full_page=True)
        self.shots.append(out)
        self.snapped.append(self.page.url)
        return out

    def goto(self, path: str, name: str = "") -> None:
        self.page.goto(self.base + path if path.startswith("/") else path)
        self.snap(name)

    def submit(self, selector: str, name: str = "") -> None:
        """Click a form's button and wait for the page it leads to."""
        with self.page.expect_navigation():
            self.page.click(selector)
        self.snap(name)

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def journey(browser, request) -> Iterator:
    """`journey(base_url)`: a fresh browser context on a node's console; at the end, no request may have
    left the node and every page shown must have been saved as a screenshot."""
    folder = ARTIFACTS / re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):
        old.unlink()
    made: list[Journey] = []
    shots: list[Path] = []

    def make(base: str, lang: str = "en") -> Journey:
        j = Journey(browser, base, folder, lang, shots)
        made.append(j)
        return j

    yield make
    for j in made:
        j.close()
    for j in made:
        assert not j.left, f"requests left the node: {j.left}"
        assert j.shots, "a journey saved no screenshot"
        unsaved = [u for u in j.visited if u not in j.snapped and not u.startswith("about:")]
        assert not unsaved, f"pages shown without a screenshot: {unsaved}"


def spawn(home: Path, port: int, passphrase: str, *, operator: str | None = None) -> subprocess.Popen:
    """`qdsn node start` on `home` in a process of its own (`answering` waits for it)."""
    with (home / "node.toml").open("a") as f:
        f.write(f"\n[service]\nport = {port}\nmonitor = 0.3\n" + (f'operator = "{operator}"\n' if operator else ""))
    env = os.environ | {"QDSN_PASSPHRASE": passphrase, "QDSN_HOME": str(home)}
    return subprocess.Popen([sys.executable, "-m", "qdsn", "node", "start"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)  # fmt: skip


def answering(proc: subprocess.Popen, name: str, port: int, within: float = 120) -> subprocess.Popen:
    """`proc` once its node answers on `port`; the test fails with its output if it stops or does not
    answer `within` seconds (a loaded 2-core machine starts a node slowly)."""
    import time

    import httpx

    deadline = time.monotonic() + within
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/.well-known/did.json", timeout=2)
            return proc
        except httpx.TransportError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"{name} did not start: {proc.stdout.read().decode()}")
            time.sleep(0.2)


def start_node(home: Path, port: int, passphrase: str, *, operator: str | None = None) -> subprocess.Popen:
    """`qdsn node start` on `home` in a process of its own, once it answers on `port`."""
    return answering(spawn(home, port, passphrase, operator=operator), home.name, port)


def stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def add_staff(home: Path, name: str, role: str, password: str) -> None:
    """`qdsn staff add`, as an administrator types it on the node's machine."""
    env = {k: v for k, v in os.environ.items() if k != "QDSN_HOME"} | {"QDSN_STAFF_PASSWORD": password}
    proc = subprocess.run([sys.executable, "-m", "qdsn", "staff", "add", name, "--role", role, "--home", str(home)],
                          env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 0, proc.stderr


def sign_in(j: Journey, name: str, password: str) -> None:
    j.goto("/console/login")
    j.page.fill("input[name=name]", name)
    j.page.fill("input[name=password]", password)
    j.submit("form[action='/console/login'] button")
