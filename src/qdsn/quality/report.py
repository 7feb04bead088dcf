"""A study as one self-contained HTML page a person can send: its inputs and settings, tables and
charts (inline SVG), the date and the QDSN version, headings in English with Chinese beside them.
Nothing is fetched: no scripts, style sheets, fonts or images from elsewhere."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

# What people read, in Chinese beside the English (GB/T 4091 and GB/T 2828.1 terms)
ZH = {
    "Control chart": "控制图", "Capability": "过程能力", "Capability sixpack": "过程能力六合图",
    "Inputs and settings": "输入与设置", "Limits": "控制限", "Rule violations": "判异准则违例",
    "Sampling plan": "抽样方案", "Operating characteristic": "操作特性(OC)曲线", "Pareto chart": "排列图",
    "Parts per million beyond the limits": "超出规格限的百万分率", "Normality": "正态性检验",
    "Indices": "能力指数", "Chart": "图", "In control": "受控", "Categories": "类别",
    "Non-normal capability": "非正态过程能力", "Report": "报告",
    "point": "点", "points": "点数", "center": "中心线", "LCL": "下控制限", "UCL": "上控制限", "test": "判异准则",
    "what it found": "说明", "side": "方向", "index": "指数", "value": "值", "95 % interval": "95 % 置信区间",
    "observed": "实测", "expected (within)": "预期(组内)", "expected (overall)": "预期(整体)", "lot size": "批量",
    "code letter": "样本量字码", "sample size": "样本量", "accept if ≤": "接收数", "reject if ≥": "拒收数",
    "lot % nonconforming": "批不合格品百分数", "P(accept)": "接收概率", "count": "频数",
    "cumulative %": "累计百分比", "source": "数据来源", "chart": "控制图类型", "rules": "判异准则",
    "control limits": "控制限", "center line": "中心线", "characteristic": "质量特性", "values": "数值列",
    "subgroups": "子组", "time order": "时间顺序", "excluded (phase I)": "剔除点(第一阶段)",
    "limits from (phase II)": "控制限来源(第二阶段)", "target": "目标值", "σ within": "组内 σ", "method": "方法",
    "AQL": "接收质量限", "inspection level": "检验水平", "severity": "检验严格度", "categories": "类别",
    "counts": "计数", "nonconformities per 100 items": "每百单位不合格数", "LSL": "规格下限", "USL": "规格上限",
}  # fmt: skip

STYLE = (
    'body{font-family:"Noto Sans CJK SC","Microsoft YaHei","PingFang SC",sans-serif;max-width:1100px;'
    "margin:2em auto;color:#222;padding:0 1em}h1{font-size:1.5em}h2{font-size:1.15em;"
    "border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}table{border-collapse:collapse;"
    "margin:.6em 0}td,th{border:1px solid #bbb;padding:.25em .6em;text-align:right}th{background:#eef3f8}"
    "td:first-child,th:first-child{text-align:left}.zh{color:#555;font-weight:normal;margin-left:.4em}"
    ".meta{color:#555;font-size:.9em}figure{margin:.8em 0}svg{max-width:100%;height:auto}.bad{color:#b00000}"
)


def bilingual(english: str) -> str:
    """A heading in English with its Chinese beside it (escaped HTML)."""
    zh = ZH.get(english)
    return html.escape(english) + (f'<span class="zh">{html.escape(zh)}</span>' if zh else "")


@dataclass
class Report:
    """An HTML report built section by section."""

    title: str
    settings: dict[str, Any]
    parts: list[str] = field(default_factory=list)

    def heading(self, english: str) -> None:
        self.parts.append(f"<h2>{bilingual(english)}</h2>")

    def table(self, headers: list[str], rows: list[list[Any]], caption: str = "") -> None:
        """A table; cells are text, escaped."""
        head = "".join(f"<th>{bilingual(h)}</th>" for h in headers)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
        cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
        self.parts.append(f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")

    def text(self, line: str, css: str = "") -> None:
        self.parts.append(f'<p class="{css}">{html.escape(line)}</p>' if css else f"<p>{html.escape(line)}</p>")

    def figure(self, svg: str, caption: str) -> None:
        """An inline SVG (from `render.svg`, which leaves nothing to fetch) with its caption."""
        self.parts.append(f"<figure>{svg}<figcaption>{html.escape(caption)}</figcaption></figure>")

    def html(self, now: datetime | None = None) -> str:
        """The whole page."""
        from importlib.metadata import PackageNotFoundError, version

        try:
            qdsn = version("qdsn")
        except PackageNotFoundError:  # run from a source tree that was not installed
            qdsn = "unknown"
        when = (now or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
        rows = "".join(f"<tr><th>{bilingual(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
                       for k, v in self.settings.items())  # fmt: skip
        return (
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(self.title)}</title><style>{STYLE}</style></head><body>"
            f"<h1>{html.escape(self.title)}</h1>"
            f'<p class="meta">{bilingual("Report")}: {when} · QDSN {html.escape(qdsn)}</p>'
            f"<h2>{bilingual('Inputs and settings')}</h2><table>{rows}</table>"
            + "".join(self.parts)
            + "</body></html>\n"
        )
