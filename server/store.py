"""Durable state: pending quotes, the decision log, learner snapshots, and users' value-model states.

``Store`` is the protocol the service uses; ``SQLiteStore`` is the embedded default: one file in WAL
mode with ``synchronous=FULL``, so every write is on disk (fsynced to the WAL) before the method
returns, and the service acknowledges a quote or a reward only after that. A process crash or power
loss after an acknowledgement loses nothing acknowledged.

Writes from concurrent threads share one transaction, so one fsync (group commit): a writer that
finds the database busy queues its write, and whoever holds the database next commits every queued
write together, each inside its own savepoint so that one write's failure touches no other. A log
write may carry an ``after_commit`` callback: it runs once the write is durable, in log order, before
any later write commits, which is what lets the service learn outcomes in log order without holding
a lock across the fsync.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from learner import Decision, Settlement, Unavailable

SCHEMA_VERSION = 1
SNAPSHOTS_KEPT = 3
T = TypeVar("T")
AfterCommit = Callable[[int], None]
"""Called with a log entry's sequence number once it is durable; calls come in sequence order."""


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
class RecentQuote:
    """A user's latest quote for a product, when its price was set, and whether it awaits its reward."""

    decision: Decision
    priced_at: float
    open: bool


@dataclass(frozen=True)
class StoredSnapshot:
    blob: bytes
    last_seq: int
    created_at: float


class Store(Protocol):
    def put_pending(self, decisions: list[Decision], *, remember_prices: bool = False) -> None: ...
    def recent_quote(self, user_id: str, product_id: str) -> RecentQuote | None: ...
    def forget_recent_quotes(self, priced_before: float) -> int: ...
    def pending(self, quote_id: str) -> Decision | None: ...
    def find_decision(self, quote_id: str) -> Decision | None: ...
    def settlement(self, quote_id: str) -> Settlement | None: ...
    def close_quote(self, decision: Decision, kind: str, reward: float, learned: bool,
                    closed_at: float, line: str, after_commit: AfterCommit | None = None) -> int: ...
    def append_log(self, decision: Decision, kind: str, reward: float, learned: bool,
                   closed_at: float, line: str, after_commit: AfterCommit | None = None) -> int: ...
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
CREATE TABLE IF NOT EXISTS recent_quotes (
    user_key TEXT NOT NULL,
    product_id TEXT NOT NULL,
    quote_id TEXT NOT NULL,
    priced_at REAL NOT NULL,
    PRIMARY KEY (user_key, product_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS recent_quotes_by_time ON recent_quotes (priced_at);
CREATE TABLE IF NOT EXISTS user_states (
    user_id TEXT PRIMARY KEY,
    model_version TEXT NOT NULL,
    updated_at REAL NOT NULL,
    state BLOB NOT NULL
) WITHOUT ROWID;
"""


def recent_quotes_key(user_id: str) -> str:
    """The one place the recent-quotes table turns a user id into its key."""
    return user_id


def _decision(text: str, where: str) -> Decision:
    try:
        return Decision.from_dict(json.loads(text))
    except (ValueError, TypeError, KeyError) as exc:
        raise StoreCorrupt(
            f"{where} is unreadable ({exc}): the state file is damaged; restore it from a backup"
        ) from None


class _Write:
    """One queued write: what to run inside the transaction, what to run after it, what came of it."""

    __slots__ = ("after_commit", "apply", "committed", "error", "result")

    def __init__(self, apply: Callable[[], Any], after_commit: AfterCommit | None) -> None:
        self.apply = apply
        self.after_commit = after_commit
        self.committed = False  # its transaction has ended (committed, or failed: see error)
        self.result: Any = None
        self.error: BaseException | None = None


class SQLiteStore:
    """The embedded store. One connection shared by the server's threads behind one lock."""

    FILENAME = "pricebandit.sqlite3"

    def __init__(self, data_dir: Path | str) -> None:
        self.path = Path(data_dir) / self.FILENAME
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()  # the connection: held by readers and by the committing writer
        self._queue_lock = threading.Lock()
        # Held by a committing writer from just before it releases the connection until its
        # batch's after-commit callbacks have run: callbacks keep log order, and the next batch's
        # fsync overlaps this one's callbacks.
        self._after_commit_lock = threading.Lock()
        self._queue: list[_Write] = []
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

    def _commit(self, apply: Callable[[], T], after_commit: AfterCommit | None = None) -> T:
        """Run ``apply`` in a committed transaction, shared with the writes queued meanwhile.

        Returns once the transaction holding it is committed (fsynced) and ``after_commit(result)``
        has run; raises what ``apply`` raised (the write then left no trace), Unavailable if the
        commit failed, or what ``after_commit`` raised (the write is then durable all the same).
        """
        write = _Write(apply, after_commit)
        with self._queue_lock:
            self._queue.append(write)
        batch: list[_Write] = []
        with self._lock:
            if not write.committed:  # no other writer committed it while this one waited: lead
                batch = self._commit_queued()
                self._after_commit_lock.acquire()
        if batch:
            try:
                self._run_after_commit(batch)
            finally:
                self._after_commit_lock.release()
        else:
            with self._after_commit_lock:  # the writer that committed this one holds it until done
                pass
        if write.error is not None:
            raise write.error
        return write.result  # type: ignore[no-any-return]

    @staticmethod
    def _run_after_commit(batch: list[_Write]) -> None:
        for write in batch:
            if write.error is None and write.after_commit is not None:
                try:
                    write.after_commit(write.result)
                except Exception as exc:
                    write.error = exc

    def _commit_queued(self) -> list[_Write]:
        """Commit every queued write in one transaction; returns them. Caller holds the connection."""
        with self._queue_lock:
            batch, self._queue = self._queue, []
        try:
            if len(batch) == 1:  # alone: the transaction is the write's own; no savepoint needed
                with self._transaction():
                    self._apply(batch[0])
            else:
                with self._transaction():
                    for write in batch:
                        self._apply_in_savepoint(write)
        except BaseException as exc:  # the transaction failed: nothing in it is on disk
            failure = exc if isinstance(exc, Unavailable) else Unavailable(f"the state store failed: {exc!r}")
            for write in batch:
                write.error = write.error or failure
        finally:
            for write in batch:
                write.committed = True
        return batch

    def _apply(self, write: _Write) -> None:
        """Run a write alone in its transaction: its own failure rolls the transaction back."""
        try:
            write.result = write.apply()
        except (sqlite3.OperationalError, sqlite3.InternalError):
            raise
        except Exception as exc:
            write.error = exc
            raise

    def _apply_in_savepoint(self, write: _Write) -> None:
        self._db.execute("SAVEPOINT write")
        try:
            write.result = write.apply()
        except (sqlite3.OperationalError, sqlite3.InternalError) as exc:
            raise Unavailable(f"the state store failed: {exc}") from exc  # fails the transaction
        except Exception as exc:  # this write's own failure (a taken id, a quote already closed)
            write.error = exc
            self._db.execute("ROLLBACK TO write")
        self._db.execute("RELEASE write")

    # -- pending quotes ----------------------------------------------------------------------
    def put_pending(self, decisions: list[Decision], *, remember_prices: bool = False) -> None:
        """Store new quotes; with ``remember_prices``, also as each user's latest quote for the product
        (a quote that repeats an earlier price keeps that price's time: the window does not slide)."""
        rows = [(d.quote_id, d.expires_at, json.dumps(d.to_dict())) for d in decisions]

        def insert() -> None:
            try:
                self._db.executemany("INSERT INTO pending VALUES (?, ?, ?)", rows)
            except sqlite3.IntegrityError as exc:
                raise QuoteIdTaken(str(exc)) from None
            if remember_prices:
                for d in decisions:
                    key = (recent_quotes_key(d.user_id), d.product_id)
                    if d.stable_of:
                        self._db.execute("UPDATE recent_quotes SET quote_id = ? WHERE user_key = ? AND "
                                         "product_id = ?", (d.quote_id, *key))
                    else:
                        self._db.execute("INSERT OR REPLACE INTO recent_quotes VALUES (?, ?, ?, ?)",
                                         (*key, d.quote_id, d.created_at))

        self._commit(insert)

    def recent_quote(self, user_id: str, product_id: str) -> RecentQuote | None:
        """The user's latest remembered quote for the product, or None."""
        with self._lock:
            row = self._execute("SELECT quote_id, priced_at FROM recent_quotes WHERE user_key = ? AND "
                                "product_id = ?", (recent_quotes_key(user_id), product_id)).fetchone()
        if row is None:
            return None
        quote_id, priced_at = row
        pending = self.pending(quote_id)
        decision = pending or self.find_decision(quote_id)
        return None if decision is None else RecentQuote(decision, float(priced_at), pending is not None)

    def forget_recent_quotes(self, priced_before: float) -> int:
        """Drop the remembered quotes whose price was set before ``priced_before``; returns how many."""
        return self._commit(lambda: int(self._db.execute(
            "DELETE FROM recent_quotes WHERE priced_at < ?", (priced_before,)).rowcount))

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
                    closed_at: float, line: str, after_commit: AfterCommit | None = None) -> int:
        """Atomically move a pending quote into the decision log; returns its log sequence number.

        Raises LookupError if the quote is no longer pending (closed by another thread first).
        The decision moves as the JSON text it was stored as: no second encoding.
        """
        def move() -> int:
            cursor = self._db.execute(
                "INSERT INTO decision_log (quote_id, kind, reward, learned, closed_at, decision, line) "
                "SELECT quote_id, ?, ?, ?, ?, decision, ? FROM pending WHERE quote_id = ?",
                (kind, reward, int(learned), closed_at, line, decision.quote_id),
            )
            if cursor.rowcount != 1:
                raise LookupError(decision.quote_id)
            seq = int(cursor.lastrowid or 0)
            self._db.execute("DELETE FROM pending WHERE quote_id = ?", (decision.quote_id,))
            return seq

        return self._commit(move, after_commit)

    def append_log(self, decision: Decision, kind: str, reward: float, learned: bool,
                   closed_at: float, line: str, after_commit: AfterCommit | None = None) -> int:
        def append() -> int:
            cursor = self._db.execute(
                "INSERT INTO decision_log (quote_id, kind, reward, learned, closed_at, decision, line) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (decision.quote_id, kind, reward, int(learned), closed_at,
                 json.dumps(decision.to_dict()), line),
            )
            return int(cursor.lastrowid or 0)

        return self._commit(append, after_commit)

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
        def insert() -> None:
            self._db.execute(
                "INSERT INTO snapshots (created_at, last_seq, blob) VALUES (?, ?, ?)",
                (created_at, last_seq, blob),
            )
            self._db.execute(
                "DELETE FROM snapshots WHERE id NOT IN "
                "(SELECT id FROM snapshots ORDER BY id DESC LIMIT ?)", (SNAPSHOTS_KEPT,),
            )

        self._commit(insert)

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
        self._commit(lambda: self._db.executemany(
            "INSERT OR REPLACE INTO user_states VALUES (?, ?, ?, ?)", rows))

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
