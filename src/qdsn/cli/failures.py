"""What a `qdsn` command says when it fails: one line with what was wrong and what to do next, never a
traceback. An error nobody foresaw is a fault in QDSN: its traceback goes to a crash file, and the line
says where."""

from __future__ import annotations

import errno
import json
import os
import tempfile
import traceback
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from qdsn.errors import QDSNError

DEBUG_ENV = "QDSN_DEBUG"  # set (or --debug) to see the traceback of an unforeseen error on the terminal


@dataclass(frozen=True)
class Failure:
    """A failed command as the user is told about it."""

    what: str
    fix: str
    unforeseen: bool = False  # a fault in QDSN rather than in the input


def explain(e: BaseException) -> Failure:
    """The user's account of `e`: what was wrong and the next step (pure: no I/O)."""
    if isinstance(e, QDSNError):
        return Failure(e.what, e.fix or "see the command's --help for what it takes")
    if isinstance(e, OSError):
        return _os_error(e)
    if isinstance(e, UnicodeError):
        return Failure(f"a file is not text in UTF-8 ({e.reason})", "give the file in UTF-8, as the command expects")
    if isinstance(e, json.JSONDecodeError):  # orjson's error is one too
        return Failure(f"the input is not valid JSON: {e.msg} (line {e.lineno}, column {e.colno})",
                       "check that it is the JSON document the command asks for")  # fmt: skip
    return Failure(f"{type(e).__name__}: {e}", "", unforeseen=True)


def _os_error(e: OSError) -> Failure:
    name = e.filename if e.filename is not None else ""
    if isinstance(e, FileNotFoundError):
        return Failure(f"no such file or folder: {name}", "check the path (relative paths start at the current folder)")
    if isinstance(e, PermissionError):
        return Failure(f"permission denied: {name}", "check the file's owner and mode, or run as the user who owns it")
    if isinstance(e, IsADirectoryError):
        return Failure(f"{name} is a folder, not a file", "give the path of a file")
    if isinstance(e, NotADirectoryError):
        return Failure(f"{name}: a part of the path is a file, not a folder", "check the path")
    if e.errno == errno.ENOSPC:
        return Failure(f"no space left on the device{f' for {name}' if name else ''}", "free some space and run again")
    if isinstance(e, ConnectionError | TimeoutError):
        return Failure(f"the connection failed: {e.strerror or e}", "check that the other node runs and its URL")
    return Failure(f"{e.strerror or e}{f': {name}' if name else ''}", "check the path and the device, then run again")


def crash_file(e: BaseException, home: Path) -> Path:
    """Write `e`'s traceback to HOME/log/crash-TIME.txt (or to the temp folder when the home does not
    exist: a failed read must not create one) and return the file's path."""
    folder = home / "log" if home.is_dir() else Path(tempfile.gettempdir())
    folder.mkdir(mode=0o700, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    path = folder / f"qdsn-crash-{stamp}-{os.getpid()}.txt"
    path.write_text("".join(traceback.format_exception(e)))
    return path
