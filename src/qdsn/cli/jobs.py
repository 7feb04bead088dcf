"""`qdsn model publish`, `qdsn attest`, `qdsn jobs`: models sent to the data, and their attested results."""

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
    linked_node,
    logged,
    print_json,
    shown,
)
from qdsn.errors import IntegrityError, InvalidInput, NotFound, QDSNError
from qdsn.node import NodeHome

attest_app = typer.Typer(
    help="Attestations of model runs: what ran, on what data, to what result.", no_args_is_help=True
)
jobs_app = typer.Typer(
    help="Certification jobs on this node's data: read the model a certification body sent, approve or deny.",
    no_args_is_help=True,
)


def read_file(path: Path) -> str:
    """A file's text, or one clear error saying why it cannot be read."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NotFound(f"no file {path}", "check the path") from None
    except UnicodeDecodeError:
        raise InvalidInput(f"{path} is not text (UTF-8)") from None
    except OSError as e:
        raise InvalidInput(f"cannot read {path}: {e.strerror or e}") from None


def render_attestation(c: dict, output: dict | None, title: str = "[green]✓ attestation verified") -> None:
    """The claims of a verified attestation, then — when the output is at hand — the figures it attests."""
    table = Table("claim", "value", title=title)
    m = c["measurements"]
    for k, v in [("node", c["iss"]), ("job", str(c.get("job"))), ("model", m["model"]), ("code hash", m["code_hash"]),
                 ("isolation", m["isolation"]), ("runner", m["runner"]),
                 ("inputs", "; ".join(f"{i['dataset']} [{i['first']}, {i['first'] + i['count']}) in "
                                      f"{len(i['batches'])} anchored batch(es)" for i in c["inputs"])),
                 ("output hash", c["output_hash"] + (" (matches the output shown)" if output is not None else "")),
                 ("ran", f"{c['start']} → {c['end']}"), ("binding", c["binding"][:32] + "…")]:  # fmt: skip
        table.add_row(k, shown(str(v)))
    console.print(table)
    if output is None:
        console.print("[dim]only the attestation was given: its results are known by their hash alone[/]")
        return
    from qdsn.compute.results import rows

    figures = Table("result", "value", "verdict", title="attested results")
    for name, value, verdict in rows(output):
        color = {"pass": "green", "fail": "red"}.get(verdict, "")
        figures.add_row(shown(name), shown(value), Text(verdict, style=color))
    console.print(figures)


def check_attestation(node, result, nonce: str | None) -> dict:  # type: ignore[no-untyped-def]
    """The claims of `result`'s attestation, verified against `node`'s replica (caught up with its operator
    first, when it has one); a failed check is printed with its name and ends the command with exit 1."""
    from qdsn.compute import attest

    node.catch_up()
    try:
        return attest.verify(result.attestation, node.ledger, output=result.output, nonce=nonce)
    except QDSNError as e:
        console.print(shown(f"✗ {e.what}"), style="red")  # it names what the other node signed
        if e.fix:
            console.print(shown(f"  {e.fix}"))
        raise typer.Exit(1) from None


@attest_app.command("verify")
def attest_verify(
    file: Annotated[Path, typer.Argument(help="A result file (qdsn jobs result --out), or an attestation (JWS).")],
    home: Home,
    nonce: Annotated[str | None, typer.Option(help="The nonce you sent with the job.")] = None,
    operator: Operator = None,
    operator_ca: OperatorCA = None,
) -> None:
    """Check an attestation against this node's replica of the ledger: the signature by the node's key, the
    model published with that code hash, every input batch anchored by its owner, the commitments and binding,
    and — in a result file — that the output shown is the one attested; then show the attested results."""
    from qdsn.compute import results

    result = results.read(read_file(file), str(file))
    node = linked_node(home, operator, operator_ca, writes=False)
    try:
        c = check_attestation(node, result, nonce)
    finally:
        node.close()
    render_attestation(c, result.output)
    if nonce is None:  # what a result file says of its own nonce proves nothing: the register of requests does
        from qdsn.node import requested

        try:
            e = requested.answered(home, c)
            console.print(shown(f"✓ it answers job {e['job']}, which this node asked of {e['url']}"), style="green")
        except QDSNError as e:
            console.print(shown(f"! not checked for freshness: {e.what}"), style="yellow")


Isolation = Annotated[str, typer.Option(help="How models run: bwrap (the sandbox), or process (weaker; see the docs).")]


@jobs_app.command("list")
def jobs_list(home: Home, as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """The jobs asked of this node, newest last, with their state."""
    from qdsn.node import jobs

    node = linked_node(home, None, None, writes=False)
    try:
        found = jobs.visible(node, node.did)
        names = {d: i.name for d, i in node.ledger.state.identities.items()}
    finally:
        node.close()
    if as_json:
        print_json([j.to_json() for j in found])
        return
    table = Table("job", "state", "model", "requester", "records", "purpose", "created")
    for col in (table.columns[0], table.columns[3]):
        col.overflow = "fold"  # ids are shown whole, to be copied into the next command
    for j in found:
        records = str(sum(r["count"] for r in j.ranges))
        who = f"{names.get(j.requester, '(not registered)')}\n{j.requester}"
        row = (j.id, j.state, j.model, who, records, j.purpose or "-", j.created[:19])
        table.add_row(*map(shown, row))
    console.print(table if found else "No jobs yet.")


@jobs_app.command("show")
def jobs_show(job: Annotated[str, typer.Argument(help="The job's id.")], home: Home) -> None:
    """A job's request, its model's manifest and every source file — what the owner reads before approving."""
    from qdsn.node import jobs

    node = linked_node(home, None, None, writes=False)
    try:
        j = next((x for x in jobs.visible(node, node.did) if x.id == job), None)
        if j is None:
            raise QDSNError(f"no job {job!r}", "see the jobs: qdsn jobs list")
        files = jobs.source(node, job)
    finally:
        node.close()
    from qdsn.compute import review

    request = json.dumps(j.to_json() | {"result": j.result and {"output": j.result.get("output")}}, indent=2,
                         ensure_ascii=False)  # fmt: skip
    texts = [(path, data, data.decode("utf-8", "replace")) for path, data in files]
    hidden = [(name, found) for name, text in [("the request", request), *((p, t) for p, _, t in texts)]
              if (found := review.findings(text))]  # fmt: skip
    if hidden:  # said first, before the text that holds them scrolls by
        console.print(Text("! hidden characters: a terminal would act on them or not show them at all, so they are "
                           "shown escaped and highlighted below; read those lines with care before approving",
                           style="bold red"))  # fmt: skip
        for name, found in hidden:
            console.print(Text(f"  {name} holds {len(found)} hidden character{'s' * (len(found) > 1)}:"))
            for f in found[:10]:
                console.print(Text(f"    {f}"))
            if len(found) > 10:
                console.print(Text(f"    … and {len(found) - 10} more"))
    console.print(shown(request), soft_wrap=True)
    for path, data, text in texts:
        console.rule(shown(f"{path} ({len(data):,} bytes)"))
        console.print(shown(text), soft_wrap=True)


@jobs_app.command("approve")
def jobs_approve(
    job: Annotated[str, typer.Argument(help="The job's id.")],
    home: Home,
    isolation: Isolation = "bwrap",
    operator: Operator = None,
    operator_ca: OperatorCA = None,
) -> None:
    """Run a pending job in the sandbox now; its use is metered and its attestation recorded on the ledger."""
    from qdsn.node import jobs

    node = linked_node(home, operator, operator_ca)
    node.isolation = isolation
    try:
        j = jobs.approve(node, job)
    finally:
        node.close()
    color = "green" if j.state == "done" else "red"
    console.print(Text(j.state, style=color) + shown(f" {j.id}" + (f": {j.reason}" if j.reason else "")))
    if node.receipts:
        console.print(f"on the ledger: {logged(node.receipts)}", highlight=False)
    if j.result and j.result.get("output") is not None:
        console.print(shown(json.dumps(j.result["output"], indent=2, ensure_ascii=False)), soft_wrap=True)
    if j.result and j.result.get("log"):  # what the model wrote beside its output: the owner's alone
        console.print(Text("the run's log (not sent to the requester):", style="dim"))
        console.print(shown(j.result["log"]), soft_wrap=True)
    if j.state != "done":
        raise typer.Exit(1)


@jobs_app.command("deny")
def jobs_deny(job: Annotated[str, typer.Argument(help="The job's id.")], reason: Annotated[str, typer.Option(
        help="Why; the requester reads it.")], home: Home) -> None:  # fmt: skip
    """Refuse a pending job, saying why."""
    from qdsn.node import jobs

    node = linked_node(home, None, None)
    try:
        j = jobs.deny(node, job, reason)
    finally:
        node.close()
    console.print(Text("denied", style="yellow") + shown(f" {j.id}: {j.reason}"))


# -- the certification body's side: jobs asked of another member's node -----------------------------

Url = Annotated[str, typer.Argument(help="The data owner's node API, e.g. https://acme:8421.")]
JobId = Annotated[str, typer.Argument(help="The job's id, as `qdsn jobs request` printed it.")]
CA = Annotated[Path | None, typer.Option("--ca", help="A CA certificate (PEM) to trust for URL.")]


def _job_path(job: str) -> str:
    from urllib.parse import quote

    if not 0 < len(job) <= 200:
        raise InvalidInput(f"a job id is 1–200 characters, not {len(job)}")
    return f"/jobs/{quote(job, safe=':@')}"


Records = Annotated[
    str | None,
    typer.Option(help="Which anchored records, FIRST:COUNT (default: all this node's replica has anchored)."),
]
Parameters = Annotated[str, typer.Option(help="The model's parameters (JSON), e.g. '{\"threshold\": 1.33}'.")]
ResultOut = Annotated[
    Path | None, typer.Option(help="Write the verified result here (what attest verify and cert issue read).")
]
KeptNonce = Annotated[
    str | None,
    typer.Option(help="The nonce the job was asked with (default: the one this node kept when it asked)."),
]


@jobs_app.command("request")
def jobs_request(
    url: Url,
    model: Annotated[str, typer.Option(help="The model: a built-in name, a folder or an archive (published).")],
    dataset: Annotated[str, typer.Option(help="The dataset to run it on, as the owner's catalog names it.")],
    agreement: Annotated[str, typer.Option(help="The agreement it runs under (from qdsn negotiate).")],
    home: Home,
    records: Records = None,
    parameters: Parameters = "{}",
    purpose: Annotated[str, typer.Option(help="What the run is for.")] = "certification",
    ca: CA = None,
) -> None:
    """Send a published model to another member's data: the job waits for the owner's approval, or runs at
    once when the agreement names its code hash. A fresh nonce is kept in this node's home with the job,
    so that `qdsn jobs result` checks the attestation answers this request."""
    import base64
    import secrets
    from datetime import UTC, datetime

    from qdsn.cli.certify import expect_object, reaching, records_range
    from qdsn.cli.common import open_node, peer_client
    from qdsn.cli.model import _load
    from qdsn.compute import package
    from qdsn.node import requested

    try:
        params = json.loads(parameters)
    except ValueError as e:
        raise InvalidInput(f"--parameters is not JSON: {e}", "give an object, e.g. '{\"threshold\": 1.33}'") from None
    if not isinstance(params, dict):
        raise InvalidInput("--parameters is a JSON object, e.g. '{\"threshold\": 1.33}'")
    blob, manifest = _load(Path(model))
    node_home = open_node(home)
    nonce = secrets.token_urlsafe(24)
    with reaching(url):
        client = peer_client(node_home, url, ca)
        if records is None:  # what this node's own replica says is anchored, not what the owner claims
            ledger = node_home.ledger()
            try:
                declared = ledger.state.datasets.get(dataset.removeprefix("urn:qdsn:dataset:"))
            finally:
                ledger.close()
            first, count = 0, declared.anchored if declared else 0
            if count < 1:
                raise NotFound(
                    f"this node's replica of the ledger holds no anchored records of {dataset}",
                    "let this node follow the log (qdsn node start), or name them: --records FIRST:COUNT",
                )
        else:
            first, count = records_range(records)
        job = client.call("POST", "/jobs", {
            "agreementId": agreement, "archive": base64.b64encode(blob).decode(), "parameters": params,
            "nonce": nonce, "purpose": purpose, "datasets": [{"dataset": dataset, "first": first, "count": count}],
        })  # fmt: skip
    job = expect_object(job, "a job")
    if not isinstance(job.get("id"), str):
        raise QDSNError("the node took the job but answered no job id", "ask it: qdsn jobs status")
    requested.record(home, url, job["id"], nonce, agreement=agreement, model=f"{manifest.id}@{manifest.version}",
                     code_hash=package.code_hash(blob), parameters=params, dataset=dataset, first=first, count=count,
                     requested=datetime.now(UTC).isoformat(timespec="seconds"))  # fmt: skip
    state = str(job.get("state"))
    console.print(Text("✓ ", style="green") + shown(f"job {job['id']} asked of {url}: {state}"))
    console.print(shown(f"  {manifest.id} {manifest.version} on {dataset} records {first}–{first + count - 1}"))
    if state == "pending":
        console.print(shown("  the owner reads the model and approves it (qdsn jobs approve); then: "
                            f"qdsn jobs result {url} {job['id']} --out result.json"))  # fmt: skip
    elif state == "done":
        console.print(shown(f"  it ran at once (pre-approved): qdsn jobs result {url} {job['id']} --out result.json"))


def fetch_job(home: Path, url: str, job: str, ca: Path | None, node_home=None) -> dict:  # type: ignore[no-untyped-def]
    from qdsn.cli.certify import expect_object, reaching
    from qdsn.cli.common import open_node, peer_client

    with reaching(url):
        return expect_object(peer_client(node_home or open_node(home), url, ca).call("GET", _job_path(job)), "a job")


@jobs_app.command("status")
def jobs_status(url: Url, job: JobId, home: Home, ca: CA = None,
                as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:  # fmt: skip
    """A job asked of another member's node: pending, done, denied (with why) or failed (with why)."""
    doc = fetch_job(home, url, job, ca)
    if as_json:
        print_json({k: v for k, v in doc.items() if k != "result"} | {"has_result": bool(doc.get("result"))})
        return
    state = str(doc.get("state"))
    color = {"done": "green", "pending": "yellow"}.get(state, "red")
    why = f": {doc['reason']}" if doc.get("reason") else ""
    console.print(Text.assemble(shown(state), style=color) + shown(f" {job}{why}"))
    ranges = doc.get("ranges") if isinstance(doc.get("ranges"), list) else []
    for k, v in [("model", doc.get("model")), ("records", "; ".join(
            f"{r.get('dataset')} [{r.get('first')}, +{r.get('count')})" for r in ranges if isinstance(r, dict))),
            ("agreement", doc.get("agreement")), ("asked", doc.get("created"))]:  # fmt: skip
        console.print(shown(f"  {k:<10}{v}"))
    if state == "done":
        console.print(shown(f"  fetch and verify it: qdsn jobs result {url} {job} --out result.json"))


def _notify_run(home: Path, url: str, claims: dict, output: dict, attestation: str, ca: Path | None,
                operator: str | None, operator_ca: Path | None) -> None:  # fmt: skip
    """An attested SPC run out of control raises a quality notification to the data's owner and sends it
    to its node (`notify.on_run`); any other result raises nothing and writes nothing."""
    from qdsn.cli.common import err, peer_client
    from qdsn.node import notify

    if not (str(claims.get("measurements", {}).get("model", "")).startswith("spc-stability@")
            and output.get("pass") is False):  # fmt: skip
        return
    node = linked_node(home, operator, operator_ca)
    try:
        n = notify.on_run(node, claims, output, attestation, url=url)
        if n is None:
            return
        console.print(f"[yellow]![/] out of control: notification {n.id} raised to the data's owner", highlight=False)
        try:
            notify.send(node, n.id, peer_client(node.home, url, ca))
            console.print("[green]✓[/] sent; the owner's node stored it (RECEIVED)")
        except QDSNError as e:
            err.print(shown(f"… not delivered yet: {e}; qdsn notify send {n.id} --url {url}"))
    finally:
        node.close()


@jobs_app.command("result")
def jobs_result(
    url: Url,
    job: JobId,
    home: Home,
    out: ResultOut = None,
    nonce: KeptNonce = None,
    ca: CA = None,
    operator: Operator = None,
    operator_ca: OperatorCA = None,
) -> None:
    """Fetch a job's result from the node that ran it and verify its attestation against this node's replica
    — the node's signature, the model published, every input anchored by its owner, the output, and the
    nonce this node asked with — then show the attested results and write the result file."""
    from qdsn.compute import results
    from qdsn.node import requested

    asked = None
    if nonce is None:
        try:
            asked = requested.find(home, job, url)
            nonce = asked["nonce"]
        except NotFound:
            raise NotFound(f"this node did not ask {url} for job {job}, so it knows no nonce to check it against",
                           "give the nonce the job was asked with: --nonce N") from None  # fmt: skip
    node = linked_node(home, operator, operator_ca, writes=False)
    try:
        result = results.from_json(fetch_job(home, url, job, ca, node.home), f"job {job} at {url}")
        if result.output is None:
            raise IntegrityError(f"job {job} at {url} has an attestation but no output")
        c = check_attestation(node, result, nonce)
    finally:
        node.close()
    wrong = ([f"job: the attestation is of job {str(c.get('job'))[:80]}, not {job}"] if c.get("job") != job else []) + (
        requested.mismatches(asked, c) if asked else [])  # fmt: skip
    for why in wrong:
        console.print(shown(f"✗ {why}"), style="red")
    if wrong:
        raise typer.Exit(1)
    render_attestation(c, result.output)
    _notify_run(home, url, c, result.output, result.attestation, ca, operator, operator_ca)
    if out:
        from qdsn.cli.certify import write_whole

        doc = results.JobResult(result.attestation, result.output, job, url.rstrip("/"), nonce).to_json()
        write_whole(out, json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
        console.print(f"[green]✓[/] {out}: the output and its attestation, for qdsn cert issue", highlight=False)


@jobs_app.command("requested")
def jobs_requested(home: Home, as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """The jobs this node asked of other members' nodes, oldest first."""
    from qdsn.node import requested

    NodeHome.open(home, "")  # NotFound, with how to make one, when there is no node at `home`
    found = requested.entries(home)
    if as_json:
        print_json([{k: v for k, v in e.items() if k != "nonce"} for e in found])
        return
    table = Table("job", "node", "model", "dataset", "records", "agreement", "asked")
    for e in found:
        span = f"{e.get('first')}–{int(e.get('first', 0)) + int(e.get('count', 0)) - 1}" if "count" in e else ""
        table.add_row(*map(shown, (e["job"], e["url"], str(e.get("model", "")), str(e.get("dataset", "")), span,
                                   str(e.get("agreement", "")), str(e.get("requested", "")))))  # fmt: skip
    console.print(table if found else "No jobs asked yet.")
