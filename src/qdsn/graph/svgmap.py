"""The regional map as SVG, keyed by GB/T 2260 codes: a tile-grid cartogram by default, or the boundaries of
a GeoJSON file the operator supplies (with its map approval number, 审图号, shown on the map).

**Tile grid.** Every region is a square of the same size, so the map needs no boundary data (and raises no
question of publishing a map of China without approval). Provinces sit on a hand-laid 9 × 8 grid
(`PROVINCES`): each tile at the place of the province's centre relative to its neighbours — 新疆 and 西藏 in
the west, 黑龙江 top right, 海南, 澳门 and 香港 at the bottom — so the country stays recognisable. Prefectures
(or a municipality's districts) inside one province have no agreed layout; they are laid in GB/T 2260 code
order, row by row, on the most nearly square grid that holds them (the capital, whose code comes first, at
the top left).

**Boundaries.** A GeoJSON FeatureCollection of Polygons and MultiPolygons (RFC 7946, checked by
geojson-pydantic), each feature carrying its six-digit code in a property (`adcode`, as the common Chinese
boundary files name it, or `code`), and a top-level member `审图号` (or `map_approval_number`) with the
approval number the map was published under, e.g. `GS(2024)0650号`. A file without one is refused: a map of
China may be published only with its approval number shown. It is drawn in an equirectangular projection
scaled by the cosine of its middle latitude.

SVG is written as text: every name and value goes through `_text` (XML-escaped, control characters
replaced), so a member's name or a GeoJSON property cannot inject markup.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from geojson_pydantic import FeatureCollection
from pydantic import ValidationError

from qdsn.errors import InvalidInput
from qdsn.graph import divisions

# code → (short name, column, row)
PROVINCES: dict[str, tuple[str, int, int]] = {
    "230000": ("黑龙江", 8, 0),
    "150000": ("内蒙古", 6, 1), "220000": ("吉林", 8, 1),
    "650000": ("新疆", 1, 2), "620000": ("甘肃", 3, 2), "640000": ("宁夏", 4, 2), "140000": ("山西", 5, 2),
    "130000": ("河北", 6, 2), "110000": ("北京", 7, 2), "210000": ("辽宁", 8, 2),
    "540000": ("西藏", 1, 3), "630000": ("青海", 2, 3), "510000": ("四川", 3, 3), "610000": ("陕西", 4, 3),
    "410000": ("河南", 5, 3), "370000": ("山东", 6, 3), "120000": ("天津", 7, 3),
    "530000": ("云南", 3, 4), "500000": ("重庆", 4, 4), "420000": ("湖北", 5, 4), "340000": ("安徽", 6, 4),
    "320000": ("江苏", 7, 4), "310000": ("上海", 8, 4),
    "520000": ("贵州", 4, 5), "430000": ("湖南", 5, 5), "360000": ("江西", 6, 5), "330000": ("浙江", 7, 5),
    "450000": ("广西", 4, 6), "440000": ("广东", 5, 6), "350000": ("福建", 6, 6), "710000": ("台湾", 7, 6),
    "460000": ("海南", 4, 7), "820000": ("澳门", 5, 7), "810000": ("香港", 6, 7),
}  # fmt: skip
PALETTE = ("#eff3ff", "#bdd7e7", "#6baed6", "#3182bd", "#08519c")  # ColorBrewer Blues, 5 classes
NO_DATA = "#e5e5e5"
TILE, GAP, MARGIN, HEADER, FOOTER = 72, 6, 20, 56, 64
APPROVAL = re.compile(r"^(GS|[\u4e00-\u9fff]S)[\u4e00-\u9fff]?\((19|20)\d{2}\)\d{1,6}号$")
APPROVAL_KEYS = ("审图号", "map_approval_number")
CODE_KEYS = ("adcode", "code")
MAX_GEOJSON = 64 * 1024 * 1024
MAX_POSITIONS = 2_000_000
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff]")


@dataclass(frozen=True)
class Tile:
    """A region's square: its code, the name written on it, its column and row."""

    code: str
    label: str
    col: int
    row: int


@dataclass(frozen=True)
class Boundaries:
    """An operator's boundary file, checked: its approval number and each region's rings (lon, lat)."""

    approval: str
    regions: dict[str, list[list[tuple[float, float]]]]  # code → rings
    names: dict[str, str]


def _text(value: object) -> str:
    """Text safe inside an SVG element or attribute."""
    return html.escape(_CONTROL.sub("\ufffd", str(value)), quote=True)


def province_tiles() -> list[Tile]:
    """Every provincial-level division on its tile."""
    return [Tile(code, short, col, row) for code, (short, col, row) in PROVINCES.items()]


def inner_tiles(codes: list[str]) -> list[Tile]:
    """Divisions inside one province in code order, row by row, on the most nearly square grid."""
    ordered = sorted(set(codes))
    cols = max(1, math.ceil(math.sqrt(len(ordered))))
    return [Tile(c, divisions.name(c), i % cols, i // cols) for i, c in enumerate(ordered)]


def _classes(values: Mapping[str, float]) -> list[float]:
    """Upper bounds of five equal-interval classes between the smallest and largest value (all the same
    bound when every region has one value: one class, the legend's first)."""
    low, high = min(values.values()), max(values.values())
    step = (high - low) / len(PALETTE)
    return [low + step * (i + 1) for i in range(len(PALETTE))]


def _colour(value: float | None, bounds: list[float]) -> str:
    if value is None:
        return NO_DATA
    for colour, bound in zip(PALETTE, bounds, strict=True):
        if value <= bound + 1e-12:
            return colour
    return PALETTE[-1]


def _shown(value: float, share: bool) -> str:
    return f"{value * 100:.1f}%" if share else f"{value:g}"


def _legend(x: float, y: float, bounds: list[float], low: float, share: bool) -> list[str]:
    out = []
    edges = [low, *bounds]
    # No value: no class; one value everywhere: one class, named by that value.
    classes = 0 if not bounds else len(PALETTE) if bounds[-1] > low else 1
    for i, colour in enumerate(PALETTE[:classes]):
        out.append(f'<rect x="{x + i * 96:.0f}" y="{y:.0f}" width="18" height="14" fill="{colour}" stroke="#999"/>')
        label = f"{_shown(edges[i], share)}–{_shown(edges[i + 1], share)}" if classes > 1 else _shown(low, share)
        out.append(f'<text x="{x + i * 96 + 22:.0f}" y="{y + 12:.0f}" font-size="11">{_text(label)}</text>')
    out.append(f'<rect x="{x + classes * 96:.0f}" y="{y:.0f}" width="18" height="14" fill="{NO_DATA}" stroke="#999"/>')
    out.append(f'<text x="{x + classes * 96 + 22:.0f}" y="{y + 12:.0f}" font-size="11">无数据 (no data)</text>')
    return out


def _document(width: float, height: float, title: str, body: list[str]) -> str:
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
            f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="Noto Sans CJK SC, Source Han Sans SC, '
            f'Microsoft YaHei, sans-serif" lang="zh-CN">')  # fmt: skip
    parts = [head, f"<title>{_text(title)}</title>", '<rect width="100%" height="100%" fill="#ffffff"/>',
             f'<text x="{MARGIN}" y="{MARGIN + 18}" font-size="18" font-weight="bold">{_text(title)}</text>',
             *body, "</svg>"]  # fmt: skip
    return "\n".join(parts) + "\n"


def tile_map(tiles: list[Tile], values: Mapping[str, float], title: str, share: bool = False) -> str:
    """A tile-grid cartogram: each tile coloured by its region's value (grey without one)."""
    if not tiles:
        raise InvalidInput("no region to draw", "admit members with a GB/T 2260 region (`qdsn member add --region`)")
    cols = max(t.col for t in tiles) + 1
    rows = max(t.row for t in tiles) + 1
    width = max(2 * MARGIN + cols * (TILE + GAP), 2 * MARGIN + 6 * 96 + 100)
    height = HEADER + rows * (TILE + GAP) + FOOTER
    shown_values = {k: v for k, v in values.items() if any(t.code == k for t in tiles)}
    bounds = _classes(shown_values) if shown_values else [0.0] * len(PALETTE)
    body = []
    for t in tiles:
        x, y = MARGIN + t.col * (TILE + GAP), HEADER + t.row * (TILE + GAP)
        value = values.get(t.code)
        fill = _colour(value, bounds)
        ink = "#ffffff" if fill in PALETTE[3:] else "#222222"
        figure = "无数据" if value is None else _shown(value, share)
        body.append(f'<g class="tile" data-code="{_text(t.code)}">'
                    f"<title>{_text(divisions.name(t.code))} {_text(t.code)}: {_text(figure)}</title>"
                    f'<rect x="{x}" y="{y}" width="{TILE}" height="{TILE}" rx="4" fill="{fill}" stroke="#ffffff"/>'
                    f'<text x="{x + TILE / 2:.0f}" y="{y + TILE / 2 - 4:.0f}" text-anchor="middle" font-size="13" '
                    f'fill="{ink}">{_text(t.label)}</text>'
                    f'<text x="{x + TILE / 2:.0f}" y="{y + TILE / 2 + 14:.0f}" text-anchor="middle" font-size="11" '
                    f'fill="{ink}">{_text(figure)}</text></g>')  # fmt: skip
    low = min(shown_values.values()) if shown_values else 0.0
    body += _legend(MARGIN, height - FOOTER + 16, bounds if shown_values else [], low, share)
    note = "示意图：等大方块网格，不表示行政区域界线 (tile-grid cartogram; no boundaries shown)"
    body.append(f'<text x="{MARGIN}" y="{height - 12}" font-size="10" fill="#666">{note}</text>')
    return _document(width, height, title, body)


def read_boundaries(path: Path) -> Boundaries:
    """An operator's boundary GeoJSON, checked whole; InvalidInput says what is wrong and what to do."""
    try:
        size = path.stat().st_size
    except OSError as e:
        raise InvalidInput(f"{path}: cannot be read: {e.strerror}", "give the path of a GeoJSON file") from None
    if size > MAX_GEOJSON:
        raise InvalidInput(f"{path} is {size} bytes; boundary files are limited to {MAX_GEOJSON} bytes",
                           "simplify the boundaries (e.g. mapshaper -simplify 10%)")  # fmt: skip
    try:
        doc = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as e:
        raise InvalidInput(f"{path} is not JSON: {e}", "give a GeoJSON FeatureCollection") from None
    return boundaries(doc, str(path))


def boundaries(doc: Any, where: str = "the GeoJSON") -> Boundaries:
    """A parsed GeoJSON document, checked: see `read_boundaries`."""
    if not isinstance(doc, dict):
        raise InvalidInput(f"{where} is not a GeoJSON object", "give a GeoJSON FeatureCollection")
    approval = next((doc[k] for k in APPROVAL_KEYS if k in doc), None)
    if not isinstance(approval, str) or not approval.strip():
        raise InvalidInput(f"{where} carries no map approval number (审图号)",
                           "a map of China is published only with its approval number: add it to the file as a "
                           'top-level member, e.g. "审图号": "GS(2024)0650号"')  # fmt: skip
    approval = approval.strip().removeprefix("审图号").lstrip("：: ")
    if not APPROVAL.match(approval):
        raise InvalidInput(f"{where}: {approval!r} is not a map approval number",
                           "give it as issued, e.g. GS(2024)0650号 or 浙S(2023)123号")  # fmt: skip
    try:
        fc = FeatureCollection.model_validate({k: v for k, v in doc.items() if k in ("type", "features", "bbox")})
    except ValidationError as e:
        err = e.errors()[0]
        at = ".".join(str(p) for p in err["loc"])
        raise InvalidInput(
            f"{where} is not a valid GeoJSON FeatureCollection: at {at}: {err['msg']}",
            "fix the file (RFC 7946): Polygon or MultiPolygon features, closed rings",
        ) from None
    regions: dict[str, list[list[tuple[float, float]]]] = {}
    names: dict[str, str] = {}
    positions = 0
    for i, feature in enumerate(fc.features):
        props = feature.properties or {}
        code = next((str(props[k]) for k in CODE_KEYS if k in props), None)
        if code is None or not re.fullmatch(r"\d{6}", code):
            raise InvalidInput(f"{where}: feature {i} has no six-digit GB/T 2260 code in {' or '.join(CODE_KEYS)}",
                               "give each feature its region's code, e.g. \"adcode\": 330100")  # fmt: skip
        geom = feature.geometry
        if geom is None or geom.type not in ("Polygon", "MultiPolygon"):
            raise InvalidInput(f"{where}: feature {i} ({code}) is not a Polygon or MultiPolygon",
                               "give region boundaries as polygons")  # fmt: skip
        polygons = [geom.coordinates] if geom.type == "Polygon" else geom.coordinates
        for polygon in polygons:
            for ring in polygon:
                points = [(float(p[0]), float(p[1])) for p in ring]
                positions += len(points)
                if positions > MAX_POSITIONS:
                    raise InvalidInput(f"{where} has more than {MAX_POSITIONS} positions",
                                       "simplify the boundaries (e.g. mapshaper -simplify 10%)")  # fmt: skip
                for lon, lat in points:
                    if not (math.isfinite(lon) and math.isfinite(lat) and -180 <= lon <= 180 and -90 <= lat <= 90):
                        raise InvalidInput(f"{where}: feature {i} ({code}) has position [{lon}, {lat}] outside "
                                           "longitude −180…180 and latitude −90…90",
                                           "give WGS 84 longitude, latitude in degrees (RFC 7946)")  # fmt: skip
                regions.setdefault(code, []).append(points)
        if isinstance(props.get("name"), str):
            names[code] = props["name"][:100]
    if not regions:
        raise InvalidInput(f"{where} has no features", "give the boundaries of the regions to draw")
    return Boundaries(approval, regions, names)


def boundary_map(b: Boundaries, values: Mapping[str, float], title: str, share: bool = False) -> str:
    """The operator's boundaries, coloured by value, with the approval number (审图号) shown."""
    lons = [p[0] for rings in b.regions.values() for ring in rings for p in ring]
    lats = [p[1] for rings in b.regions.values() for ring in rings for p in ring]
    k = math.cos(math.radians((min(lats) + max(lats)) / 2))
    span_x, span_y = max((max(lons) - min(lons)) * k, 1e-9), max(max(lats) - min(lats), 1e-9)
    scale = min(900 / span_x, 640 / span_y)
    width, height = 2 * MARGIN + span_x * scale, HEADER + span_y * scale + FOOTER + 20
    shown_values = {c: v for c, v in values.items() if c in b.regions}
    bounds = _classes(shown_values) if shown_values else [0.0] * len(PALETTE)
    body = []
    for code, rings in sorted(b.regions.items()):
        d = " ".join(
            "M" + " L".join(f"{MARGIN + (lon - min(lons)) * k * scale:.1f},{HEADER + (max(lats) - lat) * scale:.1f}"
                            for lon, lat in ring) + " Z"
            for ring in rings
        )  # fmt: skip
        value = values.get(code)
        name = b.names.get(code) or divisions.name(code)
        figure = "无数据" if value is None else _shown(value, share)
        body.append(f'<path data-code="{_text(code)}" d="{d}" fill="{_colour(value, bounds)}" stroke="#ffffff" '
                    f'stroke-width="0.8" fill-rule="evenodd"><title>{_text(name)} {_text(code)}: {_text(figure)}'
                    "</title></path>")  # fmt: skip
    low = min(shown_values.values()) if shown_values else 0.0
    body += _legend(MARGIN, height - FOOTER, bounds if shown_values else [], low, share)
    body.append(f'<text class="approval" x="{width - MARGIN:.0f}" y="{height - 12:.0f}" text-anchor="end" '
                f'font-size="12">审图号：{_text(b.approval)}</text>')  # fmt: skip
    return _document(width, height, title, body)
