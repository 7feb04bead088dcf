"""The map: tiles where the layout puts them, coloured by class; names escaped; an operator's GeoJSON checked
whole and refused without its map approval number (审图号), which is shown on the map."""

import json
import xml.etree.ElementTree as ET

import pytest

from qdsn.errors import InvalidInput
from qdsn.graph import svgmap
from qdsn.graph.region import RegionGraph, draw_map

from .conftest import build

SVG = "{http://www.w3.org/2000/svg}"
STEP = svgmap.TILE + svgmap.GAP


def tiles(svg: str) -> dict[str, dict]:
    root = ET.fromstring(svg)  # well-formed, or this raises
    out = {}
    for g in root.iter(f"{SVG}g"):
        rect = g.find(f"{SVG}rect")
        texts = [t.text for t in g.findall(f"{SVG}text")]
        out[g.get("data-code")] = {
            "x": int(rect.get("x")),
            "y": int(rect.get("y")),
            "fill": rect.get("fill"),
            "texts": texts,
        }
    return out


def test_province_tiles_sit_on_the_grid_coloured_by_class(region):
    g = RegionGraph()
    g.update(region.ledger.store)
    svg, level, values = draw_map(g, "coverage")
    assert level == "province" and values == {"110000": 0.0, "320000": 1.0, "330000": 0.3333}
    t = tiles(svg)
    assert len(t) == 34  # every provincial-level division, for context
    assert (t["330000"]["x"], t["330000"]["y"]) == (svgmap.MARGIN + 7 * STEP, svgmap.HEADER + 5 * STEP)
    assert (t["650000"]["x"], t["650000"]["y"]) == (svgmap.MARGIN + 1 * STEP, svgmap.HEADER + 2 * STEP)
    assert t["330000"]["texts"] == ["浙江", "33.3%"]
    # five equal classes between 0 and 1: 0.333 in the second, 1.0 in the last, 0 in the first
    assert (t["110000"]["fill"], t["330000"]["fill"], t["320000"]["fill"]) == (
        svgmap.PALETTE[0],
        svgmap.PALETTE[1],
        svgmap.PALETTE[4],
    )
    assert t["440000"]["fill"] == svgmap.NO_DATA and t["440000"]["texts"] == ["广东", "无数据"]
    positions = {(v["x"], v["y"]) for v in t.values()}
    assert len(positions) == 34


def test_one_province_is_drawn_by_its_prefectures_in_code_order(tmp_path):
    r = build(tmp_path / "ledger.db")
    g = RegionGraph()
    g.update(r.ledger.store)
    svg, level, values = draw_map(g, "enterprises", "330000")
    assert level == "prefecture" and values == {"330100": 2, "330200": 1}
    t = tiles(svg)
    assert set(t) == {"330100", "330200"}
    assert (t["330100"]["x"], t["330100"]["y"], t["330100"]["texts"]) == (svgmap.MARGIN, svgmap.HEADER, ["杭州市", "2"])
    assert (t["330200"]["x"], t["330200"]["y"]) == (svgmap.MARGIN + STEP, svgmap.HEADER)
    r.ledger.close()


def test_inner_tiles_fill_a_near_square_grid():
    laid = svgmap.inner_tiles([f"3301{i:02d}" for i in range(1, 11)])  # ten codes: four columns
    assert [(t.col, t.row) for t in laid][:5] == [(0, 0), (1, 0), (2, 0), (3, 0), (0, 1)]
    assert max(t.row for t in laid) == 2


def boundary_doc(**extra) -> dict:
    ring = [[120.0, 30.0], [120.5, 30.0], [120.5, 30.5], [120.0, 30.5], [120.0, 30.0]]
    return {
        "type": "FeatureCollection",
        "审图号": "GS(2024)0650号",
        "features": [
            {
                "type": "Feature",
                "properties": {"adcode": 330100, "name": '<script>alert("x")</script>&杭州'},
                "geometry": {"type": "Polygon", "coordinates": [ring]},
            },
            {
                "type": "Feature",
                "properties": {"adcode": "330200", "name": "宁波市"},
                "geometry": {
                    "type": "MultiPolygon",
                    "coordinates": [[[[121.0, 29.5], [121.5, 29.5], [121.5, 30.0], [121.0, 29.5]]]],
                },
            },
        ],
    } | extra


def test_boundaries_are_drawn_with_the_approval_number_and_escaped_names(region, tmp_path):
    path = tmp_path / "zj.geojson"
    path.write_text(json.dumps(boundary_doc(), ensure_ascii=False), encoding="utf-8")
    b = svgmap.read_boundaries(path)
    assert b.approval == "GS(2024)0650号" and set(b.regions) == {"330100", "330200"}
    g = RegionGraph()
    g.update(region.ledger.store)
    svg, level, values = draw_map(g, "enterprises", boundaries=b)
    assert level == "prefecture" and values == {"330100": 2, "330200": 1}
    root = ET.fromstring(svg)
    assert not list(root.iter(f"{SVG}script")) and "<script>" not in svg
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;杭州" in svg
    approval = [t for t in root.iter(f"{SVG}text") if t.get("class") == "approval"]
    assert approval[0].text == "审图号：GS(2024)0650号"
    paths = {p.get("data-code"): p for p in root.iter(f"{SVG}path")}
    assert paths["330100"].get("fill") == svgmap.PALETTE[4] and paths["330200"].get("fill") == svgmap.PALETTE[0]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"审图号": None}, "no map approval number"),
        ({"审图号": "2024-0650"}, "not a map approval number"),
        ({"type": "Feature"}, "not a valid GeoJSON FeatureCollection"),
    ],
)
def test_a_boundary_file_without_a_proper_approval_number_or_shape_is_refused(change, message):
    doc = {k: v for k, v in boundary_doc(**change).items() if v is not None}
    with pytest.raises(InvalidInput, match=message):
        svgmap.boundaries(doc)


def test_other_approval_forms_are_taken():
    for number in ("审图号：浙S(2023)123号", "GS京(2022)1061号", "粤S(2018)018号"):
        assert svgmap.boundaries(boundary_doc(**{"审图号": number})).approval == number.removeprefix("审图号：")
    doc = boundary_doc(map_approval_number="GS(2019)1822号")
    del doc["审图号"]
    assert svgmap.boundaries(doc).approval == "GS(2019)1822号"


def test_bad_features_are_refused_naming_them():
    doc = boundary_doc()
    doc["features"][0]["geometry"]["coordinates"][0][-1] = [121.0, 31.0]  # ring not closed
    with pytest.raises(InvalidInput, match="not a valid GeoJSON"):
        svgmap.boundaries(doc)
    doc = boundary_doc()
    doc["features"][1]["geometry"]["coordinates"][0][0][1] = [121.5, 95.0]
    with pytest.raises(InvalidInput, match="outside"):
        svgmap.boundaries(doc)
    doc = boundary_doc()
    del doc["features"][0]["properties"]["adcode"]
    with pytest.raises(InvalidInput, match="feature 0 has no six-digit"):
        svgmap.boundaries(doc)
    doc = boundary_doc()
    doc["features"][0]["geometry"] = {"type": "Point", "coordinates": [120.0, 30.0]}
    with pytest.raises(InvalidInput, match="not a Polygon"):
        svgmap.boundaries(doc)
    with pytest.raises(InvalidInput, match="no features"):
        svgmap.boundaries(boundary_doc(features=[]))


def test_a_boundary_file_that_is_not_json(tmp_path):
    path = tmp_path / "x.geojson"
    path.write_text("{nope")
    with pytest.raises(InvalidInput, match="not JSON"):
        svgmap.read_boundaries(path)
    with pytest.raises(InvalidInput, match="cannot be read"):
        svgmap.read_boundaries(tmp_path / "missing.geojson")


def test_control_characters_cannot_break_the_document():
    svg = svgmap.tile_map([svgmap.Tile("330100", "a\x00b\x1b<c>", 0, 0)], {"330100": 1.0}, "t\x07")
    root = ET.fromstring(svg)
    assert any(t.text == "a\ufffdb\ufffd<c>" for t in root.iter(f"{SVG}text"))


def legend(svg: str) -> list[str]:
    root = ET.fromstring(svg)
    return [
        t.text for t in root.findall(f"{SVG}text") if t.text and ("–" in t.text or "%" in t.text or "无数据" in t.text)
    ]


@pytest.mark.parametrize(
    "values, shown",
    [
        ({"330000": 0.0, "320000": 0.0}, ["0.0%", "无数据 (no data)"]),  # one value everywhere: one class
        ({}, ["无数据 (no data)"]),  # nothing to class
        (
            {"330000": 0.0, "320000": 0.5},
            ["0.0%–10.0%", "10.0%–20.0%", "20.0%–30.0%", "30.0%–40.0%", "40.0%–50.0%", "无数据 (no data)"],
        ),
    ],
)
def test_the_legend_names_only_the_classes_the_values_span(values, shown):
    svg = svgmap.tile_map(svgmap.province_tiles(), values, "coverage", share=True)
    assert legend(svg) == shown
    fills = {c: v["fill"] for c, v in tiles(svg).items()}
    assert all(fills[c] == svgmap.PALETTE[0] for c, v in values.items() if v == 0.0)
