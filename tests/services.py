"""Real services for the tests, started on their own loopback ports and stopped afterwards.
A service that cannot start fails the tests that need it; nothing is skipped."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}")) or [shutil.which(name) or ""]
    if not found[-1]:
        raise RuntimeError(f"PostgreSQL's {name} is not installed: run `bash scripts/test`, which installs it")
    return found[-1]


@contextmanager
def postgres() -> Iterator[str]:
    """A throwaway PostgreSQL cluster on a free loopback port; yields its SQLAlchemy URL."""
    root = tempfile.mkdtemp(prefix="qdsn-pg-")
    data, port = os.path.join(root, "data"), free_port()
    as_user: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        pw = pwd.getpwnam("postgres")
        os.chown(root, pw.pw_uid, pw.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    run = lambda *cmd: subprocess.run([*as_user, *cmd], check=True, capture_output=True)  # noqa: E731
    run(_pg_bin("initdb"), "-D", data, "-U", "postgres", "-A", "trust", "--no-sync")
    opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=on"
    run(_pg_bin("pg_ctl"), "-D", data, "-o", opts, "-l", os.path.join(root, "log"), "-w", "start")
    try:
        url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
        for _ in range(50):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        yield url
    finally:
        run(_pg_bin("pg_ctl"), "-D", data, "-m", "immediate", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


def fresh_database(url: str, name: str) -> str:
    """Create an empty database on the cluster at `url`; returns its URL."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as c:
        c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')
        c.exec_driver_sql(f'CREATE DATABASE "{name}"')
    engine.dispose()
    return url.rsplit("/", 1)[0] + "/" + name


def _mosquitto_bin() -> str:
    found = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else "")
    if not found:
        raise RuntimeError("mosquitto is not installed: run `bash scripts/test`, which installs it")
    return found


class Mosquitto:
    """A real MQTT broker on a free loopback port, with persistent sessions saved to a temp folder."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="qdsn-mqtt-")
        self.port = free_port()
        self.conf = os.path.join(self.dir, "mosquitto.conf")
        with open(self.conf, "w") as f:
            f.write(
                f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
                f"persistence true\npersistence_location {self.dir}/\nautosave_interval 1\n"
                "max_inflight_messages 0\nmax_queued_messages 0\n"
            )
        if os.geteuid() == 0:  # mosquitto drops root privileges to its own user
            with open(self.conf, "a") as f:
                f.write("user root\n")
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [_mosquitto_bin(), "-c", self.conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        for _ in range(100):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError("mosquitto did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()  # SIGTERM: mosquitto saves its sessions before it exits
            self.proc.wait(timeout=10)
            self.proc = None


@contextmanager
def mosquitto() -> Iterator[Mosquitto]:
    broker = Mosquitto()
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
        shutil.rmtree(broker.dir, ignore_errors=True)


def _etcd_bin() -> str:
    found = shutil.which("etcd") or ("/usr/bin/etcd" if os.path.exists("/usr/bin/etcd") else "")
    if not found:
        raise RuntimeError("etcd is not installed: run `bash scripts/test`, which installs etcd-server")
    return found


class EtcdCluster:
    """A real etcd cluster of `size` members on free loopback ports, each a process the tests may kill
    and restart."""

    def __init__(self, size: int = 3) -> None:
        self.dir = tempfile.mkdtemp(prefix="qdsn-etcd-")
        self.names = [f"m{i}" for i in range(size)]
        self.client_ports = [free_port() for _ in self.names]
        self.peer_ports = [free_port() for _ in self.names]
        self.procs: list[subprocess.Popen | None] = [None] * size
        self.initial = ",".join(f"{n}=http://127.0.0.1:{p}" for n, p in zip(self.names, self.peer_ports, strict=True))

    @property
    def url(self) -> str:
        return "etcd://" + ",".join(f"127.0.0.1:{p}" for p in self.client_ports)

    def endpoint(self, i: int) -> str:
        return f"http://127.0.0.1:{self.client_ports[i]}"

    def start(self, i: int, state: str = "new") -> None:
        name, cport, pport = self.names[i], self.client_ports[i], self.peer_ports[i]
        cmd = [
            _etcd_bin(), "--name", name, "--data-dir", os.path.join(self.dir, name),
            "--listen-client-urls", f"http://127.0.0.1:{cport}", "--advertise-client-urls", f"http://127.0.0.1:{cport}",
            "--listen-peer-urls", f"http://127.0.0.1:{pport}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{pport}",
            "--initial-cluster", self.initial, "--initial-cluster-state", state,
            "--initial-cluster-token", os.path.basename(self.dir), "--log-level", "error",
        ]  # fmt: skip
        log = open(os.path.join(self.dir, f"{name}.log"), "ab")  # noqa: SIM115 - the process keeps it
        self.procs[i] = subprocess.Popen(cmd, stdout=log, stderr=log)

    def start_all(self) -> None:
        for i in range(len(self.names)):
            self.start(i)
        self.wait_healthy()

    def status(self, i: int) -> dict | None:
        import httpx

        try:
            return httpx.post(self.endpoint(i) + "/v3/maintenance/status", json={}, timeout=1).json()
        except httpx.HTTPError:
            return None

    def wait_healthy(self, timeout: float = 30) -> None:
        """Until every running member answers and they agree on a leader."""
        give_up = time.monotonic() + timeout
        while time.monotonic() < give_up:
            live = [self.status(i) for i, p in enumerate(self.procs) if p is not None]
            leaders = {s.get("leader") for s in live if s}
            if live and all(live) and len(leaders) == 1 and "0" not in leaders and None not in leaders:
                return
            time.sleep(0.1)
        raise RuntimeError(f"etcd did not become healthy; logs in {self.dir}")

    def leader(self) -> int:
        """Index of the member that leads now."""
        for i, p in enumerate(self.procs):
            s = p is not None and self.status(i)
            if s and s["header"]["member_id"] == s["leader"]:
                return i
        raise RuntimeError("no etcd leader")

    def kill(self, i: int) -> None:
        proc = self.procs[i]
        if proc is not None:
            proc.kill()
            proc.wait()
            self.procs[i] = None

    def restart(self, i: int) -> None:
        self.start(i, state="existing")

    def stop(self) -> None:
        for i in range(len(self.procs)):
            self.kill(i)
        shutil.rmtree(self.dir, ignore_errors=True)


@contextmanager
def etcd_cluster(size: int = 3) -> Iterator[EtcdCluster]:
    cluster = EtcdCluster(size)
    try:
        cluster.start_all()
        yield cluster
    finally:
        cluster.stop()
