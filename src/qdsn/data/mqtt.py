"""MQTT ingestion (paho-mqtt, QoS 1): readings published by devices or gateways are validated,
sealed in the vault and anchored batch by batch.

A message is acknowledged only after its batch is committed and anchored, on a persistent session
(clean_session=False), so a crash of this process or a broker restart loses nothing: the broker
redelivers what was not acknowledged, and the vault drops messages it already stored.

A message is one JSON measurement, optionally with `"sig"`: the Ed25519 signature, by the device
registered on the ledger under the reading's `device`, of the reading's canonical JSON (without `id`
and `sig`). The vault keeps the signature with the reading. A message's id is the payload's `"id"`
if it has one, else the SHA-256 of topic and payload, so a redelivery is recognised whatever MQTT
packet id it comes with.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import orjson
import paho.mqtt.client as mqtt
from pydantic import ValidationError

from qdsn.crypto import BatchVerifier, verify_key
from qdsn.crypto.encoding import b64url_decode
from qdsn.data.model import Measurement
from qdsn.data.vault import Batch, Vault, reading_message
from qdsn.errors import BadSignature, InvalidInput, NotFound, QDSNError


@dataclass
class Stats:
    """What an MQTT ingestor has done so far."""

    received: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    batches: int = 0
    rejections: list[str] = field(default_factory=list)


def parse_broker(url: str) -> tuple[str, int]:
    """(host, port) of `mqtt://HOST:PORT`."""
    u = urlsplit(url)
    if u.scheme != "mqtt" or not u.hostname:
        raise InvalidInput(f"{url!r} is not an MQTT broker URL", "write it as mqtt://HOST:PORT")
    return u.hostname, u.port or 1883


def message_id(topic: str, payload: bytes, parsed: object) -> str:
    """A message's id: its payload's `id`, else the SHA-256 of topic and payload."""
    if isinstance(parsed, dict) and isinstance(parsed.get("id"), str) and parsed["id"]:
        return parsed["id"][:128]
    return hashlib.sha256(topic.encode() + b"\n" + payload).hexdigest()


class MqttIngest:
    """Subscribe to `topic` and keep sealing and anchoring what arrives until `stop` is set."""

    def __init__(
        self,
        broker: str,
        topic: str,
        vault: Vault,
        dataset: str,
        anchor: Callable[[Batch], str],
        *,
        client_id: str,
        batch_size: int = 1000,
        batch_seconds: float = 1.0,
        devices: Callable[[str], bytes | None] | None = None,
        require_signatures: bool = False,
    ) -> None:
        self.host, self.port = parse_broker(broker)
        self.devices, self.require_signatures = devices, require_signatures
        self.topic, self.vault, self.dataset, self.anchor = topic, vault, dataset, anchor
        self.batch_size, self.batch_seconds = batch_size, batch_seconds
        self.stats = Stats()
        self._pending: list[tuple[int, str, bytes]] = []  # (mid, topic, payload)
        self._lock = threading.Lock()
        self._client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=False,
            manual_ack=True,
            protocol=mqtt.MQTTv311,
        )
        self._client.on_message = self._on_message
        self._client.on_connect = self._on_connect
        self._client.reconnect_delay_set(min_delay=0.2, max_delay=2)

    def _on_connect(self, client, userdata, flags, reason, properties) -> None:  # type: ignore[no-untyped-def]
        client.subscribe(self.topic, qos=1)

    def _on_message(self, client, userdata, msg) -> None:  # type: ignore[no-untyped-def]
        with self._lock:
            self._pending.append((msg.mid, msg.topic, bytes(msg.payload)))

    def run(self, stop: threading.Event, progress: Callable[[Stats], None] | None = None) -> Stats:
        """Ingest until `stop` is set; anchors batches a crash left unanchored first."""
        for batch in self.vault.unanchored(self.dataset):
            self.vault.mark_anchored(batch, self.anchor(batch))
        self._client.connect(self.host, self.port, keepalive=30)
        self._client.loop_start()
        oldest: float | None = None
        try:
            while not stop.is_set():
                with self._lock:
                    n = len(self._pending)
                if n and oldest is None:
                    oldest = time.monotonic()
                if n >= self.batch_size or (
                    n and oldest is not None and time.monotonic() - oldest >= self.batch_seconds
                ):
                    self._flush()
                    oldest = None
                    if progress:
                        progress(self.stats)
                else:
                    stop.wait(0.02)
            self._flush()
        finally:
            self._client.loop_stop()
            self._client.disconnect()
        return self.stats

    def _reject(self, where: str, error: Exception) -> None:
        self.stats.rejected += 1
        self.stats.rejections.append(f"{where}: {str(error).splitlines()[0]}")

    def _check_signature(self, sig: object, record: dict, checks: BatchVerifier, index: int) -> str | None:
        """Queue a reading's device signature for verification; the signature to keep, if any."""
        if sig is None:
            if self.require_signatures:
                raise InvalidInput("the reading is not signed by its device")
            return None
        device = record.get("device")
        key = self.devices(device) if self.devices and device else None
        if key is None:
            raise NotFound(f"device {device!r} is not registered on the ledger")
        if not isinstance(sig, str):
            raise InvalidInput("sig must be base64url")
        checks.add(verify_key(key), b64url_decode(sig), reading_message(record), index)
        return sig

    def _flush(self) -> None:
        with self._lock:
            taken, self._pending = self._pending[: self.batch_size], self._pending[self.batch_size :]
        if not taken:
            return
        records, ids, sigs = [], [], []
        checks = BatchVerifier()
        with checks:
            for _, topic, payload in taken:
                self.stats.received += 1
                try:
                    parsed = orjson.loads(payload)
                    record = Measurement.model_validate({k: v for k, v in parsed.items() if k not in ("id", "sig")})
                    data = record.model_dump(mode="json", exclude_none=True)
                    sig = self._check_signature(parsed.get("sig"), data, checks, len(records))
                except (orjson.JSONDecodeError, ValidationError, AttributeError, QDSNError) as e:
                    self._reject(topic, e)
                    continue
                records.append(data)
                ids.append(message_id(topic, payload, parsed))
                sigs.append(sig)
            forged = set(checks.failures())
        if forged:  # signatures that do not verify under the registered device key
            for i in sorted(forged):
                self._reject(
                    f"reading from {records[i].get('device')}", BadSignature("device signature does not verify")
                )
            keep = [i for i in range(len(records)) if i not in forged]
            records, ids, sigs = [records[i] for i in keep], [ids[i] for i in keep], [sigs[i] for i in keep]
        if records:
            batch = self.vault.add_batch(self.dataset, records, ids, sigs)
            stored = batch.count if batch else 0
            self.stats.duplicates += len(records) - stored
            if batch is not None:
                self.vault.mark_anchored(batch, self.anchor(batch))
                self.stats.stored += stored
                self.stats.batches += 1
        for mid, _, _ in taken:  # only now: the batch is committed and anchored; rejects are acked too
            self._client.ack(mid, 1)
