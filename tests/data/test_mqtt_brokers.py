"""MQTT ingestion against a stock mosquitto (only its listener configured: 20 messages in flight, 1,000
queued per client, no persistence) and against the configuration QDSN ships: a burst faster than the
ingestor, an ingestor SIGKILLed mid-stream and a broker restart lose nothing and store nothing twice;
readings a broker drops while the ingestor is down show as gaps with their sequence numbers."""

import signal
import time

import orjson
import paho.mqtt.client as mqtt
import pytest

from qdsn.data.sequences import holes
from qdsn.ledger import Ledger

from ..services import mosquitto
from .test_mqtt import setup_node, start_worker, vault_of, wait_for


def reading(i: int) -> bytes:
    """Device ohm-3's reading number i (1, 2, …), its value telling i back."""
    return orjson.dumps(
        {"id": f"ohm-3/b1/{i}", "characteristic": "conductor resistance", "value": 17 + i / 100_000,
         "time": "2026-03-01T08:00:00Z", "device": "ohm-3", "seq": i, "boot": "b1"}
    )  # fmt: skip


class Gateway:
    """A device's gateway: publishes QoS 1, each reading acknowledged by the broker before the next."""

    def __init__(self, port: int) -> None:
        self.port, self.sent = port, 0
        self.connect()

    def connect(self) -> None:
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="gw-3", protocol=mqtt.MQTTv311)
        self.client.connect("127.0.0.1", self.port)
        self.client.loop_start()

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()

    def send(self, n: int) -> None:
        for _ in range(n):
            self.sent += 1
            self.client.publish(f"plant/hz/line/1/ohm/{self.sent % 3}", reading(self.sent), qos=1).wait_for_publish(10)

    def probe(self, vault, stored: int) -> bool:
        """Send the next reading again and again until it is stored: the ingestor is subscribed."""

        def once() -> bool:
            self.client.publish("plant/hz/line/1/ohm/0", reading(self.sent + 1), qos=1).wait_for_publish(10)
            return vault._row("line-1").next_seq == stored + 1

        ok = wait_for(once, 60)
        self.sent += 1
        return ok


def settled(vault) -> int:
    """The number of records once it stopped growing for a second."""
    last, since = -1, time.monotonic()
    while time.monotonic() - since < 1.0:
        n = vault._row("line-1").next_seq
        if n != last:
            last, since = n, time.monotonic()
        time.sleep(0.05)
    return last


def seqs(vault) -> list[int]:
    return sorted(r["seq"] for r in vault.records("line-1"))


@pytest.mark.parametrize("config", ["default", "qdsn"])
def test_every_reading_sent_is_stored_once_through_a_burst_a_sigkill_and_a_broker_restart(tmp_path, config):
    owner = setup_node(tmp_path)
    vault = vault_of(tmp_path, owner)
    with mosquitto(config) as broker:
        worker = start_worker(broker, tmp_path, owner)
        gw = Gateway(broker.port)
        assert gw.probe(vault, 0)
        gw.send(1500)  # faster than the ingestor commits: a stock broker's in-flight and queue limits bite
        assert wait_for(lambda: vault._row("line-1").next_seq >= gw.sent, 60), vault._row("line-1").next_seq
        gw.send(300)
        worker.send_signal(signal.SIGKILL)  # mid-stream
        worker.wait()
        gw.send(600)  # while it is down: within a stock broker's queue of 1,000
        worker = start_worker(broker, tmp_path, owner)
        assert wait_for(lambda: vault._row("line-1").next_seq >= gw.sent, 60), vault._row("line-1").next_seq
        gw.close()
        broker.stop()  # the broker goes down and comes back (a stock one without the sessions it had)
        broker.start()
        gw.connect()
        assert gw.probe(vault, gw.sent)  # the ingestor is back and subscribed
        gw.send(500)
        assert wait_for(lambda: vault._row("line-1").next_seq >= gw.sent, 60), vault._row("line-1").next_seq
        time.sleep(1.0)  # a late redelivery would be stored twice now
        (tmp_path / "stop").touch()
        worker.wait(timeout=20)
        gw.close()
    assert seqs(vault) == list(range(1, gw.sent + 1))  # every reading sent, once
    [stream] = vault.streams("line-1")
    assert (stream.device, stream.boot, stream.last, stream.gaps) == ("ohm-3", "b1", gw.sent, [])
    assert vault.unanchored("line-1") == []
    assert Ledger.open(str(tmp_path / "ledger.db")).state.datasets["line-1"].anchored == gw.sent


def test_readings_a_stock_broker_drops_while_the_ingestor_is_down_are_reported_as_gaps(tmp_path):
    owner = setup_node(tmp_path)
    vault = vault_of(tmp_path, owner)
    with mosquitto("default") as broker:
        worker = start_worker(broker, tmp_path, owner)
        gw = Gateway(broker.port)
        assert gw.probe(vault, 0)
        gw.send(100)
        assert wait_for(lambda: vault._row("line-1").next_seq >= gw.sent, 60)
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        gw.send(3000)  # the broker acknowledges all of them to the gateway, keeps 1,000 and drops the rest
        worker = start_worker(broker, tmp_path, owner)
        assert wait_for(lambda: vault._row("line-1").next_seq >= 1101, 60)  # what the broker kept
        assert gw.probe(vault, settled(vault))  # and one more reading after the loss
        (tmp_path / "stop").touch()
        worker.wait(timeout=20)
        gw.close()
    stored = seqs(vault)
    assert len(stored) < gw.sent - 1500  # the stock broker dropped most of the 3,000
    [stream] = vault.streams("line-1")
    assert stream.last == gw.sent
    assert stream.gaps == holes([(s, s) for s in stored]) and stream.gaps  # exactly the numbers never stored
    missing = {n for lo, hi in stream.gaps for n in range(lo, hi + 1)}
    assert missing == set(range(1, gw.sent + 1)) - set(stored) and stream.missing == len(missing)
    assert missing <= set(range(102, 3102))  # lost while the ingestor was down, nothing else


def test_with_the_shipped_configuration_the_broker_keeps_all_while_the_ingestor_is_down_and_it_restarts(tmp_path):
    owner = setup_node(tmp_path)
    vault = vault_of(tmp_path, owner)
    with mosquitto("qdsn") as broker:
        worker = start_worker(broker, tmp_path, owner)
        gw = Gateway(broker.port)
        assert gw.probe(vault, 0)
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        gw.send(3000)  # three times a stock broker's queue
        gw.close()
        broker.stop()  # and the broker restarts meanwhile: its queue is saved and read back
        broker.start()
        gw.connect()
        worker = start_worker(broker, tmp_path, owner)
        assert wait_for(lambda: vault._row("line-1").next_seq >= gw.sent, 60), vault._row("line-1").next_seq
        (tmp_path / "stop").touch()
        worker.wait(timeout=20)
        gw.close()
    assert seqs(vault) == list(range(1, gw.sent + 1))
    assert [s.gaps for s in vault.streams("line-1")] == [[]]
