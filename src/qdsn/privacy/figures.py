"""The figures a collector released, kept in its home (`stats/figures.json`) so that its people see them
again without asking the leader; and the product categories of the footprint tasks it created, in the
order their reporters give them (the ledger's task names only a vector's length)."""

from __future__ import annotations

import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

from qdsn.errors import IntegrityError
from qdsn.privacy.collect import Figure

FILE = Path("stats") / "figures.json"
_lock = threading.Lock()


def _read(home: Path) -> dict[str, Any]:
    try:
        doc = json.loads((home / FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"figures": [], "categories": {}}
    except ValueError:
        doc = None
    if not isinstance(doc, dict) or not isinstance(doc.get("figures", []), list):
        raise IntegrityError(f"{home / FILE} is not the file this node writes",
                             "move it aside and collect again: a released period gives the same figure")  # fmt: skip
    return doc


def _write(home: Path, doc: dict[str, Any]) -> None:
    """Whole or not at all: written beside, then renamed over."""
    folder = home / FILE.parent
    folder.mkdir(mode=0o700, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False, sort_keys=True)
    os.replace(tmp, home / FILE)


def keep(home: Path, fig: Figure) -> None:
    """Remember a released figure (a period collected again replaces its earlier copy: the same figure)."""
    with _lock:
        doc = _read(home)
        doc["figures"] = [f for f in doc.get("figures", []) if (f["task"], f["period"]) != (fig.task, fig.period)]
        doc["figures"].append(fig.to_json())
        _write(home, doc)


def kept(home: Path) -> list[Figure]:
    """The figures this node collected, newest task and period last."""
    return [Figure(**f) for f in sorted(_read(home).get("figures", []), key=lambda f: (f["task"], f["period"]))]


def name_categories(home: Path, task: str, categories: list[str]) -> None:
    """Remember the product categories of a footprint task, in order."""
    with _lock:
        doc = _read(home)
        doc.setdefault("categories", {})[task] = list(categories)
        _write(home, doc)


def categories(home: Path) -> dict[str, list[str]]:
    """task → its product categories, for the footprint tasks this node created."""
    return dict(_read(home).get("categories", {}))


def per_category(result: list[int], names: list[str]) -> list[dict[str, Any]]:
    """A footprints figure ([grams summed, count] per category) as each category's mean grams CO2e per
    declared unit; noise can make a count zero or below, and then there is no mean to give."""
    rows = []
    for i, name in enumerate(names):
        total, count = result[2 * i], result[2 * i + 1]
        rows.append({"category": name, "total": total, "count": count,
                     "mean": round(total / count, 1) if count > 0 else None})  # fmt: skip
    return rows
