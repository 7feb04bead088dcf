"""RFC 8785 canonical JSON against the JCS reference test data
(github.com/cyberphone/json-canonicalization, testdata/input and testdata/output)."""

import json

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from qdsn.crypto import canonical_json
from qdsn.errors import InvalidInput

VECTORS = {
    "structures": (
        '{"1": {"f": {"f": "hi","F": 5} ,"\\n": 56.0}, "10": { }, "": "empty", "a": { }, "111": [ { } ], "A": { }}',
        '{"":"empty","1":{"\\n":56,"f":{"F":5,"f":"hi"}},"10":{},"111":[{}],"A":{},"a":{}}',
    ),
    "values": (
        '{"numbers": [1E30, 4.50, 333333333.33333329, 2e-3, 0.000000000000000000000000001],'
        ' "escaping": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/", "literals": [null, true, false]}',
        '{"escaping":"\u20ac$\\u000f\\nA\'B\\"\\\\\\\\\\"/","literals":[null,true,false],'
        '"numbers":[1e+30,4.5,333333333.3333333,0.002,1e-27]}',
    ),
    "french": (
        '{"peach": "This sorting order", "p\u00e9ch\u00e9": "is wrong according to French",'
        ' "p\u00eache": "but canonicalization MUST", "sin": "ingnore locale"}',
        '{"peach":"This sorting order","p\u00e9ch\u00e9":"is wrong according to French",'
        '"p\u00eache":"but canonicalization MUST","sin":"ingnore locale"}',
    ),
    "weird": (
        '{"\\u20ac": "Euro Sign", "1": "One", "\\u0080": "Control\\u007f", "\\ud83d\\ude02": "Smiley",'
        ' "\\u00f6": "Latin Small Letter O With Diaeresis", "\\ufb33": "Hebrew Letter Dalet With Dagesh",'
        ' "</script>": "Browser Challenge"}',
        '{"1":"One","</script>":"Browser Challenge","\u0080":"Control\u007f",'
        '"\u00f6":"Latin Small Letter O With Diaeresis","\u20ac":"Euro Sign","\U0001f602":"Smiley",'
        '"\ufb33":"Hebrew Letter Dalet With Dagesh"}',
    ),
}


@pytest.mark.parametrize("name", sorted(VECTORS))
def test_jcs_reference_vectors(name):
    source, expected = VECTORS[name]
    assert canonical_json(json.loads(source)) == expected.encode("utf-8")


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53) + 1, 2**53 - 1)
    | st.text()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.floats(min_value=-1e9, max_value=1e9, allow_nan=False),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=6), kids, max_size=4),
    max_leaves=20,
)


@pytest.mark.parametrize(
    "x", [17.463, 0.1 + 0.2, 1e-7, 5e-324, 123456789.123, 0.00012345, 2.0, -0.0, 1e15, 1e16 + 2, 1e20, 1e21]
)
def test_floats_on_the_fast_path_match_the_reference(x):
    assert canonical_json({"v": x, "w": [x, -x]}) == rfc8785.dumps({"v": x, "w": [x, -x]})


@settings(max_examples=2000, deadline=None)
@given(json_values)
def test_fast_path_matches_reference(value):
    assert canonical_json(value) == rfc8785.dumps(value)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 2**60, {1: "non-string key"}, b"bytes"])
def test_refuses_values_json_cannot_hold(bad):
    with pytest.raises(InvalidInput):
        canonical_json({"v": bad})
