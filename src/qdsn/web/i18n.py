"""The console's languages: English and Chinese (zh-CN), from gettext catalogs kept as `.po` files in
`web/locale/` and read with Babel when the node starts — no compiled `.mo` to forget at install. The
language is the one the visitor chose (a cookie), else the best of the browser's Accept-Language."""

from __future__ import annotations

import gettext
import io
from functools import cache
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

LOCALES = {"en": "English", "zh-CN": "中文"}
DEFAULT = "en"
COOKIE = "qdsn_lang"
CATALOGS = Path(__file__).parent / "locale"


@cache
def translations(lang: str) -> gettext.NullTranslations:
    """The catalog of `lang` (`zh-CN` reads `locale/zh_CN/LC_MESSAGES/messages.po`); English is the source."""
    if lang == DEFAULT:
        return gettext.NullTranslations()
    path = CATALOGS / lang.replace("-", "_") / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as f:
        catalog = read_po(f, locale=lang.replace("-", "_"))
    buf = io.BytesIO()
    write_mo(buf, catalog)
    buf.seek(0)
    return gettext.GNUTranslations(buf)


def chosen(cookie: str | None, accept_language: str | None) -> str:
    """The language to answer in: the visitor's choice, else the browser's most preferred that the console
    speaks (any zh but zh-TW/HK falls to zh-CN; q-values honoured), else English."""
    if cookie in LOCALES:
        return cookie
    ranked: list[tuple[float, int, str]] = []
    for n, part in enumerate((accept_language or "").split(",")[:32]):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        if tag and q > 0:
            ranked.append((-q, n, tag.strip().lower()))
    for _, _, tag in sorted(ranked):
        if tag.startswith("zh") and not tag.startswith(("zh-tw", "zh-hk", "zh-hant")):
            return "zh-CN"
        if tag.startswith("en") or tag == "*":
            return "en"
    return DEFAULT
