"""MQTT ingestion (paho-mqtt, QoS 1): readings published by devices or gateways are validated,
sealed in the vault and anchored batch by batch.

A message is acknowledged only after it is durably kept, on a persistent MQTT 5 session (clean start
off, a session that does not expire), so a crash of this process loses nothing: the broker redelivers
what was not acknowledged, and the vault drops messages it already stored. The ingestor stays within
the broker's flow control without starving it: a stock mosquitto sends a client 20 unacknowledged
messages, queues 1,000 more and drops the rest, so holding acknowledgements until a batch commits
overflowed it. The ingestor asks for the most MQTT 5 allows (Receive Maximum 65,535): the broker hands
readings over as they come, they wait here, unacknowledged, until their batch is committed (a batch
commits as soon as it is full), and the broker's queue fills only when 65,535 readings are waiting. A
broker that still drops (past its queue while the ingestor is down), or one restarted without
persistence, leaves gaps in the devices' sequence numbers, and those are reported: see
`qdsn.data.sequences`.

A good reading is kept once its batch is committed and anchored; a refused one (not JSON, not a valid
measurement, of a characteristic the dataset does not declare, a signature that does not verify) once
it is set aside in the vault's quarantine with the reason, its payload sealed.

A message is one JSON measurement, optionally with `"sig"`: the Ed25519 signature, by the device
registered on the ledger under the reading's `device`, of the reading's canonical JSON (without `id`
and `sig`). The vault keeps the signature with the reading. Registrations are followed as they land
(`Registry`). A message is recognised by its payload's `"id"` if it has one, else by its topic and
payload, whatever MQTT packet id it comes with; the vault keeps only a keyed hash of either.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from pydantic import ValidationError

from qdsn.clock import format_time, system_clock
from qdsn.crypto import BatchVerifier, verify_key
from qdsn.crypto.encoding import b64url_decode
from qdsn.data.model import Measurement
from qdsn.data.vault import AnchorLookup, Batch, Vault, reading_message
from qdsn.errors import BadSignature, InvalidInput, NotFound, QDSNError, Unavailable
from qdsn.identity.didkey import public_key_from_multikey
from qdsn.ledger import tx


@dataclass
class Stats:
    """What an MQTT ingestor has done so far."""

    received: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    batches: int = 0
    rejections: list[str] = field(default_factory=list)  # the latest few; all are in the vault's quarantine
    sessions_lost: int = 0  # reconnections on which the broker no longer had this ingestor's session


RECEIVE_MAXIMUM = 65_535
NEVER_EXPIRES = 0xFFFFFFFF


def parse_broker(url: str) -> tuple[str, int]:
    """(host, port) of `mqtt://HOST:PORT`."""
    u = urlsplit(url)
    if u.scheme != "mqtt" or not u.hostname:
        raise InvalidInput(f"{url!r} is not an MQTT broker URL", "write it as mqtt://HOST:PORT")
    return u.hostname, u.port or 1883


def message_id(topic: str, payload: bytes, parsed: object) -> bytes:
    """What identifies a message: its payload's `id`, else its topic and payload (the vault keeps only
    a keyed hash of it)."""
    if isinstance(parsed, dict) and isinstance(parsed.get("id"), str) and parsed["id"]:
        return b"id\0" + parsed["id"].encode()
    return b"raw\0" + topic.encode() + b"\n" + payload


class Registry:
    """Device keys registered on the ledger, followed as registrations land: a device not known yet
    makes it read the registrations appended since, at most once per batch of readings."""

    def __init__(self, load: Callable[[int], tuple[int, dict[str, bytes]]]) -> None:
        self._load, self._next, self._keys, self._fresh = load, 0, {}, False
        self.refresh()

    @classmethod
    def of_ledger(cls, rows_of_type: Callable[[str, int], list]) -> Registry:  # type: ignore[type-arg]
        """Following a ledger replica's `device.register` entries (`Store.rows_of_type`)."""

        def load(start: int) -> tuple[int, dict[str, bytes]]:
            rows = rows_of_type("device.register", start)
            found = {}
            for r in rows:
                p = tx.from_leaf(r.leaf).payload
                found.setdefault(p["device"], public_key_from_multikey(p["key"]))
            return (rows[-1].seq + 1 if rows else start), found

        return cls(load)

    def refresh(self) -> None:
        self._next, found = self._load(self._next)
        for device, key in found.items():
            self._keys.setdefault(device, key)  # a device registers once; the first registration holds

    def new_round(self) -> None:
        """A new batch of readings: the next miss may read the ledger again."""
        self._fresh = False

    def __call__(self, device: str) -> bytes | None:
        if device not in self._keys and not self._fresh:
            self._fresh = True
            self.refresh()
        return self._keys.get(device)


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
        lookup: AnchorLookup | None = None,
        characteristics: Collection[str] | None = None,
    ) -> None:
        self.host, self.port = parse_broker(broker)
        self.devices, self.require_signatures = devices, require_signatures
        self.declared = set(characteristics) if characteristics else None  # readings of others are refused
        self.topic, self.vault, self.dataset, self.anchor, self.lookup = topic, vault, dataset, anchor, lookup
        # a batch is at most what the broker may send unacknowledged
        self.batch_size, self.batch_seconds = max(1, min(batch_size, RECEIVE_MAXIMUM)), batch_seconds
        self.stats = Stats()
        self._pending: list[tuple[int, str, bytes]] = []  # (mid, topic, payload)
        self._lock = threading.Lock()
        self._connected_before = False
        self._client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, manual_ack=True, protocol=mqtt.MQTTv5
        )
        self._client.on_message = self._on_message
        self._client.on_connect = self._on_connect
        self._client.reconnect_delay_set(min_delay=0.2, max_delay=2)

    def _on_connect(self, client, userdata, flags, reason, properties) -> None:  # type: ignore[no-untyped-def]
        if reason.is_failure:
            return
        if self._connected_before and not flags.session_present:
            self.stats.sessions_lost += 1  # a broker restarted without persistence: what it held is gone
        self._connected_before = True
        client.subscribe(self.topic, qos=1)

    def _connect_properties(self) -> Properties:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = NEVER_EXPIRES  # a persistent session, as MQTT 3's clean_session=False
        props.ReceiveMaximum = RECEIVE_MAXIMUM  # hand readings over as they come: they wait here, not queued there
        return props

    def _on_message(self, client, userdata, msg) -> None:  # type: ignore[no-untyped-def]
        with self._lock:
            self._pending.append((msg.mid, msg.topic, bytes(msg.payload)))

    def run(self, stop: threading.Event, progress: Callable[[Stats], None] | None = None) -> Stats:
        """Ingest until `stop` is set; settles batches a crash left between vault and ledger first."""
        self.vault.settle(self.dataset, self.anchor, self.lookup)
        try:
            self._client.connect(
                self.host, self.port, keepalive=30, clean_start=False, properties=self._connect_properties()
            )
        except OSError as e:
            raise Unavailable(
                f"cannot reach the MQTT broker at {self.host}:{self.port}: {e.strerror or e}",
                "start the broker, or check --broker",
            ) from None
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

    def _reject(self, refused: list, topic: str, payload: bytes, parsed: object, where: str, error: Exception) -> None:  # type: ignore[type-arg]
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        refused.append((message_id(topic, payload, parsed), topic, payload, reason))
        self.stats.rejected += 1
        self.stats.rejections = [*self.stats.rejections[-99:], f"{where}: {reason}"]

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
        if isinstance(self.devices, Registry):
            self.devices.new_round()
        records, ids, sigs, raw = [], [], [], []
        refused: list[tuple[bytes, str, bytes, str]] = []  # (message id, topic, payload, reason)
        checks = BatchVerifier()
        with checks:
            for _, topic, payload in taken:
                self.stats.received += 1
                parsed: object = None
                try:
                    parsed = orjson.loads(payload)
                    record = Measurement.model_validate({k: v for k, v in parsed.items() if k not in ("id", "sig")})
                    data = record.model_dump(mode="json", exclude_none=True)
                    if self.declared is not None and record.characteristic not in self.declared:
                        raise InvalidInput(
                            f"{record.characteristic!r} is not a characteristic the dataset declares "
                            f"({', '.join(sorted(self.declared))})"
                        )
                    sig = self._check_signature(parsed.get("sig"), data, checks, len(records))
                except (orjson.JSONDecodeError, ValidationError, AttributeError, QDSNError) as e:
                    self._reject(refused, topic, payload, parsed, topic, e)
                    continue
                records.append(data)
                ids.append(message_id(topic, payload, parsed))
                sigs.append(sig)
                raw.append((topic, payload, parsed))
            forged = set(checks.failures())
        if forged:  # signatures that do not verify under the registered device key
            for i in sorted(forged):
                e = BadSignature("device signature does not verify")
                self._reject(refused, *raw[i], f"reading from {records[i].get('device')}", e)
            keep = [i for i in range(len(records)) if i not in forged]
            records, ids, sigs = [records[i] for i in keep], [ids[i] for i in keep], [sigs[i] for i in keep]
        if refused:  # set aside durably before the broker is told they arrived
            self.vault.quarantine(self.dataset, refused, format_time(system_clock()))
        if records:
            batch = self.vault.add_batch(self.dataset, records, ids, sigs)
            stored = batch.count if batch else 0
            self.stats.duplicates += len(records) - stored
            if batch is not None:
                self.vault.anchor_batch(batch, self.anchor, self.lookup)
                self.stats.stored += stored
                self.stats.batches += 1
        for mid, _, _ in taken:  # only now: every message is stored and anchored, or set aside
            self._client.ack(mid, 1)
