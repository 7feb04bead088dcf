"""The running node's admin socket: how the `qdsn` commands of its own home write while it runs.

A Unix socket (mode 0600, in the home folder or a private folder of the node's user) served beside
the public API. Whoever can open it is the node's own OS user, who holds the keystore too; and it
grants nothing beyond that: it takes only transactions signed by this node's key (which the ledger
checks like any other) and puts them on the consortium's log through the node's one write path —
its embedded orderer when it operates the log, the operator or etcd otherwise — answering once the
log holds them and the node's replica has followed. Chosen over a signed request to the public URL,
which the node on its own machine may not reach by that name (TLS, a proxy, a wildcard address).
"""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path
from typing import Any

import httpx
import orjson
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from qdsn.api.client import _BY_STATUS, NodeClient
from qdsn.api.problems import MEDIA_TYPE, from_error
from qdsn.errors import InvalidInput, PermissionDenied, QDSNError, Unavailable
from qdsn.ledger import tx
from qdsn.node.node import Node

TIMEOUT = 120.0  # a member's submission waits for its operator, which retries for up to a minute


def create_admin_app(node: Node) -> FastAPI:
    """The admin API of `node`: submit its own transactions, catch up with the log."""
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    @app.exception_handler(QDSNError)
    async def _qdsn(_: Request, e: QDSNError) -> JSONResponse:
        p = from_error(e)
        return JSONResponse(p, status_code=p["status"], media_type=MEDIA_TYPE)

    @app.post("/ledger/transactions")
    def submit(body: dict[str, Any]) -> dict[str, Any]:
        items = body.get("transactions")
        if not isinstance(items, list) or not items:
            raise InvalidInput('the body is {"transactions": [envelope, …]} with at least one envelope')
        envs = [tx.from_json(x) for x in items]
        if others := [e.submitter for e in envs if e.submitter != node.did]:
            raise PermissionDenied(f"this node relays only its own transactions, not {others[0]}'s")
        done = node.ledger.recorded(envs)
        receipts = done if done is not None else node.submit(envs)
        return {"receipts": [{"seq": r.seq, "txid": r.txid} for r in receipts], "size": node.ledger.size}

    @app.post("/ledger/catch-up")
    def catch_up() -> dict[str, Any]:
        node.catch_up()
        return {"size": node.ledger.size}

    return app


def listen(path: Path) -> socket.socket:
    """A Unix socket at `path` that only this user can open (a stale one from a killed node is replaced:
    the caller holds the home's lock)."""
    path.unlink(missing_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        sock.bind(str(path))
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    return sock


def serve(node: Node, path: Path) -> tuple[threading.Thread, Any]:
    """Serve the admin API on `path` in a thread; returns the thread and the server (set
    `should_exit` to stop it)."""
    import uvicorn

    sock = listen(path)
    server = uvicorn.Server(uvicorn.Config(create_admin_app(node), log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="admin-socket")
    thread.start()
    return thread, server


class AdminClient:
    """A command's way to its running node: transactions signed here, put on the log there."""

    def __init__(self, path: str, url: str | None = None) -> None:
        self.path, self.url = path, url
        self._http = httpx.Client(transport=httpx.HTTPTransport(uds=path), timeout=TIMEOUT)

    def _call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            r = self._http.post("http://node" + path, content=orjson.dumps(body),
                                headers={"content-type": "application/json"})  # fmt: skip
        except httpx.TransportError as e:
            raise Unavailable(f"the node running here did not answer on {self.path}: {e}",
                              "see whether it still runs, or stop it and run the command again") from None  # fmt: skip
        if r.status_code >= 400:
            what, fix = NodeClient._problem(r)
            raise _BY_STATUS.get(r.status_code, QDSNError)(what, fix)
        return dict(r.json())

    def submit(self, envelopes: list[tx.Envelope]) -> list[dict[str, Any]]:
        """Put a batch on the log through the running node; its receipts once its replica holds them."""
        return list(self._call("/ledger/transactions", {"transactions": [e.to_json() for e in envelopes]})["receipts"])

    def catch_up(self) -> int:
        """Have the running node follow the log now; its replica's size."""
        return int(self._call("/ledger/catch-up", {})["size"])

    def close(self) -> None:
        self._http.close()
