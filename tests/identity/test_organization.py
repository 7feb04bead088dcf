"""What a regulator records of an organisation: credit codes with their check character, GB/T 2260 regions
in use at every level, GB/T 4754 industries; and the ledger refusing a registration whose codes are malformed."""

import pytest

from qdsn.errors import InvalidInput
from qdsn.identity import organization
from qdsn.ledger import tx

# Published unified social credit codes of well-known companies (from their business licences)
REAL = [
    "914403001922038216",  # Huawei Technologies Co., Ltd.
    "91330100716105852F",  # Alibaba (China) Co., Ltd.
    "9144030071526726XG",  # Shenzhen Tencent Computer Systems Co., Ltd.
    "91110108558521630L",  # Xiaomi Communications Co., Ltd.
    "91440300192317458F",  # BYD Co., Ltd.
]


@pytest.mark.parametrize("code", REAL)
def test_real_credit_codes_pass_and_any_other_check_character_fails(code):
    assert organization.credit_code_form(code) == code
    for wrong in "0123456789ABCDEFGHJKLMNPQRTUWXY":
        if wrong == code[17]:
            continue
        with pytest.raises(InvalidInput, match=f"the check character is '{wrong}', but the first 17 characters give"):
            organization.credit_code_form(code[:17] + wrong)


@pytest.mark.parametrize(
    "code", ["9133010071610585", "91330100716105852FF", "91330100716105852I", "9133O10071610585 2F"]
)
def test_malformed_credit_codes_say_what_a_code_is(code):
    with pytest.raises(InvalidInput, match="18 characters"):
        organization.credit_code_form(code)


@pytest.mark.parametrize("code,level,name", [
    ("330000", "province", "浙江省"), ("110000", "province", "北京市"), ("650000", "province", "新疆维吾尔自治区"),
    ("330100", "prefecture", "浙江省 杭州市"), ("440300", "prefecture", "广东省 深圳市"),
    ("320500", "prefecture", "江苏省 苏州市"), ("330106", "county", "浙江省 杭州市 西湖区"),
    ("440305", "county", "广东省 深圳市 南山区"), ("110105", "county", "北京市 朝阳区"),
])  # fmt: skip
def test_regions_in_use_validate_at_every_level(code, level, name):
    d = organization.region(code)
    assert (d.level, d.name) == (level, name)


def test_every_province_and_prefecture_in_the_list_validates():
    db = organization._divisions()
    provinces = [f"{p}0000" for p in (11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44,
                                      45, 46, 50, 51, 52, 53, 54, 61, 62, 63, 64, 65)]  # fmt: skip
    assert [organization.region(p).level for p in provinces] == ["province"] * 31
    prefectures = [c for c in (f"{p[:2]}{i:02d}00" for p in provinces for i in range(1, 100))
                   if len(db.info(c)) > 1 and db.info(c)[1][1].get("county")
                   and not organization._named(db.info(c)[1][1])[1]]  # fmt: skip
    assert len(prefectures) > 300
    assert all(organization.region(c).level == "prefecture" for c in prefectures)


@pytest.mark.parametrize("code,why", [
    ("110103", "no longer in use: it ended in 2010"),  # 崇文区, merged into 东城区
    ("990000", "not a GB/T 2260 administrative division code"), ("330199", "not a GB/T 2260"),
    ("33010", "not a six-digit"), ("3301a6", "not a six-digit"),
])  # fmt: skip
def test_regions_not_in_use_are_refused_with_why(code, why):
    with pytest.raises(InvalidInput, match=why):
        organization.region(code)


@pytest.mark.parametrize("code", ["C", "C38", "C383", "C3831", "A01", "T97", "S96"])
def test_industry_codes(code):
    assert organization.industry_form(code) == code


@pytest.mark.parametrize("code,why", [("A13", "not in section A"), ("C12", "not in section C"), ("X12", "not a GB/T"),
                                      ("C38311", "not a GB/T"), ("c3831", "not a GB/T")])  # fmt: skip
def test_bad_industry_codes(code, why):
    with pytest.raises(InvalidInput, match=why):
        organization.industry_form(code)


def test_the_ledger_refuses_a_registration_whose_codes_are_malformed():
    did = "did:key:z6MkqJrTMguhDaiaNG9w4MF5HLpmTKhTQEVaJccaUvLRcNRz"
    base = {"did": did, "role": "enterprise", "name": "杭州某某电缆有限公司", "key": did.removeprefix("did:key:")}
    ok = base | {"credit_code": REAL[1], "region": "330106", "industry": "C3831", "address": "杭州市西湖区文三路1号"}
    assert tx.check_payload("identity.register", ok).credit_code == REAL[1]
    for field, value, why in (("credit_code", REAL[1][:17] + "G", "check character"),
                              ("region", "3301", "six-digit"), ("industry", "Z99", "GB/T 4754"),
                              ("address", "", "at least 1 character")):  # fmt: skip
        with pytest.raises(InvalidInput, match=why):
            tx.check_payload("identity.register", ok | {field: value})


def _with_check(first17: str) -> str:
    from stdnum.cn import uscc

    return first17 + uscc.calc_check_digit(first17)


@pytest.mark.parametrize("code", REAL)
def test_a_mistyped_character_anywhere_in_the_18_is_refused(code):
    for i in range(18):
        for c in "0123456789ABCDEFGHJKLMNPQRTUWXY":
            if c != code[i]:
                with pytest.raises(InvalidInput):
                    organization.credit_code_form(code[:i] + c + code[i + 1 :])


@pytest.mark.parametrize("code", REAL)
def test_the_organisation_codes_own_check_character_is_checked(code):
    # a made-up code whose last character was computed over wrong positions 9-17 (GB 11714 check broken)
    for c in "0123456789X":
        if c != code[16]:
            forged = _with_check(code[:16] + c)
            with pytest.raises(
                InvalidInput, match=f"organisation code {code[8:16]}-{c} .* GB 11714 gives '{code[16]}'"
            ):
                organization.credit_code_form(forged)


@pytest.mark.parametrize("first17,why", [
    ("0" + "1330100716105852", "registration authority"),  # no authority 0
    ("90" + "330100716105852", "organisation type"),  # no type 0
    ("9133A100716105852", "positions 3-8"),  # the region of registration is six digits
])  # fmt: skip
def test_authority_type_and_region_positions_are_checked_and_named(first17, why):
    with pytest.raises(InvalidInput, match=why):
        organization.credit_code_form(_with_check(first17))


def test_authorities_beyond_the_digits_are_accepted():
    # Y (其他), A and N register organisations too; their codes are right in every position
    for first in "YAN":
        code = _with_check(first + "1110000600037341")
        assert organization.credit_code_form(code) == code
