"""The SQLite store against a real database file."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from builders import request
from learner import Decision, Pricer, Settlement
from server.store import QuoteIdTaken, SQLiteStore, StoreCorrupt


def decision(quote_id: str, expires_at: float = 100.0) -> Decision:
    return replace(Pricer().quote(request(quote_id), now=0.0), expires_at=expires_at)


@pytest.fixture
def store(tmp_path: Path) -> SQLiteStore:
    opened = SQLiteStore(tmp_path)
    yield opened  # type: ignore[misc]
    opened.close()


def test_pending_quotes_round_trip_and_ids_are_unique(store: SQLiteStore) -> None:
    first = decision("q-1")
    store.put_pending([first])
    assert store.pending("q-1") == first
    assert store.find_decision("q-1") == first
    with pytest.raises(QuoteIdTaken):
        store.put_pending([decision("q-2"), decision("q-1")])
    assert store.pending("q-2") is None  # the whole batch was rolled back
    assert store.pending_count() == 1


def test_closing_moves_a_quote_into_the_log_exactly_once(store: SQLiteStore) -> None:
    quote = decision("q-1")
    store.put_pending([quote])
    seq = store.close_quote(quote, "reward", 1.0, True, 5.0, "{}")
    assert seq == store.last_seq() == 1
    assert store.pending("q-1") is None
    assert store.find_decision("q-1") == quote
    with pytest.raises(LookupError):
        store.close_quote(quote, "expired", 0.0, True, 6.0, "{}")
    assert [(e.seq, e.kind, e.reward, e.learned) for e in store.log_after(0)] == [(1, "reward", 1.0, True)]
    assert store.settlement("q-1") == Settlement(reward=1.0, reported=True)
    assert store.settlement("q-unknown") is None


def test_a_late_report_is_part_of_the_settlement(store: SQLiteStore) -> None:
    quote = decision("q-1")
    store.put_pending([quote])
    store.close_quote(quote, "expired", 0.0, True, 5.0, "{}")
    store.append_log(quote, "late", 1.0, False, 6.0, "{}")
    assert store.settlement("q-1") == Settlement(reward=0.0, reported=False, late_reward=1.0)


def test_due_quotes_come_in_learning_order(store: SQLiteStore) -> None:
    store.put_pending([decision("b", 2.0), decision("a", 2.0), decision("c", 1.0), decision("d", 9.0)])
    assert [d.quote_id for d in store.due(now=5.0, limit=10)] == ["c", "a", "b"]
    assert [d.quote_id for d in store.due(now=5.0, limit=2)] == ["c", "a"]


def test_the_newest_three_snapshots_are_kept(store: SQLiteStore) -> None:
    for i in range(5):
        store.save_snapshot(f"blob-{i}".encode(), last_seq=i, created_at=float(i))
    latest = store.latest_snapshot()
    assert latest is not None and (latest.blob, latest.last_seq) == (b"blob-4", 4)
    with sqlite3.connect(store.path) as db:
        assert db.execute("SELECT COUNT(*) FROM snapshots").fetchone()[0] == 3


def test_state_survives_reopening(tmp_path: Path) -> None:
    first = SQLiteStore(tmp_path)
    first.put_pending([decision("q-1")])
    first.close()
    second = SQLiteStore(tmp_path)
    assert second.pending("q-1") is not None
    second.close()


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
