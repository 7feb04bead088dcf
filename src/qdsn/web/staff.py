"""The console's staff accounts, their sessions, the login limit and the audit log: one SQLite file in
the node's home (`console.db`, mode 0600), shared by the node process and `qdsn staff`.

Passwords are hashed with Argon2id (argon2-cffi, RFC 9106 parameters); a session is a random token in
an HttpOnly cookie, stored here only as its SHA-256, so that reading this file gives no live session.
Failed logins are stored too, so the limit holds across processes and restarts: a login reserves a
failure in the transaction that counts them (and deletes it once the password is right), so that
concurrent attempts cannot all be checked against one count, and at most `CHECKS` passwords are checked
at once, since each check takes Argon2's 64 MiB."""

from __future__ import annotations

import hashlib
import os
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import (
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    delete,
    event,
    insert,
    select,
    update,
)

from qdsn.errors import Conflict, InvalidInput, NotFound, QDSNError, RateLimited

ROLES = ("viewer", "engineer", "approver")  # each may do what the ones before it may
SESSION_SECONDS = 8 * 3600  # a session ends after a working day, idle or not
IDLE_SECONDS = 30 * 60  # and after half an hour without a request
MIN_PASSWORD = 10
# Failed logins within WINDOW seconds. PAIR_LIMIT from one client address for one account refuses that
# address for that account; ADDRESS_LIMIT from one address refuses it for every account (one guesser, many
# names); ACCOUNT_LIMIT for one account from anywhere refuses it everywhere except from the addresses it
# signed in from within KNOWN_SECONDS (many guessers cannot lock its staff out of their own desks). A login
# refused stays refused, even with the right password, until the oldest failure ages out.
WINDOW = 15 * 60
PAIR_LIMIT = 5
ADDRESS_LIMIT = 20
ACCOUNT_LIMIT = 50
KNOWN_SECONDS = 30 * 86400
CHECKS = 2  # passwords checked at once: Argon2 takes 64 MiB each
CHECK_WAIT = 5.0  # seconds a login waits for a check; then it is refused as busy
NAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789._-")

metadata = MetaData()
accounts = Table(
    "staff",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("role", String(16), nullable=False),
    Column("hash", String(256), nullable=False),
    Column("created", Float, nullable=False),
)
sessions = Table(
    "staff_sessions",
    metadata,
    Column("digest", String(64), primary_key=True),  # SHA-256 of the cookie's token
    Column("name", String(64), nullable=False, index=True),
    Column("created", Float, nullable=False),
    Column("seen", Float, nullable=False),
)
failures = Table(
    "staff_login_failures",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(128), nullable=False, index=True),  # "account:NAME" or "address:IP"
    Column("at", Float, nullable=False),
)
known = Table(
    "staff_known_addresses",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("address", String(64), primary_key=True),
    Column("at", Float, nullable=False),  # the last sign-in from there
)
audit = Table(
    "staff_audit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("staff", String(64), nullable=False),
    Column("role", String(16), nullable=False),
    Column("action", String(64), nullable=False),
    Column("subject", Text, nullable=False),
    Column("detail", Text, nullable=False),  # JSON: what was done, and where it landed on the ledger
)

_hasher = PasswordHasher()
# Verified against when no such account exists, so that a wrong name costs what a wrong password does.
_DUMMY = _hasher.hash(secrets.token_hex(16))
_checking = threading.BoundedSemaphore(CHECKS)


@dataclass(frozen=True)
class Staff:
    """A signed-in staff member: its account's name and role, and the session's token digest."""

    name: str
    role: str
    session: str

    def may(self, role: str) -> bool:
        """Whether this account's role covers `role` (approver ⊃ engineer ⊃ viewer)."""
        return ROLES.index(self.role) >= ROLES.index(role)


def role_named(role: str) -> str:
    if role not in ROLES:
        raise InvalidInput(
            f"a staff role is one of {', '.join(ROLES)}, not {role[:40]!r}",
            "viewer reads, engineer also uploads and presents, approver also approves jobs",
        )
    return role


def _name(name: str) -> str:
    if not 1 <= len(name) <= 64 or not set(name) <= NAME_CHARS:
        raise InvalidInput(f"{name[:80]!r} is not a staff account name",
                           "use 1 to 64 lower-case letters, digits, '.', '_' or '-'")  # fmt: skip
    return name


def _password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise InvalidInput(f"a staff password has at least {MIN_PASSWORD} characters", "choose a longer one")
    return password


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class StaffStore:
    """The console's accounts, sessions, login failures and audit log of one node home."""

    def __init__(self, home: Path, *, clock: Any = time.time) -> None:
        path = Path(home) / "console.db"
        fresh = not path.exists()
        if fresh:  # created 0600 before SQLite opens it: it holds password hashes
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        self.engine = create_engine(f"sqlite:///{path}")
        event.listen(self.engine, "connect", _pragmas)
        metadata.create_all(self.engine)
        self.clock = clock

    def close(self) -> None:
        self.engine.dispose()

    # -- accounts ---------------------------------------------------------------------------------

    def add(self, name: str, role: str, password: str) -> None:
        """A new account; refused if the name is taken."""
        row = {"name": _name(name), "role": role_named(role), "hash": _hasher.hash(_password(password)),
               "created": self.clock()}  # fmt: skip
        with self.engine.begin() as c:
            if c.execute(select(accounts.c.name).where(accounts.c.name == name)).first():
                raise Conflict(f"staff account {name!r} exists already", "choose another name, or qdsn staff passwd")
            c.execute(insert(accounts).values(**row))

    def list(self) -> list[dict[str, Any]]:
        with self.engine.connect() as c:
            rows = c.execute(select(accounts.c.name, accounts.c.role, accounts.c.created).order_by(accounts.c.name))
            return [{"name": r.name, "role": r.role, "created": r.created} for r in rows]

    def passwd(self, name: str, password: str, role: str | None = None) -> None:
        """A new password (and role, if given); the account's open sessions end."""
        values: dict[str, Any] = {"hash": _hasher.hash(_password(password))}
        if role is not None:
            values["role"] = role_named(role)
        with self.engine.begin() as c:
            if c.execute(update(accounts).where(accounts.c.name == name).values(**values)).rowcount == 0:
                raise NotFound(f"no staff account {name!r}", "qdsn staff list shows them")
            c.execute(delete(sessions).where(sessions.c.name == name))

    def remove(self, name: str) -> None:
        """Delete an account and end its sessions."""
        with self.engine.begin() as c:
            if c.execute(delete(accounts).where(accounts.c.name == name)).rowcount == 0:
                raise NotFound(f"no staff account {name!r}", "qdsn staff list shows them")
            c.execute(delete(sessions).where(sessions.c.name == name))

    # -- logging in -------------------------------------------------------------------------------

    def login(self, name: str, password: str, address: str) -> str:
        """A new session's token for a right name and password; InvalidInput for a wrong one (which
        is counted), RateLimited while the account or the address has failed too often (see PAIR_LIMIT)."""
        now, name, address = self.clock(), name[:64], address[:64]
        pair, whole, place = f"pair:{name}@{address}", f"account:{name}", f"address:{address}"
        with self.engine.begin() as c:  # a write first: the count and the reservation are one transaction
            c.execute(delete(failures).where(failures.c.at < now - WINDOW))
            limits = {pair: PAIR_LIMIT, place: ADDRESS_LIMIT}
            if not c.execute(select(known.c.at).where(known.c.name == name, known.c.address == address,
                                                      known.c.at >= now - KNOWN_SECONDS)).first():  # fmt: skip
                limits[whole] = ACCOUNT_LIMIT
            for key, limit in limits.items():
                ats = [r.at for r in c.execute(select(failures.c.at).where(failures.c.key == key))]
                if len(ats) >= limit:
                    raise RateLimited(f"too many failed logins ({len(ats)} in {WINDOW // 60} minutes)",
                                      retry_after=min(ats) + WINDOW - now)  # fmt: skip
            reserved = [c.execute(insert(failures).values(key=k, at=now)).inserted_primary_key[0]
                        for k in (pair, whole, place)]  # fmt: skip
            row = c.execute(select(accounts).where(accounts.c.name == name)).first()
        try:
            ok = self._check(row.hash if row else _DUMMY, password) and row is not None
        except RateLimited:  # not checked: not a failure
            self._release(reserved)
            raise
        if not ok:
            raise InvalidInput("wrong name or password")  # its reserved failure stays
        with self.engine.begin() as c:
            c.execute(delete(failures).where(failures.c.id.in_(reserved) | (failures.c.key == pair)))
            c.execute(delete(known).where(known.c.name == name, known.c.address == address))
            c.execute(insert(known).values(name=name, address=address, at=now))
            token = secrets.token_urlsafe(32)
            c.execute(insert(sessions).values(digest=_digest(token), name=name, created=now, seen=now))
        if _hasher.check_needs_rehash(row.hash):
            self.passwd_hash(name, _hasher.hash(password))
        return token

    @staticmethod
    def _check(hashed: str, password: str) -> bool:
        """Whether `password` is the one `hashed`, with at most CHECKS checks at once in this process."""
        if not _checking.acquire(timeout=CHECK_WAIT):
            raise RateLimited("the node is busy checking other logins", retry_after=CHECK_WAIT)
        try:
            return _hasher.verify(hashed, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
        finally:
            _checking.release()

    def _release(self, reserved: list[int]) -> None:
        with self.engine.begin() as c:
            c.execute(delete(failures).where(failures.c.id.in_(reserved)))

    def passwd_hash(self, name: str, hashed: str) -> None:
        with self.engine.begin() as c:
            c.execute(update(accounts).where(accounts.c.name == name).values(hash=hashed))

    def session(self, token: str) -> Staff | None:
        """The staff member of a live session (its last use noted), or None."""
        now, digest = self.clock(), _digest(token)
        with self.engine.begin() as c:
            row = c.execute(select(sessions.c.name, sessions.c.created, sessions.c.seen, accounts.c.role)
                            .join(accounts, accounts.c.name == sessions.c.name)
                            .where(sessions.c.digest == digest)).first()  # fmt: skip
            if row is None:
                return None
            if now - row.created > SESSION_SECONDS or now - row.seen > IDLE_SECONDS:
                c.execute(delete(sessions).where(sessions.c.digest == digest))
                return None
            c.execute(update(sessions).where(sessions.c.digest == digest).values(seen=now))
        return Staff(row.name, row.role, digest)

    def logout(self, staff: Staff) -> None:
        with self.engine.begin() as c:
            c.execute(delete(sessions).where(sessions.c.digest == staff.session))

    # -- the audit log ----------------------------------------------------------------------------

    def record(self, staff: Staff | str, action: str, subject: str, **detail: Any) -> None:
        """One line of the node's audit log: who (a staff account) did what to which thing, and the
        outcome (where on the ledger, or why it failed)."""
        name, role = (staff.name, staff.role) if isinstance(staff, Staff) else (staff, "-")
        with self.engine.begin() as c:
            c.execute(insert(audit).values(at=self.clock(), staff=name, role=role, action=action, subject=subject,
                                           detail=orjson.dumps(detail, default=str).decode()))  # fmt: skip

    @contextmanager
    def attempt(self, staff: Staff | str, action: str, subject: str, **detail: Any) -> Iterator[None]:
        """Around an action: if it fails, its audit line says so (outcome "refused", and why), then it is raised."""
        try:
            yield
        except Exception as e:
            why = f"{e.what}. {e.fix}" if isinstance(e, QDSNError) and e.fix else getattr(e, "what", type(e).__name__)
            self.record(staff, action, subject, **detail, outcome="refused", why=str(why)[:500])
            raise

    def trail(self, limit: int = 100, *, action: str | None = None) -> list[dict[str, Any]]:
        """The newest lines of the audit log, newest first."""
        q = select(audit).order_by(audit.c.id.desc()).limit(limit)
        if action is not None:
            q = q.where(audit.c.action == action)
        with self.engine.connect() as c:
            return [dict(r._mapping) | {"detail": orjson.loads(r.detail)} for r in c.execute(q)]


def _pragmas(dbapi: Any, _record: Any) -> None:
    cur = dbapi.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()
