"""The console's frame in a real browser, on a node process: signing in, the role's overview, the
language switched, signing out; nothing fetched from outside the node, the Swagger page included."""

from qdsn.node import NodeHome

from ..api.conftest import FAST
from ..services import free_port
from .conftest import add_staff, sign_in, start_node, stop

PW = "node passphrase"


def test_a_staff_member_signs_in_reads_the_overview_in_both_languages_and_signs_out(tmp_path, journey):
    home = NodeHome.init(tmp_path / "acme", "enterprise", "Acme Cable", PW, scrypt_n=FAST)
    add_staff(home.path, "li.wei", "viewer", "correct horse battery")
    port = free_port()
    procs = [start_node(home.path, port, PW)]
    try:
        j = journey(f"http://127.0.0.1:{port}")
        j.goto("/console/enterprise/overview")  # no session: the login page
        assert j.page.url.endswith("/console/login?next=/console/enterprise/overview")
        j.page.fill("input[name=name]", "li.wei")
        j.page.fill("input[name=password]", "wrong password here")
        j.submit("form[action='/console/login'] button", "login-refused")
        assert "wrong name or password" in j.page.inner_text("main")
        sign_in(j, "li.wei", "correct horse battery")
        assert j.page.url.endswith("/console/enterprise/overview")
        assert j.page.inner_text("h1") == "Overview" and "No dataset yet." in j.page.inner_text("#datasets")
        assert "li.wei (viewer)" in j.page.inner_text("header")
        j.submit("form.lang button[value=zh-CN]", "overview-zh")
        assert j.page.inner_text("h1") == "概览" and "生产企业" in j.page.inner_text("header")
        j.goto("/docs", "swagger")  # the API's own page loads only from the node as well
        assert j.page.locator(".swagger-ui").count() == 1
        j.goto("/console/enterprise/overview")
        j.submit("form.who button", "signed-out")
        assert j.page.url.endswith("/console/login")
        j.goto("/console/enterprise/overview", "after-sign-out")
        assert "/console/login" in j.page.url
    finally:
        stop(procs)


def test_the_browser_language_chooses_chinese(tmp_path, journey):
    home = NodeHome.init(tmp_path / "acme", "enterprise", "Acme Cable", PW, scrypt_n=FAST)
    port = free_port()
    procs = [start_node(home.path, port, PW)]
    try:
        j = journey(f"http://127.0.0.1:{port}", lang="zh-CN")
        j.goto("/console/login")
        assert j.page.inner_text("h1") == "登录" and j.page.get_attribute("html", "lang") == "zh-CN"
    finally:
        stop(procs)
