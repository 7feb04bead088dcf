"""What the readers of plant files yield: rows, rows that could not be read at all, and rows refused
with the reason. Shared by file ingestion (`qdsn.data.ingest`) and the EPCIS reader (`qdsn.data.epcis`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class BadRow:
    """A row refused by validation, and why."""

    row: int  # 1-based: a CSV file's line (its header is 1), a JSON Lines line, or an EPCIS event's position
    field: str
    reason: str
    data: dict[str, Any]
    where: str = ""  # inside an EPCIS event, e.g. "sensorElementList[0].sensorReport[2]"
    unit: str = "row"  # what `row` counts: "row", "line" of JSON Lines, or "event" in an EPCIS document

    def place(self) -> str:
        """Where the row is, in the words of its file type."""
        return f"{self.unit} {self.row}, {self.where}" if self.where else f"{self.unit} {self.row}"


@dataclass(frozen=True)
class Unreadable:
    """A row or line that could not be read at all (undecodable bytes, broken JSON, an oversize field):
    it is refused, or quarantined, naming its field, like a row that does not validate."""

    field: str
    reason: str
    text: str = ""
    unit: str = "row"


Row = tuple[int, str, Any]  # (row, line or event number; where inside it; its fields, or an Unreadable)
