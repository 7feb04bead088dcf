"""What a market regulator records of an organisation it admits: its unified social credit code
(统一社会信用代码, GB 32100-2015), its region (a GB/T 2260 administrative division code), its industry
(a GB/T 4754-2017 class) and its address.

Two levels of checking, for a reason. `credit_code_form`, `region_form` and `industry_form` check what does
not change with time — the characters, the GB 32100 check character, the shape of a code — and every node
applies them to `identity.register`, so the ledger's fold stays the same everywhere whatever version of a
code list a node has. `region` also checks the code against a list of administrative divisions, which does
change (districts are merged, renamed, abolished): the regulator's command does that before it signs.

The division list is python-stdnum's `cn/loc` table (compiled by its maintainers from the 中华人民共和国
行政区划代码 lists; every province, prefecture and county with the years it was in use), so provinces,
prefectures and counties all validate, and a code no longer in use is refused with the year it ended.
The check character is python-stdnum's `stdnum.cn.uscc`; the organisation code's own check character
(positions 9-17, GB 11714) is computed here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

from stdnum import numdb
from stdnum.cn import uscc

from qdsn.errors import InvalidInput

_USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
# GB 32100-2015 table 1 and the authorities added since: 1-9 (机构编制, 外交, 司法行政, 文化, 民政, 旅游, 宗教,
# 工会, 工商), A (中央军委改革和编制办公室), N (农业), Y (其他)
_AUTHORITIES = "123456789ANY"

# GB/T 4754-2017: each section (门类) letter and the two-digit divisions (大类) it holds
SECTIONS = {"A": (1, 5), "B": (6, 12), "C": (13, 43), "D": (44, 46), "E": (47, 50), "F": (51, 52),
            "G": (53, 60), "H": (61, 62), "I": (63, 65), "J": (66, 69), "K": (70, 70), "L": (71, 72),
            "M": (73, 75), "N": (76, 79), "O": (80, 82), "P": (83, 83), "Q": (84, 85), "R": (86, 90),
            "S": (91, 96), "T": (97, 97)}  # fmt: skip


def credit_code_form(value: str) -> str:
    """A unified social credit code right in all 18 positions (GB 32100-2015): the registration authority
    and organisation type, the six-digit region of registration, the organisation code with its own GB 11714
    check character, and the check character over all of them."""
    if len(value) != 18 or any(c not in _USCC_CHARS for c in value):
        raise InvalidInput(
            f"unified social credit code {value!r} is not 18 characters of 0-9 and A-Y without I, O, S, V, Z",
            "copy the 18 characters from the business licence (营业执照), e.g. 91330100716105852F",
        )
    hint = "a character was mistyped: check the code against the business licence (营业执照)"
    if value[0] not in _AUTHORITIES or value[1] not in "123456789":
        raise InvalidInput(f"unified social credit code {value}: {value[:2]!r} is not a registration authority "
                           "(1-9, A, N or Y) followed by an organisation type (1-9)", hint)  # fmt: skip
    if not value[2:8].isdigit():
        raise InvalidInput(f"unified social credit code {value}: positions 3-8 ({value[2:8]}) are not the "
                           "six-digit GB/T 2260 code of the region where it was registered", hint)  # fmt: skip
    if value[16] != _organization_check(value[8:16]):
        raise InvalidInput(f"unified social credit code {value}: the organisation code {value[8:16]}-{value[16]} "
                           f"(positions 9-17) has check character {value[16]!r}, but GB 11714 gives "
                           f"{_organization_check(value[8:16])!r}", hint)  # fmt: skip
    if value[17] != uscc.calc_check_digit(value[:17]):
        raise InvalidInput(f"unified social credit code {value}: the check character is {value[17]!r}, but the "
                           f"first 17 characters give {uscc.calc_check_digit(value[:17])!r}", hint)  # fmt: skip
    return value


def _organization_check(body: str) -> str:
    """The GB 11714-1997 check character of an organisation code's eight characters (letters count 10-35).
    Written here because python-stdnum checks only a credit code's last character, not this one."""
    c = 11 - sum(int(ch, 36) * w for ch, w in zip(body, (3, 7, 9, 10, 5, 8, 4, 2), strict=True)) % 11
    return "X" if c == 10 else "0" if c == 11 else str(c)


def region_form(value: str) -> str:
    """A six-digit GB/T 2260 code (format only: see `region` for the list of divisions)."""
    if not re.fullmatch(r"\d{6}", value):
        raise InvalidInput(f"region {value!r} is not a six-digit GB/T 2260 administrative division code",
                           "give e.g. 330000 (a province), 330100 (a prefecture) or 330106 (a county)")  # fmt: skip
    return value


def industry_form(value: str) -> str:
    """A GB/T 4754-2017 industry code: a section letter and optionally its division, group or class digits."""
    m = re.fullmatch(r"([A-T])(\d{2}(\d{1,2})?)?", value)
    if m is None:
        raise InvalidInput(
            f"industry {value!r} is not a GB/T 4754-2017 code",
            "give a section letter and its class, e.g. C3831 (electric wire and cable making)",
        )
    if m.group(2):
        low, high = SECTIONS[m.group(1)]
        if not low <= int(m.group(2)[:2]) <= high:
            raise InvalidInput(
                f"industry {value}: division {m.group(2)[:2]} is not in section {m.group(1)} "
                f"(its divisions are {low:02d}–{high:02d})",
                "check the code in GB/T 4754-2017",
            )
    return value


@dataclass(frozen=True)
class Division:
    """A current administrative division: its code, level and names from the province down."""

    code: str
    level: str  # province, prefecture or county
    names: tuple[str, ...]

    @property
    def name(self) -> str:
        return " ".join(self.names)


@cache
def _divisions() -> numdb.NumDB:
    return numdb.get("cn/loc")


def _named(info: dict[str, str]) -> tuple[str | None, str | None]:
    """A division's name and, when it is no longer in use, the year it ended (`[1983-]西湖区`, `[-2010]崇文区`,
    `[-1989]南头区办事处,[1990-]南山区`)."""
    name = info.get("county") or info.get("province")
    if name is None:
        return None, None
    name = name.split(",")[-1]  # a code used for several divisions over time: the latest is the last
    m = re.match(r"\[(\d{4})?-(\d{4})?\](.*)", name)
    if m is None:
        return name, None
    return m.group(3), m.group(2)


def region(value: str) -> Division:
    """A GB/T 2260 code of a division in use today (province, prefecture or county), with its names."""
    region_form(value)
    parts = _divisions().info(value)
    province, _ = _named(parts[0][1]) if len(parts) > 1 else (None, None)
    name, ended = _named(parts[1][1]) if len(parts) > 1 else (None, None)
    if province is None or name is None:
        raise InvalidInput(f"region {value} is not a GB/T 2260 administrative division code",
                           "give e.g. 330000 (a province), 330100 (a prefecture) or 330106 (a county)")  # fmt: skip
    if ended is not None:
        raise InvalidInput(f"region {value} ({name}) is no longer in use: it ended in {ended}",
                           "give the code of the division that took it over")  # fmt: skip
    level = "province" if value.endswith("0000") else "prefecture" if value.endswith("00") else "county"
    names: tuple[str, ...] = (province,)
    if level != "province":
        prefecture = _named(_divisions().info(value[:4] + "00")[1][1])[0] if level == "county" else None
        names = (province, *([prefecture] if prefecture and prefecture not in ("市辖区", "县") else []), name)
    return Division(value, level, names)
