"""`qdsn supervise`: the regulator's supervision of the region (市场监管)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from qdsn.cli.common import (
    Home,
    Operator,
    OperatorCA,
    console,
    id_column,
    linked_node,
    logged,
    open_node,
    optional_path,
    party,
    print_json,
    render_verdict,
    replica,
    shown,
)
from qdsn.node import NodeHome

supervise_app = typer.Typer(help="Market supervision (市场监管): the regulator's actions, risk classes, inspection "
                            "plans, results.",
                            no_args_is_help=True)  # fmt: skip

# -- risk-based inspection (双随机, 一公开) -------------------------------------------------------------------

plan_app = typer.Typer(help="Inspection plans (双随机抽查): commit a seed, draw, verify the draw.",
                       no_args_is_help=True)  # fmt: skip
supervise_app.add_typer(plan_app, name="plan")

AsOf = Annotated[str | None, typer.Option("--as-of", help="The day the classes are judged at, YYYY-MM-DD (default: "
                                          "today, UTC).")]  # fmt: skip
Region = Annotated[str | None, typer.Option(help="Only enterprises whose GB/T 2260 region starts with this, "
                                            "e.g. 3301.")]  # fmt: skip
Industry = Annotated[str | None, typer.Option(help="Only enterprises whose GB/T 4754 industry starts with this, e.g. "
                                              "C38.")]  # fmt: skip
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON, with every field whole.")]
SHORT = {"inspections": "insp. 抽查", "certificates": "cert. 证书", "capability": "capab. 能力",
         "notifications": "notif. 通报", "freshness": "fresh. 新鲜度"}  # fmt: skip


def _today() -> Any:
    from qdsn.clock import system_clock

    return system_clock().date()


def _scope(region: str | None, industry: str | None) -> dict[str, str]:
    from qdsn.errors import InvalidInput

    scope = {k: v.strip() for k, v in (("region", region), ("industry", industry)) if v is not None}
    if "region" in scope and not scope["region"].isdigit():
        raise InvalidInput(f"--region {region!r} is not a GB/T 2260 code prefix", "give digits, e.g. 33 or 330106")
    if "industry" in scope and not scope["industry"][:1].isalpha():
        raise InvalidInput(f"--industry {industry!r} is not a GB/T 4754 code prefix", "e.g. C or C3831")
    return {k: v.upper() for k, v in scope.items()}


@supervise_app.command("risk")
def risk_cmd(
    home: Home,
    did: Annotated[str | None, typer.Argument(help="One enterprise's DID (default: every enterprise).")] = None,
    explain: Annotated[
        str | None, typer.Option("--explain", help="Explain one enterprise's class, factor by factor (a DID).")
    ] = None,
    as_of: AsOf = None,
    region: Region = None,
    industry: Industry = None,
    as_json: AsJson = False,
) -> None:
    """Risk classes A–D (A low … D high risk) of the enterprises on this node's replica, with each factor's
    contribution in points; needs no passphrase."""
    from qdsn.errors import NotFound
    from qdsn.supervision import evidence, risk

    day = risk.as_of_date(as_of, _today())
    ledger = replica(open_node(home))
    try:
        assessed = risk.assess_all(evidence.read(ledger, day, scope=_scope(region, industry)), day)
        state = ledger.state
    finally:
        ledger.close()
    wanted = explain or did
    if wanted is not None:
        if wanted not in assessed:
            raise NotFound(f"{wanted} is not a registered enterprise{' in that scope' if region or industry else ''}",
                           "see the enterprises: qdsn supervise risk")  # fmt: skip
        assessed = {wanted: assessed[wanted]}
    rows = sorted(assessed.values(), key=lambda a: (-a.score, a.enterprise))
    if as_json:
        out = [a.to_json() | {"name": state.identities[a.enterprise].name} for a in rows]
        print_json(out[0] if explain else out, indent=1)
        return
    if explain:
        a = rows[0]
        console.print(party(state, a.enterprise))
        for line in risk.explain(a):
            console.print(shown(line))
        return
    counts = {c: sum(a.risk_class == c for a in rows) for c in "ABCD"}
    table = Table(title=f"risk classes as of {day} (风险分类): " + ", ".join(f"{c} {n}" for c, n in counts.items()))
    table.add_column("enterprise 企业", overflow="fold")
    table.add_column("class 类别")
    table.add_column("score 分", justify="right")
    for name in risk.WEIGHTS:
        table.add_column(f"{SHORT[name]}\n×{risk.WEIGHTS[name]:.2f}", justify="right")
    for a in rows:
        table.add_row(party(state, a.enterprise), f"{a.risk_class} {risk.CLASS_NAMES[a.risk_class]}", f"{a.score:.2f}",
                      *(f"{f.contribution:.2f}" for f in a.factors))  # fmt: skip
    console.print(table)
    console.print(f"[dim]points of 100, each factor weight × value; explain one: qdsn supervise risk --explain DID "
                  f"(model {risk.MODEL})[/]", highlight=False)  # fmt: skip


@plan_app.command("create")
def plan_create(
    plan: Annotated[str, typer.Argument(help="The plan's id, e.g. 2026-Q1-wire.")],
    title: Annotated[str, typer.Option(help="What is inspected, e.g. 电线电缆 2026 年第一季度.")],
    count: Annotated[int, typer.Option(help="How many enterprises to draw.")],
    home: Home,
    as_of: AsOf = None,
    region: Region = None,
    industry: Industry = None,
    weights: Annotated[str, typer.Option(help="Each class's weight in the draw.")] = "A=1,B=2,C=4,D=8",
    inspector: Annotated[list[str] | None, typer.Option(help="An inspector's id (执法人员), once each.")] = None,
    per_inspection: Annotated[int, typer.Option(help="Inspectors sent to each enterprise drawn.")] = 2,
    operator: Operator = None,
    operator_ca: OperatorCA = None,
) -> None:
    """Commit an inspection plan (regulator): the population and classes as the ledger stands, the class weights,
    the count, the inspectors, and the SHA-256 of a secret seed kept in this home until the draw."""
    from qdsn.errors import InvalidInput
    from qdsn.supervision import draw, risk

    day = risk.as_of_date(as_of, _today())
    ws, scope = draw.parse_weights(weights), _scope(region, industry)
    inspectors = [i.strip() for i in inspector or []]
    if count < 1:
        raise InvalidInput(f"--count {count}: draw at least one enterprise", "e.g. --count 10")
    per = per_inspection if inspectors else 0
    node = linked_node(home, operator, optional_path(operator_ca))
    try:
        payload, _ = draw.create_plan(node, plan, title, as_of=day, count=count, scope=scope, weights=ws,
                                      inspectors=inspectors, per_inspection=per)  # fmt: skip
    finally:
        node.close()
    console.print(f"[green]✓[/] plan {plan} committed on the ledger ({logged(node.receipts)})", highlight=False)
    console.print(f"  commitment  {payload['commitment']}  (SHA-256 of the seed, 种子承诺)", highlight=False)
    console.print(
        f"  population  {payload['population']} enterprises before entry {payload['basis']}, classes as "
        f"of {payload['as_of']} ({payload['model']}); hash {payload['population_hash']}",
        highlight=False,
    )
    console.print(f"  draws       {count}, weights " + ", ".join(f"{c}={w}" for c, w in ws.items())
                  + (f"; {per} of {len(inspectors)} inspectors each" if per else ""), highlight=False)  # fmt: skip
    console.print(f"[dim]the seed is kept in {Path(home) / 'inspection-seeds'}; reveal it with the draw: "
                  f"qdsn supervise plan draw {plan}[/]", highlight=False)  # fmt: skip


@plan_app.command("draw")
def plan_draw(
    plan: Annotated[str, typer.Argument(help="The plan's id.")],
    home: Home,
    as_json: AsJson = False,
    operator: Operator = None,
    operator_ca: OperatorCA = None,
) -> None:
    """Draw a committed plan (regulator): reveal its seed on the ledger with the enterprises and inspectors it
    selects. Anyone can then re-run it: qdsn supervise plan verify PLAN."""
    from qdsn.supervision import draw

    node = linked_node(home, operator, optional_path(operator_ca))
    try:
        payload, classes, _ = draw.draw_plan(node, plan)
        state = node.ledger.state
    finally:
        node.close()
    if as_json:
        print(json.dumps(payload | {"classes": [classes[d] for d in payload["selection"]]}, ensure_ascii=False,
                         indent=1))  # fmt: skip
        return
    console.print(f"[green]✓[/] plan {plan} drawn ({logged(node.receipts)}); seed revealed: {payload['seed']}",
                  highlight=False)  # fmt: skip
    table = Table(title=f"plan {plan}: {len(payload['selection'])} drawn (抽取结果)")
    table.add_column("#", justify="right")
    table.add_column("enterprise 企业", overflow="fold")
    table.add_column("class 类别")
    table.add_column("inspectors 执法人员", overflow="fold")
    for i, did in enumerate(payload["selection"]):
        team = ", ".join(payload["inspectors"][i]) if payload["inspectors"] else ""
        table.add_row(str(i + 1), party(state, did), classes[did], shown(team))
    console.print(table)


@plan_app.command("verify")
def plan_verify(
    plan: Annotated[str, typer.Argument(help="The plan's id.")],
    home: Home,
) -> None:
    """Re-run a plan's draw from its revealed seed on this node's replica: the seed against the commitment, the
    population against the ledger, the selection against the seed. Needs no passphrase. Exit codes: 0 verified;
    1 the draw or population differs (the place is named); 2 not drawn yet."""
    from qdsn.supervision import draw

    ledger = replica(open_node(home))
    try:
        verdict = draw.verify(ledger, plan)
    finally:
        ledger.close()
    render_verdict(verdict)


@plan_app.command("list")
def plan_list(home: Home, as_json: AsJson = False) -> None:
    """The inspection plans on this node's replica, with their commitments and, once drawn, seeds and
    selections (一公开). Needs no passphrase."""
    from qdsn.supervision import draw

    ledger = replica(open_node(home))
    try:
        rows = draw.plans(ledger)
        state = ledger.state
    finally:
        ledger.close()
    if as_json:
        print_json(rows, indent=1)
        return
    table = Table(title=f"{len(rows)} inspection plans (抽查计划)")
    for col in ("plan", "title", "entry", "population", "draws", "weights", "drawn 抽取"):
        table.add_column(col, overflow="fold")
    for r in rows:
        drawn = "not yet (未抽取)" if r["drawn"] is None else f"entry {r['drawn']}"
        table.add_row(shown(r["plan"]), shown(r["title"]), str(r["planned"]), str(r["population"]), str(r["count"]),
                      ",".join(f"{c}={w}" for c, w in sorted(r["weights"].items())), drawn)  # fmt: skip
    console.print(table)
    for r in rows:
        if r["drawn"] is not None:
            console.print(f"[bold]{r['plan']}[/] drew:", highlight=False)
            for did in r["selection"]:
                console.print("  ", party(state, did), sep="")


@supervise_app.command("inspect")
def inspect_cmd(
    enterprise: Annotated[str, typer.Argument(help="The enterprise's DID.")],
    product: Annotated[str, typer.Option(help="The product sampled, e.g. 聚氯乙烯绝缘电缆 BV 2.5mm².")],
    standard: Annotated[str, typer.Option(help="The standard it was tested to, e.g. GB/T 5023.3-2008.")],
    passed: Annotated[bool, typer.Option("--passed/--failed", help="The result: conforming (合格) or not.")],
    date: Annotated[str, typer.Option(help="The day of the inspection, YYYY-MM-DD.")],
    home: Home,
    plan: Annotated[str | None, typer.Option(help="The drawn plan it came from, if any.")] = None,
    operator: Operator = None,
    operator_ca: OperatorCA = None,
) -> None:
    """Record a sampling-inspection result (regulator): pass or fail of one product, the standard, the date.
    It feeds the enterprise's risk class."""
    from qdsn.supervision import inspections

    node = linked_node(home, operator, optional_path(operator_ca))
    try:
        payload, _ = inspections.record(node, enterprise, product, standard, passed, date, plan)
        name = node.ledger.state.identities[enterprise].name
    finally:
        node.close()
    verdict = "passed (合格)" if passed else "failed (不合格)"
    console.print("[green]✓[/] recorded: ", shown(name), f" {verdict}: ", shown(payload["product"]), " to ",
                  shown(payload["standard"]), f" on {date} ({logged(node.receipts)})", sep="")  # fmt: skip


@supervise_app.command("inspections")
def inspections_list(
    home: Home,
    enterprise: Annotated[str | None, typer.Argument(help="Only this enterprise's results (a DID).")] = None,
    as_json: AsJson = False,
) -> None:
    """The sampling-inspection results on this node's replica. Needs no passphrase."""
    from qdsn.supervision import inspections

    ledger = replica(open_node(home))
    try:
        rows = inspections.results(ledger, enterprise)
        state = ledger.state
    finally:
        ledger.close()
    if as_json:
        print_json(rows, indent=1)
        return
    table = Table(title=f"{len(rows)} sampling-inspection results (监督抽查结果)")
    for col in ("entry", "date", "enterprise 企业", "product 产品", "standard 标准", "result 结果", "plan"):
        table.add_column(col, overflow="fold")
    for r in rows:
        result = "pass 合格" if r["passed"] else "fail 不合格"
        table.add_row(str(r["entry"]), r["date"], party(state, r["enterprise"]), shown(r["product"]),
                      shown(r["standard"]), result, shown(r.get("plan") or ""))  # fmt: skip
    console.print(table)


# -- end of risk-based inspection --------------------------------------------------------------------------


# -- regulator actions: suspend, reinstate, actions -------------------------------------------------------

Scope = Annotated[str, typer.Option(help="member (all its transactions), issuer (a certification body's authority "
                                         "to issue) or model (SUBJECT is its code hash or id@version).")]  # fmt: skip
Reason = Annotated[str, typer.Option(help="Why (recorded on the ledger, shown to every verifier).")]
Notification = Annotated[str | None, typer.Option(help="The quality notification this action answers.")]
Credentials = Annotated[list[str] | None, typer.Option(
    "--credential", help="With --scope issuer: a certificate issued before to withdraw (suspend) or restore "
    "(reinstate) with it; repeat for more.")]  # fmt: skip
Subject = Annotated[str, typer.Argument(help="The member's or certification body's DID, or a model.")]


def _act(action: str, subject: str, scope: str, reason: str, notification: str | None, credentials: list[str] | None,
         home: Path, operator: str | None, operator_ca: Path | None) -> None:  # fmt: skip
    from qdsn.supervision import actions

    node = linked_node(home, operator, operator_ca)
    try:
        env, _ = actions.act(node, action, scope, subject, reason, notification, credentials or ())
        state = node.ledger.state
    finally:
        node.close()
    p = env.payload
    who = Text(f"model {p['subject']}") if scope == "model" else party(state, p["subject"])
    done = {"suspend": "[yellow]suspended[/]", "reinstate": "[green]reinstated[/]"}[action]
    console.print(f"✓ {done} the {actions.SCOPE_WORDS[scope]} of", highlight=False)
    console.print(who)
    named = p.get("credentials") or []
    if named:
        verb = "withdrawn" if action == "suspend" else "restored"
        console.print(f"  certificates {verb}: {', '.join(named)}", highlight=False)
    console.print(f"  regulator.action on the ledger ({logged(node.receipts)}), reason: ", shown(p["reason"]),
                  sep="", highlight=False)  # fmt: skip


@supervise_app.command("suspend")
def supervise_suspend(subject: Subject, scope: Scope, reason: Reason, home: Home, notification: Notification = None,
                      credential: Credentials = None, operator: Operator = None,
                      operator_ca: OperatorCA = None) -> None:  # fmt: skip
    """Suspend a member, a certification body's authority to issue, or a model (regulator only): every node
    refuses what the suspension forbids from the next entry on, and every verifier refuses certificates
    issued meanwhile (and those named with --credential)."""
    _act("suspend", subject, scope, reason, notification, credential, home, operator, operator_ca)


@supervise_app.command("reinstate")
def supervise_reinstate(subject: Subject, scope: Scope, reason: Reason, home: Home, notification: Notification = None,
                        credential: Credentials = None, operator: Operator = None,
                        operator_ca: OperatorCA = None) -> None:  # fmt: skip
    """Reinstate what a suspension held (regulator only); --credential restores a withdrawn certificate."""
    _act("reinstate", subject, scope, reason, notification, credential, home, operator, operator_ca)


@supervise_app.command("actions")
def supervise_actions(
    home: Home,
    subject: Annotated[str | None, typer.Option(help="Only the actions on this DID or model code hash.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The regulator's actions on this node's replica, and what is suspended now (any member; no passphrase)."""
    from qdsn.cli.common import replica
    from qdsn.supervision import actions

    ledger = replica(NodeHome.open(home, ""))
    try:
        done, held, state = actions.history(ledger, subject), actions.in_force(ledger.state), ledger.state
    finally:
        ledger.close()
    if as_json:
        print(json.dumps({"actions": [a.to_json() for a in done],
                          "in_force": [s.to_json() for s in held]}, ensure_ascii=False, indent=1))  # fmt: skip
        return
    table = Table(title=f"{len(done)} regulator actions 监管措施")
    for col in ("entry", "action 措施", "scope 范围", "reason 原因", "notification 通报"):
        table.add_column(col)
    id_column(table, "subject 对象")
    for a in done:
        what = Text(a.action, style="yellow" if a.action == "suspend" else "green")
        subject_cell = Text(a.subject) if a.scope == "model" else party(state, a.subject)
        if a.credentials:
            subject_cell.append("\ncertificates: " + ", ".join(a.credentials), style="dim")
        table.add_row(str(a.seq), what, a.scope, shown(a.reason), a.notification or "", subject_cell)
    console.print(table)
    if not held:
        console.print("nothing is suspended now 当前无暂停")
    for s in held:
        state_word = "suspended 已暂停" if s.suspended else "reinstated, with certificates still withdrawn"
        line = Text(f"• {actions.SCOPE_WORDS[s.scope]} of {s.subject}: {state_word} since entry {s.since}")
        if s.withdrawn:
            line.append(f"; withdrawn: {', '.join(s.withdrawn)}")
        console.print(line)
