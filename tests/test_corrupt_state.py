"""A damaged state file or snapshot stops the start with a message that says what to do; the server
never silently starts from an empty model over real data."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from builders import request
from learner import Pricer
from server.store import SQLiteStore

FILE = SQLiteStore.FILENAME
AS_SAVED = ("--value-model", "none")  # the settings of saved_state's Pricer


def saved_state(data_dir: Path) -> None:
    """A state file holding a learned model: a snapshot, log entries and pending quotes."""
    store = SQLiteStore(data_dir)
    pricer = Pricer()
    for i in range(40):
        decision = pricer.quote(request(f"q{i}"), now=0.0)
        store.put_pending([decision])
        if i < 30:
            store.close_quote(decision, "reward", 1.0, True, 1.0)
            pricer.update(decision, 1.0)
    store.save_snapshot(pricer.snapshot(), last_seq=store.last_seq(), created_at=1.0)
    store.close()
    with sqlite3.connect(data_dir / FILE) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def test_a_truncated_state_file_is_refused(tmp_path: Path, refused_start: Callable[..., str]) -> None:
    saved_state(tmp_path)
    path = tmp_path / FILE
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    log = refused_start(tmp_path, *AS_SAVED)
    assert "is not a usable SQLite database" in log and "Restore it from a backup" in log


def test_a_corrupted_page_is_refused(tmp_path: Path, refused_start: Callable[..., str]) -> None:
    saved_state(tmp_path)
    path = tmp_path / FILE
    data = bytearray(path.read_bytes())
    page = 4096
    data[2 * page: 2 * page + 12] = b"\xff" * 12  # the header of a b-tree page
    path.write_bytes(bytes(data))
    assert "is not a usable SQLite database" in refused_start(tmp_path, *AS_SAVED)


def test_a_corrupted_snapshot_is_refused_and_kept(tmp_path: Path, refused_start: Callable[..., str]) -> None:
    saved_state(tmp_path)
    with sqlite3.connect(tmp_path / FILE) as db:
        db.execute("UPDATE snapshots SET blob = substr(blob, 1, length(blob) - 100)")
    log = refused_start(tmp_path, *AS_SAVED)
    assert "cannot load the saved state" in log and "checksum mismatch" in log
    with sqlite3.connect(tmp_path / FILE) as db:
        assert db.execute("SELECT COUNT(*) FROM snapshots").fetchone()[0] == 1
        assert db.execute("SELECT COUNT(*) FROM pending").fetchone()[0] == 10


@pytest.mark.parametrize(("value", "damage"), [
    ("?", lambda row: "{not json"),
    ("CAST(? AS TEXT)", lambda row: b'{"\xff": 1}'),
    ("?", lambda row: row[:-1]),
    ("?", lambda row: row[:200] + bytes([row[200] ^ 1]) + row[201:]),
    ("?", lambda row: random.Random(7).randbytes(len(row))),
], ids=["JSON that is not", "text that is not UTF-8", "a record cut short", "a bit flipped", "random bytes"])
def test_an_unreadable_log_entry_is_refused(tmp_path: Path, refused_start: Callable[..., str],
                                            value: str, damage: Callable[[bytes], object]) -> None:
    saved_state(tmp_path)
    with sqlite3.connect(tmp_path / FILE) as db:
        db.execute("DELETE FROM snapshots")
        (row,) = db.execute("SELECT decision FROM decision_log WHERE seq = 7").fetchone()
        db.execute(f"UPDATE decision_log SET decision = {value} WHERE seq = 7", (damage(row),))
    log = refused_start(tmp_path, *AS_SAVED)
    assert "decision log entry 7 is unreadable" in log and "restore it from a backup" in log
