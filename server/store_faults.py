"""Name the cause of a SQLite failure, so an operator reads "disk full", not the database's jargon.

SQLite reports a full disk as ``SQLITE_FULL`` but a write refused by a read-only file system as an
I/O error (``EROFS`` from ``write``) or as "unable to open" (the write-ahead log cannot be
created); the file system's own flag tells those apart.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from learner import StoreFailed

# SQLite's primary result codes (https://sqlite.org/rescode.html); extended codes keep them in
# the low byte.
_BUSY, _LOCKED, _READONLY, _IOERR, _CORRUPT, _FULL, _CANTOPEN, _NOTADB = 5, 6, 8, 10, 11, 13, 14, 26

_CAUSES: dict[int, tuple[str, str]] = {
    _FULL: ("disk full", "free space on the file system holding {dir}"),
    _READONLY: ("read-only", "make {dir} and the state files in it writable"),
    _IOERR: ("I/O error", "check the disk holding {dir} (kernel log)"),
    _CORRUPT: ("corrupt", "stop the server and restore {path} from a backup"),
    _NOTADB: ("corrupt", "stop the server and restore {path} from a backup"),
    _BUSY: ("busy", "another process holds {path}: stop it"),
    _LOCKED: ("busy", "another process holds {path}: stop it"),
    _CANTOPEN: ("cannot open", "check that {dir} exists and is writable"),
}

RESTART_CAUSES = frozenset({"replaced", "corrupt"})
"""Failures that do not heal while the server runs: every later write fails until a restart."""
DAMAGED_FILE_CAUSES = frozenset({"corrupt", "store error"})
"""Failures at start that mean the file itself is unusable (restore it), not the disk under it."""


def is_store_failure(error: BaseException) -> bool:
    """A failure of the storage itself, as opposed to one write's own (a taken id) or a bug."""
    return isinstance(error, (sqlite3.OperationalError, sqlite3.InternalError)) or (
        type(error) is sqlite3.DatabaseError  # corrupt pages, "file is not a database"
    )


def store_failure(error: sqlite3.Error, path: Path) -> StoreFailed:
    """The StoreFailed that says what ``error`` means for the state file at ``path``."""
    code = (getattr(error, "sqlite_errorcode", None) or 0) & 0xFF
    if code in (_IOERR, _CANTOPEN) and _read_only(path.parent):
        code = _READONLY
    cause, hint = _CAUSES.get(code, ("store error", "see the server log"))
    return StoreFailed(cause, f"the state store failed: {cause} ({error}); "
                              + hint.format(dir=path.parent, path=path))


def replaced(path: Path, what: str) -> StoreFailed:
    """The failure of a state file that is no longer the one the server opened."""
    return StoreFailed("replaced", (
        f"the state store failed: replaced (the state file {path} was {what} while the server "
        "ran); nothing more is acknowledged: put the file back or restore it from a backup, then "
        "restart the server"))


def _read_only(folder: Path) -> bool:
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        return False
