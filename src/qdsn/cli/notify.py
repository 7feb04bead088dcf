"""`qdsn notify`: quality notifications (CX-0125) — raise, send, list, show and answer them."""

from __future__ import annotations

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
    linked_node,
    logged,
    party,
    peer_client,
    print_json,
    shown,
)
from qdsn.errors import InvalidInput

notify_app = typer.Typer(help="Quality notifications (质量通知): alerts and investigations between members, "
                         "every step on the ledger.", no_args_is_help=True)  # fmt: skip

Json = Annotated[bool, typer.Option("--json", help="Print JSON.")]
Items = Annotated[list[str] | None, typer.Option(show_default=False)]
Ca = Annotated[Path | None, typer.Option("--ca", help="A CA certificate (PEM) to trust for the recipient's API.")]
STATE_WORDS = {"CREATED": "已创建", "SENT": "已发送", "RECEIVED": "已接收", "ACKNOWLEDGED": "已确认",
               "ACCEPTED": "已接受", "DECLINED": "已拒绝", "CLOSED": "已关闭", "CANCELED": "已取消"}  # fmt: skip
SEVERITY_STYLE = {"MINOR": "", "MAJOR": "yellow", "CRITICAL": "red", "LIFE-THREATENING": "bold red"}


def _recipient(state: Any, who: str) -> str:
    """A participant named by its DID or its registered name (one only)."""
    if who in state.identities:
        return who
    named = [i.did for i in state.identities.values() if i.name == who]
    if len(named) == 1:
        return named[0]
    if named:
        raise InvalidInput(f"{len(named)} members are called {who!r}", "name the recipient by its DID: "
                           + ", ".join(named))  # fmt: skip
    raise InvalidInput(f"no member is called or has the DID {who!r}", "qdsn member list shows the members")


@notify_app.command("raise")
def notify_raise(
    to: Annotated[str, typer.Option("--to", help="The recipient: a member's DID or registered name.")],
    classification: Annotated[
        str, typer.Option(help="alert (downstream of a problem) or investigation (upstream, to its source).")
    ],
    severity: Annotated[str, typer.Option(help="MINOR, MAJOR, CRITICAL or LIFE-THREATENING.")],
    description: Annotated[str, typer.Option(help="What is wrong; sealed to the recipient, never on the ledger.")],
    home: Home,
    target_date: Annotated[str | None, typer.Option(help="When an answer is due, YYYY-MM-DD.")] = None,
    related: Annotated[str | None, typer.Option(help="An earlier notification this one follows.")] = None,
    dataset: Items = None,
    batch: Items = None,
    serial: Items = None,
    product: Items = None,
    certificate: Items = None,
    send: Annotated[str | None, typer.Option(help="The recipient's API: send it now (else: qdsn notify send).")] = None,
    ca: Ca = None,
    operator: Operator = None,
    operator_ca: OperatorCA = None,
) -> None:
    """Raise a quality notification to another member: CREATED on the ledger with the hash of its content,
    which is kept here and sealed to the recipient when it is sent. Repeat --dataset, --batch, --serial,
    --product, --certificate for each affected item."""
    from qdsn.node import notify

    affected = {k: v for k, v in (("datasets", dataset), ("batches", batch), ("serials", serial),
                                  ("products", product), ("certificates", certificate)) if v}  # fmt: skip
    node = linked_node(home, operator, operator_ca)
    try:
        node.catch_up()
        recipient = _recipient(node.ledger.state, to)
        n = notify.raise_(node, recipient, classification, severity, description, target_date=target_date,
                          related=related, affected=affected)  # fmt: skip
        console.print(f"[green]✓[/] notification {n.id} raised to ", party(node.ledger.state, recipient),
                      f"\n  CREATED on the ledger ({logged(node.receipts)})", highlight=False)  # fmt: skip
        if send:
            got = notify.send(node, n.id, peer_client(node.home, send, ca))  # failing, it stays for qdsn notify send
            console.print(f"[green]✓[/] sent: the recipient's node stored it and recorded {got['state']}")
        else:
            console.print(f"  send it with: qdsn notify send {n.id} --url <the recipient's API>", highlight=False)
    finally:
        node.close()


@notify_app.command("send")
def notify_send(
    notification: str,
    url: Annotated[str, typer.Option(help="The recipient's API, e.g. https://maker:8420.")],
    home: Home,
    ca: Ca = None,
    operator: Operator = None,
    operator_ca: OperatorCA = None,
) -> None:
    """Send a notification this node raised: SENT on the ledger, its content sealed to the recipient and
    delivered; the recipient's node records RECEIVED once it has stored it. Safe to repeat."""
    from qdsn.node import notify

    node = linked_node(home, operator, operator_ca)
    try:
        node.catch_up()
        n = node.ledger.state.notices.get(notification)
        if n is not None and n.sender == node.did:
            notify.remember(node, n.recipient, url)  # the rounds deliver there too, whatever happens now
        got = notify.send(node, notification, peer_client(node.home, url, ca))
    finally:
        node.close()
    console.print(f"[green]✓[/] {notification} delivered; it is {got['state']} on the ledger", highlight=False)


@notify_app.command("address")
def notify_address(
    to: Annotated[str, typer.Option("--to", help="A member's DID or registered name.")],
    url: Annotated[str, typer.Option(help="Its node's API, e.g. https://maker:8420.")],
    home: Home,
    ca: Ca = None,
    operator: Operator = None,
    operator_ca: OperatorCA = None,
) -> None:
    """Tell this node where a member's node is: every notification raised to it and not yet delivered
    (raised automatically before its address was known, too) is delivered there now, and by the node's
    rounds from then on."""
    from qdsn.node import notify

    node = linked_node(home, operator, operator_ca)
    try:
        node.catch_up()
        recipient = _recipient(node.ledger.state, to)
        waiting = set(notify.remember(node, recipient, url))
        console.print(f"  {len(waiting)} notifications waiting for ", party(node.ledger.state, recipient),
                      highlight=False)  # fmt: skip
        if waiting:
            done = notify.deliver_due(node, lambda u: peer_client(node.home, u, ca))
            for id in sorted(waiting):
                state = node.ledger.state.notices[id].state
                mark = "[green]✓[/]" if id in done else "[yellow]![/]"
                console.print(f"{mark} {id}: {state}", highlight=False)
            if waiting - set(done):
                console.print("  not delivered yet: qdsn notify list says why; the running node tries again")
    finally:
        node.close()


def _move(word: str, notification: str, reason: str | None, home: Path, operator: str | None,
          ca: Path | None) -> None:  # fmt: skip
    from qdsn.node import notify

    state = notify.record_move(word)
    node = linked_node(home, operator, ca)
    try:
        notify.answer(node, notification, state, reason)
    finally:
        node.close()
    console.print(f"[green]✓[/] {notification} is {state} ({STATE_WORDS[state]}); on the ledger "
                  f"({logged(node.receipts)})", highlight=False)  # fmt: skip


Reason = Annotated[str, typer.Option(help="Why; recorded on the ledger, which every member reads.")]
MaybeReason = Annotated[str | None, typer.Option(help="Why (optional); recorded on the ledger.")]


@notify_app.command("ack")
def notify_ack(notification: str, home: Home, reason: MaybeReason = None, operator: Operator = None,
               operator_ca: OperatorCA = None) -> None:  # fmt: skip
    """Acknowledge a notification this node received (recipient)."""
    _move("ack", notification, reason, home, operator, operator_ca)


@notify_app.command("accept")
def notify_accept(notification: str, home: Home, reason: MaybeReason = None, operator: Operator = None,
                  operator_ca: OperatorCA = None) -> None:  # fmt: skip
    """Accept an acknowledged notification: the problem is this node's to fix (recipient)."""
    _move("accept", notification, reason, home, operator, operator_ca)


@notify_app.command("decline")
def notify_decline(notification: str, reason: Reason, home: Home, operator: Operator = None,
                   operator_ca: OperatorCA = None) -> None:  # fmt: skip
    """Decline an acknowledged notification, saying why (recipient)."""
    _move("decline", notification, reason, home, operator, operator_ca)


@notify_app.command("close")
def notify_close(notification: str, reason: Reason, home: Home, operator: Operator = None,
                 operator_ca: OperatorCA = None) -> None:  # fmt: skip
    """Close a notification this node sent, saying why (sender)."""
    _move("close", notification, reason, home, operator, operator_ca)


@notify_app.command("cancel")
def notify_cancel(notification: str, home: Home, reason: MaybeReason = None, operator: Operator = None,
                  operator_ca: OperatorCA = None) -> None:  # fmt: skip
    """Cancel a notification this node raised but has not sent (sender)."""
    _move("cancel", notification, reason, home, operator, operator_ca)


def _state(s: str) -> Text:
    style = {"CLOSED": "dim", "CANCELED": "dim", "DECLINED": "red", "ACCEPTED": "green"}.get(s)
    return Text(f"{s} {STATE_WORDS.get(s, '')}", style=style)


@notify_app.command("list")
def notify_list(home: Home, as_json: Json = False) -> None:
    """The notifications this node sent and received, with their state; the regulator also sees how many
    others there are, by state, classification and severity."""
    from qdsn.node import notify

    node = linked_node(home, None, None, writes=False)
    try:
        doc = notify.listing(node)
        state = node.ledger.state
        if as_json:
            print_json(doc, indent=2)
            return
        if doc["notifications"]:
            table = Table(title="quality notifications 质量通知")
            table.add_column("notification 通知", overflow="fold")
            for name in ("kind 类型", "severity 严重程度", "state 状态"):
                table.add_column(name)
            table.add_column("sender 发送方", overflow="fold")
            table.add_column("recipient 接收方", overflow="fold")
            table.add_column("delivery 投递", overflow="fold")
            waiting = []
            for n in doc["notifications"]:
                d = n.get("delivery")
                table.add_row(n["id"], n["classification"], Text(n["severity"], style=SEVERITY_STYLE[n["severity"]]),
                              _state(n["state"]), party(state, n["sender"]), party(state, n["recipient"]),
                              Text("undelivered 未投递", style="yellow") if d else Text(""))  # fmt: skip
                if d:
                    waiting.append((n["id"], d))
            console.print(table)
            for id, d in waiting:
                console.print(Text(f"! {id} undelivered 未投递: ", style="yellow"), shown(d["reason"]))
                console.print(Text("  next 下一步: "), shown(d["next"]))
        else:
            console.print("No notifications of this node. 本节点暂无质量通知。")
        others = doc.get("others")
        if others is not None:
            total = sum(others["state"].values())
            console.print(f"Other members' notifications 其他成员的通知: {total}", highlight=False)
            for k in ("state", "classification", "severity"):
                if others[k]:
                    console.print(f"  by {k}: " + ", ".join(f"{v} {n}" for v, n in sorted(others[k].items())),
                                  highlight=False)  # fmt: skip
    finally:
        node.close()


@notify_app.command("show")
def notify_show(notification: str, home: Home, as_json: Json = False) -> None:
    """One notification of this node's: what it is, its content (as sealed between the two nodes) and every
    step on the ledger."""
    from qdsn.node import notify

    node = linked_node(home, None, None, writes=False)
    try:
        n = notify.show(node, notification)
        state = node.ledger.state
        if as_json:
            print_json(n, indent=2)
            return
        console.print(Text(f"quality notification 质量通知 {n['id']}", style="bold"))
        console.print(Text(f"{n['classification']} · {n['severity']} · "), _state(n["state"]), highlight=False)
        console.print(Text("from 发送方: "), party(state, n["sender"]))
        console.print(Text("to 接收方:   "), party(state, n["recipient"]))
        body = n["body"]
        if body is None:
            console.print("[yellow]content not received yet 尚未收到内容[/]")
        else:
            console.print(Text("description 描述:"))
            console.print(shown(body["description"]))
            if body.get("target_date"):
                console.print(Text(f"target date 期限: {body['target_date']}"))
            if body.get("related"):
                console.print(Text("related 相关通知: "), shown(body["related"]))
            for k, items in body["affected"].items():
                if items:
                    console.print(Text(f"affected {k}: "), shown(", ".join(items)))
        table = Table("state 状态", "at 时间", "entry 条目", "reason 原因", title="history 历史")
        for h in n["history"]:
            table.add_row(_state(h["state"]), h["at"], str(h["seq"]), shown(h["reason"] or ""))
        console.print(table)
        if n["moves"]:
            console.print(f"next, this node may: {', '.join(n['moves'])}", highlight=False)
    finally:
        node.close()
