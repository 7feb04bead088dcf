"""A local etcd cluster for one machine: every member a process on free loopback ports, which the
demo, the benchmarks and the fault tests start, kill and restart."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _etcd_bin() -> str:
    found = shutil.which("etcd") or ("/usr/bin/etcd" if os.path.exists("/usr/bin/etcd") else "")
    if not found:
        raise RuntimeError("etcd is not installed: apt-get install etcd-server (scripts/test does)")
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
