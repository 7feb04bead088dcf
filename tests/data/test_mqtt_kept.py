"""Readings that arrive are kept or set aside, never dropped: refused MQTT messages are quarantined in
the vault (reason, topic, time; payload sealed), devices registered while the ingestor runs are
followed, and nothing in the database gives away a message id or a reading."""

import hashlib
import os
import stat

import orjson
import sqlalchemy

from qdsn.crypto import SigningKey
from qdsn.crypto.encoding import b64url_encode
from qdsn.data.mqtt import MqttIngest
from qdsn.data.vault import Vault, reading_message
from qdsn.identity import multikey_from_public_key
from qdsn.ledger import Ledger

from ..services import mosquitto
from .test_mqtt import publisher, reading, running, setup_node, vault_of, wait_for
from .test_vault import Keys


def mqtt_ingest(broker, vault, **kw):
    return MqttIngest(
        broker.url, "plant/#", vault, "line-1", lambda b: "tx", client_id="qdsn-kept", batch_size=50,
        batch_seconds=0.2, **kw,
    )  # fmt: skip


def test_refused_messages_are_set_aside_in_the_vault_sealed(tmp_path):
    owner = setup_node(tmp_path)
    vault = vault_of(tmp_path, owner)
    bad = [b"not json 7731", orjson.dumps({"characteristic": "x", "value": "NaN-4412"}), b"[1, 2]"]
    with mosquitto() as broker:
        ingest = mqtt_ingest(broker, vault)
        with running(ingest):
            pub = publisher(broker.port)
            for payload in (reading(1), *bad, bad[0]):  # the last one redelivered: set aside once
                pub.publish("plant/hz/line/1", payload, qos=1).wait_for_publish(5)
            assert wait_for(lambda: ingest.stats.received >= 5, 10)
        pub.loop_stop()
    kept = vault_of(tmp_path, owner).quarantined("line-1")  # after the process is gone: in the vault
    assert sorted(k["payload"] for k in kept) == sorted(bad)
    assert all(k["topic"] == "plant/hz/line/1" and k["reason"] and k["received"].startswith("20") for k in kept)
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("vault.db*"))
    assert b"7731" not in raw and b"4412" not in raw  # sealed, not readable at rest


def test_a_device_registered_while_ingesting_is_followed(tmp_path):
    from qdsn.data.mqtt import Registry

    owner = setup_node(tmp_path)
    vault = vault_of(tmp_path, owner)
    ledger = Ledger.open(str(tmp_path / "ledger.db"))
    device = SigningKey.generate()

    def signed(i):
        record = {"characteristic": "conductor resistance", "value": 17.5 + i / 100, "time": "2026-03-01T08:00:00Z",
                  "device": "ohm-9"}  # fmt: skip
        return orjson.dumps({**record, "id": f"m{i}", "sig": b64url_encode(device.sign(reading_message(record)))})

    with mosquitto() as broker:
        registry = Registry.of_ledger(Ledger.open(str(tmp_path / "ledger.db")).store.rows_of_type)
        ingest = mqtt_ingest(broker, vault, devices=registry, require_signatures=True)
        with running(ingest):
            pub = publisher(broker.port)
            pub.publish("plant/a", signed(1), qos=1).wait_for_publish(5)
            assert wait_for(lambda: ingest.stats.received >= 1, 10)
            key = multikey_from_public_key(device.verify_key.raw)
            ledger.append([owner.sign("device.register", {"device": "ohm-9", "kind": "sensor", "key": key})])
            pub.publish("plant/a", signed(2), qos=1).wait_for_publish(5)
            assert wait_for(lambda: ingest.stats.received >= 2, 10)
        pub.loop_stop()
    assert (ingest.stats.stored, ingest.stats.rejected) == (1, 1), ingest.stats.rejections
    assert [r["value"] for r in vault.records("line-1")] == [17.52]
    [aside] = vault.quarantined("line-1")  # the one that came before its device was registered
    assert "not registered" in aside["reason"] and orjson.loads(aside["payload"])["id"] == "m1"


def test_message_ids_and_readings_are_not_readable_at_rest(tmp_path, vault_url):
    vault = Vault(vault_url, Keys())
    vault.create("line-1", "measurements")
    unnamed = orjson.dumps({"characteristic": "conductor resistance", "value": 17.4213, "time": "2026-03-01T08:00:00Z"})
    with mosquitto() as broker:
        ingest = mqtt_ingest(broker, vault)
        with running(ingest):
            pub = publisher(broker.port)
            pub.publish("plant/hz/line/1", reading(4711).replace(b"gw-7/4711", b"SN-2026-004711"), qos=1)
            pub.publish("plant/hz/line/2", unnamed, qos=1).wait_for_publish(5)
            assert wait_for(lambda: ingest.stats.stored >= 2, 10)
        pub.loop_stop()
    guessable = hashlib.sha256(b"plant/hz/line/2\n" + unnamed).hexdigest()
    if "://" in vault_url:
        with sqlalchemy.create_engine(vault_url).connect() as c:
            stored = repr(c.exec_driver_sql("SELECT * FROM vault_messages").all()).encode()
    else:
        stored = b"".join(p.read_bytes() for p in tmp_path.glob("vault.db*"))
    assert b"SN-2026-004711" not in stored and guessable.encode() not in stored
    assert b"line-1" in stored  # the table was read
    vault.close()


def test_database_files_are_private(tmp_path):
    old = os.umask(0o022)
    try:
        vault = Vault(str(tmp_path / "vault.db"), Keys())
        vault.create("d", "measurements")
        Ledger.open(str(tmp_path / "ledger.db"), origin="qdsn.test/log")
        files = sorted(tmp_path.glob("*.db*"))
        assert {f.name for f in files} >= {"vault.db", "vault.db-wal", "ledger.db", "ledger.db-wal"}
        assert {f.name: oct(stat.S_IMODE(f.stat().st_mode)) for f in files} == {f.name: "0o600" for f in files}
    finally:
        os.umask(old)


def test_readings_of_a_characteristic_the_dataset_did_not_declare_are_set_aside(tmp_path):
    owner = setup_node(tmp_path)
    vault = vault_of(tmp_path, owner)
    other = orjson.dumps(
        {"id": "x-1", "characteristic": "outer diameter", "value": 3.6, "time": "2026-03-01T08:00:00Z"}
    )
    with mosquitto() as broker:
        ingest = mqtt_ingest(broker, vault, characteristics=["conductor resistance"])
        with running(ingest):
            pub = publisher(broker.port)
            for payload in (reading(1), other):
                pub.publish("plant/hz/line/1", payload, qos=1).wait_for_publish(5)
            assert wait_for(lambda: ingest.stats.received >= 2, 10)
        pub.loop_stop()
    assert (ingest.stats.stored, ingest.stats.rejected) == (1, 1)
    [aside] = vault.quarantined("line-1")
    assert "'outer diameter' is not a characteristic the dataset declares" in aside["reason"]
