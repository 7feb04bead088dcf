"""`qdsn supervise`: the regulator's supervision of the consortium (监管)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from qdsn.cli.common import Home, Operator, OperatorCA, console, id_column, linked_node, logged, party, shown
from qdsn.node import NodeHome

supervise_app = typer.Typer(help="Market supervision (市场监管): the regulator's actions and inspections.",
                            no_args_is_help=True)  # fmt: skip

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
