"""`qdsn node`: run this node as a service for the consortium."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from qdsn.cli.common import (
    Home,
    console,
    linked_node,
    open_node,
    optional_path,
    peer_client,
)
from qdsn.errors import QDSNError

node_app = typer.Typer(help="Run this node as a service for the consortium.", no_args_is_help=True)


@node_app.command("start")
def node_start(
    home: Home,
    host: Annotated[
        str | None, typer.Option(help="Address to listen on (default 127.0.0.1).", envvar="QDSN_HOST")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on (default 8420).", envvar="QDSN_PORT")] = None,
    public_url: Annotated[
        str | None,
        typer.Option(
            help="The URL peers reach this node at, scheme://host[:port]; a signed request addressed to any other "
            "is refused (default: the address it listens on).",
            envvar="QDSN_PUBLIC_URL",
        ),
    ] = None,
    tls_cert: Annotated[
        Path | None, typer.Option(help="Serve HTTPS with this certificate chain (PEM).", envvar="QDSN_TLS_CERT")
    ] = None,
    tls_key: Annotated[
        Path | None, typer.Option(help="The certificate's private key (PEM).", envvar="QDSN_TLS_KEY")
    ] = None,
    operator: Annotated[
        str | None,
        typer.Option(
            help="The log operator's API, if not this node; with --ordering, a peer to catch up from.",
            envvar="QDSN_OPERATOR_URL",
        ),
    ] = None,
    operator_ca: Annotated[
        Path | None, typer.Option(help="A CA certificate (PEM) to trust for --operator.", envvar="QDSN_OPERATOR_CA")
    ] = None,
    monitor: Annotated[
        float | None,
        typer.Option(
            help="Seconds between the node's rounds: follow and cosign the log, end expired agreements (default 5).",
            envvar="QDSN_MONITOR",
        ),
    ] = None,
    isolation: Annotated[
        str | None,
        typer.Option(
            help="How certification models run: bwrap (default), or process — weaker, only where bwrap "
            "cannot run; see docs/architecture.md.",
            envvar="QDSN_ISOLATION",
        ),
    ] = None,
    ordering: Annotated[
        str | None,
        typer.Option(
            help="Order the log through an etcd cluster, etcd://HOST:PORT[,HOST:PORT...]; every node then "
            "follows it and witnesses checkpoints, and --operator names a peer to catch up from. Default: "
            "embedded (one node operates the log).",
            envvar="QDSN_ORDERING",
        ),
    ] = None,
    quorum: Annotated[
        int | None,
        typer.Option(
            help="Cosignatures a checkpoint needs before this node trusts it (default 1).", envvar="QDSN_QUORUM"
        ),
    ] = None,
    retain: Annotated[
        int | None,
        typer.Option(
            help="On the log signer with --ordering: how many of the newest positions etcd keeps; older batches "
            "are pruned and compacted, and a node further behind catches up from a peer (default 1,000,000).",
            envvar="QDSN_RETAIN",
        ),
    ] = None,
    backup_to: Annotated[
        str | None,
        typer.Option(
            help="A member node that keeps this node's sealed vault backup: sent in each round in which the "
            "vault changed; the keeper can read nothing in it.",
            envvar="QDSN_BACKUP_TO",
        ),
    ] = None,
) -> None:
    """Serve this node's API: its DID document, the log (if it operates it), its catalog, contract
    negotiations, transfer processes and meters; log entries and submissions to participants who
    sign their requests (RFC 9421). OpenAPI at /docs. Each option falls back to its QDSN_* variable,
    then to the \\[service] table of the home's node.toml, e.g. `port = 8421`,
    `operator = "https://reg:8420"` or `ordering = "etcd://10.0.0.1:2379,10.0.0.2:2379,10.0.0.3:2379"`."""
    import uvicorn

    from qdsn.api.app import MAX_CONNECTIONS, create_app

    cfg = open_node(home).service()
    host = host or cfg.get("host", "127.0.0.1")
    port = port or int(cfg.get("port", 8420))
    tls_cert, tls_key = tls_cert or optional_path(cfg.get("tls_cert")), tls_key or optional_path(cfg.get("tls_key"))
    operator, operator_ca = operator or cfg.get("operator"), operator_ca or optional_path(cfg.get("operator_ca"))
    monitor = monitor if monitor is not None else float(cfg.get("monitor", 5.0))
    isolation = isolation or str(cfg.get("isolation", "bwrap"))
    if (tls_cert is None) != (tls_key is None):
        raise typer.BadParameter("give both --tls-cert and --tls-key, or neither")
    scheme = "https" if tls_cert else "http"
    public_url = public_url or (str(cfg["public_url"]) if cfg.get("public_url") else None)
    if public_url is None and host not in ("0.0.0.0", "::", ""):  # a wildcard: the address each peer reached
        public_url = f"{scheme}://{f'[{host}]' if ':' in host else host}:{port}"
    if public_url is not None:
        from qdsn.api.app import origin

        try:
            origin(public_url)
        except QDSNError as e:
            raise typer.BadParameter(f"--public-url: {e}") from None
    if isolation not in ("bwrap", "process"):
        raise typer.BadParameter(f"--isolation is bwrap or process, not {isolation!r}")
    if quorum is not None and quorum < 1:
        raise typer.BadParameter("--quorum is 1 or more")
    if retain is not None and retain < 1:
        raise typer.BadParameter("--retain is 1 or more")
    node = linked_node(home, operator, operator_ca, writes=False, serving=True, ordering=ordering, quorum=quorum,
                       retain=retain)  # fmt: skip
    node.isolation = isolation
    node.public_url = public_url
    if backup_to := backup_to or cfg.get("backup_to"):
        node.backup_to = peer_client(node.home, str(backup_to), operator_ca)
    if isolation == "bwrap":
        from qdsn.compute.sandbox import bwrap_works

        if (why := bwrap_works()) is not None:
            console.print(f"[yellow]![/] certification jobs will be refused: {why}")
    if node.etcd is not None:
        node.start(every=min(monitor, 1.0))
        role = f"orders through {ordering or cfg.get('ordering') or 'etcd'}, quorum {node.quorum}"
    elif node.orderer:
        role = "operates the log"
    else:
        role = f"follows the log at {operator or '(no operator given)'}"
    at = f", public URL {public_url}" if public_url and public_url != f"{scheme}://{host}:{port}" else ""
    # The commands of this home write through the running node from now on (see api/admin.py).
    from qdsn.api.admin import serve as serve_admin
    from qdsn.node.lock import socket_path

    admin_at = socket_path(node.home.path)
    admin, admin_server = serve_admin(node, admin_at)
    assert node.lock is not None
    node.lock.say("qdsn node start", socket=str(admin_at), url=public_url or f"{scheme}://{host}:{port}")
    console.print(f"[green]✓[/] {node.home.name} ({node.did[:24]}…, {role}) on {scheme}://{host}:{port}{at}")
    try:
        uvicorn.run(
            create_app(node, monitor=monitor), host=host, port=port, log_level="warning",
            ssl_certfile=str(tls_cert) if tls_cert else None, ssl_keyfile=str(tls_key) if tls_key else None,
            timeout_graceful_shutdown=3, limit_concurrency=MAX_CONNECTIONS, timeout_keep_alive=5,
        )  # fmt: skip
    finally:
        admin_server.should_exit = True
        admin.join(5)
        admin_at.unlink(missing_ok=True)
        node.close()
