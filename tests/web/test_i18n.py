"""The console's two languages: every message the templates and code show has its Chinese translation in
the catalog (extracted as `pybabel extract` does), and the language is chosen as a browser asks."""

import subprocess
import sys
from pathlib import Path

from babel.messages.pofile import read_po

from qdsn.web import i18n

WEB = Path(i18n.__file__).parent


def test_every_message_has_a_chinese_translation(tmp_path):
    pot = tmp_path / "messages.pot"
    pybabel = Path(sys.executable).parent / "pybabel"
    subprocess.run([str(pybabel), "extract", "-F", str(WEB / "babel.cfg"), "-k", "_", "-k", "N_", "-o", str(pot),
                    str(WEB)], check=True, capture_output=True)  # fmt: skip
    wanted = {m.id for m in read_po(pot.open("rb")) if m.id}
    assert len(wanted) > 100
    with (WEB / "locale" / "zh_CN" / "LC_MESSAGES" / "messages.po").open("rb") as f:
        have = {m.id: m.string for m in read_po(f) if m.id}
    missing = sorted(m for m in wanted if not have.get(m))
    assert not missing, f"no zh-CN translation for: {missing}"
    zh = i18n.translations("zh-CN")
    assert zh.gettext("Verify a certificate") == "验证证书" and zh.gettext("approver") == "审批人"
    assert zh.gettext("Points %(a)s–%(b)s of %(n)s") % {"a": 1, "b": 2, "n": 3} == "第 1–2 点，共 3 点"


def test_the_language_follows_the_choice_then_the_browser():
    assert i18n.chosen("zh-CN", "en-US,en") == "zh-CN"
    assert i18n.chosen("en", "zh-CN") == "en"
    assert i18n.chosen(None, "zh-CN,zh;q=0.9,en;q=0.8") == "zh-CN"
    assert i18n.chosen(None, "en;q=0.5, zh;q=0.9") == "zh-CN"
    assert i18n.chosen(None, "fr-FR, en;q=0.3, zh;q=0.2") == "en"
    assert i18n.chosen(None, "zh-TW") == "en"  # traditional Chinese: not the simplified catalog
    assert i18n.chosen("xx", None) == "en" and i18n.chosen(None, "de;q=abc") == "en"
