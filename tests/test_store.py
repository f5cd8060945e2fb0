"""The SQLite store's own behaviour against a real database file: group commits, its failures, its
file checks (what every backend must do is tests/test_store_contract.py)."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

import pytest

from builders import request
from learner import AlreadyClosed, Decision, Pricer, QuoteIdTaken, StoreCorrupt, Unavailable
from learner.value import BehaviorEvent, StateChange, UserStates, load
from server.record import VERSION
from server.store import SQLiteStore

T = TypeVar("T")
VALUE_MODEL = load("default")


def decision(quote_id: str, expires_at: float = 100.0) -> Decision:
    return replace(Pricer().quote(request(quote_id), now=0.0), expires_at=expires_at)


def test_another_schema_version_is_refused(tmp_path: Path) -> None:
    SQLiteStore(tmp_path).close()
    with sqlite3.connect(tmp_path / SQLiteStore.FILENAME) as db:
        db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(StoreCorrupt, match=r"schema version 99.*new --data-dir"):
        SQLiteStore(tmp_path)


def test_a_file_that_is_not_sqlite_is_refused(tmp_path: Path) -> None:
    (tmp_path / SQLiteStore.FILENAME).write_bytes(b"\x00garbage" * 512)
    with pytest.raises(StoreCorrupt, match=r"not a usable SQLite database.*move it aside"):
        SQLiteStore(tmp_path)


def run_behind_one_commit(store: SQLiteStore, write: Callable[[T], None], items: list[T]) -> None:
    """Run ``write(item)`` for each item on its own thread while the database is held, so that all
    of them queue and then share one commit; wait for all."""
    with store._lock:
        threads = [threading.Thread(target=write, args=(item,)) for item in items]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 10
        while len(store._queue) < len(items) and time.monotonic() < deadline:
            time.sleep(0.001)
        assert len(store._queue) == len(items)
    for thread in threads:
        thread.join(timeout=10)


def test_concurrent_writes_share_a_commit_and_one_failure_spares_the_others(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path)
    first = decision("q-0")
    store.put_pending([first])
    outcomes: dict[str, str] = {}

    def put(quote_id: str) -> None:
        try:
            store.put_pending([decision(quote_id)])
            outcomes[quote_id] = "stored"
        except QuoteIdTaken:
            outcomes[quote_id] = "taken"

    run_behind_one_commit(store, put, ["q-1", "q-2", "q-0", "q-3"])  # q-0 is taken: it alone fails
    assert outcomes == {"q-1": "stored", "q-2": "stored", "q-0": "taken", "q-3": "stored"}
    seqs = []
    for quote_id in ("q-1", "q-2", "q-3"):
        seqs.append(store.close_quote(store.pending(quote_id), "reward", 1.0, True, 5.0))
    assert seqs == [1, 2, 3]
    store.close()
    reopened = SQLiteStore(tmp_path)
    assert reopened.pending("q-0") == first and reopened.pending_count() == 1
    assert [e.decision.quote_id for e in reopened.log_after(0)] == ["q-1", "q-2", "q-3"]
    reopened.close()


def test_after_commit_steps_run_once_durable_and_in_log_order(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path)
    quotes = [decision(f"q-{i}") for i in range(6)]
    store.put_pending(quotes)
    ran: list[int] = []

    def close(quote: Decision) -> None:
        store.close_quote(quote, "reward", 1.0, True, 5.0, after_commit=ran.append)

    run_behind_one_commit(store, close, quotes)
    assert ran == [1, 2, 3, 4, 5, 6]
    with pytest.raises(AlreadyClosed):  # closing again fails, and its step never runs
        store.close_quote(quotes[0], "reward", 1.0, True, 6.0, after_commit=ran.append)
    assert ran == [1, 2, 3, 4, 5, 6]
    store.close()


def test_a_failed_commit_fails_every_write_in_it_and_runs_no_after_commit_step(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path)
    store._db.execute("PRAGMA busy_timeout=50")  # fail fast while another process holds the file
    quotes = [decision(f"q-{i}") for i in range(3)]
    store.put_pending(quotes)
    ran: list[int] = []
    errors: list[BaseException] = []

    def close(quote: Decision) -> None:
        try:
            store.close_quote(quote, "reward", 1.0, True, 5.0, after_commit=ran.append)
        except Unavailable as exc:
            errors.append(exc)

    other = sqlite3.connect(store.path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another writer holds the database
    run_behind_one_commit(store, close, quotes)
    other.execute("ROLLBACK")
    other.close()
    assert len(errors) == 3 and "database is locked" in str(errors[0])
    assert ran == [] and store.pending_count() == 3 and store.last_seq() == 0
    store.close_quote(quotes[0], "reward", 1.0, True, 5.0, after_commit=ran.append)
    assert ran == [1]  # the store works again once the file is free
    store.close()


# -- users' states that change with a quote's close ----------------------------------------------
def test_a_close_and_an_observe_batch_for_one_user_in_one_commit_both_apply(tmp_path: Path) -> None:
    """Each state change reads the state its own transaction sees: two changes for one user that
    share a commit both count (computing from the cache before the commit would drop one)."""
    store = SQLiteStore(tmp_path)
    users = UserStates(VALUE_MODEL, store)
    quote = decision("q-0")
    store.put_pending([quote])
    seen = BehaviorEvent(quote.user_id, 10.0, "view", price=30.0, unit_cost=20.0, list_price=30.0)
    answer = StateChange(users, [replace(seen, timestamp=5.0, purchased=True)], 20.0, restamp=True)

    def write(kind: str) -> None:
        if kind == "observe":
            users.observe([seen], 20.0)
        else:
            store.close_quote(quote, "reward", 1.0, True, 20.0, states=answer)

    run_behind_one_commit(store, write, ["observe", "close"])
    assert users.get(quote.user_id).events == 2
    assert answer.observation.accepted == 1  # stamped 1 ms after the view, not refused as stale
    assert users.get(quote.user_id).last_timestamp == pytest.approx(10.001)
    store.close()
    assert UserStates(VALUE_MODEL, SQLiteStore(tmp_path)).get(quote.user_id).events == 2


def test_a_state_change_commits_with_its_close_or_not_at_all(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path)
    users = UserStates(VALUE_MODEL, store)
    quote = decision("q-0")
    store.put_pending([quote])
    answer = BehaviorEvent(quote.user_id, 10.0, "view", price=30.0, unit_cost=20.0, list_price=30.0)
    store._db.execute("PRAGMA busy_timeout=50")
    other = sqlite3.connect(store.path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another writer holds the file: the commit fails
    with pytest.raises(Unavailable):
        store.close_quote(quote, "reward", 1.0, True, 20.0,
                          states=StateChange(users, [answer], 20.0, restamp=True))
    other.execute("ROLLBACK")
    other.close()
    assert store.pending(quote.quote_id) == quote and users.get(quote.user_id).events == 0
    store.close_quote(quote, "reward", 1.0, True, 20.0,
                      states=StateChange(users, [answer], 20.0, restamp=True))
    assert users.get(quote.user_id).events == 1
    store.close()
    assert UserStates(VALUE_MODEL, SQLiteStore(tmp_path)).get(quote.user_id).events == 1


def test_decisions_are_stored_as_records_with_their_feature_layout_once(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path)
    quotes = [decision(f"q-{i}") for i in range(4)]
    store.put_pending(quotes[:2])
    store.put_pending(quotes[2:])
    store.close_quote(quotes[0], "reward", 1.0, True, 5.0)
    store.append_log(quotes[0], "late", 0.0, False, 6.0)
    store.close()
    with sqlite3.connect(tmp_path / SQLiteStore.FILENAME) as db:
        rows = db.execute("SELECT decision FROM pending UNION ALL "
                          "SELECT decision FROM decision_log").fetchall()
        layouts = db.execute("SELECT names FROM layouts").fetchall()
    db.close()
    assert len(rows) == 5 and all(isinstance(row, bytes) and row[0] == VERSION for (row,) in rows)
    assert all(b"context.is_mobile" not in row for (row,) in rows)
    assert layouts == [(json.dumps(list(quotes[0].feature_names)),)]
