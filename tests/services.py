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
from pathlib import Path

from qdsn.ledger.ordering.local import EtcdCluster, free_port


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
    """A real MQTT broker on a free loopback port. `config`: "test" keeps sessions in a temp folder
    without limits; "default" is a stock mosquitto (only the listener set: no persistence, 20 in
    flight and 1,000 queued per client); "qdsn" is the configuration QDSN ships for its brokers."""

    def __init__(self, config: str = "test") -> None:
        self.dir = tempfile.mkdtemp(prefix="qdsn-mqtt-")
        self.port = free_port()
        self.conf = os.path.join(self.dir, "mosquitto.conf")
        listener = f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
        if config == "test":
            text = listener + (
                f"persistence true\npersistence_location {self.dir}/\nautosave_interval 1\n"
                "max_inflight_messages 0\nmax_queued_messages 0\n"
            )
        elif config == "default":
            text = listener
        else:
            shipped = (Path(__file__).parents[1] / "src/qdsn/data/mosquitto.conf").read_text()
            text = listener + "\n".join(
                f"persistence_location {self.dir}/" if line.startswith("persistence_location") else line
                for line in shipped.splitlines()
                if not line.startswith("listener")
            )
        with open(self.conf, "w") as f:
            f.write(text + "\n")
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
def mosquitto(config: str = "test") -> Iterator[Mosquitto]:
    broker = Mosquitto(config)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
        shutil.rmtree(broker.dir, ignore_errors=True)


@contextmanager
def etcd_cluster(size: int = 3) -> Iterator[EtcdCluster]:
    cluster = EtcdCluster(size)
    try:
        cluster.start_all()
        yield cluster
    finally:
        cluster.stop()
