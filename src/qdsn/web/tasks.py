"""Long work started from a page (ingesting a large file, a model's run): run in a thread of the node while the page
shows its progress, asked for by the page's script (or by reloading without one)."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from qdsn.errors import QDSNError

KEEP_SECONDS = 3600  # a finished task's outcome is kept this long


@dataclass
class Task:
    """One piece of long work: what it is, who started it, how far it got, and how it ended."""

    id: str
    what: str
    staff: str
    done: int = 0
    total: int | None = None
    stage: str = ""  # the step the work is at, for work made of steps
    state: str = "running"  # running, done, failed
    outcome: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    ended: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "what": self.what, "done": self.done, "total": self.total, "state": self.state,
                "stage": self.stage, "error": self.error, "outcome": self.outcome}  # fmt: skip


class Tasks:
    """The node's running and recently finished tasks."""

    def __init__(self) -> None:
        self._tasks: dict[str, Task] = {}
        self._lock = threading.Lock()

    def start(self, what: str, staff: str, work: Callable[[Task], dict[str, Any]]) -> Task:
        """Run `work(task)` in a thread; it updates `task.done`/`total` and returns the outcome. A
        QDSNError ends the task as failed with its words; anything else as failed, without details."""
        task = Task(secrets.token_urlsafe(16), what, staff)
        with self._lock:
            now = time.time()
            for k in [k for k, t in self._tasks.items() if t.ended and now - t.ended > KEEP_SECONDS]:
                del self._tasks[k]
            self._tasks[task.id] = task

        def run() -> None:
            try:
                task.outcome = work(task)
                task.state = "done"
            except QDSNError as e:
                task.error, task.state = f"{e.what}. {e.fix}" if e.fix else e.what, "failed"
            except Exception as e:  # the page says it failed; the node's log has the rest
                import logging

                logging.getLogger(__name__).exception("console task %s failed", what)
                task.error = f"an unexpected error in QDSN ({type(e).__name__}); see the node's log"
                task.state = "failed"
            finally:
                task.ended = time.time()

        threading.Thread(target=run, name=f"console-task-{what}", daemon=True).start()
        return task

    def get(self, task_id: str, staff: str) -> Task | None:
        """A task, to the staff member who started it only."""
        t = self._tasks.get(task_id)
        return t if t is not None and t.staff == staff else None
