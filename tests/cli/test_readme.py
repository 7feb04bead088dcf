"""The README's "Using a node" section, run as written: its fenced commands, one process each, one home per
organisation, services (`node start`, `ingest mqtt`) in the background. Host names and ports are mapped to
free loopback ports, the files a user would bring are made here, and a placeholder (`z6Mk…`) is filled from
what earlier commands printed. It ends with every replica at the same size and root and every member
cosigning."""

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import trustme

from qdsn.api.client import NodeClient
from qdsn.crypto import SigningKey
from qdsn.identity import multikey_from_public_key
from qdsn.ledger import Ledger, tx
from qdsn.ledger.audit import audit
from qdsn.node import NodeHome
from qdsn.node.follow import log_key

from ..services import free_port, mosquitto

README = Path(__file__).parents[2] / "README.md"
OFFLINE = ("did:web:",)  # resolving a did:web fetches it from the internet, which the tests do not reach
PASSPHRASE = "readme passphrase"


def commands() -> list[str]:
    """The shell commands of the section "Using a node", up to its certification models, in order."""
    text = README.read_text()
    section = text[text.index("## Using a node") :]
    section = section[: section.index("\n## ", 1)]
    out: list[str] = []
    for block in re.findall(r"```sh\n(.*?)```", section, re.S):
        if re.search(r"^qdsn (model|cert|attest|jobs) ", block, re.M):
            break  # the certification body's part, tested on its own
        out += [line for line in block.replace("\\\n", " ").splitlines() if line.strip()]
    return out


def inputs(cwd: Path, device_key: str) -> None:
    """The files a manufacturer brings: readings in CSV (UTF-8 and GB18030), EPCIS events, an offer, SPC data."""
    rows = [
        f"conductor resistance,{17.6 + (i % 9) / 50:.2f},2026-03-01T08:{i // 60:02d}:{i % 60:02d}Z" for i in range(120)
    ]
    (cwd / "readings.csv").write_text("characteristic,value,time\n" + "\n".join(rows) + "\n")
    gbk = [f"conductor resistance,{17.7 + (i % 5) / 40:.2f},2026-03-02T09:{i:02d}:00Z" for i in range(40)]
    (cwd / "导出.csv").write_bytes(("characteristic,value,time\n" + "\n".join(gbk) + "\n").encode("gb18030"))
    from qdsn.data import epcis

    records = [{"characteristic": "conductor resistance", "value": 17.9, "unit": "Ω/km", "subgroup": i,
                "time": f"2026-03-03T10:{i:02d}:00Z"} for i in range(10)]  # fmt: skip
    doc = epcis.export(records, "measurements", "line-1", units={"conductor resistance": "Ω/km"}, sender="did:web:x")
    (cwd / "events.jsonld").write_text(json.dumps(doc))
    (cwd / "subgroups.csv").write_text("\n".join(",".join(f"{17.5 + ((i * 7 + j * 3) % 11) / 40:.3f}" for j in range(5))
                                                 for i in range(25)) + "\n")  # fmt: skip
    (cwd / "values.csv").write_text("value\n" + "\n".join(f"{17.5 + (i * 37 % 101) / 250:.3f}" for i in range(200)))
    (cwd / "device.key").write_text(device_key)


def offer(did: str) -> dict:
    return {"@context": "http://www.w3.org/ns/odrl.jsonld", "@type": "Offer", "uid": "urn:qdsn:offer:line-1:read",
            "profile": "urn:qdsn:odrl:profile:v1", "assigner": did, "target": "urn:qdsn:dataset:line-1",
            "permission": [{"action": "read"}]}  # fmt: skip


def test_the_readme_as_written(tmp_path):
    lines = commands()
    assert any("node start" in c for c in lines) and any("dataset create" in c for c in lines)
    hosts = {m: free_port() for m in sorted(set(re.findall(r"https?://([a-z][\w-]*:\d+)", "\n".join(lines))))}
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    device = SigningKey.generate()
    inputs(tmp_path, multikey_from_public_key(device.verify_key.raw))
    env = os.environ | {"COLUMNS": "200", "HOME": str(tmp_path)}  # a default home (~/.qdsn) stays in the test
    env.pop("QDSN_HOME", None)
    printed: list[str] = []  # what the commands printed, in order: placeholders are filled from it
    background: list[tuple[str, subprocess.Popen]] = []
    with mosquitto() as broker:
        try:
            for line in lines:
                args = shlex.split(line, comments=True)
                if not args:
                    continue
                if args[0] == "export":
                    name, _, value = args[1].partition("=")
                    env[name] = PASSPHRASE if value == "..." else str((tmp_path / value).resolve()) if value.startswith(
                        "./") else value  # fmt: skip
                    continue
                assert args[0] == "qdsn", line
                if any(a.startswith(OFFLINE) for a in args):
                    continue
                args = [fill(a, args, printed, broker, hosts, tmp_path, ca) for a in args]
                if "offer.json" in args:  # the manufacturer's offer names it as assigner
                    (tmp_path / "offer.json").write_text(json.dumps(offer(did_of(tmp_path / "acme"))))
                if args[1:3] == ["node", "start"] or args[1:3] == ["ingest", "mqtt"]:
                    background.append((line, serve(args, env, tmp_path, hosts)))
                    continue
                if args[1] == "simulate":
                    time.sleep(2)  # the ingester has subscribed
                # `join` asks the person to confirm the log key's fingerprint, which the regulator gave them
                said = "y\n" if args[1] == "join" else None
                done = subprocess.run([sys.executable, "-m", "qdsn", *args[1:]], cwd=tmp_path, env=env, input=said,
                                      capture_output=True, text=True, timeout=300)  # fmt: skip
                assert done.returncode == 0, f"{line}\n{done.stderr}{done.stdout}"
                if args[1] == "join":  # the fingerprint shown is the one the regulator's own node prints
                    assert fingerprint(tmp_path / "reg") in done.stdout, done.stdout
                assert "Traceback" not in done.stderr, line
                printed.append(done.stdout + done.stderr)
            for line, proc in background:  # the readings are in; stop the ingester as Ctrl-C would
                if "ingest mqtt" in line:
                    quiet(tmp_path / "acme", proc)
                    proc.send_signal(signal.SIGINT)
                    out, _ = proc.communicate(timeout=60)
                    assert proc.returncode == 0 and "stored" in out.decode(), out.decode()
            nodes = [proc for line, proc in background if "node start" in line]
            assert len(nodes) >= 2
            converge(tmp_path, hosts)
        finally:
            for _, proc in reversed(background):
                if proc.poll() is None:
                    proc.terminate()
                    proc.wait(timeout=20)

    homes = [p.parent for p in tmp_path.glob("*/node.toml")]
    replicas = {h.name: Ledger.open(str(h / "ledger.db")) for h in homes}
    key = log_key(replicas["reg"])
    reports = {n: audit(r.store, key) for n, r in replicas.items()}
    assert all(r.ok for r in reports.values()), {n: r.reason for n, r in reports.items()}
    assert len({(r.size, r.root) for r in reports.values()}) == 1, {n: (r.size, r.root) for n, r in reports.items()}
    entries = [tx.from_leaf(x) for x in replicas["reg"].store.leaves(0, replicas["reg"].size)]
    members = {e.payload["did"] for e in entries if e.type == "identity.register" and e.payload["role"] != "regulator"}
    cosigners = {e.submitter for e in entries if e.type == "checkpoint.cosign"}
    assert members and members <= cosigners  # every member cosigns
    kinds = {e.type for e in entries if e.submitter in members}
    assert {"dataset.declare", "dataset.anchor", "device.register", "policy.set"} <= kinds  # the member's commands
    for r in replicas.values():
        r.close()


def fingerprint(home: Path) -> str:
    """The log key's fingerprint as the regulator reads it from its own home (`qdsn ledger checkpoint`)."""
    from qdsn.node.onboard import key_fingerprint

    return key_fingerprint(NodeHome.open(home, PASSPHRASE).log_signer().verifier())


def fill(arg: str, args: list[str], printed: list[str], broker, hosts, cwd: Path, ca) -> str:  # type: ignore[no-untyped-def]
    """One argument as the user would type it here: host names and ports mapped, placeholders filled."""
    for hostport, port in hosts.items():
        arg = arg.replace(hostport, f"127.0.0.1:{port}")
    arg = arg.replace("mqtt://127.0.0.1:1883", broker.url)
    if arg == "0.0.0.0":
        return "127.0.0.1"
    if "…" in arg:
        if arg == "z6Mk…" and "device" in args:
            return (cwd / "device.key").read_text()
        did = re.findall(r"did:key:z6Mk\w+", "\n".join(printed))  # the member admitted: the newest node made
        joined = [d for d in did if d != did_of(cwd / "reg")]
        assert joined, f"no member's DID printed before {arg!r}"
        arg = arg.replace("did:key:z6Mk…", joined[-1]).replace("z6Mk…", joined[-1].removeprefix("did:key:"))
        assert "…" not in arg, f"the README's placeholder in {arg!r} has no value here: say in fill() what fills it"
    if arg.endswith(".pem") and not (cwd / arg).exists():  # a node's TLS certificate and key, from the test CA
        pair = ca.issue_cert("127.0.0.1", "localhost")
        name = arg.removesuffix(".pem").removesuffix("-key")
        pair.cert_chain_pems[0].write_to_path(str(cwd / f"{name}.pem"))
        pair.private_key_pem.write_to_path(str(cwd / f"{name}-key.pem"))
    return arg


def did_of(home: Path) -> str:
    return re.search(r'did = "([^"]+)"', (home / "node.toml").read_text()).group(1)  # type: ignore[union-attr]


def serve(args: list[str], env: dict, cwd: Path, hosts) -> subprocess.Popen:  # type: ignore[no-untyped-def]
    """A service from the README, in the background: a node (answering on its port) or the MQTT ingester."""
    if "--port" in args:
        wanted = args[args.index("--port") + 1]
        mapped = next((p for hp, p in hosts.items() if hp.endswith(f":{wanted}")), None)
        args[args.index("--port") + 1] = str(mapped or free_port())
    monitor = ["--monitor", "0.5"] if "node" in args else []
    proc = subprocess.Popen([sys.executable, "-m", "qdsn", *args[1:], *monitor],
                            cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    if args[1] == "node":
        home = cwd / args[args.index("--home") + 1]
        deadline = time.monotonic() + 60
        while not (home / "node.lock").exists() or b"socket" not in (home / "node.lock").read_bytes():
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"{' '.join(args)} did not start: {proc.stdout.read().decode()}")  # type: ignore[union-attr]
            time.sleep(0.2)
    return proc


def quiet(home: Path, proc: subprocess.Popen) -> None:
    """Until the manufacturer's replica has not grown for 3 s: the ingester has anchored what it received."""
    import sqlite3

    last, since, deadline = -1, time.monotonic(), time.monotonic() + 120
    while time.monotonic() - since < 3:
        assert proc.poll() is None and time.monotonic() < deadline, "the MQTT ingester stopped or never settled"
        with sqlite3.connect(home / "ledger.db") as c:
            size = c.execute("SELECT count(*) FROM entries").fetchone()[0]
        if size != last:
            last, since = size, time.monotonic()
        time.sleep(0.5)


def converge(cwd: Path, hosts) -> None:  # type: ignore[no-untyped-def]
    """Until every node's replica has the same size and every member has cosigned a checkpoint of it."""
    import ssl

    from qdsn.node import NodeHome

    reg = NodeHome.open(cwd / "reg", PASSPHRASE)
    trusting = ssl.create_default_context(cafile=str(cwd / "ca.pem"))
    urls = [f"https://127.0.0.1:{p}" for p in hosts.values()]
    deadline, sizes = time.monotonic() + 90, []
    while time.monotonic() < deadline:
        now = [NodeClient(u, reg.key(), reg.did, verify=trusting).call("GET", "/ledger/entries?start=0&end=0")["size"]
               for u in urls]  # fmt: skip
        if len(set(now)) == 1 and now == sizes:
            return
        sizes = now
        time.sleep(1.5)
    raise AssertionError(f"the replicas did not converge: {sizes}")
