"""The one way this node fetches a URL someone else chose (an issuer's status list, the link a QR code
carries, a PACT host's events endpoint): whoever chose it may aim it at this node's own network.

So a target is checked before a byte is sent: https only, no user, no fragment; its host and port one
of the origins the caller names (the endpoints the ledger records; where it records none, only an
address the operator allows); every address its name resolves
to public — not loopback, link-local (169.254/16, fe80::/10), private, shared (100.64/10), ULA
(fc00::/7), multicast, unspecified or reserved — unless the operator allows it (`[service]
outbound_allow`, a list of networks, or QDSN_OUTBOUND_ALLOW; plain http too is taken only to such
addresses, for development and tests on loopback). The connection then goes to the address that was
checked, with the name sent only as TLS SNI and `Host` (certificates are still checked against the
name), so a second DNS answer cannot swap it. No redirects, no proxies from the environment, no
content encoding; the answer within a size and a deadline.

Written here rather than taken from a library: the SSRF guards packaged for Python wrap `requests`
(advocate, unmaintained) or check the name apart from the connection; httpx lets a request go to a
checked address with the name as SNI, which is the part that matters."""

from __future__ import annotations

import ipaddress
import os
import socket
import ssl
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from qdsn.errors import InvalidInput, PermissionDenied, Unavailable

ALLOW_ENV = "QDSN_OUTBOUND_ALLOW"
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class Refused(PermissionDenied):
    """A URL this node will not fetch: its form, its host or the address it resolves to."""


@dataclass(frozen=True)
class Policy:
    """What an outbound fetch may reach besides public https hosts: the networks the operator allows
    (`allow`), and the CA file that https certificates are checked against (`ca`, else the system's)."""

    allow: tuple[Network, ...] = ()
    ca: str | None = None

    @classmethod
    def of(cls, service: Mapping[str, Any]) -> Policy:
        """The policy of node.toml's `[service]` table (`outbound_allow`, `operator_ca`); QDSN_OUTBOUND_ALLOW
        (networks separated by commas) overrides the list."""
        env = os.environ.get(ALLOW_ENV)
        given: Any = env.split(",") if env is not None else service.get("outbound_allow", [])
        if not isinstance(given, list) or not all(isinstance(n, str) for n in given):
            raise InvalidInput(
                "[service] outbound_allow must be a list of networks",
                'e.g. outbound_allow = ["127.0.0.0/8", "::1/128"] for a node tried on loopback',
            )
        try:
            allow = tuple(ipaddress.ip_network(n.strip(), strict=False) for n in given if n.strip())
        except ValueError as e:
            raise InvalidInput(f"outbound_allow: {e}", "give networks such as 127.0.0.0/8 or ::1/128") from None
        ca = service.get("operator_ca")
        return cls(allow, str(ca) if ca else None)

    def allowed(self, ip: Address) -> bool:
        """Whether the operator allows `ip` although it is not a public address."""
        return any(ip.version == n.version and ip in n for n in self.allow)


def public(ip: Address) -> bool:
    """Whether `ip` is a public unicast address (an IPv4-mapped IPv6 address counts as its IPv4 one)."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not (ip.is_multicast or ip.is_unspecified or ip.is_reserved or ip.is_loopback
                                 or ip.is_link_local or ip.is_private)  # fmt: skip


@dataclass(frozen=True)
class Target:
    """A URL as it will be fetched: the name it gives, and the address that was checked."""

    scheme: str
    host: str
    port: int
    path: str  # with its query
    ip: Address


def origin(url: str) -> tuple[str, int]:
    """The (host, port) of a URL, the port from its scheme when not given; InvalidInput if it has none."""
    try:
        u = urlsplit(url)
        port = u.port or (443 if u.scheme == "https" else 80)
    except ValueError:
        raise InvalidInput(f"{url[:200]!r} is not a URL") from None
    if not u.hostname:
        raise InvalidInput(f"{url[:200]!r} names no host")
    return u.hostname.lower(), port


def target(url: str, policy: Policy, origins: Iterable[str] | None) -> Target:
    """`url` checked against the policy (see the module's notes) and resolved; Refused saying why not.
    `origins`: the URLs whose host and port the target must have (None: any host, the address rules alone)."""
    try:
        u = urlsplit(url)
        port = u.port or (443 if u.scheme == "https" else 80)
    except ValueError:
        raise Refused(f"{url[:200]!r} is not a URL") from None
    if u.scheme not in ("https", "http") or not u.hostname or u.username is not None or u.fragment:
        raise Refused(f"{url[:200]!r} is not an https URL without user or fragment")
    host = u.hostname.lower()
    try:
        found = [ipaddress.ip_address(host)]
    except ValueError:
        try:
            found = [ipaddress.ip_address(str(a[4][0]).split("%")[0])
                     for a in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]  # fmt: skip
        except (OSError, UnicodeError) as e:
            raise Unavailable(f"{host} cannot be resolved: {e}") from None
    if not found:
        raise Unavailable(f"{host} resolves to no address")
    for ip in found:
        if not public(ip) and not policy.allowed(ip):
            raise Refused(f"{host} resolves to {ip}, which is not a public address",
                          "the operator allows such addresses with [service] outbound_allow")  # fmt: skip
    named = None if origins is None else {origin(o) for o in origins}
    # Where the ledger records no endpoint at all, only an address the operator allows is reached
    if named is not None and (host, port) not in named and (named or not all(policy.allowed(ip) for ip in found)):
        raise Refused(f"{host}:{port} is not the node the ledger records for this",
                      "only the endpoints the regulator records (identity.endpoint) are reached")  # fmt: skip
    if u.scheme == "http" and not all(policy.allowed(ip) for ip in found):
        raise Refused(f"{url[:200]!r} is plain http", "only https is fetched from other hosts")
    path = (u.path or "/") + (f"?{u.query}" if u.query else "")
    return Target(u.scheme, host, port, path, found[0])


def client(url: str, policy: Policy, *, origins: Iterable[str] | None = None, verify: Any = None,
           timeout: float = 30.0) -> httpx.Client:  # fmt: skip
    """An httpx client that reaches only `url`'s scheme, host and port, checked as `target` does, and always
    at the address that was checked (the name only as TLS SNI and `Host`); without redirects or proxies
    from the environment. `verify`: an SSL context or CA file for https (default: the policy's CA)."""
    t = target(url, policy, origins)
    if verify is None:
        verify = ssl.create_default_context(cafile=policy.ca) if policy.ca else True
    return httpx.Client(transport=_Pinned(t, verify=verify), timeout=timeout, follow_redirects=False,
                        trust_env=False)  # fmt: skip


class _Pinned(httpx.HTTPTransport):
    """A transport to one checked target: each request goes to its address, any other origin is refused."""

    def __init__(self, t: Target, **kw: Any) -> None:
        super().__init__(**kw)
        self.t = t

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        u, t = request.url, self.t
        if (u.scheme, u.host.lower(), u.port or (443 if u.scheme == "https" else 80)) != (t.scheme, t.host, t.port):
            raise Refused(f"{str(u)[:200]} is not at {t.scheme}://{t.host}:{t.port}, the host this fetch was "
                          "checked for")  # fmt: skip
        request.url = u.copy_with(host=str(t.ip))
        if t.scheme == "https":
            request.extensions = {**request.extensions, "sni_hostname": t.host}
        return super().handle_request(request)


def get(url: str, policy: Policy, *, origins: Iterable[str] | None = None, accept: str, max_bytes: int,
        seconds: float, read_seconds: float = 5.0) -> bytes:  # fmt: skip
    """The body `url` answers with 200 to a GET, checked and sent as the module says, within `max_bytes` and
    `seconds` (each read waits at most `read_seconds`); Refused when the target is not allowed, Unavailable
    saying why when the answer cannot be had or is not taken."""
    deadline = time.monotonic() + seconds
    body = bytearray()
    with client(url, policy, origins=origins, timeout=read_seconds) as http:
        try:
            with http.stream("GET", url, headers={"Accept": accept, "Accept-Encoding": "identity"}) as r:
                if r.status_code != 200:
                    raise _NotTaken(f"it answered HTTP {r.status_code}" + (", and redirects are not followed"
                                                                           if r.is_redirect else ""))  # fmt: skip
                if r.headers.get("content-encoding", "identity").lower() != "identity":
                    raise _NotTaken("its answer is content-encoded, and only a plain one is taken")
                length = r.headers.get("content-length", "")
                if length.isdigit() and int(length) > max_bytes:
                    raise _NotTaken(f"its answer is {int(length):,} bytes, more than the {max_bytes:,} taken")
                for chunk in r.iter_raw():
                    body += chunk
                    if len(body) > max_bytes:
                        raise _NotTaken(f"its answer is more than the {max_bytes:,} bytes taken")
                    if time.monotonic() > deadline:
                        raise _NotTaken(f"its answer took more than {seconds:.0f} s")
        except (_NotTaken, httpx.HTTPError, OSError, ValueError) as e:
            raise Unavailable(str(e)[:200] or type(e).__name__) from None
    return bytes(body)


class _NotTaken(Exception):
    """An answer not taken: an error status, a redirect, too large, too slow or encoded."""
