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

Failures are named (``server/store_faults.py``): a write on a full disk, a read-only file system, an
I/O error or a corrupt page raises StoreFailed saying which; ``check()`` tells health whether the
store works now and ``recover()`` tries it again. The files are watched too: a state file deleted
or replaced under the server fails every later write (nothing written to a file no one will read
again is acknowledged), and the data dir has one owner at a time (``server/dir_lock.py``).
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol, TypeVar

from learner import (
    AlreadyClosed,
    Decision,
    LogMoved,
    QuoteIdTaken,
    Settlement,
    StoreCorrupt,
    StoreFailed,
    Unavailable,
)
from learner.value import StateChange
from server.dir_lock import DataDirLock
from server.pseudonyms import UserIdKey
from server.record import RecordCodec
from server.store_faults import (
    DAMAGED_FILE_CAUSES,
    RESTART_CAUSES,
    is_store_failure,
    replaced,
    store_failure,
)

SCHEMA_VERSION = 3
"""3: decisions are stored as compact records (``server/record.py``) naming their feature layout,
which the ``layouts`` table holds once. 2: users are stored under pseudonyms (``server.pseudonyms``).
A version-2 file's decisions are JSON, read as they are; the first writer to open it marks it 3 (its
new rows are records, which a build of version 2 could not read). A version-1 file, which holds raw
user ids, is migrated in place when the server first opens it with a key."""
JSON_SCHEMA_VERSION = 2
DAMAGED = "the state file is damaged; restore it from a backup"
"""What an unreadable row's StoreCorrupt tells the operator."""
LEGACY_SCHEMA_VERSION = 1
SNAPSHOTS_KEPT = 3
WAL_CHECKPOINT_PAGES = 256
"""Checkpoint the write-ahead log into the database every 256 pages (1 MiB), not SQLite's 1000: on
a small disk the log filled the disk before its first checkpoint, and pages freed by deleted rows
are reused only once checkpointed."""
WAL_SIZE_LIMIT_BYTES = 1 << 20
"""After a checkpoint the log file is cut back to this size, so a burst does not keep its space."""
ADOPTED_KEY = "adopted_configuration"
"""The meta row holding the rollout gate's last adopted configuration (``server/adoption.py``)."""
T = TypeVar("T")
AfterCommit = Callable[[int], None]
"""Called with a log entry's sequence number once it is durable; calls come in sequence order on a
store with one writer (``shared_log`` false), and in no promised order on a shared one."""


@dataclass(frozen=True)
class LogEntry:
    """One line of the decision log: how a decision was closed, and whether it was learned."""

    seq: int
    decision: Decision
    kind: str  # "reward", "expired" or "late"
    reward: float
    learned: bool


@dataclass(frozen=True)
class Switch:
    """A configuration switch of the rollout gate, as the log holds it: every process applying the
    log applies it at its position the same way (``PricingService._apply``), so replicas switch at
    one point and keep one model."""

    record: str
    """The adopted configuration (``server/adoption.py``: the learner's flags and the mode)."""
    snapshot: bytes | None
    """The new learner, having learned every outcome before the switch; None: only the mode changes."""
    learner: dict[str, Any]
    """Its ``PricerConfig.decision_config()``: what ``RedisStore.use_learner`` checks replicas by."""
    at: float


@dataclass(frozen=True)
class SwitchEntry:
    """A switch's place in the log: it takes a sequence number, as an outcome does."""

    seq: int
    switch: Switch


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
    """What the service and the composition root use of a backend; tests/test_store_contract.py
    checks every backend against it."""

    shared_log: bool
    """Whether other processes append to the log too (then the service learns by following it)."""

    @property
    def keyed_users(self) -> bool: ...
    def use_user_key(self, key: UserIdKey) -> int: ...
    def put_pending(self, decisions: list[Decision], *, remember_prices: bool = False) -> None: ...
    def recent_quote(self, user_id: str, product_id: str) -> RecentQuote | None: ...
    def forget_recent_quotes(self, priced_before: float) -> int: ...
    def pending(self, quote_id: str) -> Decision | None: ...
    def find_decision(self, quote_id: str) -> Decision | None: ...
    def settlement(self, quote_id: str) -> Settlement | None: ...
    def close_quote(self, decision: Decision, kind: str, reward: float, learned: bool,
                    closed_at: float, after_commit: AfterCommit | None = None,
                    states: StateChange | None = None) -> int: ...
    def append_log(self, decision: Decision, kind: str, reward: float, learned: bool,
                   closed_at: float, after_commit: AfterCommit | None = None) -> int: ...
    def due(self, now: float, limit: int) -> list[Decision]: ...
    def pending_count(self) -> int: ...
    def save_snapshot(self, blob: bytes, last_seq: int, created_at: float) -> bool: ...
    def latest_snapshot(self) -> StoredSnapshot | None: ...
    def append_switch(self, switch: Switch, after: int, after_commit: AfterCommit | None = None) -> int: ...
    def adopted(self) -> str | None: ...
    def log_after(self, seq: int) -> Iterator[LogEntry]: ...
    def entries_after(self, seq: int) -> Iterator[LogEntry | SwitchEntry]: ...
    def last_seq(self) -> int: ...
    def load_user_state(self, user_id: str, model_version: str) -> bytes | None: ...
    def save_user_states(self, change: StateChange) -> None: ...
    def check(self) -> StoreFailed | None: ...
    def recover(self) -> StoreFailed | None: ...
    def close(self) -> None: ...


_LAST_SEQ = ("SELECT MAX(COALESCE((SELECT MAX(seq) FROM decision_log), 0), "
             "COALESCE((SELECT MAX(seq) FROM switches), 0))")
"""The log's last entry: an outcome or a switch."""
_DECISION = "CAST(decision AS BLOB)"
"""A stored decision as bytes, whatever it was stored as (a record is a BLOB, a row of a version-2 file
JSON text): a damaged text row is then the codec's to refuse, not a UTF-8 error of the driver."""
_STATE_QUERY = "SELECT state FROM user_states WHERE user_id = ? AND model_version = ?"
"""One user's stored state under one model: read by the cache, and inside a state change's write."""
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS pending (
    quote_id TEXT PRIMARY KEY,
    expires_at REAL NOT NULL,
    decision TEXT NOT NULL  -- a record (a BLOB: server/record.py); JSON text in files of version 2
);
CREATE INDEX IF NOT EXISTS pending_by_expiry ON pending (expires_at, quote_id);
CREATE TABLE IF NOT EXISTS decision_log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    quote_id TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('reward', 'expired', 'late')),
    reward REAL NOT NULL,
    learned INTEGER NOT NULL,
    closed_at REAL NOT NULL,
    decision TEXT NOT NULL,  -- as in pending
    line TEXT NOT NULL  -- empty: DSJSON lines are made on export (server.decision_log); older files hold them
);
CREATE INDEX IF NOT EXISTS decision_log_by_quote ON decision_log (quote_id);
CREATE TABLE IF NOT EXISTS switches (
    seq INTEGER PRIMARY KEY,  -- in the decision log's sequence (sqlite_sequence): the next number
    switched_at REAL NOT NULL,
    record TEXT NOT NULL,
    snapshot BLOB,  -- NULL: the mode alone changed
    learner TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS layouts (
    digest BLOB PRIMARY KEY,  -- server.record.layout_digest of the names
    names TEXT NOT NULL  -- the feature names, a JSON list
);
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
    shared_log = False
    """This process is the log's one writer: it learns each entry in its after-commit step."""

    def __init__(self, data_dir: Path | str, *, reader: bool = False) -> None:
        """Open (or create) the state file as its one owner; ``reader`` opens an existing file
        read-only and takes no ownership, so a tool may read a running server's file."""
        self.path = Path(data_dir) / self.FILENAME
        self.reader = reader
        if not reader:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()  # the connection: held by readers and by the committing writer
        self._queue_lock = threading.Lock()
        # Held by a committing writer from just before it releases the connection until its
        # batch's after-commit callbacks have run: callbacks keep log order, and the next batch's
        # fsync overlaps this one's callbacks.
        self._after_commit_lock = threading.Lock()
        self._queue: list[_Write] = []
        self._records = RecordCodec(self._read_layout,
                                    lambda layouts: self._commit(lambda: self._write_layouts(layouts)),
                                    damaged=DAMAGED)
        self._owner = None if reader else DataDirLock(self.path.parent)
        try:
            self._open()
        except BaseException:
            if self._owner is not None:
                self._owner.release()
            raise
        self._files = _identities(self.path)
        self._fault: StoreFailed | None = None  # the last operation's failure; None once one commits
        self._broken: StoreFailed | None = None  # a failure of RESTART_CAUSES, kept until restart

    def _open(self) -> None:
        """Connect and check the file; a damaged file is StoreCorrupt, an unusable disk StoreFailed."""
        try:
            if self.reader:
                self._db = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True,
                                           check_same_thread=False, isolation_level=None)
                self._db.execute("PRAGMA busy_timeout=5000")
                self._check_schema_version()
                return
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
            self._db.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT_BYTES}")
            check = self._db.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise self._corrupt(check)
            self._db.executescript(_SCHEMA)
            self._check_schema_version()
        except sqlite3.Error as exc:
            failure = store_failure(exc, self.path)
            if failure.cause not in DAMAGED_FILE_CAUSES:
                raise failure from None  # the file may be fine: the disk or its permissions are not
            raise self._corrupt(str(exc)) from None

    def _corrupt(self, problem: str) -> StoreCorrupt:
        return StoreCorrupt(
            f"the state file {self.path} is not a usable SQLite database ({problem}). Restore it "
            "from a backup, or move it aside to start with an empty model."
        )

    def _check_schema_version(self) -> None:
        version = self._meta("schema_version")
        if version is None:
            self._db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        elif version == str(JSON_SCHEMA_VERSION) and not self.reader:
            self._db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))
        elif version not in (str(SCHEMA_VERSION), str(JSON_SCHEMA_VERSION), str(LEGACY_SCHEMA_VERSION)):
            raise StoreCorrupt(
                f"the state file {self.path} has schema version {version}, this build uses "
                f"{SCHEMA_VERSION}: run the matching pricebandit release, or use a new --data-dir"
            )

    def _meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    @property
    def keyed_users(self) -> bool:
        """Whether users are already stored under some user-id key (so no new key may be made)."""
        with self._lock:
            return self._meta("user_id_key") is not None

    def use_user_key(self, key: UserIdKey) -> int:
        """Check that users were stored under ``key``; a version-1 file is migrated to it first.

        Returns the rows migrated (0 when there was nothing to do). Raises StoreCorrupt for a file
        keyed by another key: its users could never be found again.
        """
        with self._lock:
            stored = self._meta("user_id_key")
            if stored is not None and stored != key.check_value:
                raise StoreCorrupt(
                    f"the state file {self.path} stores its users under another user-id key than "
                    "the one given: start with the key file it was written with (--user-id-key-file)"
                )
            legacy = self._meta("schema_version") == str(LEGACY_SCHEMA_VERSION)
            if stored is not None and not legacy:
                return 0
            with self._transaction():
                migrated = self._pseudonymize(key) if legacy else 0
                self._db.execute("INSERT OR REPLACE INTO meta VALUES ('user_id_key', ?)", (key.check_value,))
                self._db.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)",
                                 (str(SCHEMA_VERSION),))
            if legacy:  # the raw ids' old pages and log frames: rewritten, then cut off
                self._execute("VACUUM")
                self._execute("PRAGMA wal_checkpoint(TRUNCATE)")
            return migrated

    def _pseudonymize(self, key: UserIdKey) -> int:
        """Replace every raw user id of a version-1 file by its pseudonym, inside a transaction (whose
        layouts its records are read and written with)."""
        records = RecordCodec(self._layout, self._write_layouts, damaged=DAMAGED)
        migrated = 0
        for table, id_column in (("pending", "quote_id"), ("decision_log", "seq")):
            rows = self._db.execute(f"SELECT {id_column}, {_DECISION} FROM {table}").fetchall()
            for row_id, data in rows:
                decision = records.decode(data)
                (record,) = records.encode([replace(decision, user_id=key.pseudonym(decision.user_id))])
                self._db.execute(f"UPDATE {table} SET decision = ? WHERE {id_column} = ?", (record, row_id))
            migrated += len(rows)
        states = self._db.execute(
            "SELECT user_id, model_version, updated_at, state FROM user_states").fetchall()
        self._db.execute("DELETE FROM user_states")
        self._db.executemany("INSERT INTO user_states VALUES (?, ?, ?, ?)",
                             [(key.pseudonym(user), *rest) for user, *rest in states])
        return migrated + len(states)

    def _read_layout(self, digest: bytes) -> str | None:
        with self._lock:
            return self._layout(digest)

    def _layout(self, digest: bytes) -> str | None:
        """A feature layout's names as stored (JSON), or None; the caller holds the connection."""
        row = self._execute("SELECT names FROM layouts WHERE digest = ?", (digest,)).fetchone()
        return None if row is None else str(row[0])

    def _write_layouts(self, layouts: Mapping[bytes, str]) -> None:
        """Inside a transaction: store feature layouts (a layout already there is the same one)."""
        self._db.executemany("INSERT OR IGNORE INTO layouts VALUES (?, ?)", layouts.items())

    def _execute(self, sql: str, params: tuple = ()) -> sqlite3.Cursor:  # type: ignore[type-arg]
        try:
            return self._db.execute(sql, params)
        except sqlite3.Error as exc:
            if is_store_failure(exc):
                raise self._failed(exc) from exc
            raise

    def _failed(self, error: sqlite3.Error) -> StoreFailed:
        """The named failure ``error`` means, remembered for ``check()``."""
        failure = store_failure(error, self.path)
        self._fault = failure
        if failure.cause in RESTART_CAUSES:
            self._broken = failure
        return failure

    def _check_usable(self) -> None:
        """Raise StoreFailed if a write must not be acknowledged: the state files are no longer the
        ones opened (deleted or replaced), or the store broke for good."""
        if self._broken is None and (what := _changed(self.path, self._files)):
            self._broken = replaced(self.path, what)
        if self._broken is not None:
            self._fault = self._broken
            raise StoreFailed(self._broken.cause, str(self._broken))  # a fresh one per raise

    def check(self) -> StoreFailed | None:
        """Why the store cannot be used now, or None: the state files are not the ones opened, or
        the last operation failed. No I/O but two ``stat`` calls: health calls it on a timer."""
        try:
            self._check_usable()
        except StoreFailed as failure:
            return failure
        return self._fault

    def recover(self) -> StoreFailed | None:
        """After a failure: a checkpoint (which gives the log's space back) and a one-row write;
        None if both worked, so recovery shows without waiting for traffic."""
        try:
            self._check_usable()
            with self._lock:
                self._execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._commit(lambda: self._db.execute(
                "INSERT OR REPLACE INTO meta VALUES ('probed_at', ?)", (repr(time.time()),)))
        except StoreFailed as failure:
            return failure
        return None

    def _transaction(self) -> _Transaction:
        return _Transaction(self)

    def _commit(self, apply: Callable[[], T], after_commit: AfterCommit | None = None) -> T:
        """Run ``apply`` in a committed transaction, shared with the writes queued meanwhile.

        Returns once the transaction holding it is committed (fsynced) and ``after_commit(result)``
        has run; raises what ``apply`` raised (the write then left no trace), StoreFailed if the
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
        except Exception as exc:
            if not is_store_failure(exc):
                write.error = exc
            raise

    def _apply_in_savepoint(self, write: _Write) -> None:
        self._db.execute("SAVEPOINT write")
        try:
            write.result = write.apply()
        except Exception as exc:
            if is_store_failure(exc):
                raise  # fails the transaction, named on the way out
            write.error = exc  # this write's own failure (a taken id, a quote already closed)
            self._db.execute("ROLLBACK TO write")
        self._db.execute("RELEASE write")

    # -- pending quotes ----------------------------------------------------------------------
    def put_pending(self, decisions: list[Decision], *, remember_prices: bool = False) -> None:
        """Store new quotes; with ``remember_prices``, also as each user's latest quote for the product
        (a quote that repeats an earlier price keeps that price's time: the window does not slide)."""
        rows = list(zip([d.quote_id for d in decisions], [d.expires_at for d in decisions],
                        self._records.encode(decisions), strict=True))

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
            row = self._execute(f"SELECT {_DECISION} FROM pending WHERE quote_id = ?", (quote_id,)).fetchone()
        return None if row is None else self._records.stored(row[0], f"pending quote {quote_id!r}")

    def find_decision(self, quote_id: str) -> Decision | None:
        """The decision with this id, pending or closed."""
        found = self.pending(quote_id)
        if found is not None:
            return found
        with self._lock:
            row = self._execute(
                f"SELECT {_DECISION} FROM decision_log WHERE quote_id = ? ORDER BY seq LIMIT 1", (quote_id,)
            ).fetchone()
        return None if row is None else self._records.stored(row[0], f"decision log entry for {quote_id!r}")

    def due(self, now: float, limit: int) -> list[Decision]:
        """Pending quotes whose window has closed, oldest first (then by id): the learning order."""
        with self._lock:
            rows = self._execute(
                f"SELECT quote_id, {_DECISION} FROM pending WHERE expires_at <= ? "
                "ORDER BY expires_at, quote_id LIMIT ?", (now, limit),
            ).fetchall()
        return [self._records.stored(decision, f"pending quote {quote_id!r}") for quote_id, decision in rows]

    def pending_count(self) -> int:
        with self._lock:
            return int(self._execute("SELECT COUNT(*) FROM pending").fetchone()[0])

    # -- the decision log --------------------------------------------------------------------
    def close_quote(self, decision: Decision, kind: str, reward: float, learned: bool,
                    closed_at: float, after_commit: AfterCommit | None = None,
                    states: StateChange | None = None) -> int:
        """Atomically move a pending quote into the decision log, and apply ``states`` (the shopper's
        answer to it) in the same transaction; returns the entry's log sequence number.

        Raises AlreadyClosed if the quote is no longer pending (closed by another thread first): the
        states are then left alone. The decision moves as the record it was stored as.
        """
        def move() -> int:
            cursor = self._db.execute(
                "INSERT INTO decision_log (quote_id, kind, reward, learned, closed_at, decision, line) "
                "SELECT quote_id, ?, ?, ?, ?, decision, '' FROM pending WHERE quote_id = ?",
                (kind, reward, int(learned), closed_at, decision.quote_id),
            )
            if cursor.rowcount != 1:
                raise AlreadyClosed(decision.quote_id)
            seq = int(cursor.lastrowid or 0)
            self._db.execute("DELETE FROM pending WHERE quote_id = ?", (decision.quote_id,))
            if states is not None:
                self._write_states(states)
            return seq

        if states is None:
            return self._commit(move, after_commit)

        def remember_then(seq: int) -> None:
            states.remember()
            if after_commit is not None:
                after_commit(seq)

        return self._commit(move, remember_then)

    def append_log(self, decision: Decision, kind: str, reward: float, learned: bool,
                   closed_at: float, after_commit: AfterCommit | None = None) -> int:
        (record,) = self._records.encode([decision])

        def append() -> int:
            cursor = self._db.execute(
                "INSERT INTO decision_log (quote_id, kind, reward, learned, closed_at, decision, line) "
                "VALUES (?, ?, ?, ?, ?, ?, '')",
                (decision.quote_id, kind, reward, int(learned), closed_at, record),
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
                    f"SELECT seq, {_DECISION}, kind, reward, learned FROM decision_log WHERE seq > ? "
                    "ORDER BY seq LIMIT 1000", (seq,),
                ).fetchall()
            if not rows:
                return
            for row_seq, decision, kind, reward, learned in rows:
                yield LogEntry(row_seq, self._records.stored(decision, f"decision log entry {row_seq}"), kind,
                               reward, bool(learned))
            seq = rows[-1][0]

    def entries_after(self, seq: int) -> Iterator[LogEntry | SwitchEntry]:
        """The outcomes and the switches after ``seq``, in log order (switches are few: read at once)."""
        with self._lock:
            rows = self._execute("SELECT seq, switched_at, record, snapshot, learner FROM switches "
                                 "WHERE seq > ? ORDER BY seq", (seq,)).fetchall()
        switches = [SwitchEntry(row_seq, Switch(record, None if blob is None else bytes(blob),
                                                json.loads(learner), at))
                    for row_seq, at, record, blob, learner in rows]
        for entry in self.log_after(seq):
            while switches and switches[0].seq < entry.seq:
                yield switches.pop(0)
            yield entry
        yield from switches

    def last_seq(self) -> int:
        with self._lock:
            return int(self._execute(_LAST_SEQ).fetchone()[0])

    def append_switch(self, switch: Switch, after: int, after_commit: AfterCommit | None = None) -> int:
        """Append ``switch`` as the entry after ``after``, with the adopted record and (a new learner)
        its snapshot, in one transaction; LogMoved, writing nothing, if the log's last entry is not
        ``after``. The switch takes the decision log's next number (``sqlite_sequence``), so the next
        outcome comes after it."""
        def write() -> int:
            last = int(self._db.execute(_LAST_SEQ).fetchone()[0])
            if last != after:
                raise LogMoved(after, last)
            seq = last + 1
            if not self._db.execute("UPDATE sqlite_sequence SET seq = ? WHERE name = 'decision_log'",
                                    (seq,)).rowcount:
                self._db.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('decision_log', ?)", (seq,))
            self._db.execute("INSERT INTO switches VALUES (?, ?, ?, ?, ?)",
                             (seq, switch.at, switch.record, switch.snapshot, json.dumps(switch.learner)))
            self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (ADOPTED_KEY, switch.record))
            if switch.snapshot is not None:
                self._db.execute("INSERT INTO snapshots (created_at, last_seq, blob) VALUES (?, ?, ?)",
                                 (switch.at, seq, switch.snapshot))
            return seq

        return self._commit(write, after_commit)

    # -- snapshots ---------------------------------------------------------------------------
    def save_snapshot(self, blob: bytes, last_seq: int, created_at: float) -> bool:
        """Store a snapshot of the learner after log entry ``last_seq``; keep the newest few. A
        snapshot from before the last switch of the learner is refused (False): it is of the old
        configuration, and the latest snapshot must be one the adopted configuration loads."""
        def insert() -> bool:
            cursor = self._db.execute(
                "INSERT INTO snapshots (created_at, last_seq, blob) SELECT ?, ?, ? WHERE ? >= "
                "(SELECT COALESCE(MAX(seq), 0) FROM switches WHERE snapshot IS NOT NULL)",
                (created_at, last_seq, blob, last_seq),
            )
            self._db.execute(
                "DELETE FROM snapshots WHERE id NOT IN "
                "(SELECT id FROM snapshots ORDER BY id DESC LIMIT ?)", (SNAPSHOTS_KEPT,),
            )
            return cursor.rowcount == 1

        return self._commit(insert)

    def adopted(self) -> str | None:
        """The record of the configuration the rollout gate last adopted; None if it never did."""
        with self._lock:
            return self._meta(ADOPTED_KEY)

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
            row = self._execute(_STATE_QUERY, (user_id, model_version)).fetchone()
        return None if row is None else bytes(row[0])

    def save_user_states(self, change: StateChange) -> None:
        """Apply ``change`` to the stored states in a transaction; the cache follows after commit."""
        self._commit(lambda: self._write_states(change), lambda _: change.remember())

    def _write_states(self, change: StateChange) -> None:
        """Inside a transaction: run ``change`` on the states as this transaction sees them."""
        version = change.model_version

        def load(user_id: str) -> bytes | None:
            row = self._db.execute(_STATE_QUERY, (user_id, version)).fetchone()
            return None if row is None else bytes(row[0])

        rows = [(user_id, version, change.now, blob) for user_id, blob in change(load).items()]
        self._db.executemany("INSERT OR REPLACE INTO user_states VALUES (?, ?, ?, ?)", rows)

    def close(self) -> None:
        with self._lock:
            self._db.close()
        if self._owner is not None:
            self._owner.release()


_FileId = tuple[int, int] | None


def _identities(path: Path) -> tuple[_FileId, _FileId]:
    """(device, inode) of the database file and of its write-ahead log; None where one is missing.
    Checked twice per transaction, so on plain strings: two ``stat`` calls, no ``Path`` objects."""
    name = str(path)
    return _identity(name), _identity(name + "-wal")


def _identity(name: str) -> _FileId:
    try:
        found = os.stat(name)
    except FileNotFoundError:
        return None
    return found.st_dev, found.st_ino


def _changed(path: Path, opened: tuple[_FileId, _FileId]) -> str:
    """How the state files differ from those opened: "deleted", "replaced", or "" (unchanged)."""
    for then, now in zip(opened, _identities(path), strict=True):
        if then is not None and now != then:
            return "deleted" if now is None else "replaced"
    return ""


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, or ``ROLLBACK`` on error; storage errors become a named
    StoreFailed. Nothing commits once the state file is gone (``_check_usable``)."""

    def __init__(self, store: SQLiteStore) -> None:
        self._store = store
        self._db = store._db

    def __enter__(self) -> None:
        self._store._check_usable()
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            self._fail(exc)
            raise

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        if exc is None:
            try:
                self._store._check_usable()
                self._db.execute("COMMIT")
            except (sqlite3.Error, StoreFailed) as error:
                self._fail(error)
                raise
            self._store._fault = None
            return
        self._fail(exc)

    def _fail(self, error: BaseException) -> None:
        """Roll back what is left of the transaction and raise the named failure of ``error``.

        SQLite may already have rolled back (it does on a full disk): a second ROLLBACK would
        raise "no transaction is active" over the real cause, so it runs only when one is open.
        """
        if self._db.in_transaction:
            with contextlib.suppress(sqlite3.Error):  # the cause is ``error``, not the rollback's
                self._db.execute("ROLLBACK")
        if isinstance(error, sqlite3.Error) and is_store_failure(error):
            raise self._store._failed(error) from error
