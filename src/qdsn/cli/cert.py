"""`qdsn cert`, `qdsn verify`, `qdsn bundle`, `qdsn trust`: digital quality certificates and their verification."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from qdsn.cli.common import (
    Home,
    Operator,
    OperatorCA,
    console,
    err,
    linked_node,
    logged,
    open_node,
)
from qdsn.errors import QDSNError

cert_app = typer.Typer(help="Digital quality certificates (SD-JWT VC): issue, present, suspend, revoke.",
                       no_args_is_help=True)  # fmt: skip
trust_app = typer.Typer(help="The consortium's trust file, which offline verifiers are anchored in.",
                        no_args_is_help=True)  # fmt: skip


@cert_app.command("issue")
def cert_issue(
    result: Annotated[
        Path, typer.Argument(help="A job's result JSON (its output and attestation), e.g. from GET /jobs/ID.")
    ],
    number: Annotated[str, typer.Option(help="The certificate number.")],
    standard: Annotated[list[str], typer.Option(help="A standard certified against (repeat for more).")],
    category: Annotated[str, typer.Option(help="The product category.")],
    scope: Annotated[str, typer.Option(help="The certificate's scope.")],
    site: Annotated[str, typer.Option(help="The production site.")],
    status_list: Annotated[str, typer.Option(help="The URI of this node's status list for it.")],
    home: Home,
    credit_code: Annotated[str | None, typer.Option(help="The enterprise's unified social credit code.")] = None,
    days: Annotated[int, typer.Option(help="Days of validity.")] = 365,
    out: Annotated[Path | None, typer.Option(help="Write the SD-JWT here too.")] = None,
    operator: Operator = None,
    operator_ca: OperatorCA = None,
) -> None:
    """Issue a certificate from a verified, passing attestation (certification bodies): the evidence under the
    latest checkpoint this node cosigned, a random status entry, credential.issue on the ledger."""
    from qdsn.node import certify

    doc = json.loads(result.read_text())
    node = linked_node(home, operator, operator_ca)
    try:
        lists = certify.status_lists(node)
        if status_list not in lists.uris():
            lists.create(status_list)
        subject = certify.Subject(number, standard, category, scope, site, credit_code, days)
        result = doc.get("result", doc) if isinstance(doc, dict) else doc
        sd = certify.issue(node, result, subject, status_list, note=node.trusted_checkpoint())
    finally:
        node.close()
    if out:
        out.write_text(sd)
    console.print(f"[green]✓[/] certificate {number} issued; credential.issue is on the ledger ({logged(node.receipts)})")


@cert_app.command("present")
def cert_present(
    sd_jwt: Annotated[Path, typer.Argument(help="The certificate (SD-JWT) as issued.")],
    disclose: Annotated[list[str], typer.Option(help="A claim to show, e.g. indicators.cpk or site (repeat).")],
    home: Home,
    aud: Annotated[str | None, typer.Option(help="The verifier (its DID), for key binding.")] = None,
    nonce: Annotated[str | None, typer.Option(help="The verifier's nonce, for key binding.")] = None,
    qr: Annotated[Path | None, typer.Option(help="Also write a QR code (PNG or SVG) of --link.")] = None,
    link: Annotated[str | None, typer.Option(help="Where the presentation is published, for the QR code.")] = None,
) -> None:
    """A presentation showing only the chosen claims, bound to this node's key when --aud and --nonce are given.
    A presentation is kilobytes, more than a QR code holds: --qr encodes the --link where it is published,
    as printed on a product or a paper certificate."""
    from qdsn.credentials import sdjwt

    if qr and not link:
        raise typer.BadParameter("--qr encodes the presentation's link: give --link URL as well")
    holder = open_node(home).key() if aud and nonce else None
    shown = sdjwt.present(sd_jwt.read_text().strip(), disclose, holder, aud=aud, nonce=nonce)
    print(shown)
    if qr and link:
        import segno

        segno.make(link, error="m").save(str(qr), scale=4)
        console.print(f"[green]✓[/] QR code for {link} written to {qr}", highlight=False)


def _cert_status(number: str, status: str, reason: str, home: Path, operator: str | None, ca: Path | None) -> None:
    from qdsn.node import certify

    node = linked_node(home, operator, ca)
    try:
        certify.set_status(node, number, status, reason)
    finally:
        node.close()
    console.print(f"[green]✓[/] {number} is now {status}; credential.status is on the ledger ({logged(node.receipts)})")


Reason = Annotated[str, typer.Option(help="Why; it is recorded on the ledger.")]


@cert_app.command("suspend")
def cert_suspend(
    number: str, reason: Reason, home: Home, operator: Operator = None, operator_ca: OperatorCA = None
) -> None:
    """Suspend a certificate this node issued."""
    _cert_status(number, "suspended", reason, home, operator, operator_ca)


@cert_app.command("reinstate")
def cert_reinstate(
    number: str, reason: Reason, home: Home, operator: Operator = None, operator_ca: OperatorCA = None
) -> None:
    """Reinstate a suspended certificate."""
    _cert_status(number, "valid", reason, home, operator, operator_ca)


@cert_app.command("revoke")
def cert_revoke(
    number: str, reason: Reason, home: Home, operator: Operator = None, operator_ca: OperatorCA = None
) -> None:
    """Revoke a certificate for good."""
    _cert_status(number, "invalid", reason, home, operator, operator_ca)


@cert_app.command("list")
def cert_list(home: Home) -> None:
    """The certificates on this node's replica of the ledger that it issued or holds, with their status."""
    node = linked_node(home, None, None, writes=False)
    try:
        mine = [c for c in node.ledger.state.credentials.values() if node.did in (c.issuer, c.subject)]
        table = Table("certificate", "status", "issuer", "holder", "status entry")
        for c in mine:
            table.add_row(c.id, c.status, c.issuer[:24] + "…", c.subject[:24] + "…", f"{c.status_list}#{c.index}")
    finally:
        node.close()
    console.print(table if mine else "No certificates yet.")


def verify_cmd(
    presentation: Annotated[Path, typer.Argument(help="A certificate presentation (SD-JWT ~ … ~ KB-JWT).")],
    home: Home,
    aud: Annotated[str | None, typer.Option(help="Your DID, if you asked for key binding.")] = None,
    nonce: Annotated[str | None, typer.Option(help="The nonce you gave the holder.")] = None,
    quorum: Annotated[
        int | None,
        typer.Option(help="Cosignatures the checkpoint must carry (default: the trust file's, or this node's)."),
    ] = None,
    trust: Annotated[
        Path | None,
        typer.Option(help="The consortium's trust file (qdsn trust export), which a bundle is checked against."),
    ] = None,
    operator: Operator = None,
    operator_ca: OperatorCA = None,
) -> None:
    """Verify a certificate as a buyer would: issuer, signature, disclosures, key binding, status, and the
    evidence chain — attestation, published model, anchored inputs, cosigned checkpoint. Exit 1 if any fails.
    Given a bundle (`qdsn bundle`), it needs no node and no network: the bundled log is replayed and
    checked entry by entry first, and anchored in the consortium keys of --trust FILE (without it, nothing
    ties the bundle to a known consortium and the verification fails)."""
    from qdsn.node import trust as anchors
    from qdsn.node.verification import verify_bundle, verify_online

    text = presentation.read_text().strip()
    anchor = None
    if trust is not None:
        try:
            anchor = anchors.load(json.loads(trust.read_text()))
        except (OSError, ValueError) as e:
            raise QDSNError(f"cannot read the trust file {trust}: {e}") from None
    if text.startswith("{"):
        try:
            doc = json.loads(text)
        except ValueError as e:
            raise QDSNError(f"{presentation} is not a bundle (JSON): {e}") from None
        checks = verify_bundle(doc, aud=aud, nonce=nonce, quorum=quorum, trust=anchor)
    else:
        node = linked_node(home, operator, operator_ca, writes=False)
        try:
            checks = verify_online(node, text, aud=aud, nonce=nonce, quorum=quorum, trust=anchor)
        finally:
            node.close()
    table = Table("check", "", "detail")
    for c in checks:
        table.add_row(c.name, "[red]✗[/]" if not c.ok else "[green]✓[/]" if c.checked else "[dim]–[/]", c.detail)
    console.print(table)
    if not all(c.ok for c in checks):
        raise typer.Exit(1)


def bundle_cmd(
    presentation: Annotated[Path, typer.Argument(help="A certificate presentation (SD-JWT ~ … ~ KB-JWT).")],
    out: Annotated[Path, typer.Option(help="Where to write the bundle (JSON).")],
    home: Home,
    operator: Operator = None,
    operator_ca: OperatorCA = None,
) -> None:
    """Bundle a presentation with the log and the issuer's status list, for `qdsn verify` anywhere, offline."""
    from qdsn.node.verification import bundle

    node = linked_node(home, operator, operator_ca, writes=False)
    try:
        doc = bundle(node, presentation.read_text().strip())
    finally:
        node.close()
    out.write_text(json.dumps(doc))
    console.print(f"[green]✓[/] {out}: the presentation, {len(doc['log'])} log entries under a cosigned checkpoint "
                  "and the status list token; verify it with qdsn verify --trust FILE")  # fmt: skip


@trust_app.command("export")
def trust_export(
    home: Home,
    out: Annotated[Path | None, typer.Option(help="Write the trust file here (JSON); default: print it.")] = None,
    quorum: Annotated[int | None, typer.Option(help="Cosignatures a verifier asks for (default: a majority).")] = None,
    qr: Annotated[bool, typer.Option("--qr", help="Also print the trust file as a QR code in the terminal.")] = False,
) -> None:
    """The consortium trust file from this node's replica: the log's origin and checkpoint key, the members'
    cosigner keys, the quorum. A buyer gets it once and compares its fingerprint with another member's."""
    from qdsn.node import trust as anchors

    node = linked_node(home, None, None, writes=False)
    try:
        node.catch_up()
        doc = anchors.export(node.ledger, quorum)
    finally:
        node.close()
    text = json.dumps(doc, ensure_ascii=False, indent=None if qr else 2)
    if out:
        out.write_text(text + "\n")
        console.print(f"[green]✓[/] {out}: {len(doc['cosigners'])} cosigners, quorum {doc['quorum']}")
    else:
        print(text)
    if qr:
        import segno

        try:
            segno.make(text, error="l", micro=False).terminal(compact=True)
        except segno.DataOverflowError:
            raise QDSNError("the trust file is too large for one QR code", "hand it over as a file") from None
    err.print(f"fingerprint (compare with another member's): [bold]{doc['fingerprint']}[/]", highlight=False)


@cert_app.command("schedule")
def cert_schedule(
    number: Annotated[str, typer.Argument(help="A certificate this node issued.")],
    maker: Annotated[str, typer.Option(help="The holder's node API, e.g. https://acme:8421.")],
    agreement: Annotated[str, typer.Option(help="The compute agreement the runs are made under.")],
    model: Annotated[str, typer.Option(help="The model: a built-in name, a folder or an archive.")],
    home: Home,
    parameters: Annotated[str, typer.Option(help="The model's parameters (JSON).")] = "{}",
    every: Annotated[int, typer.Option(help="Seconds between runs (at least 60).")] = 86_400,
) -> None:
    """Continuous certification: every --every seconds, this node's rounds ask the holder's node to run the
    model on what was anchored since the last attested run, and suspend or reinstate the certificate by the
    attested result."""
    from qdsn.cli.model import _load
    from qdsn.node import certify

    blob, _ = _load(Path(model))
    node = linked_node(home, None, None, writes=False)
    try:
        certify.schedule(node, number, maker, agreement, blob, json.loads(parameters), every)
    finally:
        node.close()
    console.print(f"[green]✓[/] {number} is rechecked every {every} s while this node runs (qdsn node start)")


@cert_app.command("show")
def cert_show(sd_jwt: Annotated[Path, typer.Argument(help="A certificate (SD-JWT) as issued.")], home: Home) -> None:
    """A certificate's claims, all of them, and its status on this node's replica of the ledger."""
    from qdsn.credentials import sdjwt

    text = sd_jwt.read_text().strip()
    node = linked_node(home, None, None, writes=False)
    try:
        v = sdjwt.verify(text, lambda iss, h: node.ledger.state.identities[iss].key)
        c = node.ledger.state.credentials.get(v.claims.get("certificate_number", ""))
    finally:
        node.close()
    console.print_json(json.dumps({k: x for k, x in v.claims.items() if k != "evidence"}, ensure_ascii=False))
    console.print(f"status on the ledger: [bold]{c.status if c else 'not recorded'}[/]")


@cert_app.command("schema")
def cert_schema() -> None:
    """Print the quality certificate's JSON Schema: its claims, and which are selectively disclosable."""
    from qdsn.credentials.certificate import schema

    print(json.dumps(schema(), indent=2, ensure_ascii=False))
