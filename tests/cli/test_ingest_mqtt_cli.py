"""`qdsn simulate` into `qdsn ingest mqtt` through a stock mosquitto, as the README shows it: every
reading of two runs stored once; and gaps in devices' sequence numbers on the command line."""

import json
import os
import signal
import subprocess
import sys
import time

import orjson
import paho.mqtt.client as mqtt

from ..services import mosquitto
from .test_cli import PASS, qdsn
from .test_ingest_crash import stored

CHARACTERISTICS = ("conductor resistance:Ω/km::18.1", "insulation thickness:mm:0.7:", "outer diameter:mm:3.4:3.8")


def plant(tmp_path):
    """A regulator and a manufacturer admitted by it, with dataset line-1 declaring the simulator's characteristics."""
    reg, acme = tmp_path / "reg", tmp_path / "acme"
    qdsn("init", "--role", "regulator", "--name", "Bureau", home=reg)
    qdsn("init", "--role", "enterprise", "--name", "Acme", "--ledger", str(reg / "ledger.db"), home=acme)
    did = json.loads(qdsn("did", "show", home=acme).stdout)["id"]
    payload = {"did": did, "role": "enterprise", "name": "Acme", "key": did.removeprefix("did:key:")}
    qdsn("ledger", "append", "identity.register", json.dumps(payload), home=reg)
    declared = [a for c in CHARACTERISTICS for a in ("--characteristic", c)]
    qdsn("dataset", "create", "line-1", "--title", "Line 1", *declared, home=acme)
    return acme


def wait_for(predicate, seconds=60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_two_simulator_runs_through_a_stock_broker_are_stored_whole(tmp_path):
    acme = plant(tmp_path)
    with mosquitto("default") as broker:
        env = {**os.environ, **PASS, "QDSN_HOME": str(acme), "COLUMNS": "200"}
        ingest = subprocess.Popen(
            [sys.executable, "-m", "qdsn", "ingest", "mqtt", "--broker", broker.url, "--topic", "plant/#",
             "--dataset", "line-1"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        probe = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="probe", protocol=mqtt.MQTTv311)
        probe.connect("127.0.0.1", broker.port)
        probe.loop_start()
        reading = {"id": "probe", "characteristic": "outer diameter", "value": 3.6, "time": "2026-03-01T08:00:00Z"}

        def subscribed():  # the ingestor stores the probe (sent until it does, and stored once)
            probe.publish("plant/probe", orjson.dumps(reading), qos=1).wait_for_publish(10)
            return stored(acme) == 1

        assert wait_for(subscribed), ingest.stdout.read() if ingest.poll() is not None else "no probe stored"
        for _ in range(2):  # the same command twice: the second run is new readings, not duplicates
            assert "1500 readings" in qdsn("simulate", "--to", broker.url, "--subgroups", "100").stdout
        assert wait_for(lambda: stored(acme) >= 3001), stored(acme)
        for n in (1, 4):  # a gauge whose readings 2 and 3 were lost on the way
            lone = {**reading, "id": f"gw-9/{n}", "device": "gw-9", "seq": n}
            probe.publish("plant/gw-9", orjson.dumps(lone), qos=1).wait_for_publish(10)
        assert wait_for(lambda: stored(acme) >= 3003), stored(acme)
        probe.loop_stop()
        probe.disconnect()
        time.sleep(0.5)
        ingest.send_signal(signal.SIGINT)
        out = ingest.communicate(timeout=30)[0]
    assert "3003 readings stored" in out, out  # (and the probe's repeats dropped as duplicates)
    assert ingest.returncode == 1 and "2 readings never arrived" in out and "gw-9: 2 missing of 1–4: 2–3" in out, out
    report = json.loads(qdsn("ingest", "gaps", "--dataset", "line-1", "--json", home=acme, ok=False).stdout)
    simulated = [d for d in report["devices"] if d["device"] != "gw-9"]
    assert len(simulated) == 6 and {(d["last"], d["missing"]) for d in simulated} == {(500, 0)}  # 3 devices, 2 runs
    assert report["missing"] == 2


def test_gaps_are_listed_with_the_missing_numbers_and_fail_the_command(tmp_path):
    acme = plant(tmp_path)
    lines = [
        {"characteristic": "outer diameter", "value": 3.6, "time": "2026-03-01T08:00:00Z", "device": "od-1", "seq": n}
        for n in [*range(1, 11), *range(15, 21), 40]
    ] + [{"characteristic": "outer diameter", "value": 3.6, "time": "2026-03-01T08:00:00Z", "device": "od-2",
          "seq": n, "boot": "r2"} for n in (1, 2, 3)]  # fmt: skip
    (tmp_path / "r.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    qdsn("ingest", "json", str(tmp_path / "r.jsonl"), "--dataset", "line-1", home=acme)
    shown = qdsn("ingest", "gaps", "--dataset", "line-1", home=acme, ok=False)
    assert shown.returncode == 1
    assert "od-1" in shown.stdout and "11–14, 21–39" in shown.stdout and "23 readings never arrived" in shown.stdout
    report = json.loads(qdsn("ingest", "gaps", "--dataset", "line-1", "--json", home=acme, ok=False).stdout)
    assert report["missing"] == 23
    [od1, od2] = report["devices"]
    assert od1 == {
        "device": "od-1",
        "boot": None,
        "last": 40,
        "arrived": 17,
        "missing": 23,
        "gaps": [[11, 14], [21, 39]],
    }
    assert (od2["boot"], od2["missing"], od2["gaps"]) == ("r2", 0, [])


def test_the_broker_configuration_is_printed_and_a_missing_broker_is_said_so(tmp_path):
    conf = qdsn("ingest", "broker-config").stdout
    assert "max_queued_messages 1000000" in conf and "persistence true" in conf
    acme = plant(tmp_path)
    refused = qdsn("ingest", "mqtt", "--broker", "mqtt://127.0.0.1:9", "--topic", "plant/#", "--dataset", "line-1",
                   home=acme, ok=False)  # fmt: skip
    assert refused.returncode == 1 and "cannot reach the MQTT broker" in refused.stderr
    assert "Traceback" not in refused.stderr + refused.stdout
