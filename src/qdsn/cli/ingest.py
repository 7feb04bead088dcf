"""`qdsn ingest`, `qdsn simulate`, `qdsn device`: quality data into a dataset, validated, sealed, anchored."""

from __future__ import annotations

import itertools
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import orjson
import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from qdsn.cli.common import (
    Home,
    console,
    err,
    linked_node,
    logged,
    open_node,
    print_json,
)
from qdsn.cli.dataset import units_of
from qdsn.errors import InvalidInput, Unavailable

if TYPE_CHECKING:
    from qdsn.data.ingest import Layout

ingest_app = typer.Typer(help="Bring quality data into a dataset: validated, sealed, anchored.", no_args_is_help=True)


def _ingest(
    path: Path,
    dataset: str,
    home: Path,
    batch_size: int,
    quarantine: Path | None,
    epcis: bool = False,
    encoding: str | None = None,
    layout: Layout | None = None,
) -> None:
    node = linked_node(home, None, None)
    try:
        _ingest_into(node, path, dataset, batch_size, quarantine, epcis, encoding, layout)
    finally:
        node.close()


def _ingest_into(node, path, dataset, batch_size, quarantine, epcis, encoding, layout) -> None:  # type: ignore[no-untyped-def]
    from qdsn.data.ingest import ingest, ingest_epcis

    vault = node.vault
    kind = vault.kind(dataset)
    units = units_of(node.ledger, dataset)
    read = partial(ingest_epcis, units=units) if epcis else ingest
    with Progress(
        TextColumn(f"sealing {path.name}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    ) as bar:
        task = bar.add_task("ingest", total=None)
        summary = read(
            path,
            vault,
            dataset,
            kind,
            node.anchor,
            batch_size=batch_size,
            quarantine=quarantine,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
            lookup=node.find_anchor,
            characteristics=list(units),
            **({} if epcis else {"encoding": encoding, "layout": layout or _layout(None, None, False)}),
        )
    table = Table(title=f"{path.name} → {dataset}, anchored as {logged(node.receipts)} of the log")
    for col in ("records", "accepted", "already stored", "quarantined", "skipped", "batches", "last root"):
        table.add_column(col)
    last = summary.batches[-1][0].root.hex()[:16] + "…" if summary.batches else "-"
    counts = (summary.rows, summary.accepted, summary.already, summary.quarantined, len(summary.skipped),
              len(summary.batches))  # fmt: skip
    table.add_row(*map(str, counts), last)
    console.print(table)
    for event, where, why in summary.skipped[:5]:
        console.print(f"[dim]skipped event {event}{', ' + where if where else ''}: {why}[/]")
    if len(summary.skipped) > 5:
        console.print(f"[dim]… and {len(summary.skipped) - 5} more skipped[/]")
    if summary.quarantined:
        console.print(f"[yellow]{summary.quarantined} bad rows written to {quarantine} with their reasons[/]")
    if summary.already:
        console.print(
            f"{summary.already} records were already stored (an earlier run of the same records); "
            "skipped, not stored again"
        )


BatchSize = Annotated[int, typer.Option(help="Records per anchored batch.")]
Tz = Annotated[str | None, typer.Option(help="IANA zone of times written without an offset, e.g. Asia/Shanghai.")]
Mapping = Annotated[
    list[str] | None, typer.Option("--map", help="COLUMN=FIELD: read a column of another name as a field; repeatable.")
]
IgnoreExtra = Annotated[
    bool,
    typer.Option(help="Leave out columns that are not fields of the dataset's records, instead of refusing the file."),
]


def _layout(mapping: list[str] | None, tz: str | None, ignore_extra: bool) -> Layout:
    from qdsn.data.ingest import Layout

    columns = {}
    for item in mapping or ():
        column, eq, name = item.partition("=")
        if not eq or not column.strip() or not name.strip():
            raise InvalidInput(f"--map {item!r} is not COLUMN=FIELD", "e.g. --map 测量值=value")
        columns[column.strip()] = name.strip()
    return Layout(columns, tz, ignore_extra)


Quarantine = Annotated[
    Path | None, typer.Option(help="Keep good rows and append bad ones here (JSON Lines) with the reason.")
]


@ingest_app.command("csv")
def ingest_csv(
    file: Annotated[Path, typer.Argument(help="A CSV file with a header row; columns are the model's fields.")],
    dataset: Annotated[str, typer.Option(help="The dataset to add to.")],
    home: Home,
    batch_size: BatchSize = 10_000,
    quarantine: Quarantine = None,
    encoding: Annotated[
        str | None, typer.Option(help="The file's encoding, e.g. gb18030 (default: UTF-8, else detected).")
    ] = None,
    tz: Tz = None,
    mapping: Mapping = None,
    ignore_extra: IgnoreExtra = False,
) -> None:
    """Validate every row, then seal the file in the vault and anchor each batch on the ledger.
    `,` or `;` between cells (decimal commas read), NA for an empty cell. Run again — after an
    interruption, or on the same records re-saved or grown — it stores what is missing and nothing twice."""
    _ingest(file, dataset, home, batch_size, quarantine, encoding=encoding, layout=_layout(mapping, tz, ignore_extra))


@ingest_app.command("json")
def ingest_json(
    file: Annotated[Path, typer.Argument(help="A JSON array of records, or JSON Lines (.jsonl).")],
    dataset: Annotated[str, typer.Option(help="The dataset to add to.")],
    home: Home,
    batch_size: BatchSize = 10_000,
    quarantine: Quarantine = None,
    tz: Tz = None,
    mapping: Mapping = None,
    ignore_extra: IgnoreExtra = False,
) -> None:
    """Validate every record, then seal the file in the vault and anchor each batch on the ledger."""
    _ingest(file, dataset, home, batch_size, quarantine, layout=_layout(mapping, tz, ignore_extra))


@ingest_app.command("epcis")
def ingest_epcis(
    file: Annotated[Path, typer.Argument(help="A GS1 EPCIS 2.0 JSON / JSON-LD document (EPCISDocument or event).")],
    dataset: Annotated[str, typer.Option(help="The dataset to add to.")],
    home: Home,
    batch_size: BatchSize = 10_000,
    quarantine: Quarantine = None,
) -> None:
    """Check the document against GS1's EPCIS 2.0 JSON Schema, then seal and anchor the records of the dataset's kind.

    Measurements: every sensor report with a numeric value, in the unit the dataset declares.

    Inspections: inspecting events as QDSN exports them. Compliance: each gs1:CertificationDetails.

    Everything else in the document is listed as skipped, with the reason.
    """
    _ingest(file, dataset, home, batch_size, quarantine, epcis=True)


@ingest_app.command("mqtt")
def ingest_mqtt(
    broker: Annotated[str, typer.Option(help="The broker, mqtt://HOST:PORT.")],
    topic: Annotated[str, typer.Option(help="The topic filter, e.g. 'plant/+/line/+/#'.")],
    dataset: Annotated[str, typer.Option(help="The dataset to add to.")],
    home: Home,
    batch_size: BatchSize = 1000,
    batch_seconds: Annotated[float, typer.Option(help="Commit a partial batch after this many seconds.")] = 1.0,
    client_id: Annotated[str | None, typer.Option(help="The MQTT client id (default qdsn-DATASET).")] = None,
    signed_only: Annotated[bool, typer.Option(help="Refuse readings not signed by their registered device.")] = False,
) -> None:
    """Subscribe (QoS 1, persistent MQTT 5 session) and seal and anchor readings until Ctrl-C. A message is
    acknowledged only once its batch is committed and anchored, so nothing is lost or stored twice.
    Gaps in the devices' sequence numbers (readings a broker dropped) are reported at the end."""
    import threading

    from qdsn.data.mqtt import MqttIngest, Registry, Stats

    node = linked_node(home, None, None)
    registry = Registry.of_ledger(node.ledger.store.rows_of_type)  # followed as devices register
    ingest = MqttIngest(
        broker,
        topic,
        node.vault,
        dataset,
        node.anchor,
        client_id=client_id or f"qdsn-{dataset}",
        batch_size=batch_size,
        batch_seconds=batch_seconds,
        devices=registry,
        require_signatures=signed_only,
        lookup=node.find_anchor,
        characteristics=list(units_of(node.ledger, dataset)),
    )
    stop = threading.Event()
    with console.status(f"listening on {broker} {topic}") as status:

        def show(s: Stats) -> None:
            status.update(
                f"{s.stored} stored in {s.batches} anchored batches · {s.duplicates} duplicates dropped "
                f"· {s.rejected} rejected"
            )

        try:
            stats = ingest.run(stop, progress=show)
        except KeyboardInterrupt:
            stop.set()
            stats = ingest.stats
    streams = node.vault.streams(dataset)
    lost = sum(s.missing for s in streams)
    mark = "[yellow]![/]" if lost or stats.sessions_lost else "[green]✓[/]"
    console.print(
        f"{mark} {stats.stored} readings stored in {stats.batches} anchored batches; "
        f"{stats.duplicates} duplicates dropped, {stats.rejected} rejected"
    )
    if stats.sessions_lost:
        console.print(
            f"[yellow]the broker lost this ingestor's session {stats.sessions_lost} time(s) (restarted without "
            "persistence?): readings it held then are gone; run it with QDSN's configuration "
            "(qdsn ingest broker-config)[/]"
        )
    for reason in stats.rejections[-10:]:
        console.print(f"  [yellow]rejected[/] {reason}")
    if stats.rejected:
        console.print(
            f"[yellow]{stats.rejected} rejected readings are kept in the vault's quarantine with the reason[/]"
        )
    _print_gaps(streams, dataset)
    if lost:
        raise typer.Exit(1)  # readings were lost on the way: never a success


def _print_gaps(streams: list, dataset: str) -> None:  # type: ignore[type-arg]
    """Every device stream with missing sequence numbers, loudly."""
    from qdsn.data.sequences import describe

    gapped = [s for s in streams if s.gaps]
    if not gapped:
        return
    lost = sum(s.missing for s in gapped)
    console.print(f"[bold red]✗ {lost} readings never arrived[/] (gaps in their devices' sequence numbers):")
    for s in gapped:
        boot = f" (boot {s.boot})" if s.boot else ""
        console.print(f"  [red]gap[/] {s.device}{boot}: {s.missing} missing of 1–{s.last}: {describe(s.gaps)}")
    console.print(
        f"[yellow]a broker dropped them, most often past its queue limit while this ingestor was down: give the "
        f"broker QDSN's configuration (qdsn ingest broker-config); `qdsn ingest gaps --dataset {dataset}` lists them[/]"
    )


@ingest_app.command("gaps")
def ingest_gaps(
    dataset: Annotated[str, typer.Option(help="The dataset whose device sequence numbers to check.")],
    home: Home,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Readings that never arrived: per device, the sequence numbers missing below the highest stored.
    Exits 1 when any is missing."""
    streams = open_node(home).vault().streams(dataset)
    lost = sum(s.missing for s in streams)
    if as_json:
        print_json({"dataset": dataset, "missing": lost, "devices": [s.to_json() for s in streams]})
    else:
        from qdsn.data.sequences import describe

        table = Table("device", "boot", "last seq", "stored", "missing", "gaps", title=f"device sequences of {dataset}")
        for s in streams:
            table.add_row(s.device, s.boot or "-", str(s.last), str(s.arrived), str(s.missing), describe(s.gaps) or "-")
        console.print(table)
        if not streams:
            console.print("[dim]no reading stored yet carries a device and a sequence number (seq)[/]")
        elif lost:
            _print_gaps(streams, dataset)
        else:
            console.print("[green]✓[/] no gaps: every numbered reading up to each device's last is stored")
    if lost:
        raise typer.Exit(1)


BROKER_CONFIG = Path(__file__).resolve().parents[1] / "data" / "mosquitto.conf"


@ingest_app.command("broker-config")
def ingest_broker_config() -> None:
    """Print the mosquitto configuration QDSN needs: persistent sessions and queues that do not drop
    readings while an ingestor is down (a stock mosquitto keeps 1,000 per client and drops the rest)."""
    typer.echo(BROKER_CONFIG.read_text(), nl=False)


@ingest_app.command("quarantined")
def ingest_quarantined(
    dataset: Annotated[str, typer.Option(help="The dataset whose refused readings to list.")],
    home: Home,
    limit: Annotated[int, typer.Option(help="Show the latest N.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON, payloads whole.")] = False,
) -> None:
    """List the readings `qdsn ingest mqtt` refused and set aside in the vault: when, topic, why, payload."""
    kept = open_node(home).vault().quarantined(dataset)
    if as_json:
        print_json([k | {"payload": k["payload"].decode("utf-8", "replace")} for k in kept[-limit:]])
        return
    table = Table("received", "topic", "reason", "payload", title=f"{len(kept)} readings set aside for {dataset}")
    for k in kept[-limit:]:
        payload = k["payload"].decode("utf-8", "replace")
        table.add_row(k["received"], k["topic"], k["reason"], payload[:80] + ("…" if len(payload) > 80 else ""))
    console.print(table)


def simulate(
    to: Annotated[str, typer.Option(help="mqtt://HOST:PORT to publish to, or a .jsonl file to write.")],
    lines: Annotated[int, typer.Option(help="Production lines.")] = 1,
    subgroups: Annotated[int, typer.Option(help="Subgroups per line.")] = 50,
    subgroup_size: Annotated[int, typer.Option(help="Parts per subgroup.")] = 5,
    shift_at: Annotated[int | None, typer.Option(help="Subgroup from which the mean shifts.")] = None,
    shift: Annotated[float, typer.Option(help="The mean shift, in σ.")] = 0.0,
    drift: Annotated[float, typer.Option(help="Mean drift per subgroup, in σ.")] = 0.0,
    spread_at: Annotated[int | None, typer.Option(help="Subgroup from which σ grows.")] = None,
    spread: Annotated[float, typer.Option(help="Factor on σ from --spread-at.")] = 1.0,
    outlier: Annotated[list[int] | None, typer.Option(help="A subgroup with a 6σ outlier; repeatable.")] = None,
    plant: Annotated[str, typer.Option(help="Plant code in topics and ids.")] = "hz",
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same readings.")] = 0,
    run: Annotated[
        str | None, typer.Option(help="Name of this run, in the readings' ids and as their boot (default: a new one).")
    ] = None,
) -> None:
    """Generate production-line readings (conductor resistance, insulation thickness, outer diameter)
    with optional shift, drift, extra variance and outliers, and publish them (QoS 1) or write them.
    Each run's message ids are its own, and each device numbers its readings 1, 2, 3, … (seq)."""
    import secrets
    from datetime import UTC, datetime

    from qdsn.data.model import Measurement
    from qdsn.data.mqtt import parse_broker
    from qdsn.data.simulate import Disturbance, readings

    gen = readings(
        plant=plant,
        lines=lines,
        subgroups=subgroups,
        subgroup_size=subgroup_size,
        start=datetime(2026, 3, 1, tzinfo=UTC),
        seed=seed,
        disturbance=Disturbance(shift_at, shift, drift, spread_at, spread, tuple(outlier or ())),
        run=run or datetime.now(UTC).strftime("%Y%m%dT%H%M%S-") + secrets.token_hex(3),
    )
    first = next(gen, None)
    if first is None:
        console.print("[yellow]nothing to simulate: --lines, --subgroups and --subgroup-size must be at least 1[/]")
        raise typer.Exit(1)
    try:
        Measurement.model_validate({k: v for k, v in first[1].items() if k != "id"})
    except ValueError as e:
        raise InvalidInput(
            f"--plant or --run cannot name a device or run: {str(e).splitlines()[-1]}",
            "use letters, digits and . _ : - only",
        ) from None
    gen = itertools.chain([first], gen)
    run_id = first[1]["boot"]
    total = lines * subgroups * subgroup_size * 3
    with Progress(
        TextColumn("simulating"), BarColumn(), TextColumn("{task.completed}/{task.total}"), console=err, transient=True
    ) as bar:
        task = bar.add_task("sim", total=total)
        if to.startswith("mqtt://"):
            import paho.mqtt.client as mqtt

            host, port = parse_broker(to)
            client = mqtt.Client(
                mqtt.CallbackAPIVersion.VERSION2, client_id=f"qdsn-sim-{plant}", protocol=mqtt.MQTTv311
            )
            try:
                client.connect(host, port)
            except OSError as e:
                raise Unavailable(
                    f"cannot reach the broker at {to}: {e.strerror or e}", "start it, or check --to"
                ) from None
            client.loop_start()
            for topic, record in gen:
                client.publish(topic, orjson.dumps(record), qos=1).wait_for_publish(30)
                bar.advance(task)
            client.loop_stop()
            client.disconnect()
        else:
            with open(to, "wb") as f:
                for _, record in gen:
                    f.write(orjson.dumps(record) + b"\n")
                    bar.advance(task)
    console.print(
        f"[green]✓[/] {total} readings → {to} "
        f"(run {run_id}: each of {lines * 3} devices numbered 1–{subgroups * subgroup_size})"
    )


def device_register(
    device: Annotated[str, typer.Argument(help="The device's id, as readings name it in `device`.")],
    key: Annotated[str, typer.Option(help="The device's Ed25519 public key as a Multikey (z6Mk…).")],
    home: Home,
    kind: Annotated[str, typer.Option(help="sensor, gateway, gauge or tester.")] = "sensor",
) -> None:
    """Register a device of this manufacturer and the key it signs readings with (device.register)."""
    node = linked_node(home, None, None)
    try:
        receipts = node.submit([node.home.sign("device.register", {"device": device, "kind": kind, "key": key})])
    finally:
        node.close()
    console.print(f"[green]✓[/] device {device} registered ({logged(receipts)}); readings it signs can be checked "
                  "by anyone")  # fmt: skip
