"""MQTT ingestion against a real mosquitto: every published reading lands exactly once, through
SIGKILLs of the ingestor and a broker restart, and each batch is anchored on the ledger."""

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt
import pytest

from qdsn.crypto import SigningKey, hkdf_sha256
from qdsn.data.mqtt import MqttIngest
from qdsn.data.vault import Vault
from qdsn.ledger import Ledger

from ..ledger.conftest import ORIGIN, Member, member
from ..services import mosquitto

WORKER = Path(__file__).with_name("mqtt_worker.py")


def setup_node(folder: Path) -> Member:
    regulator, owner = member("regulator", "SAMR"), member("enterprise", "Acme")
    ledger = Ledger.open(str(folder / "ledger.db"), origin=ORIGIN)
    ledger.append(
        [
            regulator.sign("identity.register", regulator.register_payload()),
            regulator.sign("identity.register", owner.register_payload()),
            owner.sign("dataset.declare", {"dataset": "line-1", "title": "Line 1", "kind": "measurements"}),
        ]
    )
    ledger.close()
    kek = hkdf_sha256(owner.key.seed(), b"qdsn/vault/kek/v1")
    Vault(str(folder / "vault.db"), lambda kid=None: ("k", kek)).create("line-1", "measurements")
    return owner


def reading(i: int) -> bytes:
    return orjson.dumps(
        {
            "id": f"gw-7/{i}",
            "characteristic": "conductor resistance",
            "value": 17.5 + (i % 97) / 1000,
            "time": "2026-03-01T08:00:00Z",
            "device": "ohm-3",
        }
    )


def publisher(port: int) -> mqtt.Client:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="gw-7", protocol=mqtt.MQTTv311)
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


def publish(client: mqtt.Client, start: int, end: int) -> None:
    for i in range(start, end):
        client.publish(f"plant/hz/line/1/resistance/{i % 4}", reading(i), qos=1).wait_for_publish(10)


def vault_of(folder: Path, owner: Member) -> Vault:
    kek = hkdf_sha256(owner.key.seed(), b"qdsn/vault/kek/v1")
    return Vault(str(folder / "vault.db"), lambda kid=None: ("k", kek))


def start_worker(broker, folder, owner):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.Popen(
        [sys.executable, str(WORKER), broker.url, str(folder), owner.key.seed().hex()],
        stdout=subprocess.DEVNULL,
        stderr=open(folder / "worker.log", "ab"),
        env=env,
    )


@contextmanager
def running(ingest: MqttIngest) -> Iterator[MqttIngest]:
    """An ingestor running in a thread, subscribed, until the block ends."""
    stop = threading.Event()
    t = threading.Thread(target=ingest.run, args=(stop,))
    t.start()
    time.sleep(0.5)  # connected and subscribed before anything is published
    try:
        yield ingest
    finally:
        stop.set()
        t.join(10)


def wait_for(predicate, seconds=60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


@pytest.mark.slow
def test_every_reading_lands_once_through_crashes_and_a_broker_restart(tmp_path):
    owner = setup_node(tmp_path)
    with mosquitto() as broker:
        worker = start_worker(broker, tmp_path, owner)
        pub = publisher(broker.port)
        vault = vault_of(tmp_path, owner)
        # the ingestor's persistent session exists before the rest is published: reading 0 (sent again
        # until it is stored, and stored once) is in
        assert wait_for(lambda: publish(pub, 0, 1) or vault._row("line-1").next_seq == 1, 60)
        published = 1
        for round_ in range(3):
            publish(pub, published, published + 800)
            published += 800
            time.sleep(0.2 + 0.3 * round_)
            worker.send_signal(signal.SIGKILL)  # mid-batch, between commit and acknowledgement, …
            worker.wait()
            worker = start_worker(broker, tmp_path, owner)
            time.sleep(0.5)
        pub.loop_stop()
        pub.disconnect()
        broker.stop()  # the broker goes down with messages unacknowledged and comes back
        broker.start()
        pub = publisher(broker.port)
        publish(pub, published, published + 400)
        published += 400
        assert wait_for(lambda: vault._row("line-1").next_seq >= published), vault._row("line-1").next_seq
        time.sleep(1.0)  # let any late redelivery arrive: it must be dropped
        (tmp_path / "stop").touch()
        worker.wait(timeout=20)
        pub.loop_stop()
        pub.disconnect()
    records = vault.records("line-1")
    values = sorted(int(r["value"] * 1000) for r in records)
    assert len(records) == published
    assert values == sorted(17500 + i % 97 for i in range(published))
    assert vault.unanchored("line-1") == []
    ledger = Ledger.open(str(tmp_path / "ledger.db"))
    assert ledger.state.datasets["line-1"].anchored == published
    assert vault.verify("line-1") == published


def test_bad_messages_are_rejected_and_acknowledged(tmp_path):
    owner = setup_node(tmp_path)
    vault = vault_of(tmp_path, owner)
    anchored = []
    with mosquitto() as broker:
        ingest = MqttIngest(
            broker.url,
            "plant/#",
            vault,
            "line-1",
            lambda b: anchored.append(b) or "tx",
            client_id="qdsn-unit",
            batch_size=50,
            batch_seconds=0.2,
        )
        with running(ingest):
            pub = publisher(broker.port)
            for payload in (reading(1), b"not json", orjson.dumps({"characteristic": "x", "value": "NaN"}), reading(1)):
                pub.publish("plant/a", payload, qos=1).wait_for_publish(5)
            assert wait_for(lambda: ingest.stats.received >= 4, 10)
        pub.loop_stop()
    assert (ingest.stats.stored, ingest.stats.rejected, ingest.stats.duplicates) == (1, 2, 1)
    assert len(vault.records("line-1")) == 1


def test_device_signed_readings(tmp_path):
    from qdsn.crypto.encoding import b64url_decode, b64url_encode
    from qdsn.data.vault import reading_message

    owner = setup_node(tmp_path)
    vault = vault_of(tmp_path, owner)
    device = SigningKey.generate()
    stranger = SigningKey.generate()
    registered = {"ohm-3": device.verify_key.raw}

    def signed(i, key=device, device_id="ohm-3"):
        record = {
            "characteristic": "conductor resistance",
            "value": 17.5 + i / 100,
            "time": "2026-03-01T08:00:00Z",
            "device": device_id,
        }
        return orjson.dumps({**record, "id": f"m{i}", "sig": b64url_encode(key.sign(reading_message(record)))})

    with mosquitto() as broker:
        ingest = MqttIngest(
            broker.url,
            "plant/#",
            vault,
            "line-1",
            lambda b: "tx",
            client_id="qdsn-sig",
            batch_size=50,
            batch_seconds=0.2,
            devices=registered.get,
            require_signatures=True,
        )
        with running(ingest):
            pub = publisher(broker.port)
            for payload in (signed(1), signed(2, key=stranger), signed(3, device_id="unknown"), reading(4), signed(5)):
                pub.publish("plant/a", payload, qos=1).wait_for_publish(5)
            assert wait_for(lambda: ingest.stats.received >= 5, 10)
        pub.loop_stop()
    assert (ingest.stats.stored, ingest.stats.rejected) == (2, 3), ingest.stats.rejections
    proof = vault.prove("line-1", 0)
    kept = orjson.loads(proof.leaf)
    record = kept["record"]
    device.verify_key.verify(b64url_decode(kept["sig"]), reading_message(record))
