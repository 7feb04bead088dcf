"""What a node keeps of private aggregation, beside its ledger replica (SQLite or PostgreSQL): as an
aggregator, every report id it has seen (a replay is refused across restarts), the one accepted
report per reporter and period, each accepted report's output share, and each released batch; as a
reporter, the reports it sent (to prove later that they were counted)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import BigInteger, Column, LargeBinary, MetaData, String, Table, Text, insert, select, update
from sqlalchemy.exc import IntegrityError as SQLIntegrityError

from qdsn.errors import Conflict
from qdsn.ledger.store import open_engine

metadata = MetaData()
seen = Table(  # every report id this aggregator was shown, accepted or not: a report is taken once
    "dap_seen",
    metadata,
    Column("task", String(128), primary_key=True),
    Column("id", String(32), primary_key=True),
    Column("reporter", String(512), nullable=False),
    Column("outcome", Text, nullable=False),  # "accepted", or why it was refused
)
accepted = Table(  # one report per reporter, task and period; its output share for aggregation
    "dap_accepted",
    metadata,
    Column("task", String(128), primary_key=True),
    Column("period", BigInteger, primary_key=True),
    Column("reporter", String(512), primary_key=True),
    Column("id", String(32), nullable=False),
    Column("out_share", LargeBinary, nullable=False),
)
released = Table(  # the batches this aggregator released: its sealed aggregate share, given once
    "dap_released",
    metadata,
    Column("task", String(128), primary_key=True),
    Column("period", BigInteger, primary_key=True),
    Column("root", String(64), nullable=False),
    Column("count", BigInteger, nullable=False),
    Column("share", Text, nullable=False),  # the sealed aggregate share (base64url) for the collector
)
sent = Table(  # the reports this node made as a reporter
    "dap_sent",
    metadata,
    Column("task", String(128), primary_key=True),
    Column("period", BigInteger, primary_key=True),
    Column("id", String(32), nullable=False),
    Column("outcome", Text, nullable=False),
)


@dataclass(frozen=True)
class Accepted:
    period: int
    reporter: str
    id: str
    out_share: bytes


class StatsStore:
    """The store of one node."""

    def __init__(self, url: str) -> None:
        self.engine = open_engine(url)
        metadata.create_all(self.engine)

    def see(self, task: str, report_id: str, reporter: str) -> None:
        """Take a report id for the first and only time; Conflict when it was shown before (a replay)."""
        try:
            with self.engine.begin() as c:
                c.execute(insert(seen).values(task=task, id=report_id, reporter=reporter, outcome="pending"))
        except SQLIntegrityError:
            raise Conflict(f"report {report_id} of task {task} was uploaded before: a replay is refused",
                           "make a new report (a new id) if the first was refused") from None  # fmt: skip

    def settle(self, task: str, report_id: str, outcome: str) -> None:
        with self.engine.begin() as c:
            c.execute(update(seen).where(seen.c.task == task, seen.c.id == report_id).values(outcome=outcome))

    def has_reported(self, task: str, period: int, reporter: str) -> str | None:
        """The id of the report `reporter` has had accepted for this task and period, if any."""
        with self.engine.connect() as c:
            q = select(accepted.c.id).where(accepted.c.task == task, accepted.c.period == period,
                                            accepted.c.reporter == reporter)  # fmt: skip
            return c.execute(q).scalar()

    def accept(self, task: str, period: int, reporter: str, report_id: str, out_share: bytes) -> None:
        """Keep an accepted report's output share; Conflict when the reporter has one for the period."""
        try:
            with self.engine.begin() as c:
                c.execute(insert(accepted).values(task=task, period=period, reporter=reporter, id=report_id,
                                                  out_share=out_share))  # fmt: skip
                c.execute(update(seen).where(seen.c.task == task, seen.c.id == report_id).values(outcome="accepted"))
        except SQLIntegrityError:
            raise Conflict(f"{reporter} has already reported for period {period} of task {task}",
                           "one report per reporter and period") from None  # fmt: skip

    def batch(self, task: str, period: int) -> list[Accepted]:
        """The accepted reports of a period, in the order of their ids."""
        with self.engine.connect() as c:
            q = select(accepted).where(accepted.c.task == task, accepted.c.period == period).order_by(accepted.c.id)
            return [Accepted(r.period, r.reporter, r.id, r.out_share) for r in c.execute(q)]

    def release(self, task: str, period: int, root: str, count: int, share: str) -> str:
        """Record the sealed aggregate share of a batch; a batch already released keeps its first share
        (the same noise, never a fresh draw to average away). Returns the share on record."""
        try:
            with self.engine.begin() as c:
                c.execute(insert(released).values(task=task, period=period, root=root, count=count, share=share))
        except SQLIntegrityError:
            pass
        return self.released(task, period)[2]  # type: ignore[index]

    def released(self, task: str, period: int) -> tuple[str, int, str] | None:
        """(root, count, sealed share) of a released batch."""
        with self.engine.connect() as c:
            q = select(released).where(released.c.task == task, released.c.period == period)
            r = c.execute(q).first()
        return (r.root, r.count, r.share) if r else None

    def remember_sent(self, task: str, period: int, report_id: str, outcome: str) -> None:
        with self.engine.begin() as c:
            c.execute(sent.delete().where(sent.c.task == task, sent.c.period == period))
            c.execute(insert(sent).values(task=task, period=period, id=report_id, outcome=outcome))

    def sent_report(self, task: str, period: int) -> tuple[str, str] | None:
        """(id, outcome) of the report this node sent for a task and period."""
        with self.engine.connect() as c:
            r = c.execute(select(sent).where(sent.c.task == task, sent.c.period == period)).first()
        return (r.id, r.outcome) if r else None

    def close(self) -> None:
        self.engine.dispose()
