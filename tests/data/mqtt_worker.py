"""Runs an MQTT ingestor for the crash tests until it is killed or a stop file appears."""

import sys
import threading
import time
from pathlib import Path

from qdsn.crypto import SigningKey, hkdf_sha256
from qdsn.data.mqtt import MqttIngest
from qdsn.data.vault import Vault
from qdsn.identity import did_key_from_public_key
from qdsn.ledger import Ledger, tx
from qdsn.node.home import find_anchor


def main(broker: str, folder: str, seed_hex: str) -> None:
    owner = SigningKey.from_seed(bytes.fromhex(seed_hex))
    did = did_key_from_public_key(owner.verify_key.raw)
    ledger = Ledger.open(f"{folder}/ledger.db")
    vault = Vault(f"{folder}/vault.db", lambda kid=None: ("k", hkdf_sha256(owner.seed(), b"qdsn/vault/kek/v1")))

    def anchor(batch):
        return ledger.append([tx.sign_tx("dataset.anchor", batch.anchor_payload(), owner, did)])[0].txid

    stop = threading.Event()

    def watch(stop_file: Path = Path(folder) / "stop") -> None:
        while not stop_file.exists():
            time.sleep(0.1)
        stop.set()

    threading.Thread(target=watch, daemon=True).start()
    ingest = MqttIngest(
        broker,
        "plant/+/line/+/#",
        vault,
        "line-1",
        anchor,
        client_id="qdsn-test-ingest",
        batch_size=200,
        batch_seconds=0.3,
        lookup=lambda dataset, first: find_anchor(ledger, did, dataset, first),
    )
    ingest.run(stop)


if __name__ == "__main__":
    main(*sys.argv[1:4])
