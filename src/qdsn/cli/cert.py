"""`qdsn cert`, `qdsn verify`, `qdsn bundle`, `qdsn trust`: digital quality certificates and their verification."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from qdsn.cli.common import (
    Home,
    Operator,
    OperatorCA,
    console,
    err,
    id_column,
    linked_node,
    logged,
    open_node,
    party,
    peer_client,
    print_json,
    shown,
)
from qdsn.errors import IntegrityError, InvalidInput, NotFound, QDSNError

cert_app = typer.Typer(help="Digital quality certificates (SD-JWT VC): issue, present, suspend, revoke.",
                       no_args_is_help=True)  # fmt: skip
trust_app = typer.Typer(help="The consortium's trust file, which offline verifiers are anchored in.",
                        no_args_is_help=True)  # fmt: skip


ResultFile = Annotated[
    Path | None, typer.Argument(help="A result file (qdsn jobs result --out); or use --job.", show_default=False)
]
AskedJob = Annotated[
    str | None,
    typer.Option(
        help="A job this node asked for (qdsn jobs request): its result is fetched from the node that "
        "ran it and verified here."
    ),
]
AskedOf = Annotated[
    str | None, typer.Option("--node", help="With --job: the node it was asked of, when two gave the same job id.")
]


@cert_app.command("issue")
def cert_issue(
    number: Annotated[str, typer.Option(help="The certificate number.")],
    standard: Annotated[list[str], typer.Option(help="A standard certified against (repeat for more).")],
    category: Annotated[str, typer.Option(help="The product category.")],
    scope: Annotated[str, typer.Option(help="The certificate's scope.")],
    site: Annotated[str, typer.Option(help="The production site.")],
    status_list: Annotated[str, typer.Option(help="The URI of this node's status list for it.")],
    home: Home,
    result: ResultFile = None,
    job: AskedJob = None,
    node_url: AskedOf = None,
    ca: Annotated[Path | None, typer.Option("--ca", help="With --job: a CA certificate (PEM) for that node.")] = None,
    credit_code: Annotated[str | None, typer.Option(help="The enterprise's unified social credit code.")] = None,
    days: Annotated[int, typer.Option(help="Days of validity.")] = 365,
    out: Annotated[Path | None, typer.Option(help="Write the SD-JWT here too.")] = None,
    operator: Operator = None,
    operator_ca: OperatorCA = None,
) -> None:
    """Issue a certificate from a verified, passing attestation (certification bodies): the evidence under the
    latest checkpoint this node cosigned, a random status entry, credential.issue on the ledger. The holder
    fetches it with `qdsn cert fetch`."""
    from qdsn.cli.certify import write_whole
    from qdsn.cli.jobs import check_attestation, fetch_job, read_file
    from qdsn.compute import results
    from qdsn.node import certify, requested

    if (result is None) == (job is None):
        raise typer.BadParameter("give the result file (qdsn jobs result --out FILE) or --job ID, one of them")
    if days < 1:
        raise typer.BadParameter("--days is 1 or more")
    asked = requested.find(home, job, node_url) if job is not None else None
    done = results.read(read_file(result), str(result)) if result is not None else None
    node = linked_node(home, operator, operator_ca)
    try:
        if asked is not None:
            where = f"job {asked['job']} at {asked['url']}"
            done = results.from_json(fetch_job(home, asked["url"], asked["job"], ca, node.home), where)
        assert done is not None
        if done.output is None:
            raise InvalidInput("a certificate rests on the attested output too, not the attestation alone",
                               "give the result file qdsn jobs result --out wrote, or --job ID")  # fmt: skip
        claims = check_attestation(node, done, asked["nonce"] if asked else None)
        if asked is None:  # a result file: the run it attests must answer a request of this node's, by its nonce
            asked = requested.answered(home, claims)
        if asked is not None and claims.get("job") != asked["job"]:
            raise IntegrityError(f"the attestation is of job {str(claims.get('job'))[:80]}, not {asked['job']}")
        if asked is not None and (wrong := requested.mismatches(asked, claims)):
            raise IntegrityError(f"the run is not the one asked for: {'; '.join(wrong)}")
        subject = certify.Subject(number, standard, category, scope, site, credit_code, days)
        sd = certify.issue(node, {"output": done.output, "attestation": done.attestation}, subject, status_list,
                           note=node.trusted_checkpoint())  # fmt: skip
        holder = node.ledger.state.identities[claims["iss"]]
    finally:
        node.close()
    if out:
        write_whole(out, sd + "\n")
    console.print(f"[green]✓[/] certificate {number} issued to ", shown(holder.name), f" ({holder.did}); "
                  f"credential.issue is on the ledger ({logged(node.receipts)})", sep="", highlight=False)  # fmt: skip
    console.print(f"  the holder fetches it: qdsn cert fetch URL-OF-THIS-NODE --out {number}.sd-jwt", highlight=False)


@cert_app.command("fetch")
def cert_fetch(
    url: Annotated[str, typer.Argument(help="The certification body's node API, e.g. https://cqc:8422.")],
    home: Home,
    out: Annotated[Path, typer.Option(help="Write the certificate here; with several, a folder for them.")],
    ca: Annotated[Path | None, typer.Option("--ca", help="A CA certificate (PEM) to trust for URL.")] = None,
) -> None:
    """The certificates the body at URL issued to this node (SD-JWTs, for `qdsn cert present`), each
    checked before it is written: signed by its issuer's key on this node's replica, recorded by that
    issuer's credential.issue, and issued to this node."""
    from qdsn.cli.certify import expect_object, reaching, write_whole

    node = linked_node(home, None, None, writes=False)
    try:
        with reaching(url):
            got = expect_object(peer_client(node.home, url, ca).call("GET", "/credentials"), "a list of credentials")
        creds = got.get("credentials")
        if not isinstance(creds, list) or not all(isinstance(c, str) for c in creds):
            raise IntegrityError(f"{url} answered no list of certificates")
        if not creds:
            raise NotFound(f"{url} has issued no certificate to this node ({node.did})")
        node.catch_up()
        kept: dict[str, str] = {}
        for c in creds:
            try:
                kept.setdefault(held(node.ledger, c, node.did), c)
            except QDSNError as e:
                err.print(shown(f"✗ a certificate {url} answered is refused: {e}"), style="red")
    finally:
        node.close()
    if not kept:
        raise IntegrityError(f"{url} answered no certificate that checks out as issued to this node",
                             "ask the certification body; let this node follow the log (qdsn node start)")  # fmt: skip
    if len(kept) == 1 and len(creds) == 1:
        ((number, c),) = kept.items()
        write_whole(out, c + "\n")
        console.print("[green]✓[/] certificate ", shown(number), f" written to {out}", sep="", highlight=False)
        return
    out.mkdir(parents=True, exist_ok=True)
    for n, (number, c) in enumerate(kept.items()):
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in number).strip(".") or f"certificate-{n}"
        write_whole(out / f"{safe}.sd-jwt", c + "\n")
    console.print(f"[green]✓[/] {len(kept)} certificates written to {out}/", highlight=False)
    if len(kept) < len(creds):
        raise typer.Exit(1)


def held(ledger, sd_jwt: str, me: str) -> str:  # type: ignore[no-untyped-def]
    """The number of a certificate handed to `me`, once it holds: signed by the key its issuer has on
    `ledger` (never a key the certificate names itself), recorded by that issuer's credential.issue,
    and issued to `me`; otherwise the QDSNError that says which of these fails."""
    from qdsn.credentials import certificate, sdjwt

    def member_key(iss: str, _header: dict) -> object:  # type: ignore[type-arg]
        ident = ledger.state.identities.get(iss)
        if ident is None:
            raise NotFound(f"its issuer {iss[:80]} is no member on this node's replica of the ledger")
        return ident.key

    v = sdjwt.verify(sd_jwt, member_key, vct=certificate.VCT)
    certificate.recorded(v.claims, sdjwt.parse(sd_jwt).jwt, ledger)
    holder = (v.claims.get("enterprise") or {}).get("did")
    if holder != me:
        raise IntegrityError(f"it is issued to {str(holder)[:80]}, not to this node")
    return str(v.claims["certificate_number"])


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
def cert_list(home: Home, as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """The certificates on this node's replica of the ledger. A certification body sees its register of the
    certificates it issued — holder, status, validity, the next continuous-certification run; a holder
    sees the ones it holds; a regulator sees every certificate of the consortium."""
    from qdsn.node import certify

    node = linked_node(home, None, None, writes=False)
    try:
        issued = certify.register(node)
        held = [c for c in node.ledger.state.credentials.values() if c.subject == node.did]
        names = {c.issuer: (i.name if (i := node.ledger.state.identities.get(c.issuer)) else "") for c in held}
        state = node.ledger.state
        everyone = list(state.credentials.values()) if node.home.role == "regulator" else []
        consortium = [
            {"certificate": c.id, "status": c.status, "issuer": c.issuer, "issuer_name": _name(state, c.issuer),
             "holder": c.subject, "holder_name": _name(state, c.subject), "status_entry": f"{c.status_list}#{c.index}"}
            for c in everyone
        ]  # fmt: skip
        parties = {c.id: (party(state, c.issuer), party(state, c.subject)) for c in everyone}
    finally:
        node.close()
    if as_json:
        mine = [{"certificate": c.id, "issuer": c.issuer, "issuer_name": names[c.issuer], "status": c.status,
                 "status_entry": f"{c.status_list}#{c.index}"} for c in held]  # fmt: skip
        doc = {"issued": issued, "held": mine} | ({"consortium": consortium} if everyone else {})
        print_json(doc)
        return
    if issued:
        table = Table("certificate", "holder", "status", "valid until", "next run", "status entry",
                      title="certificates this node issued")  # fmt: skip
        for r in issued:
            run = (r["next_run"][:19] + f" (every {r['every_seconds']} s)" if r["next_run"] else "-") + (
                f", job {r['pending_job']} pending" if r["pending_job"] else "")  # fmt: skip
            holder = shown(f"{r['holder_name'] or '?'} {r['holder']}")
            until = (r["valid_until"] or "?")[:19]
            table.add_row(shown(r["certificate"]), holder, _status(r["status"]), until, run, shown(r["status_entry"]))
        console.print(table)
    if held:
        table = Table("certificate", "issuer", "status", "status entry", title="certificates this node holds")
        for c in held:
            table.add_row(shown(c.id), shown(f"{names[c.issuer] or '?'} {c.issuer}"), _status(c.status),
                          shown(f"{c.status_list}#{c.index}"))  # fmt: skip
        console.print(table)
    if everyone:
        table = Table(title="the consortium's certificates")
        id_column(table, "certificate")
        table.add_column("status")
        table.add_column("issuer", overflow="fold")
        table.add_column("holder", overflow="fold")
        id_column(table, "status entry")
        for r in consortium:
            table.add_row(r["certificate"], _status(r["status"]), *parties[r["certificate"]], r["status_entry"])
        console.print(table)
    if not issued and not held and not everyone:
        console.print("No certificates yet.")


def _status(status: str) -> Text:
    return Text(status, style={"valid": "green", "suspended": "yellow"}.get(status, "red"))


def _name(state, did: str) -> str | None:  # type: ignore[no-untyped-def]
    ident = state.identities.get(did)
    return ident.name if ident else None


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
    node_url: Annotated[
        str | None,
        typer.Option(
            "--node",
            help="Without a node of your own: a member's API to fetch the log from, e.g. "
            "https://cqc:8420; what it sends is checked against --trust.",
        ),
    ] = None,
    ca: Annotated[Path | None, typer.Option(help="A CA certificate (PEM) to trust for --node.")] = None,
) -> None:
    """Verify a certificate as a buyer would: issuer, signature, disclosures, key binding, status, and the
    evidence chain — attestation, published model, anchored inputs, cosigned checkpoint. Exit 1 if any fails.
    Given a bundle (`qdsn bundle`), it needs no node and no network: the bundled log is replayed and
    checked entry by entry first, and anchored in the consortium keys of --trust FILE (without it, nothing
    ties the bundle to a known consortium and the verification fails). Without a node, --node URL fetches
    that bundle from any member, and it is checked against --trust FILE just the same."""
    from qdsn.node import trust as anchors
    from qdsn.node.verification import verify_bundle, verify_online

    text = presentation.read_text().strip()
    if not text:
        raise QDSNError(f"{presentation} is empty", "give the presentation the holder sent (SD-JWT ~ … ~ KB-JWT)")
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
    elif node_url is not None:
        if anchor is None:
            raise QDSNError("what a node sends is checked against the consortium's trust file; none was given",
                            "add --trust FILE (qdsn trust export; check its fingerprint with a member)")  # fmt: skip
        doc = _fetch_bundle(node_url, ca, text)
        checks = verify_bundle(doc, aud=aud, nonce=nonce, quorum=quorum, trust=anchor)
    else:
        if not (home / "node.toml").exists():
            raise NotFound(f"no node at {home} to verify against",
                           "without a node, fetch the log from a member and check it against the consortium's trust "
                           "file: qdsn verify FILE --trust trust.json --node https://MEMBER:8420")  # fmt: skip
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


def _fetch_bundle(url: str, ca: Path | None, presentation: str) -> dict:
    """The bundle of `presentation` from the node at `url` (POST /bundle): nothing in it is trusted
    before `verify_bundle` has checked it against the trust file."""
    import ssl

    import httpx

    try:
        r = httpx.post(url.rstrip("/") + "/bundle", json={"presentation": presentation}, timeout=60,
                       verify=ssl.create_default_context(cafile=str(ca)) if ca else True)  # fmt: skip
    except httpx.HTTPError as e:
        raise QDSNError(f"the node at {url} did not answer ({e})", "check the URL, or ask the holder for a bundle "
                        "(qdsn bundle) and verify that offline") from None  # fmt: skip
    try:
        doc = r.json()
    except ValueError:
        doc = None
    if r.status_code != 200 or not isinstance(doc, dict):
        why = doc.get("detail") if isinstance(doc, dict) and doc.get("detail") else f"HTTP {r.status_code}"
        raise QDSNError(f"the node at {url} gave no bundle: {why}", "check the URL and the presentation")
    return doc


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
def cert_show(
    sd_jwt: Annotated[str, typer.Argument(help="A certificate (SD-JWT file) as issued, or a certificate number.")],
    home: Home,
) -> None:
    """A certificate's claims, all of them, and its status on this node's replica of the ledger. Given a
    certificate number instead of a file: what the ledger records of it (issuer, holder, status)."""
    from qdsn.credentials import sdjwt

    path = Path(sd_jwt)
    if not path.exists():
        _cert_record(sd_jwt, home)
        return
    text = path.read_text().strip()
    if not text:
        raise QDSNError(f"{path} is empty", "give the certificate (SD-JWT) as it was issued")
    node = linked_node(home, None, None, writes=False)
    try:
        v = sdjwt.verify(text, lambda iss, h: _issuer_key(node.ledger.state, iss))
        c = node.ledger.state.credentials.get(v.claims.get("certificate_number", ""))
    finally:
        node.close()
    print_json({k: x for k, x in v.claims.items() if k != "evidence"})
    console.print(f"status on the ledger: [bold]{c.status if c else 'not recorded'}[/]")


def _issuer_key(state, iss: str) -> bytes:  # type: ignore[no-untyped-def]
    ident = state.identities.get(iss)
    if ident is None:
        raise NotFound(f"the certificate's issuer {iss} is not a member of this consortium",
                       "check that the certificate comes from this consortium, or follow the log first")  # fmt: skip
    return ident.key


def _cert_record(number: str, home: Path) -> None:
    """What the ledger records of certificate `number`; a clear error when it is neither file nor number."""
    if not (home / "node.toml").exists():
        raise NotFound(f"no such file: {number}, and no node at {home} to look it up as a certificate number",
                       "give the certificate's SD-JWT file, or --home of a node (numbers: qdsn cert list)")  # fmt: skip
    node_home = open_node(home)
    ledger = node_home.ledger()
    try:
        c = ledger.state.credentials.get(number)
        if c is None:
            raise NotFound(f"{number} is neither a file nor a certificate on this node's ledger",
                           "give the certificate's SD-JWT file, or a number from `qdsn cert list`")  # fmt: skip
        table = Table(show_header=False, title=f"certificate {c.id} on the ledger")
        table.add_column("", style="bold")
        table.add_column("", overflow="fold")
        for k, v in [("status", c.status), ("issuer", party(ledger.state, c.issuer)),
                     ("holder", party(ledger.state, c.subject)), ("status entry", f"{c.status_list}#{c.index}"),
                     ("issued at entry", str(c.issued)), ("last change at entry", str(c.updated)),
                     ("hash", c.hash)]:  # fmt: skip
            table.add_row(k, v)
    finally:
        ledger.close()
    console.print(table)
    console.print("[dim]its claims are in the SD-JWT file the issuer gave the holder: qdsn cert show FILE[/]")


@cert_app.command("schema")
def cert_schema() -> None:
    """Print the quality certificate's JSON Schema: its claims, and which are selectively disclosable."""
    from qdsn.credentials.certificate import schema

    print_json(schema())
