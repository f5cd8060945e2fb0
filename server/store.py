"""Durable state: pending quotes, the decision log, learner snapshots, and users' value-model states.

``Store`` is the protocol the service uses; ``SQLiteStore`` is the embedded default: one file in WAL
mode with ``synchronous=FULL``, so every write is on disk (fsynced to the WAL) before the method
returns, and the service acknowledges a quote or a reward only after that. A process crash or power
loss after an acknowledgement loses nothing acknowledged.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from learner import Decision, Settlement, Unavailable

SCHEMA_VERSION = 1
SNAPSHOTS_KEPT = 3


class QuoteIdTaken(Exception):
    """A pending or logged quote already has this id (two requests raced with one caller id)."""


class StoreCorrupt(Exception):
    """The store's file cannot be used as it is; the message says what to do."""


@dataclass(frozen=True)
class LogEntry:
    """One line of the decision log: how a decision was closed, and whether it was learned."""

    seq: int
    decision: Decision
    kind: str  # "reward", "expired" or "late"
    reward: float
    learned: bool


@dataclass(frozen=True)
class StoredSnapshot:
    blob: bytes
    last_seq: int
    created_at: float


class Store(Protocol):
    def put_pending(self, decisions: list[Decision]) -> None: ...
    def pending(self, quote_id: str) -> Decision | None: ...
    def find_decision(self, quote_id: str) -> Decision | None: ...
    def settlement(self, quote_id: str) -> Settlement | None: ...
    def close_quote(self, decision: Decision, kind: str, reward: float, learned: bool,
                    closed_at: float, line: str) -> int: ...
    def append_log(self, decision: Decision, kind: str, reward: float, learned: bool,
                   closed_at: float, line: str) -> int: ...
    def due(self, now: float, limit: int) -> list[Decision]: ...
    def pending_count(self) -> int: ...
    def save_snapshot(self, blob: bytes, last_seq: int, created_at: float) -> None: ...
    def latest_snapshot(self) -> StoredSnapshot | None: ...
    def log_after(self, seq: int) -> Iterator[LogEntry]: ...
    def last_seq(self) -> int: ...
    def load_user_state(self, user_id: str, model_version: str) -> bytes | None: ...
    def save_user_states(self, states: Mapping[str, bytes], model_version: str, now: float) -> None: ...
    def close(self) -> None: ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS pending (
    quote_id TEXT PRIMARY KEY,
    expires_at REAL NOT NULL,
    decision TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS pending_by_expiry ON pending (expires_at, quote_id);
CREATE TABLE IF NOT EXISTS decision_log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    quote_id TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('reward', 'expired', 'late')),
    reward REAL NOT NULL,
    learned INTEGER NOT NULL,
    closed_at REAL NOT NULL,
    decision TEXT NOT NULL,
    line TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS decision_log_by_quote ON decision_log (quote_id);
CREATE TABLE IF NOT EXISTS snapshots (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at REAL NOT NULL,
    last_seq INTEGER NOT NULL,
    blob BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS user_states (
    user_id TEXT PRIMARY KEY,
    model_version TEXT NOT NULL,
    updated_at REAL NOT NULL,
    state BLOB NOT NULL
) WITHOUT ROWID;
"""


def _decision(text: str, where: str) -> Decision:
    try:
        return Decision.from_dict(json.loads(text))
    except (ValueError, TypeError, KeyError) as exc:
        raise StoreCorrupt(
            f"{where} is unreadable ({exc}): the state file is damaged; restore it from a backup"
        ) from None


class SQLiteStore:
    """The embedded store. One connection shared by the server's threads behind one lock."""

    FILENAME = "pricebandit.sqlite3"

    def __init__(self, data_dir: Path | str) -> None:
        self.path = Path(data_dir) / self.FILENAME
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA busy_timeout=5000")
            check = self._db.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise sqlite3.DatabaseError(check)
            self._db.executescript(_SCHEMA)
            self._check_schema_version()
        except sqlite3.DatabaseError as exc:
            raise StoreCorrupt(
                f"the state file {self.path} is not a usable SQLite database ({exc}). Restore it "
                "from a backup, or move it aside to start with an empty model."
            ) from None

    def _check_schema_version(self) -> None:
        row = self._db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is None:
            self._db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        elif row[0] != str(SCHEMA_VERSION):
            raise StoreCorrupt(
                f"the state file {self.path} has schema version {row[0]}, this build uses "
                f"{SCHEMA_VERSION}: run the matching pricebandit release, or use a new --data-dir"
            )

    def _execute(self, sql: str, params: tuple = ()) -> sqlite3.Cursor:  # type: ignore[type-arg]
        try:
            return self._db.execute(sql, params)
        except sqlite3.OperationalError as exc:
            raise Unavailable(f"the state store failed: {exc}") from exc

    def _transaction(self) -> _Transaction:
        return _Transaction(self)

    # -- pending quotes ----------------------------------------------------------------------
    def put_pending(self, decisions: list[Decision]) -> None:
        rows = [(d.quote_id, d.expires_at, json.dumps(d.to_dict())) for d in decisions]
        try:
            with self._lock, self._transaction():
                self._db.executemany("INSERT INTO pending VALUES (?, ?, ?)", rows)
        except sqlite3.IntegrityError as exc:
            raise QuoteIdTaken(str(exc)) from None

    def pending(self, quote_id: str) -> Decision | None:
        with self._lock:
            row = self._execute("SELECT decision FROM pending WHERE quote_id = ?", (quote_id,)).fetchone()
        return None if row is None else _decision(row[0], f"pending quote {quote_id!r}")

    def find_decision(self, quote_id: str) -> Decision | None:
        """The decision with this id, pending or closed."""
        found = self.pending(quote_id)
        if found is not None:
            return found
        with self._lock:
            row = self._execute(
                "SELECT decision FROM decision_log WHERE quote_id = ? ORDER BY seq LIMIT 1", (quote_id,)
            ).fetchone()
        return None if row is None else _decision(row[0], f"decision log entry for {quote_id!r}")

    def due(self, now: float, limit: int) -> list[Decision]:
        """Pending quotes whose window has closed, oldest first (then by id): the learning order."""
        with self._lock:
            rows = self._execute(
                "SELECT quote_id, decision FROM pending WHERE expires_at <= ? "
                "ORDER BY expires_at, quote_id LIMIT ?", (now, limit),
            ).fetchall()
        return [_decision(decision, f"pending quote {quote_id!r}") for quote_id, decision in rows]

    def pending_count(self) -> int:
        with self._lock:
            return int(self._execute("SELECT COUNT(*) FROM pending").fetchone()[0])

    # -- the decision log --------------------------------------------------------------------
    def close_quote(self, decision: Decision, kind: str, reward: float, learned: bool,
                    closed_at: float, line: str) -> int:
        """Atomically move a pending quote into the decision log; returns its log sequence number.

        Raises LookupError if the quote is no longer pending (closed by another thread first).
        """
        with self._lock, self._transaction():
            deleted = self._db.execute("DELETE FROM pending WHERE quote_id = ?", (decision.quote_id,))
            if deleted.rowcount != 1:
                raise LookupError(decision.quote_id)
            return self._append(decision, kind, reward, learned, closed_at, line)

    def append_log(self, decision: Decision, kind: str, reward: float, learned: bool,
                   closed_at: float, line: str) -> int:
        with self._lock, self._transaction():
            return self._append(decision, kind, reward, learned, closed_at, line)

    def _append(self, decision: Decision, kind: str, reward: float, learned: bool,
                closed_at: float, line: str) -> int:
        cursor = self._db.execute(
            "INSERT INTO decision_log (quote_id, kind, reward, learned, closed_at, decision, line) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (decision.quote_id, kind, reward, int(learned), closed_at,
             json.dumps(decision.to_dict()), line),
        )
        return int(cursor.lastrowid or 0)

    def settlement(self, quote_id: str) -> Settlement | None:
        """How a closed quote was settled, or None if it never closed."""
        with self._lock:
            rows = self._execute(
                "SELECT kind, reward FROM decision_log WHERE quote_id = ? ORDER BY seq", (quote_id,)
            ).fetchall()
        if not rows:
            return None
        kind, reward = rows[0]
        late = [r for k, r in rows[1:] if k == "late"]
        return Settlement(reward=reward, reported=kind == "reward",
                          late_reward=late[0] if late else None)

    def log_after(self, seq: int) -> Iterator[LogEntry]:
        """Log entries after ``seq`` in order, read in pages so a long log never sits in memory."""
        while True:
            with self._lock:
                rows = self._execute(
                    "SELECT seq, decision, kind, reward, learned FROM decision_log WHERE seq > ? "
                    "ORDER BY seq LIMIT 1000", (seq,),
                ).fetchall()
            if not rows:
                return
            for row_seq, decision, kind, reward, learned in rows:
                yield LogEntry(row_seq, _decision(decision, f"decision log entry {row_seq}"), kind,
                               reward, bool(learned))
            seq = rows[-1][0]

    def log_lines(self) -> Iterator[str]:
        """The decision log as DSJSON lines, in order."""
        with self._lock:
            rows = self._execute("SELECT line FROM decision_log ORDER BY seq").fetchall()
        for (line,) in rows:
            yield line

    def last_seq(self) -> int:
        with self._lock:
            return int(self._execute("SELECT COALESCE(MAX(seq), 0) FROM decision_log").fetchone()[0])

    # -- snapshots ---------------------------------------------------------------------------
    def save_snapshot(self, blob: bytes, last_seq: int, created_at: float) -> None:
        """Store a snapshot of the learner after log entry ``last_seq``; keep the newest few."""
        with self._lock, self._transaction():
            self._db.execute(
                "INSERT INTO snapshots (created_at, last_seq, blob) VALUES (?, ?, ?)",
                (created_at, last_seq, blob),
            )
            self._db.execute(
                "DELETE FROM snapshots WHERE id NOT IN "
                "(SELECT id FROM snapshots ORDER BY id DESC LIMIT ?)", (SNAPSHOTS_KEPT,),
            )

    def latest_snapshot(self) -> StoredSnapshot | None:
        with self._lock:
            row = self._execute(
                "SELECT blob, last_seq, created_at FROM snapshots ORDER BY id DESC LIMIT 1"
            ).fetchone()
        return None if row is None else StoredSnapshot(bytes(row[0]), int(row[1]), float(row[2]))

    # -- users' value-model states ----------------------------------------------------------
    def load_user_state(self, user_id: str, model_version: str) -> bytes | None:
        """The user's state as the model ``model_version`` left it; None if new to that model."""
        with self._lock:
            row = self._execute("SELECT state FROM user_states WHERE user_id = ? AND model_version = ?",
                                (user_id, model_version)).fetchone()
        return None if row is None else bytes(row[0])

    def save_user_states(self, states: Mapping[str, bytes], model_version: str, now: float) -> None:
        """Write (or replace) several users' states in one transaction."""
        rows = [(user_id, model_version, now, blob) for user_id, blob in states.items()]
        with self._lock, self._transaction():
            self._db.executemany("INSERT OR REPLACE INTO user_states VALUES (?, ?, ?, ?)", rows)

    def close(self) -> None:
        with self._lock:
            self._db.close()


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (or ``ROLLBACK`` on error); store errors become Unavailable."""

    def __init__(self, store: SQLiteStore) -> None:
        self._db = store._db

    def __enter__(self) -> None:
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise Unavailable(f"the state store failed: {exc}") from exc

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        if exc_type is None:
            try:
                self._db.execute("COMMIT")
                return
            except sqlite3.OperationalError as error:
                self._db.execute("ROLLBACK")
                raise Unavailable(f"the state store failed: {error}") from error
        self._db.execute("ROLLBACK")
        if isinstance(exc, sqlite3.OperationalError):
            raise Unavailable(f"the state store failed: {exc}") from exc
