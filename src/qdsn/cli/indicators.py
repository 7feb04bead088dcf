"""`qdsn indicators`: evaluation indicators (成效评估指标体系) of an enterprise or a region, and an enterprise's
digital quality management capability level (检验级, 保证级, 预防级, 卓越级) with the criteria met and missed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from qdsn.cli.common import Home, console, linked_node, shown
from qdsn.errors import InvalidInput

indicators_app = typer.Typer(help="Evaluation indicators 成效评估指标 and capability levels 质量管理能力等级.",
                             no_args_is_help=True)  # fmt: skip
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]
GROUPS = {"data": "数据 data", "process": "过程 process", "certification": "认证 certification",
          "supervision": "监管 supervision"}  # fmt: skip


def _figure(value: Any, key: str) -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and key in ("coverage", "fresh", "anchored", "signed", "continuous", "hit_rate"):
        return f"{100 * value:.0f} %"
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def _mark(met: bool | None) -> Text:
    return Text("✓", style="green") if met else Text("✗", style="red") if met is False else Text("?", style="yellow")


def render(a: Any) -> None:
    """An assessment as a person reads it: the indicators, the level, and why."""
    from qdsn.supervision.indicators import LEVEL_NAMES

    table = Table(title=Text.assemble("indicators 成效评估指标 · ", shown(a.name)))
    for col in ("group 维度", "indicator 指标", "value 数值", "how 依据"):
        table.add_column(col, overflow="fold")
    for i in a.indicators:
        table.add_row(GROUPS[i.group], f"{i.name}\n{i.zh}", _figure(i.value, i.key), i.detail)
    console.print(table)
    level = f"{a.level} ({LEVEL_NAMES[a.level]})" if a.level else "below 检验级 (not yet inspection level)"
    console.print(Text.assemble("capability level 质量管理能力等级: ", (level, "bold")))
    why = Table(title="criteria 判定依据 (cumulative: a level needs every criterion of it and of the levels below)")
    for col in ("level 等级", "criterion 条件", "met", "evidence 证据"):
        why.add_column(col, overflow="fold")
    for c in a.criteria:
        why.add_row(f"{c.level} {LEVEL_NAMES[c.level]}", c.text, _mark(c.met), c.detail)
    console.print(why)


@indicators_app.command("enterprise")
def indicators_enterprise(
    did: Annotated[str, typer.Argument(help="The enterprise's DID (qdsn member list).")],
    home: Home,
    as_json: AsJson = False,
) -> None:
    """An enterprise's indicators from this node's replica and its capability level, with each criterion met or
    missed. On the enterprise's own node its attested outputs (Cpk, ppm, device-signed share) count too, each
    verified against its attestation; elsewhere the ledger holds only their hashes. Needs no passphrase."""
    from qdsn.clock import system_clock
    from qdsn.node import jobs
    from qdsn.supervision import indicators

    node = linked_node(home, None, None, writes=False)
    try:
        outputs = {}
        if did == node.did:
            results = [j.result for j in jobs.visible(node, node.did) if j.state == "done" and j.result]
            outputs = indicators.verified_outputs(node.ledger, results)
        a = indicators.enterprise(node.ledger, did, system_clock(), outputs)
    finally:
        node.close()
    if as_json:
        print(json.dumps(a.to_json(), ensure_ascii=False, indent=1, default=str))
        return
    render(a)


@indicators_app.command("region")
def indicators_region(
    code: Annotated[
        str, typer.Argument(help="A GB/T 2260 region: 33 or 330000 (province), 3301 (prefecture), 330106 (county).")
    ],
    home: Home,
    figure: Annotated[
        list[Path] | None,
        typer.Option(
            help="A released private-statistics figure (the JSON of qdsn stats collect --json) to show beside: the "
            "region's process figures; repeat for more."
        ),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """A region's indicators: its enterprises' levels counted and each indicator's median from the ledger, and
    the process figures released through the private statistics (Prio3, ε-DP) given with --figure."""
    from qdsn.clock import system_clock
    from qdsn.supervision import indicators

    figures = [_read_figure(p) for p in figure or []]
    node = linked_node(home, None, None, writes=False)
    try:
        inside, summary = indicators.region(node.ledger, code, system_clock())
    finally:
        node.close()
    if as_json:
        print(json.dumps({"region": code, "summary": summary, "private_figures": figures,
                          "enterprises": [{"did": a.did, "name": a.name, "level": a.level} for a in inside]},
                         ensure_ascii=False, indent=1))  # fmt: skip
        return
    t = Table(title=f"region 区域 {code}: {summary['enterprises']} enterprises 企业")
    for col in ("level 等级", "enterprises 企业数"):
        t.add_column(col)
    for name, n in summary["levels"].items():
        t.add_row(f"{name} {indicators.LEVEL_NAMES.get(name, 'below inspection level')}", str(n))
    console.print(t)
    m = Table(title="indicator medians 指标中位数 (from the consortium's ledger)")
    for col in ("indicator 指标", "median 中位数", "enterprises with a value"):
        m.add_column(col)
    for key, v in summary["medians"].items():
        m.add_row(key, _figure(v["median"], key), str(v["known"]))
    m.add_row("valid / suspended certificates", f"{summary['certificates']['valid']} / "
              f"{summary['certificates']['suspended']}", str(summary["enterprises"]))  # fmt: skip
    console.print(m)
    for f in figures:
        console.print(
            f"private statistics 隐私统计: task {f['task']} period {f['period']} ({f['vdaf']}): "
            f"{f['result']} over {f['count']} reports, noised with ε {f['epsilon']:g}",
            highlight=False,
        )
    if not figures:
        console.print("[dim]process figures (Cpk, ppm) of a region come from the private statistics: qdsn stats "
                      "collect TASK --json > fig.json, then --figure fig.json[/]")  # fmt: skip
    for a in inside:
        console.print(Text.assemble("• ", shown(a.name), f"  {a.level or '—'}  ", (a.did, "dim")))


def _read_figure(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise InvalidInput(f"{path} is not JSON: {e}", "give the file qdsn stats collect --json wrote") from None
    need = ("task", "period", "vdaf", "result", "count", "epsilon")
    if not isinstance(doc, dict) or any(k not in doc for k in need):
        raise InvalidInput(f"{path} is not a released figure: it needs {', '.join(need)}",
                           "give the file qdsn stats collect --json wrote")  # fmt: skip
    return {k: doc[k] for k in need}
