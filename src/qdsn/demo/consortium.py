"""The demo consortium: a regulator operating the log, a certification body and manufacturers,
each a real node with its own home, keystore and ledger replica, telling the story end to end."""

from __future__ import annotations

import base64
import os
import random
import secrets
import shutil
import socket
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import orjson
import uvicorn
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from qdsn import quality
from qdsn.api.app import create_app
from qdsn.api.client import NodeClient
from qdsn.compute import attest, package, sandbox
from qdsn.credentials import sdjwt
from qdsn.crypto import SigningKey, hpke
from qdsn.crypto.encoding import b64url_decode, b64url_encode
from qdsn.data import epcis
from qdsn.data.model import Measurement
from qdsn.data.vault import Vault, vault_chunks, verify_record_proof
from qdsn.demo.ordering import backups, etcd_ordering
from qdsn.errors import QDSNError
from qdsn.graph import divisions, documents
from qdsn.graph.region import draw_map, of_replica
from qdsn.identity import did_key_from_public_key, multikey_from_public_key
from qdsn.ledger import Ledger, merkle, tx
from qdsn.ledger.audit import audit
from qdsn.ledger.checkpoint import Checkpoint, NoteSigner, cosigners_verified, open_checkpoint, sign_note
from qdsn.ledger.ordering.embedded import EmbeddedOrderer
from qdsn.node import Node, NodeHome, certify, jobs, trust
from qdsn.node.consumer import negotiate, receive, transfer
from qdsn.node.follow import follow as follow_operator
from qdsn.node.provider import publish
from qdsn.policy import Request, agreement, decide, negotiation, offer_hash
from qdsn.policy.meter import meters

GREEN = ("activity", "footprints")  # dataset kinds of the low-carbon step, counted apart from quality records
BUILTIN_MODELS = ("process-capability", "spc-stability", "defect-rate", "sampling-compliance", "data-integrity")
MANUFACTURERS = [
    "Zhejiang Cable Works",
    "Jiangsu Valve Co.",
    "Guangdong Appliance Ltd.",
    "Shandong Tire Group",
    "Hubei Steel Pipe Co.",
]
# what the regulator records of each (GB/T 2260 region, GB/T 4754 industry), for the regional graph
PLACES = dict(zip(MANUFACTURERS, ({"region": "330106", "industry": "C3831"}, {"region": "320505", "industry": "C3443"},
                                  {"region": "440606", "industry": "C3851"}, {"region": "370211", "industry": "C2911"},
                                  {"region": "420115", "industry": "C3130"}), strict=True))  # fmt: skip


def follow(replica: Ledger, operator: Ledger) -> int:
    """Pull the entries a replica lacks and validate every one itself; returns how many."""
    leaves = operator.store.leaves(replica.size, operator.size)
    if leaves:
        replica.append([tx.from_leaf(leaf) for leaf in leaves])
    return len(leaves)


def run_demo(console: Console, *, manufacturers: int = 3, keep: Path | None = None) -> None:
    """Build the consortium in a temporary folder (or `keep`) and narrate each step."""
    root = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="qdsn-demo-"))
    given = os.environ.get("QDSN_PASSPHRASE")
    # Thrown away with a temporary consortium; a kept one is sealed under QDSN_PASSPHRASE, or under a new
    # passphrase printed at the end, so that its nodes can be used afterwards.
    passphrase = given or secrets.token_urlsafe(24)
    try:
        _run(console, root, passphrase, min(max(manufacturers, 1), len(MANUFACTURERS)))
    finally:
        if keep is None:
            shutil.rmtree(root, ignore_errors=True)
    if keep is not None:
        console.print(f"\n[bold]Kept[/] in {root}: the nodes regulator/, certifier/ and enterprise-N/.")
        if given:
            console.print("  Their keystores are sealed under your QDSN_PASSPHRASE.")
        else:
            console.print(f"  Their keystores are sealed under the passphrase [bold]{passphrase}[/]", soft_wrap=True)
            console.print("  (keep it: it is shown only now).", highlight=False)
        shown = "your passphrase" if given else passphrase
        console.print(f"  Continue, e.g.: QDSN_PASSPHRASE='{shown}' qdsn ledger status --home {root / 'regulator'}",
                      highlight=False, soft_wrap=True)  # fmt: skip


def _run(console: Console, root: Path, passphrase: str, n: int) -> None:
    t0 = time.perf_counter()
    console.rule("[bold]QDSN demo — a quality data consortium on one machine")

    console.print(
        "\n[bold]1. Identities.[/] Each participant creates a node: an Ed25519 key sealed "
        "under its passphrase (scrypt → AES-256-GCM) and a did:key."
    )
    regulator = NodeHome.init(
        root / "regulator",
        "regulator",
        "Provincial Market Regulation Bureau",
        passphrase,
        origin="qdsn.local/consortium",
    )
    origin = regulator.origin
    certifier = NodeHome.init(
        root / "certifier", "certifier", "China Quality Certification Centre", passphrase, origin=origin
    )
    makers = [
        NodeHome.init(root / f"enterprise-{i}", "enterprise", MANUFACTURERS[i], passphrase, origin=origin)
        for i in range(n + 1)
    ]
    late, makers = makers[-1], makers[:-1]
    members: list[NodeHome] = [certifier, *makers]
    table = Table("role", "name", "DID")
    for node in [regulator, *members]:
        table.add_row(node.role, node.name, node.did)
    console.print(table)

    console.print(
        "\n[bold]2. The ledger.[/] The regulator operates the log (embedded ordering); "
        "it admits every member with a signed identity.register."
    )
    log = regulator.ledger()
    orderer = EmbeddedOrderer(log)
    orderer.submit([regulator.sign("identity.register", m.registration() | PLACES.get(m.name, {})) for m in members])
    replicas = {m.did: m.ledger() for m in members}
    for m in members:
        follow(replicas[m.did], log)
    console.print(
        f"  log {log.origin}: {log.size} entries; every member pulled them and re-validated "
        f"each signature, role and nonce itself."
    )

    console.print("\n[bold]3. Refusals.[/] Bad transactions are refused with a reason and nothing is written:")
    maker = makers[0]
    by_maker = maker.sign("identity.register", late.registration())
    honest = regulator.sign("identity.register", late.registration())
    altered = tx.Envelope(
        honest.type,
        {**honest.payload, "name": "Someone Else"},
        honest.submitter,
        honest.nonce,
        honest.created,
        honest.signature,
    )
    first = log.store.entry(1)
    reused = tx.sign_tx("identity.register", late.registration(), regulator.key(), regulator.did,
                        nonce=tx.from_leaf(first.leaf).nonce)  # fmt: skip
    for label, envs in [
        ("a manufacturer admitting a member", [by_maker]),
        ("a new registration reusing a logged nonce", [reused]),
        ("a registration altered after signing", [altered]),
    ]:
        try:
            orderer.submit(envs)
            console.print(f"  [red]accepted {label}?![/]")
        except QDSNError as e:
            console.print(f"  [green]✓ refused[/] {label}: [dim]{type(e).__name__}: {getattr(e, 'reason', e.what)}[/]")
    size, again = log.size, orderer.submit([tx.from_leaf(first.leaf)])
    same = log.size == size and getattr(again[0], "seq", None) == first.seq
    console.print(f"  [green]✓[/] the same registration sent again is answered with its first receipt (entry "
                  f"{first.seq}) and not written twice: still {log.size} entries" if same
                  else "  [red]a registration sent again was written twice?![/]")  # fmt: skip

    console.print(
        "\n[bold]4. Key rotation.[/] A manufacturer replaces its key; the new key proves "
        "possession and the change is on the ledger."
    )
    prev_mk = multikey_from_public_key(maker.key().verify_key.raw)
    new_mk = maker.rotate_key(lambda env: orderer.submit([env]))
    console.print(f"  {maker.name}: {prev_mk[:20]}… → {new_mk[:20]}…")

    _quality_data(console, maker, certifier, orderer, log)
    _usage_policy(console, maker, certifier, orderer, log)
    _network(console, regulator, certifier, maker, log, replicas, makers)
    _quality_graph(console, root, regulator, log, orderer, makers)

    console.print(
        "\n[bold]11. Checkpoints and witnesses.[/] The regulator signs a C2SP checkpoint; every "
        "member checks it against its own replica and cosigns (tlog-cosignature)."
    )
    note = _checkpoint_round(console, regulator, log, members, replicas, orderer)

    console.print(
        "\n[bold]12. The log grows.[/] More activity, a new checkpoint; witnesses cosign only "
        "after a consistency proof from the checkpoint they cosigned before."
    )
    orderer.submit([honest])
    members.append(late)
    replicas[late.did] = late.ledger()
    console.print(f"  {late.name} joins; its new replica pulls and re-validates all {log.size} entries.")
    note2 = _checkpoint_round(console, regulator, log, members, replicas, orderer)
    cp1 = open_checkpoint(note, regulator.log_signer().verifier())[0]
    cp2 = open_checkpoint(note2, regulator.log_signer().verifier())[0]
    proof2 = log.consistency_proof(cp1.size, cp2.size)
    merkle.verify_consistency(cp1.size, cp2.size, cp1.root, cp2.root, proof2)
    console.print(f"  consistency {cp1.size} → {cp2.size}: {len(proof2)} hashes, [green]verified[/]")

    console.print(
        "\n[bold]13. A verifier with nothing but keys.[/] A buyer got the consortium's trust file once "
        "from a member (qdsn trust export): the log key, the members' cosigner keys, a quorum, a fingerprint "
        "to compare out of band. It trusts no key a checkpoint or bundle brings along, and checks one registration."
    )
    anchor = trust.load(trust.export(replicas[members[0].did]))
    cosigner_keys = list(anchor.cosigners)
    cp, _ = open_checkpoint(note2, anchor.log_key)
    names = cosigners_verified(note2, cosigner_keys)
    if len(names) < anchor.quorum:
        raise QDSNError(f"the checkpoint carries {len(names)} cosignatures, the trust file asks for {anchor.quorum}")
    entry = log.store.entry(txid=log.store.entry(len(members)).txid)
    ip = log.inclusion_proof(entry.seq, cp.size)
    merkle.verify_inclusion(merkle.leaf_hash(entry.leaf), entry.seq, cp.size, ip, cp.root)
    console.print(
        f"  trust file {anchor.fingerprint[:19]}…; checkpoint size {cp.size}: log signature ✓, {len(names)} of "
        f"{len(cosigner_keys)} cosignatures ✓ (quorum {anchor.quorum}), entry {entry.seq} included with "
        f"{len(ip)} hashes ✓"
    )

    console.print(
        "\n[bold]14. A split view is caught.[/] The operator shows a witness a different history "
        "of the same size; the witness refuses to cosign. A forger's own log under the same origin fails "
        "the buyer's trust file."
    )
    fake = sign_note(Checkpoint(log.origin, cp.size, bytes(32)).text(), regulator.log_signer())
    try:
        makers[-1].ledger().witness(fake, regulator.log_signer().verifier(), makers[-1].cosigner(), int(time.time()))
        console.print("  [red]witness cosigned a forged history?![/]")
    except QDSNError as e:
        console.print(f"  [green]✓ refused[/]: [dim]{e.what}[/]")
    forger = NoteSigner(log.origin, SigningKey.generate())  # the same origin, a key of the forger's own
    try:
        open_checkpoint(sign_note(Checkpoint(log.origin, cp.size, bytes(32)).text(), forger), anchor.log_key)
        console.print("  [red]the buyer accepted a checkpoint signed by a stranger?![/]")
    except QDSNError as e:
        console.print(f"  [green]✓ refused[/] by the buyer's trust file: [dim]{e.what}[/]")

    _inspection_plan(console, regulator, log, orderer, replicas[members[0].did])

    console.print("\n[bold]15. Audit.[/] Every replica re-verifies its whole store from zero.")
    table = Table("node", "entries", "root", "state", "ckpts", "result")
    for node, ledger in [(regulator, log), *((m, replicas[m.did]) for m in members)]:
        if ledger is not log:
            follow(ledger, log)
        r = audit(ledger.store, regulator.log_signer().verifier())
        table.add_row(
            node.name,
            str(r.size),
            r.root[:10] + "…",
            r.state_digest[:10] + "…",
            str(r.checkpoints),
            "[green]✓ verified[/]" if r.ok else f"[red]{r.reason}[/]",
        )
    console.print(table)
    _vault_audit(console, makers[0], replicas[makers[0].did])

    etcd_ordering(console, root, [regulator, certifier, makers[0]], {regulator.did: log, **replicas})
    backups(console, root, regulator, makers[0], certifier, log, passphrase)
    console.print(
        Panel.fit(
            f"{len(members) + 1} nodes · {log.size} ledger entries · {len(log.store.checkpoint_notes())} checkpoints · "
            f"{len(log.store.cosignatures())} recorded cosignatures · "
            f"{sum(d.anchored for d in log.state.datasets.values() if d.kind not in GREEN)} anchored quality "
            f"records · {sum(d.anchored for d in log.state.datasets.values() if d.kind in GREEN)} of activity data "
            "and footprints · "
            f"{time.perf_counter() - t0:.1f} s\n"
            'Each node also serves its staff a web console at /console/ (README: "The web console").',
            title="[bold green]consortium verified",
            border_style="green",
        )
    )


def _inspection_plan(console: Console, regulator: NodeHome, log: Ledger, orderer: EmbeddedOrderer,
                     replica: Ledger) -> None:  # fmt: skip
    """The regulator's 双随机 plan: risk classes from the ledger, a committed seed, the draw, anyone's check."""
    from qdsn.supervision import draw, evidence, risk

    console.rule("[bold]Risk-based inspection (双随机, 一公开)")
    console.print("  The district's other manufacturers are registered too (no nodes of their own), with the "
                  "sampling-inspection results of the last two years; a risk class A–D follows for each from the "
                  "ledger's evidence, every factor's contribution shown.")  # fmt: skip
    rng = random.Random(21)
    today = datetime.now(UTC).date()

    def did_key(k: SigningKey) -> str:
        return did_key_from_public_key(k.verify_key.raw)

    firms = [SigningKey.generate() for _ in range(36)]
    orderer.submit([
        regulator.sign("identity.register", {
            "did": did_key(k), "role": "enterprise", "name": f"西湖区企业 {i + 1:02d}", "region": "330106",
            "key": multikey_from_public_key(k.verify_key.raw), "industry": rng.choice(["C3831", "C3872", "C2110"])})
        for i, k in enumerate(firms)
    ])  # fmt: skip
    results = []
    for i, k in enumerate(firms):
        prone = i % 6 == 0  # one firm in six keeps failing
        for _ in range(rng.choice([1, 2, 3] if prone else [0, 1, 2, 2, 3])):
            day = today - timedelta(days=rng.randint(30, 700))
            results.append(regulator.sign("inspection.result", {
                "enterprise": did_key(k), "product": "聚氯乙烯绝缘电缆 BV 2.5mm²", "standard": "GB/T 5023.3-2008",
                "passed": rng.random() > (0.7 if prone else 0.08), "date": day.isoformat()}))  # fmt: skip
    orderer.submit(results)
    assessed = risk.assess_all(evidence.read(log, today), today)
    counts = {c: sum(a.risk_class == c for a in assessed.values()) for c in "ABCD"}
    console.print(f"  {len(assessed)} enterprises, {len(results)} results on the ledger: classes "
                  + ", ".join(f"{c} {n}" for c, n in counts.items()))  # fmt: skip
    worst = max(assessed.values(), key=lambda a: a.score)
    console.print(f"  the riskiest, {log.state.identities[worst.enterprise].name}, explained:")
    for line in risk.explain(worst):
        console.print(f"  [dim]{line}[/]", highlight=False)

    seed = draw.new_seed()
    plan = draw.plan_payload(log, "XH-2026-01", "电线电缆 西湖区 2026 年第一批", seed, as_of=today, count=6,
                             inspectors=[f"执法 {i:02d}" for i in range(1, 9)], per_inspection=2)  # fmt: skip
    (committed,) = orderer.submit([regulator.sign("inspection.plan", plan)])
    console.print(f"  plan XH-2026-01 committed (entry {committed.seq}): SHA-256 of its secret seed "
                  f"{plan['commitment'][:24]}…, the population of {plan['population']} with its hash, weights "
                  f"A=1 B=2 C=4 D=8, 6 to draw, 2 of 8 inspectors each")  # fmt: skip
    try:
        orderer.submit([regulator.sign("inspection.draw", draw.draw_payload(log, "XH-2026-01", seed)
                                       | {"seed": draw.new_seed()})])  # fmt: skip
        console.print("  [red]a reveal of another seed was accepted?![/]")
    except QDSNError as e:
        console.print(f"  [green]✓ refused[/] a reveal of another seed: [dim]{e.what}[/]")
    revealed, classes = draw.reveal(log, "XH-2026-01", seed)
    (drawn,) = orderer.submit([regulator.sign("inspection.draw", revealed)])
    table = Table("#", "enterprise", "class", "inspectors", title=f"drawn (entry {drawn.seq}), seed {seed[:16]}…")
    for i, did in enumerate(revealed["selection"]):
        table.add_row(str(i + 1), log.state.identities[did].name, classes[did], ", ".join(revealed["inspectors"][i]))
    console.print(table)
    follow(replica, log)
    verdict = draw.verify(replica, "XH-2026-01")
    console.print(f"  {'[green]✓' if verdict.ok else '[red]✗'}[/] a member re-runs the draw on its own replica: "
                  f"{verdict.message}", highlight=False)  # fmt: skip
    pop = [[d, a.risk_class] for d, a in sorted(assessed.items())]
    tally = dict.fromkeys((d for d, _ in pop), 0)
    runs = 2000
    for _ in range(runs):  # the same plan drawn with fresh seeds: how often each class is chosen
        for did in draw.draw(draw.new_seed(), committed.txid, pop, plan["weights"], plan["count"]).selection:
            tally[did] += 1
    rates = Table("class", "firms", "drawn per plan", "uniform 双随机", title=f"{runs} re-draws of the same plan")
    for c in "ABCD":
        members_ = [d for d, k in pop if k == c]
        if members_:
            rate = sum(tally[d] for d in members_) / runs / len(members_)
            rates.add_row(c, str(len(members_)), f"{rate:.0%}", f"{plan['count'] / len(pop):.0%}")
    console.print(rates)
    console.print("  the riskiest firms are drawn more often, and every firm can be: the draw stays random, its "
                  "seed fixed before and published after (一公开).")  # fmt: skip


def _quality_graph(console: Console, root: Path, regulator: NodeHome, log: Ledger, orderer: EmbeddedOrderer,
                   makers: Sequence[NodeHome]) -> None:  # fmt: skip
    """The regulator's regional graph answers a recall: a supplier's batch, to the makers and certificates
    downstream; and draws the region's map."""
    console.rule("[bold]The regional quality graph (区域质量图谱)")
    if len(makers) < 2:
        console.print("  (needs two manufacturers: run the demo with --manufacturers 2 or more)")
        return
    supplier, maker, *others = makers
    supplier, maker = maker, supplier  # the certified cable works buys from the valve maker
    log.refresh()
    relations = [supplier.sign("supply.relation", {"supplier": supplier.did, "customer": maker.did,
                                                   "product": "copper rod"})]  # fmt: skip
    relations += [maker.sign("supply.relation", {"supplier": maker.did, "customer": o.did, "product": "cable"})
                  for o in others]  # fmt: skip
    orderer.submit(relations)
    batch = "urn:epc:class:lgtin:6901234.000123.L2026-11"
    shipped = {"type": "ObjectEvent", "eventTime": "2026-11-02T08:00:00Z", "eventTimeZoneOffset": "+08:00",
               "action": "OBSERVE", "bizStep": "shipping", "epcList": [],
               "quantityList": [{"epcClass": batch, "quantity": 500, "uom": "KGM"}],
               "sourceList": [{"type": "owning_party", "source": supplier.did}],
               "destinationList": [{"type": "owning_party", "destination": maker.did}]}  # fmt: skip
    doc = {"@context": [epcis.CONTEXT], "type": "EPCISDocument", "schemaVersion": "2.0",
           "creationDate": "2026-11-02T08:00:00Z", "epcisBody": {"eventList": [shipped]}}  # fmt: skip
    documents.save(regulator.path, doc, supplier.did)
    console.print(
        f"  {supplier.name} and {maker.name} declare their supply relations on the ledger "
        f"(supply.relation); {supplier.name} shares the EPCIS shipping event of batch {batch}."
    )
    g = of_replica(log.store, regulator.path)
    s = g.summary()
    console.print(
        f"  the regulator's graph folds {s['entries']} entries: {s['enterprises']} enterprises, "
        f"{s['certificates']} certificates, {s['relations']} supply relations, {s['batches']} batch"
    )
    impact = g.recall(batch)
    table = Table("downstream maker 下游企业", "region 地区", "certificates 证书 (status)",
                  title=f"recall of {supplier.name}'s batch: {len(impact.enterprises)} makers")  # fmt: skip
    for e in impact.enterprises:
        held = [f"{c['id']} ({c['status']})" for c in impact.certificates if c["subject"] == e["did"]]
        place = f"{e['region']} {divisions.name(e['region'])}" if e["region"] else ""
        table.add_row(e["name"], place, ", ".join(held) or "none")
    console.print(table)
    svg, level, _ = draw_map(g, "coverage")
    path = root / "regional-quality-map.svg"
    path.write_text(svg, encoding="utf-8")
    console.print(f"  [green]✓[/] map of certification coverage by {level} (tile grid, no boundaries; kept with "
                  f"`qdsn demo --keep DIR`): {path}",
                  highlight=False)  # fmt: skip


def _quality_data(
    console: Console, maker: NodeHome, certifier: NodeHome, orderer: EmbeddedOrderer, log: Ledger
) -> None:
    console.print(
        "\n[bold]5. Quality data stays home.[/] The manufacturer declares a dataset on the ledger, seals "
        "its line's readings in its own vault and anchors each batch's root; the ledger holds only "
        "the commitment (确权)."
    )
    dataset = "zj-line-1-resistance"
    rng = random.Random(2026)
    readings = [
        Measurement.model_validate(
            {
                "characteristic": "conductor resistance",
                "value": round(rng.gauss(17.6, 0.10), 3),
                "time": f"2026-03-01T{8 + i // 60:02d}:{i % 60:02d}:00+08:00",
                "device": "ohmmeter-3",
                "lot": f"L0301-{i // 50 + 1}",
                "subgroup": i // 5,
            }
        ).model_dump(mode="json", exclude_none=True)
        for i in range(200)
    ]
    vault = maker.vault()
    vault.create(dataset, "measurements")
    orderer.submit(
        [
            maker.sign(
                "dataset.declare",
                {
                    "dataset": dataset,
                    "title": "Line 1 conductor resistance, BV 2.5 mm²",
                    "kind": "measurements",
                    "characteristics": [
                        {"name": "conductor resistance", "unit": "Ω/km", "usl": 18.1, "critical": True}
                    ],
                },
            )
        ]
    )
    for start in (0, 100):
        batch = vault.add_batch(dataset, readings[start : start + 100])
        receipt = orderer.submit([maker.sign("dataset.anchor", batch.anchor_payload())])[0]
        vault.mark_anchored(batch, receipt.txid)  # type: ignore[union-attr]
        console.print(
            f"  records {batch.first}–{batch.first + batch.count - 1}: root {batch.root.hex()[:16]}… "
            f"anchored in ledger entry {receipt.seq}"
        )  # type: ignore[union-attr]
    stored = b"".join(r.sealed for r in _sealed(vault, dataset))
    console.print(
        f"  the vault holds {len(stored):,} bytes of AES-256-GCM ciphertext; "
        f"'17.6' appears in it {stored.count(b'17.6')} times"
    )
    proof = vault.prove(dataset, 142)
    anchored = next(
        bytes.fromhex(e.payload["root"])
        for e in map(tx.from_leaf, log.store.leaves(0, log.size))
        if e.type == "dataset.anchor" and e.payload["first"] == proof.first
    )
    record = verify_record_proof(proof, anchored)
    console.print(
        f"  {certifier.name} checks reading 142 ({record['value']} Ω/km) against the anchored root: "
        f"✓ ({len(proof.proof)} hashes)"
    )
    lowered = str(round(record["value"] - 0.3, 3))
    altered = replace(proof, leaf=proof.leaf.replace(str(record["value"]).encode(), lowered.encode()))
    try:
        verify_record_proof(altered, anchored)
        console.print("  [red]an altered reading verified?![/]")
    except QDSNError as e:
        console.print(f"  [green]✓ refused[/] the same reading changed to {lowered}: [dim]{e.what}[/]")
    lot = [r for r in vault.records(dataset) if r.get("lot") == "L0301-1"]
    events = epcis.export(lot, "measurements", dataset, sender=maker.did)["epcisBody"]["eventList"]
    console.print(
        f"  for a buyer's traceability system it exports lot L0301-1 as {len(events)} GS1 EPCIS 2.0 events "
        f"({len(lot)} sensor reports), checked against GS1's EPCIS JSON Schema"
    )
    values = [r["value"] for r in vault.records(dataset)]
    chart = quality.xbar_r(quality.subgroup(values, 5))
    cap = quality.capability(quality.subgroup(values, 5), usl=18.1)
    ci = cap.intervals["cpk"]
    console.print(
        f"  at home its quality engineer charts the line: X̄-R over {chart.statistic.size} subgroups, "
        f"center {chart.center:.3f}, limits {chart.lcl:.3f}–{chart.ucl:.3f}, "
        f"{len(chart.out_of_control)} points breaking a Nelson rule; "
        f"Cpk {cap.cpk:.2f} (95 % {ci.low:.2f}–{ci.high:.2f}) against USL 18.1"
    )
    # the plant historian's year at one reading every 30 s, drawn like the line's own readings
    history = np.random.default_rng(30).normal(chart.center, chart.sigma, 365 * 24 * 120)
    took = time.perf_counter()
    year = quality.imr(history)
    flagged = year.violations.indices().size
    year_cap = quality.capability(year, usl=18.1)  # of the chart: its sums serve again
    took = time.perf_counter() - took
    console.print(
        f"  and the plant historian's last year, {history.size:,} readings: I-MR with all eight Nelson rules "
        f"and capability (Cpk {year_cap.cpk:.2f}) in {took * 1e3:.0f} ms; {flagged:,} points flagged "
        f"({flagged / history.size:.1%}: at that length even a stable line trips a run rule now and then)"
    )


def _usage_policy(
    console: Console, maker: NodeHome, certifier: NodeHome, orderer: EmbeddedOrderer, log: Ledger
) -> None:
    console.print(
        "\n[bold]6. Usage policy and contract.[/] The manufacturer publishes an ODRL offer for its dataset "
        "and puts its hash on the ledger; the certification centre negotiates (Dataspace Protocol); "
        "every use is decided by the policy, recorded on the ledger and metered (可控可计量)."
    )
    dataset = "zj-line-1-resistance"
    offer = {
        "@context": "http://www.w3.org/ns/odrl.jsonld", "@type": "Offer", "uid": f"urn:qdsn:offer:{dataset}:1",
        "profile": "urn:qdsn:odrl:profile:v1", "assigner": maker.did, "target": f"urn:qdsn:dataset:{dataset}",
        "permission": [{
            "action": "compute", "assignee": certifier.did,
            "constraint": [
                {"leftOperand": "purpose", "operator": "eq", "rightOperand": "certification"},
                {"leftOperand": "count", "operator": "lteq", "rightOperand": 2},
            ],
            "duty": [{"action": "compensate", "refinement": [
                {"leftOperand": "payAmount", "operator": "eq", "rightOperand": 120, "unit": "CNY"}]}],
        }],
    }  # fmt: skip
    orderer.submit([maker.sign("policy.set", {"dataset": dataset, "offer": offer["uid"], "hash": offer_hash(offer)})])
    n = negotiation.start("ContractRequestMessage", "consumer", "urn:uuid:p-1", "urn:uuid:c-1", offer)
    contract = agreement(offer, certifier.did, "urn:qdsn:agreement:zj-1")
    n = negotiation.step(n, "ContractAgreementMessage", "provider", agreement=contract)
    n = negotiation.step(n, "ContractAgreementVerificationMessage", "consumer")
    n = negotiation.step(n, "ContractNegotiationEventMessage:FINALIZED", "provider")
    console.print(
        f"  negotiation {' → '.join(h[3] for h in n.history)}; the agreement names offer "
        f"{offer['uid']} by its hash {offer_hash(offer)[:16]}…"
    )
    now = datetime.now(UTC)
    asks = [("certification", 0), ("marketing", 1), ("certification", 1), ("certification", 2)]
    decisions = []
    for i, (purpose, uses) in enumerate(asks):
        req = Request(
            "compute", certifier.did, now + timedelta(minutes=i), role="certifier", purpose=purpose, uses=uses
        )
        d = decide(contract, req)
        decisions.append(
            maker.sign("access.decision", d.payload(dataset, req, "use", agreement=contract["uid"], records=200))
        )
        verdict = "[green]allowed[/]" if d.allowed else f"[yellow]denied[/] [dim]({d.reason})[/]"
        console.print(f"  use {i + 1}, purpose {purpose}: {verdict}")
    orderer.submit(decisions)
    (m,) = meters(tx.from_leaf(x) for x in log.store.leaves(0, log.size))
    console.print(
        f"  meter from the ledger: {m.uses} uses, {m.denied} denied, {m.records} records touched, "
        f"{m.charges.get('CNY', 0):.0f} CNY due"
    )


def _network(
    console: Console,
    regulator: NodeHome,
    certifier: NodeHome,
    maker: NodeHome,
    log: Ledger,
    replicas: dict[str, Ledger],
    makers: Sequence[NodeHome] = (),
) -> None:
    console.print(
        "\n[bold]7. The network.[/] Each node now serves its API on loopback; every request between nodes is "
        "signed (RFC 9421) with the sender's DID key. The regulator's node operates the log; the others submit "
        "to it and follow it. The data itself leaves only sealed (可用不可见)."
    )
    servers: list[tuple[uvicorn.Server, threading.Thread]] = []
    operator = Node(regulator, operator=True, ledger=log)
    reg_url = _serve(operator, servers)

    def member(home: NodeHome) -> tuple[Node, str]:
        node = Node(home, operator=False, link=NodeClient(reg_url, home.key(), home.did), ledger=replicas[home.did])
        return node, _serve(node, servers)

    (lab, lab_url), (plant, plant_url) = member(certifier), member(maker)
    try:
        dataset = "zj-line-1-resistance"
        offer = {
            "@context": "http://www.w3.org/ns/odrl.jsonld", "@type": "Offer", "uid": f"urn:qdsn:offer:{dataset}:read",
            "profile": "urn:qdsn:odrl:profile:v1", "assigner": maker.did, "target": f"urn:qdsn:dataset:{dataset}",
            "permission": [{
                "action": "read", "assignee": certifier.did,
                "constraint": [{"leftOperand": "purpose", "operator": "eq", "rightOperand": "certification"},
                               {"leftOperand": "count", "operator": "lteq", "rightOperand": 1}],
                "duty": [{"action": "compensate", "refinement": [
                    {"leftOperand": "payAmount", "operator": "eq", "rightOperand": 300, "unit": "CNY"}]}],
            }],
        }  # fmt: skip
        publish(plant, dataset, offer)
        to_plant = NodeClient(plant_url, certifier.key(), certifier.did)
        (ds,) = to_plant.call("POST", "/catalog/request", {})["dcat:dataset"]
        shown = next(o for o in ds["odrl:hasPolicy"] if o["uid"] == offer["uid"])
        contract = negotiate(to_plant, shown)
        console.print(
            f"  {certifier.name} reads the DCAT catalog at {plant_url} ({ds['qdsn:anchoredRecords']} anchored "
            f"records), negotiates {shown['uid']} over DSP and holds agreement {contract['uid'][:30]}…"
        )
        t = transfer(to_plant, contract["uid"], "sealed-delivery", purpose="certification",
                     records={"first": 0, "count": 150})  # fmt: skip
        endpoint = t["dspace:dataAddress"]["dspace:endpoint"]
        wire = to_plant.request("POST", endpoint)
        lab.catch_up()
        records = receive(lab.ledger, certifier.key(), certifier.did, wire.json())
        console.print(
            f"  sealed delivery {t['dspace:state'].removeprefix('dspace:')}: {len(wire.content):,} bytes of HPKE "
            f"ciphertext ({hpke.SUITE}); '17.6' appears {wire.content.count(b'17.6')} times on the wire"
        )
        mean = statistics.fmean(r["record"]["value"] for r in records)
        console.print(
            f"  the certifier opened {len(records)} readings with its own key and proved each against the batch "
            f"roots anchored in its own replica ✓ (mean {mean:.3f} Ω/km)"
        )
        try:
            to_plant.call("POST", endpoint)
            console.print("  [red]a second delivery beyond the count was allowed?![/]")
        except QDSNError as e:
            console.print(f"  a second delivery: [green]✓ refused[/] [dim]({e.what.split(': ', 1)[-1]})[/]")
        theirs = to_plant.call("GET", f"/usage?agreement={contract['uid']}")
        mine = NodeClient(plant_url, maker.key(), maker.did).call("GET", f"/usage?agreement={contract['uid']}")
        (m,) = mine["meters"]
        same = "✓" if mine == theirs else "[red]✗[/]"
        console.print(
            f"  GET /usage gives the certifier and the manufacturer the same figures ({same}): "
            f"{m['uses']} use, {m['denied']} denied, {m['records']} records, "
            f"{mine['invoice']['totals'].get('CNY', 0):.0f} CNY due — all read off the ledger"
        )
        ask, contract, result = _model_to_data(console, certifier, maker, lab, plant, to_plant)
        _certificate(console, certifier, maker, lab, lab_url, plant, reg_url, ask, contract, result)
        _quality_notification(console, lab, plant, plant_url, operator)
        _regulator_actions(console, operator, certifier, maker, lab, lab_url, plant, reg_url, result)
        _low_carbon(console, certifier, maker, lab, lab_url, plant, to_plant, reg_url)
        others = [Node(m, operator=False, link=NodeClient(reg_url, m.key(), m.did), ledger=replicas[m.did])
                  for m in makers if m.did != maker.did]  # fmt: skip
        try:
            if others:
                _regional_figure(console, operator, certifier.did, lab_url, reg_url, [plant, *others])
                _federated_t2(console, operator, certifier.did, lab_url, reg_url, [plant, *others])
        finally:
            for o in others:
                o.close()
    finally:
        for server, thread in servers:
            server.should_exit = True
            thread.join(timeout=10)
        for node in (operator, lab, plant):
            node.close()


def _regional_figure(console: Console, regulator: Node, leader: str, lab_url: str, reg_url: str,
                     reporters: list[Node]) -> None:  # fmt: skip
    """The regulator publishes a regional figure no one of whose makers' values it (or any aggregator) sees."""
    from qdsn.clock import format_time
    from qdsn.privacy import aggregator, collect, reporter
    from qdsn.privacy.task import vdaf_of

    console.print(
        "\n[bold]10b. Regional statistics (可用不可见).[/] The regulator puts a task on the ledger: each maker's "
        "nonconforming units this month, summed with Prio3 (draft-irtf-cfrg-vdaf). The certification centre leads "
        "and the regulator helps: each gets one secret share of every report and a validity proof, never a value."
    )
    task = "region-nonconforming-units"
    spec = {"task": task, "title": "Nonconforming units this month, the region's cable and valve makers",
            "vdaf": "Prio3Sum", "params": {"max_measurement": 400}, "leader": leader, "leader_url": lab_url,
            "helper": regulator.did, "helper_url": reg_url, "collector": regulator.did,
            "reporters": [r.did for r in reporters], "attributes": {},
            "start": format_time(datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)),
            "period": 30 * 86400, "min_batch": len(reporters), "epsilon": 4.0, "budget": 12.0}  # fmt: skip
    regulator.submit([regulator.home.sign("aggregate.task", spec)])
    dishonest = reporters[0]
    t = aggregator.task_of(dishonest, task)
    forged = [5000] + [0] * (vdaf_of(t).flp.MEAS_LEN - 1)  # a "bit" of 5000: a value far beyond 400
    store = aggregator.open_store(dishonest.home)
    try:
        reporter.send(dishonest, store, task, None, NodeClient(lab_url, dishonest.home.key(), dishonest.did),
                      encoded=forged)  # fmt: skip
        console.print("  [red]an out-of-range report was accepted?![/]")
    except QDSNError as e:
        console.print(f"  {dishonest.home.name} forges an out-of-range report: [green]✓ refused[/] by both "
                      f"aggregators [dim]({e.what.split(': ', 2)[-1]})[/]")  # fmt: skip
    finally:
        store.close()
    values = [random.randint(20, 400) for _ in reporters]
    for node, value in zip(reporters, values, strict=True):
        store = aggregator.open_store(node.home)
        got = reporter.send(node, store, task, value, NodeClient(lab_url, node.home.key(), node.did))
        store.close()
        console.print(f"  {node.home.name} reports {value} (known only to itself): report {got['id'][:12]}… "
                      "verified by both aggregators ✓")  # fmt: skip
    fig = collect.collect(regulator, task, 0, NodeClient(lab_url, regulator.home.key(), regulator.did))
    scale = t.sensitivity() / fig.epsilon
    console.print(f"  the regulator collects: [bold]{fig.result}[/] nonconforming units from {fig.count} makers "
                  f"(true total {sum(values)}; discrete Laplace noise of scale {scale:g} from each aggregator "
                  f"through OpenDP, epsilon {fig.epsilon:g}, {fig.spent:g} of {fig.budget:g} spent on the ledger). "
                  f"With three makers the noise is of the size of one maker's value — that is what hides each; "
                  f"over a region's hundreds of makers it is a few per cent of the total.")  # fmt: skip
    helper_store = aggregator.open_store(regulator.home)
    shares = helper_store.batch(task, 0)
    helper_store.close()
    v = vdaf_of(t)
    held = [v.decode_agg_share(a.out_share)[0] for a in shares]
    shown = ", ".join(f"{h:,}" for h in held[:3])
    console.print(f"  what the regulator's node (the helper) holds of each maker: {shown} — random field elements, "
                  f"none of them a maker's value {sorted(values)} ✓")  # fmt: skip
    store = aggregator.open_store(reporters[1].home)
    inc = reporter.prove(reporters[1], store, task, 0, NodeClient(lab_url, reporters[1].home.key(), reporters[1].did))
    store.close()
    console.print(
        f"  aggregate.batch on the ledger: {fig.count} reports under root {fig.root[:16]}…; "
        f"{reporters[1].home.name} proves its report is leaf {inc.index} with {len(inc.proof)} hashes ✓"
    )


def _federated_t2(console: Console, regulator: Node, leader: str, lab_url: str, reg_url: str,
                  makers: list[Node]) -> None:  # fmt: skip
    """A Hotelling T² model trained across the makers without their rows leaving them: each sends the
    statistics of its own rows (n, Σx, Σxxᵀ on a grid named on the ledger) through Prio3SumVec; the
    collector gets the model of all rows together, exactly as if it had pooled them."""
    from qdsn.clock import format_time
    from qdsn.compute import params
    from qdsn.privacy import aggregator, collect, federated, reporter
    from qdsn.quality import multivariate as mv

    console.rule("[bold]10c. A T² model trained across makers (联合建模, 数据不出域)")
    names = ["diameter_mm", "tension_N", "temperature_C"]
    enc = federated.encoding(names, [1.0, 100.0, 150.0], [3.0, 300.0, 250.0])
    task = "cable-t2-model"
    spec = {"task": task, "title": "Hotelling T² of conductor diameter, tension and temperature, three makers",
            "vdaf": "Prio3SumVec", "params": federated.task_params(enc), "leader": leader, "leader_url": lab_url,
            "helper": regulator.did, "helper_url": reg_url, "collector": regulator.did,
            "reporters": [m.did for m in makers], "attributes": {},
            "start": format_time(datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)),
            "period": 30 * 86400, "min_batch": len(makers), "epsilon": 1.0, "budget": 1.0, "noise": "none",
            "encoding": enc}  # fmt: skip
    regulator.submit([regulator.home.sign("aggregate.task", spec)])
    console.print(f"  task {task} on the ledger: Prio3SumVec of {spec['params']['length']} numbers — n, Σx and "
                  f"Σxxᵀ of {len(names)} variables on a {enc['bits']}-bit grid, each sum as 32-bit digits; no "
                  "noise, the model is the makers' own")  # fmt: skip
    rng = np.random.default_rng(23)
    mix = np.array([[0.02, 0, 0], [18.0, 6.0, 0], [2.0, 3.0, 6.0]])  # tension follows the diameter
    rows = [np.array([2.0, 200.0, 200.0]) + rng.normal(size=(m, 3)) @ mix.T for m in (300, 500, 400)]
    t = aggregator.task_of(makers[0], task)
    for node, x in zip(makers, rows, strict=True):
        store = aggregator.open_store(node.home)
        try:
            got = reporter.send(node, store, task, federated.measurement(t, x),
                                NodeClient(lab_url, node.home.key(), node.did))  # fmt: skip
        finally:
            store.close()
        console.print(f"  {node.home.name}: {len(x)} rows stay in its vault; its statistics go as report "
                      f"{got['id'][:12]}…, secret-shared between the two aggregators ✓")  # fmt: skip
    fig = collect.collect(regulator, task, 0, NodeClient(lab_url, regulator.home.key(), regulator.did))
    model = federated.model(t, list(fig.result))  # type: ignore[arg-type]
    pooled = mv.fit_t2(np.vstack(rows))  # what pooling the raw rows would give
    gap = max(float(np.abs(model.mean - pooled.mean).max()), float(np.abs(model.cov - pooled.cov).max()))
    blob = params.dump_arrays(model.arrays())
    console.print(f"  the regulator collects the model of {model.n} rows from {fig.count} makers: UCL {model.ucl:.3f} "
                  f"(phase II, F distribution, α = {model.alpha}); largest difference from the model of the pooled "
                  f"rows {gap:.1e} ✓ — parameters {params.digest(blob)[:16]}… (.npz, no pickle)")  # fmt: skip
    # the diameter 2σ up: with the tension that goes with it, usual; with the usual tension, a signal
    score = model.score(np.array([[2.04, 236.0, 204.0], [2.04, 200.0, 200.0]]))
    verdict = "> UCL: a signal no single-variable chart gives ✓" if score[1] > model.ucl else "≤ UCL ?!"
    console.print(f"  phase II at a maker: diameter 2σ up with its tension 2σ up scores T² {score[0]:.1f} ≤ UCL ✓; "
                  f"the same diameter at the usual tension scores {score[1]:.1f} {verdict}")  # fmt: skip


def _model_to_data(
    console: Console, certifier: NodeHome, maker: NodeHome, lab: Node, plant: Node, to_plant: NodeClient
) -> tuple[Callable[..., dict], str, dict]:
    isolation = "bwrap" if sandbox.bwrap_works() is None else "process"
    console.print(
        "\n[bold]8. The model moves, the data stays (数据不动模型动).[/] The certification centre publishes its "
        "certification models on the ledger and sends them to the manufacturer's data; the manufacturer reads a "
        "model and approves it, or has pre-approved its code hash in the offer; it runs in the manufacturer's "
        "sandbox, and only the declared result leaves, with an attestation."
    )
    if isolation == "process":
        console.print(
            f"  [yellow]![/] {sandbox.bwrap_works()}: this demo runs the model with --isolation=process, which "
            "a real node refuses unless its owner chooses it (apt-get install bubblewrap)"
        )
    plant.isolation = isolation
    models = {}
    for name in BUILTIN_MODELS:
        blob, m = package.load(package.builtin(name))
        models[name] = (blob, package.code_hash(blob))
        lab.submit([certifier.sign("model.publish", {"model": m.id, "version": m.version, "hash": models[name][1],
                                                     "manifest": m.model_dump(mode="json")})])  # fmt: skip
    console.print(f"  published on the ledger: {', '.join(BUILTIN_MODELS)}")
    dataset = "zj-line-1-resistance"
    base = {
        "@context": "http://www.w3.org/ns/odrl.jsonld", "@type": "Offer", "profile": "urn:qdsn:odrl:profile:v1",
        "assigner": maker.did, "target": f"urn:qdsn:dataset:{dataset}",
    }  # fmt: skip
    purpose = {"leftOperand": "purpose", "operator": "eq", "rightOperand": "certification"}
    trusted = [models["spc-stability"][1], models["data-integrity"][1]]  # the owner pre-approves these two
    offers = [
        base | {"uid": f"urn:qdsn:offer:{dataset}:compute", "permission": [
            {"action": "compute", "assignee": certifier.did, "constraint": [purpose]}]},
        base | {"uid": f"urn:qdsn:offer:{dataset}:preapproved", "permission": [
            {"action": "compute", "assignee": certifier.did, "constraint": [
                purpose, {"leftOperand": "qdsn:modelHash", "operator": "isAnyOf", "rightOperand": trusted}]}]},
    ]  # fmt: skip
    for o in offers:
        publish(plant, dataset, o)
    contract, standing = (negotiate(to_plant, o)["uid"] for o in offers)

    def ask(name: str, agreement: str, parameters: dict, nonce: str, first: int = 0, count: int = 200) -> dict:
        return to_plant.call("POST", "/jobs", {
            "agreementId": agreement, "archive": base64.b64encode(models[name][0]).decode(), "nonce": nonce,
            "purpose": "certification", "parameters": parameters,
            "datasets": [{"dataset": dataset, "first": first, "count": count}],
        })  # fmt: skip

    nonce = secrets.token_urlsafe(16)
    job = ask("process-capability", contract, {"threshold": 1.33}, nonce)
    files = jobs.source(plant, job["id"])
    console.print(
        f"  process-capability (code hash {models['process-capability'][1][:16]}…): job {job['state']} — the "
        f"manufacturer reads {', '.join(p for p, _ in files)} and approves"
    )
    jobs.approve(plant, job["id"])
    seen = to_plant.call("GET", f"/jobs/{job['id']}")
    out = seen["result"]["output"]
    (c,) = out["characteristics"]
    where = isolation if isolation != "bwrap" else (
        f"bwrap — an unprivileged user, a seccomp filter, a fresh keyring, its own cgroup holding the whole run to "
        f"{sandbox.DEFAULT.memory >> 30} GiB and {sandbox.DEFAULT.cpu_seconds} CPU-seconds —")  # fmt: skip
    console.print(
        f"  ran under {where} in {seen['result']['seconds']:.0f} s (whole seconds) on 200 anchored readings: "
        f"{'[green]pass[/]' if out['pass'] else '[red]fail[/]'} — {c['name']}: Cpk {c['cpk']:.2f}, 95 % lower "
        f"bound {c['cpk_lower']:.2f} {'≥' if c['pass'] else '<'} {out['threshold']}; no reading left the plant"
    )
    lab.catch_up()
    claims = attest.verify(seen["result"]["attestation"], lab.ledger, output=out, nonce=nonce)
    console.print(
        f"  the certifier checks the attestation against its own replica: node signature ✓, model published ✓, "
        f"{len(claims['inputs'][0]['batches'])} input batches anchored by the owner ✓, output and nonce ✓; "
        f"binding {claims['binding'][:16]}… (compute.attest on the ledger)"
    )
    table = Table("model (pre-approved by its hash)", "job", "verdict", "indicators that leave", "attestation")
    for name, parameters in (("spc-stability", {"last": 20}), ("data-integrity", {"interval_seconds": 60})):
        nonce = secrets.token_urlsafe(16)
        run = ask(name, standing, parameters, nonce)
        out = run["result"]["output"]
        attest.verify(run["result"]["attestation"], (lab.catch_up(), lab.ledger)[1], output=out, nonce=nonce)
        if name == "spc-stability":
            broken = sum(sum(x["violations"].values()) for x in out["characteristics"])
            shown = f"{broken} Nelson 1–4 violations in the last 20 subgroups"
        else:
            shown = (f"completeness {out['completeness']:.0%}, longest gap {out['max_gap_seconds']:.0f} s, "
                     f"{out['signed']:.0%} device-signed")  # fmt: skip
        table.add_row(name, run["state"], "[green]pass[/]" if out["pass"] else "[red]fail[/]",
                      shown, "[green]✓ verified[/]")  # fmt: skip
    console.print(table)
    return ask, contract, seen["result"]


def _certificate(
    console: Console, certifier: NodeHome, maker: NodeHome, lab: Node, lab_url: str, plant: Node, reg_url: str,
    ask: Callable[..., dict], contract: str, result: dict,
) -> None:  # fmt: skip
    console.print(
        "\n[bold]9. The digital certificate.[/] From the verified, passing attestation the certification centre "
        "issues an SD-JWT VC quality certificate bound to the manufacturer's key, with a random entry in its "
        "status list; a buyer sees only what the manufacturer discloses and checks everything down to the data."
    )
    _, note = follow_operator(certifier, lab.ledger, lab.link)  # cosign the checkpoint the evidence will sit under
    uri = f"{lab_url}/status-lists/1"
    certify.status_lists(lab).create(uri)
    number = "CQC-2026-0001"
    subject = certify.Subject(number, ["GB/T 5023.3-2008", "IEC 60227-3"], "PVC-insulated cable", "BV 2.5 mm²",
                              "Hangzhou plant 1", credit_code="91330100MA2B3C4D5E")  # fmt: skip
    certify.issue(lab, result, subject, uri, note=note)
    (sd,) = NodeClient(lab_url, maker.key(), maker.did).call("GET", "/credentials")["credentials"]
    parts = sdjwt.parse(sd)
    console.print(
        f"  certificate {number}: {len(sd):,} characters, {len(parts.disclosures)} selectively disclosable claims "
        f"(indicators, site, credit code, volumes, the run's output); credential.issue puts its hash and status "
        f"entry on the ledger"
    )
    buyer = "did:web:buyer.example"
    verifier = NodeClient(reg_url, maker.key(), maker.did)

    def check() -> dict:
        nonce = secrets.token_urlsafe(12)
        shown = sdjwt.present(sd, ["indicators", "evidence.attestations[].output"], maker.key(), aud=buyer, nonce=nonce)
        return verifier.call("POST", "/verify", {"presentation": shown, "aud": buyer, "nonce": nonce, "quorum": 1},
                             signed=False)  # fmt: skip

    table = Table("a buyer verifies, through POST /verify", "", "detail")
    for c in check()["checks"]:
        table.add_row(c["name"], "[red]✗[/]" if not c["ok"] else "[green]✓[/]" if c["checked"] else "[dim]–[/]",
                      c["detail"])  # fmt: skip
    console.print(table)
    console.print(
        "\n[bold]10. Continuous certification.[/] The line drifts; the certification centre runs its model again "
        "on the new readings (the normal job flow), and the certificate's status follows the attested result."
    )
    rng = random.Random(7)
    for label, mean, sd_, first in (("a process shift (+0.35 Ω/km)", 17.95, 0.10, 200),
                                    ("after the die is replaced", 17.55, 0.08, 300)):  # fmt: skip
        readings = [{"characteristic": "conductor resistance", "value": round(rng.gauss(mean, sd_), 3),
                     "time": f"2026-03-02T{8 + i // 60:02d}:{i % 60:02d}:00+08:00", "device": "ohmmeter-3",
                     "subgroup": i // 5} for i in range(100)]  # fmt: skip
        batch = plant.vault.add_batch("zj-line-1-resistance", readings)
        anchor = maker.sign("dataset.anchor", batch.anchor_payload())
        plant.submit([anchor])
        plant.vault.mark_anchored(batch, tx.txid(anchor.leaf()))
        job = ask("process-capability", contract, {"threshold": 1.33}, secrets.token_urlsafe(16), first, 100)
        jobs.approve(plant, job["id"])
        out = jobs.visible(plant, plant.did)[-1].result
        status = certify.recheck(lab, number, out)
        (c,) = out["output"]["characteristics"]
        seen = next(x for x in check()["checks"] if x["name"] == "status")
        console.print(
            f"  {label}: readings {first}–{first + 99} anchored; Cpk {c['cpk']:.2f} (lower bound {c['cpk_lower']:.2f}) "
            f"→ {'[green]pass[/]' if out['output']['pass'] else '[red]fail[/]'}; certificate [bold]{status}[/] "
            f"(credential.status names the attestation); a buyer now sees: "
            f"{'[green]✓[/]' if seen['ok'] else '[red]✗[/]'} {seen['detail'].split(' (')[0]}"
        )


def _quality_notification(console: Console, lab: Node, plant: Node, plant_url: str, regulator: Node) -> None:
    """The suspension raised a quality notification (CX-0125) to the maker: delivered sealed, answered, closed."""
    from qdsn.node import notify

    console.rule("[bold]Supervision · a quality notification (质量通知)")
    console.print(
        "  The suspension raised an investigation from the certification centre to the manufacturer: CREATED on "
        "the ledger with its content's hash; the content (what fell short, the certificate, the batches) is kept "
        "at the centre and travels only sealed (HPKE) to the manufacturer's node."
    )
    lab.catch_up()
    n = next(x for x in lab.ledger.state.notices.values() if x.sender == lab.did and x.state == "CREATED")
    notify.send(lab, n.id, NodeClient(plant_url, lab.home.key(), lab.did))
    plant.catch_up()
    body = notify.content(plant, n.id)
    assert body is not None
    console.print(f"  {n.classification} {n.id} · {n.severity}: the manufacturer's node stored it, then recorded "
                  f"RECEIVED; it reads: [italic]{body.description[:110]}…[/]")  # fmt: skip
    notify.answer(plant, n.id, "ACKNOWLEDGED")
    notify.answer(plant, n.id, "ACCEPTED", "worn wire-drawing die found on line 1; replaced")
    lab.catch_up()
    notify.answer(lab, n.id, "CLOSED", "the next attested run passed; certificate reinstated")
    table = Table("state", "by", "entry", "reason", title=f"notification {n.id} on the ledger — 通知的每一步")
    for h in notify.show(lab, n.id)["history"]:
        side = "certification centre" if h["state"] in ("CREATED", "SENT", "CLOSED") else "manufacturer"
        table.add_row(h["state"], side, str(h["seq"]), h["reason"] or "")
    console.print(table)
    regulator.catch_up()
    others = notify.listing(regulator)["others"]
    console.print(f"  the regulator, party to none of it, sees the counts: {others['state']} — and no content")


def _regulator_actions(console: Console, regulator: Node, certifier: NodeHome, maker: NodeHome, lab: Node,
                       lab_url: str, plant: Node, reg_url: str, result: dict) -> None:  # fmt: skip
    """The regulator suspends the certification centre's authority to issue and reinstates it; a certificate it
    signs meanwhile is refused by a buyer, the earlier one stands; the maker's capability level, and why."""
    from qdsn.credentials import certificate
    from qdsn.crypto.jose import public_jwk
    from qdsn.supervision import actions, indicators

    console.rule("[bold]Supervision: the regulator acts (监管措施), and a maker's capability level (质量管理能力等级)")
    reason = "sampling inspection found certificates issued without witnessed tests 抽查发现未见证检验即发证"
    _env, receipt = actions.act(regulator, "suspend", "issuer", certifier.did, reason, "urn:uuid:demo-notification-1")
    console.print(f"  the regulator suspends the authority to issue of {certifier.name}: regulator.action at entry "
                  f"{receipt.seq}, on every replica")  # fmt: skip
    lab.catch_up()
    subject = certify.Subject("CQC-2026-0002", ["GB/T 5023.3-2008"], "PVC-insulated cable", "BV 2.5 mm²",
                              "Hangzhou plant 1")  # fmt: skip
    try:
        certify.issue(lab, result, subject, f"{lab_url}/status-lists/1", note=lab.trusted_checkpoint())
        console.print("  [red]the suspended certification centre issued a certificate?![/]")
    except QDSNError as e:
        console.print(f"  its node tries to issue CQC-2026-0002: [green]✓ refused[/] [dim]({e.what[:110]}…)[/]")
    (sd,) = NodeClient(lab_url, maker.key(), maker.did).call("GET", "/credentials")["credentials"]
    issued = sdjwt.verify(sd, lambda iss, h: certifier.key().verify_key.raw).claims
    claims = {k: v for k, v in issued.items() if k not in ("vct", "cnf", "_sd_alg")}
    rogue = certificate.issue(claims | {"certificate_number": "CQC-2026-0003", "iat": int(time.time())},
                              certifier.key(), public_jwk(maker.key().verify_key.raw), kid=certifier.did)  # fmt: skip
    buyer, to_reg = "did:web:buyer.example", NodeClient(reg_url, maker.key(), maker.did)

    def authority(sd_jwt: str) -> dict:
        nonce = secrets.token_urlsafe(12)
        shown = sdjwt.present(sd_jwt, ["indicators"], maker.key(), aud=buyer, nonce=nonce)
        got = to_reg.call("POST", "/verify", {"presentation": shown, "aud": buyer, "nonce": nonce, "quorum": 1},
                          signed=False)  # fmt: skip
        return next(c for c in got["checks"] if c["name"] == "authority")

    late, early = authority(rogue), authority(sd)
    console.print(f"  it signs CQC-2026-0003 with its own key anyway; a buyer now sees: "
                  f"{'[green]✓[/]' if late['ok'] else '[red]✗[/]'} {late['detail'][:96]}…")  # fmt: skip
    console.print(f"  CQC-2026-0001, recorded before the suspension: {'[green]✓[/]' if early['ok'] else '[red]✗[/]'} "
                  f"stands (the verifier reads the ledger, never the certificate's own claims)")  # fmt: skip
    _, receipt = actions.act(regulator, "reinstate", "issuer", certifier.did, "corrective actions verified 整改完成")
    console.print(f"  corrective actions verified: the authority is reinstated (entry {receipt.seq}); the certificate "
                  f"signed meanwhile stays refused: it was never recorded")  # fmt: skip

    plant.catch_up()
    done = [j.result for j in jobs.visible(plant, plant.did) if j.state == "done" and j.result]
    outputs = indicators.verified_outputs(plant.ledger, done)
    a = indicators.enterprise(plant.ledger, maker.did, datetime.now(UTC), outputs)
    shown_ = {i.key: i for i in a.indicators}
    console.print(f"  {maker.name} on its own node: coverage {indicators.percent(shown_['coverage'].value)}, lowest "
                  f"attested Cpk {shown_['cpk_min'].value or 0:.2f}, {shown_['valid'].value} valid certificate, "
                  f"continuous certification {indicators.percent(shown_['continuous'].value)}")  # fmt: skip
    level = f"{a.level} ({indicators.LEVEL_NAMES[a.level]})" if a.level else "below 检验级"
    console.print(f"  capability level 质量管理能力等级: [bold]{level}[/]")
    for c in a.criteria:
        mark = "[green]✓[/]" if c.met else "[red]✗[/]" if c.met is False else "[yellow]?[/]"
        console.print(f"    {mark} {c.level} {c.text}: [dim]{c.detail}[/]", highlight=False)


def _low_carbon(
    console: Console, certifier: NodeHome, maker: NodeHome, lab: Node, lab_url: str, plant: Node,
    to_plant: NodeClient, reg_url: str,
) -> None:  # fmt: skip
    """A low-carbon product certificate from attested activity data: the footprint computed where the
    data is, with the published grid emission factors, and disclosed on its own."""
    from qdsn.footprint import calc
    from qdsn.node import pact

    console.rule("[bold]Green and low-carbon: a product footprint from attested activity data")
    console.print(
        "\n[bold]10a. A low-carbon product certificate.[/] The manufacturer anchors its activity data (electricity, "
        "natural gas, output); the certification centre's product-footprint model computes kg CO2e per kg in the "
        "manufacturer's sandbox with the MEE/NBS 2022 grid emission factors; the certificate discloses the "
        "footprint on its own; the footprint is also served as PACT v3 to agreed buyers."
    )
    product, dataset = "urn:gtin:6901234567892", "zj-cable-activity"
    table = calc.load_table("cn-mee-nbs-2022")
    month = [
        {"category": "energy", "source": "electricity.grid", "amount": "48250", "unit": "kWh", "region": "330100"},
        {"category": "energy", "source": "natural-gas", "amount": "61.4", "unit": "GJ"},
        {"category": "output", "source": "cable", "amount": "52000", "unit": "kilogram"},
    ]  # fmt: skip
    rows = [r | {"product": product, "start": "2026-01-01T00:00:00+08:00", "end": "2026-02-01T00:00:00+08:00"}
            for r in month]  # fmt: skip
    plant.vault.create(dataset, "activity")
    declare = {"dataset": dataset, "title": "Cable line energy", "kind": "activity"}
    plant.submit([maker.sign("dataset.declare", declare)])
    batch = plant.vault.add_batch(dataset, rows)
    plant.vault.mark_anchored(batch, plant.anchor(batch))
    blob, m = package.load(package.builtin("product-footprint"))
    code = package.code_hash(blob)
    lab.submit([certifier.sign("model.publish", {"model": m.id, "version": m.version, "hash": code,
                                                 "manifest": m.model_dump(mode="json")})])  # fmt: skip
    offer = {"@context": "http://www.w3.org/ns/odrl.jsonld", "@type": "Offer", "profile": "urn:qdsn:odrl:profile:v1",
             "uid": f"urn:qdsn:offer:{dataset}:footprint", "assigner": maker.did,
             "target": f"urn:qdsn:dataset:{dataset}",
             "permission": [{"action": "compute", "assignee": certifier.did, "constraint": [
                 {"leftOperand": "purpose", "operator": "eq", "rightOperand": "certification"},
                 {"leftOperand": "qdsn:modelHash", "operator": "isAnyOf", "rightOperand": [code]}]}]}  # fmt: skip
    publish(plant, dataset, offer)
    contract = negotiate(to_plant, offer)["uid"]
    parameters = {"product": product, "table": table, "threshold": "0.60"}

    def run(first: int) -> dict:
        nonce = secrets.token_urlsafe(16)
        job = to_plant.call("POST", "/jobs", {
            "agreementId": contract, "archive": base64.b64encode(blob).decode(), "nonce": nonce,
            "purpose": "certification", "parameters": parameters, "datasets": [{"dataset": dataset, "first": first,
                                                                                 "count": 3}]})  # fmt: skip
        lab.catch_up()
        attest.verify(job["result"]["attestation"], lab.ledger, output=job["result"]["output"], nonce=nonce)
        return job["result"]

    result = run(0)
    out = result["output"]
    console.print(
        f"  pre-approved by its code hash, the model ran at once: {out['pcf']} kg CO2e per {out['declared_unit']} "
        f"({out['emissions']} kg over {out['output']} kg; table {out['table']['id']} {out['table']['version']}, "
        f"sha256 {out['table']['sha256'][:12]}…) ≤ {out['threshold']}: "
        f"{'[green]pass[/]' if out['pass'] else '[red]fail[/]'}; attestation verified against the certifier's replica"
    )
    _, note = follow_operator(certifier, lab.ledger, lab.link)
    uri = f"{lab_url}/status-lists/2"
    number = "CQC-LC-2026-0001"
    subject = certify.Subject(number, ["ISO 14067:2018", "GB/T 24067-2024"], "PVC-insulated cable",
                              "low-carbon product, per kg of cable", "Hangzhou plant 1")  # fmt: skip
    certify.issue(lab, result, subject, uri, note=note)
    held = NodeClient(lab_url, maker.key(), maker.did).call("GET", "/credentials")["credentials"]
    sd = next(c for c in held if b64url_decode(sdjwt.parse(c).jwt.split(".")[1]).count(number.encode()))
    buyer, nonce = "did:web:buyer.example", secrets.token_urlsafe(12)
    asked = ["indicators.pcf", "indicators.declared_unit"]
    shown = sdjwt.present(sd, asked, maker.key(), aud=buyer, nonce=nonce)
    seen = NodeClient(reg_url, maker.key(), maker.did).call(
        "POST", "/verify", {"presentation": shown, "aud": buyer, "nonce": nonce, "quorum": 1}, signed=False
    )
    ok = seen["ok"]
    shown_all = [orjson.loads(b64url_decode(d))[1] for d in sdjwt.parse(shown).disclosures]
    hidden = len(sdjwt.parse(sd).disclosures) - len(shown_all)
    names = [n for n in asked if n.split(".")[1] in shown_all]  # in the order asked: disclosures are shuffled
    console.print(
        f"  certificate {number} (SD-JWT VC, scheme product-footprint): the manufacturer discloses only "
        f"{' and '.join(names)} — a buyer verifies it {'[green]✓[/]' if ok else '[red]✗[/]'} down to the anchored "
        f"activity data; {hidden} other claims (total emissions, output, the table, the site) stay hidden"
    )
    for c in seen["checks"]:
        if not c["ok"]:
            console.print(f"  [red]✗ {c['name']}[/]: {c['detail']}", highlight=False)
    more = [r | {"start": "2026-02-01T00:00:00+08:00", "end": "2026-03-01T00:00:00+08:00"} for r in rows]
    more[0] = more[0] | {"amount": "71800"}  # a month on a coal-heavy grid mix: more electricity per kg
    batch = plant.vault.add_batch(dataset, more)
    plant.vault.mark_anchored(batch, plant.anchor(batch))
    again = run(3)
    status = certify.recheck(lab, number, again)
    console.print(
        f"  the next month's activity data: {again['output']['pcf']} kg CO2e per kg > {out['threshold']} → "
        f"certificate [bold]{status}[/] (continuous certification; credential.status names the attestation)"
    )
    pf = pact.add_footprints(plant, "zj-footprints", [_pact_of(out, table, maker)])
    console.print(
        f"  the January footprint as PACT v3: {pf[0]} in dataset zj-footprints, served at /3/footprints over HTTPS "
        "to buyers whose agreement allows it (OAuth 2.0 client credentials; each use decided and recorded)"
    )


def _pact_of(out: dict, table: dict, maker: NodeHome) -> dict:
    from qdsn.footprint import calc, pactdoc

    fp = calc.Footprint(out["product"], out["declared_unit"], out["pcf"], out["emissions"], out["output"],
                        out.get("by_category", {}), out["records"], out["table"])  # fmt: skip
    return pactdoc.product_footprint(fp, table, company_name=maker.name, company_id="urn:uscc:91330100MA2B3C4D5E",
                                     description="PVC-insulated cable BV 2.5 mm², per kg",
                                     start="2026-01-01T00:00:00+08:00", end="2026-02-01T00:00:00+08:00")  # fmt: skip


def _serve(node: Node, servers: list[tuple[uvicorn.Server, threading.Thread]]) -> str:
    """Serve `node`'s API on a free loopback port in a background thread; returns its URL."""
    # The demo's nodes fetch each other's status lists on this machine: the operator's development allowance
    # of the outbound policy (net/outbound.py), for 127.0.0.1 alone
    os.environ.setdefault("QDSN_OUTBOUND_ALLOW", "127.0.0.1/32")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(node), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise QDSNError(f"the API of {node.home.name} did not start on port {port}")
        time.sleep(0.01)
    servers.append((server, thread))
    return f"http://127.0.0.1:{port}"


def _sealed(vault: Vault, dataset: str) -> list:
    with vault.engine.connect() as c:
        return c.execute(vault_chunks.select().where(vault_chunks.c.dataset == dataset)).all()


def _checkpoint_round(
    console: Console,
    regulator: NodeHome,
    log: Ledger,
    members: Sequence[NodeHome],
    replicas: dict[str, Ledger],
    orderer: EmbeddedOrderer,
) -> str:
    note = log.sign_checkpoint(regulator.log_signer())
    cp, _ = open_checkpoint(note, regulator.log_signer().verifier())
    records = []
    for m in members:
        replica = replicas[m.did]
        follow(replica, log)
        ts = int(time.time())
        cosigned = replica.witness(note, regulator.log_signer().verifier(), m.cosigner(), ts)
        note = log.add_cosignature(cosigned, m.cosigner().verifier())
        sig = next(
            s for s in open_checkpoint(cosigned, regulator.log_signer().verifier())[1].unverified if s.name == m.did
        )
        records.append(
            m.sign(
                "checkpoint.cosign",
                {
                    "origin": cp.origin,
                    "size": cp.size,
                    "root": cp.root.hex(),
                    "timestamp": ts,
                    "signature": b64url_encode(sig.signature[8:]),
                },
            )
        )
    orderer.submit(records)
    console.print(
        f"  checkpoint size {cp.size}, root {cp.root.hex()[:16]}…, cosigned by {len(members)} members "
        f"and recorded as {len(records)} checkpoint.cosign entries"
    )
    for line in note.splitlines():
        console.print(f"    [dim]{line[:64]}{'…' if len(line) > 64 else ''}[/]", highlight=False)
    return note


def _vault_audit(console: Console, maker: NodeHome, replica: Ledger) -> None:
    """A manufacturer's vault checked against the ledger, record for record: complete, not only consistent."""
    from qdsn.node.completeness import verify_vault

    report = verify_vault(str(maker.path / "vault.db"), maker.kek, replica.store, maker.did)
    records = sum(d.records for d in report.datasets)
    verdict = "[green]✓[/]" if report.verdict.ok else f"[red]✗ {report.verdict.message}[/]"
    console.print(f"  the vault of {maker.name} against its replica of the ledger: {records} records in "
                  f"{len(report.datasets)} dataset(s), every dataset.declare and dataset.anchor matched record "
                  f"for record, every batch root recomputed {verdict}")  # fmt: skip
