"""GB/T 2260 codes rolled up to a level, and their names in zh-CN.

A six-digit code is province (PP0000), prefecture (PPCC00) or county (PPCCDD). The four municipalities under
the central government (北京, 天津, 上海, 重庆) have no prefectures of their own — their `PP01` is only
"市辖区" — so their level below the province is the county (district).
"""

from __future__ import annotations

from functools import cache

from qdsn.errors import InvalidInput
from qdsn.identity import organization

LEVELS = ("province", "prefecture", "county")
MUNICIPALITIES = ("11", "12", "31", "50")
# python-stdnum writes these two in traditional characters, as their own governments do; the map is zh-CN.
SIMPLIFIED = {"810000": "香港特别行政区", "820000": "澳门特别行政区"}


def level_of(code: str) -> str:
    """province, prefecture or county, from the code's shape."""
    return "province" if code.endswith("0000") else "prefecture" if code.endswith("00") else "county"


def rollup(code: str, level: str) -> str:
    """The code of the division at `level` that holds `code` (the county itself for a municipality's
    prefecture level, as it has none); a code above `level` stays as it is."""
    if level == "province":
        return code[:2] + "0000"
    if level == "prefecture":
        if code[:2] in MUNICIPALITIES:
            return code
        return code if code.endswith("0000") else code[:4] + "00"
    return code


def below(province: str) -> str:
    """The level under a province: county for a municipality, prefecture otherwise."""
    return "county" if province[:2] in MUNICIPALITIES else "prefecture"


@cache
def name(code: str) -> str:
    """The division's own name in zh-CN (浙江省, 杭州市, 西湖区); the code itself when the list this node has
    does not know it (a code since retired, or a 省直辖县级行政区划 heading)."""
    if code in SIMPLIFIED:
        return SIMPLIFIED[code]
    try:
        return organization.region(code).names[-1]
    except InvalidInput:
        return code


def known(code: str) -> str:
    """`code` if it is a GB/T 2260 division in use; InvalidInput saying what to give otherwise."""
    organization.region(code)
    return code
