"""`qdsn ingest mqtt` SIGKILLed at random moments while a gateway publishes (QoS 1) to a real mosquitto:
every reading the broker acknowledged (PUBACK) ends up in the vault exactly once, and the vault
verifies against the ledger. The killed runs are the `qdsn` command in processes forked from this one."""

import json
import os
import random
import signal
import sys
import threading
import time
from multiprocessing import get_context

import orjson
import paho.mqtt.client as mqtt
import pytest

from ..services import mosquitto
from .test_cli import PASS, qdsn
from .test_ingest_crash import manufacturer, stored

KILLS = 50


def _command(acme, broker, log):
    from qdsn.cli.main import run

    os.environ.update({**PASS, "QDSN_HOME": str(acme), "COLUMNS": "200"})
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.dup2(fd, 1), os.dup2(fd, 2)
    sys.argv = ["qdsn", "ingest", "mqtt", "--broker", broker, "--topic", "plant/#", "--dataset", "line-1",
                "--batch-size", "20", "--batch-seconds", "0.05"]  # fmt: skip
    run()


def start(acme, broker):
    import qdsn.cli.main  # noqa: F401  imported here, once, before the forks

    proc = get_context("fork").Process(target=_command, args=(acme, broker, acme.parent / "runs.log"))
    proc.start()
    return proc


def reading(i):
    return orjson.dumps({"id": f"gw-7/{i}", "characteristic": "conductor resistance", "value": 17 + i / 10_000,
                         "time": "2026-03-01T08:00:00Z"})  # fmt: skip


def wait_for(predicate, seconds=60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return False


@pytest.mark.timeout(900)  # fifty SIGKILLs and resumptions, each a process start
def test_mqtt_ingest_killed_at_random_moments_keeps_every_acknowledged_reading_once(tmp_path):
    _, acme = manufacturer(tmp_path)
    rng = random.Random(int.from_bytes(os.urandom(4)))
    with mosquitto() as broker:
        pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="gw-7", protocol=mqtt.MQTTv311)
        pub.connect("127.0.0.1", broker.port)
        pub.loop_start()
        proc = start(acme, broker.url)  # its session exists once reading 0 (sent until stored) is stored
        assert wait_for(lambda: pub.publish("plant/a", reading(0), qos=1).wait_for_publish(5) or stored(acme) == 1)
        acked, total = {0}, 3000

        def gateway():
            for i in range(1, total):
                pub.publish(f"plant/hz/line/1/{i % 3}", reading(i), qos=1).wait_for_publish(30)
                acked.add(i)  # the broker has it: it must not be lost
                time.sleep(0.004)

        sender = threading.Thread(target=gateway)
        sender.start()
        kills = 0
        while kills < KILLS:
            before = stored(acme)
            wait_for(lambda before=before: stored(acme) != before and rng.random() < 0.5, 20)  # mid-stream
            time.sleep(rng.uniform(0, 0.05))
            proc.kill()  # SIGKILL
            proc.join()
            kills += 1
            proc = start(acme, broker.url)
        sender.join()
        assert wait_for(lambda: stored(acme) >= total, 60), stored(acme)
        time.sleep(0.5)  # a late redelivery would be stored twice now
        os.kill(proc.pid, signal.SIGINT)  # Ctrl-C: the command ends cleanly
        proc.join(30)
        assert proc.exitcode == 0, (tmp_path / "runs.log").read_text()[-3000:]
        pub.loop_stop()
    assert len(acked) == total
    out = tmp_path / "all.jsonl"
    qdsn("dataset", "export", "line-1", "--format", "jsonl", "--out", str(out), home=acme)
    values = sorted(round((json.loads(x)["value"] - 17) * 10_000) for x in out.read_text().splitlines())
    assert values == list(range(total))  # every acknowledged reading, once
    assert "verified" in qdsn("vault", "verify", home=acme).stdout
