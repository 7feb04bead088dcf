import statistics
from datetime import UTC, datetime

import orjson

from qdsn.data.model import Measurement
from qdsn.data.mqtt import MqttIngest
from qdsn.data.simulate import CABLE, Disturbance, readings
from qdsn.data.vault import Vault

from ..services import mosquitto
from .test_mqtt import publisher, running, wait_for
from .test_vault import Keys

START = datetime(2026, 3, 1, tzinfo=UTC)


def values(rs, name, groups):
    return [r["value"] for _, r in rs if r["characteristic"] == name and r["subgroup"] in groups]


def test_readings_are_valid_deterministic_and_disturbed_as_asked():
    rs = list(
        readings(subgroups=100, start=START, seed=3, disturbance=Disturbance(shift_at=50, shift=2.0, outliers=(20,)))
    )
    assert rs == list(
        readings(subgroups=100, start=START, seed=3, disturbance=Disturbance(shift_at=50, shift=2.0, outliers=(20,)))
    )
    assert len(rs) == 100 * 5 * len(CABLE)
    for _, r in rs[:50]:
        Measurement.model_validate({k: v for k, v in r.items() if k != "id"}, context={"now": START.replace(year=2027)})
    spec = CABLE[0]
    before = statistics.mean(values(rs, spec.name, range(0, 50)))
    after = statistics.mean(values(rs, spec.name, range(50, 100)))
    assert abs(before - spec.target) < 0.5 * spec.sigma and abs(after - before - 2 * spec.sigma) < 0.5 * spec.sigma
    outlier = values(rs, spec.name, [20])[0]
    assert outlier > spec.target + 4 * spec.sigma
    assert len({r["id"] for _, r in rs}) == len(rs)


def test_simulated_line_published_over_mqtt_lands_in_the_vault(tmp_path):
    vault = Vault(str(tmp_path / "v.db"), Keys())
    vault.create("line", "measurements")
    with mosquitto() as broker:
        ingest = MqttIngest(
            broker.url,
            "plant/+/line/+/#",
            vault,
            "line",
            lambda b: "tx",
            client_id="sim-test",
            batch_size=100,
            batch_seconds=0.2,
        )
        with running(ingest):
            pub = publisher(broker.port)
            rs = list(readings(lines=2, subgroups=10, start=START))
            for topic, r in rs:
                pub.publish(topic, orjson.dumps(r), qos=1).wait_for_publish(5)
            assert wait_for(lambda: ingest.stats.stored >= len(rs), 20)
        pub.loop_stop()
    assert ingest.stats.stored == len(rs) == 2 * 10 * 5 * 3
    assert sorted(r["value"] for r in vault.records("line")) == sorted(r["value"] for _, r in rs)
