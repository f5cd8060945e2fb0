"""A state file from before decision records (schema 2: every decision the JSON of
``Decision.to_dict()``, no layouts table) opens, recovers, exports and evaluates as it did; its new
rows are records, and the file is marked so that a build that reads only JSON refuses it."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

from builders import quote_request
from conftest import DEADLINE, ServerHandle
from evaluation.logs import read_state
from pricing.v1.pricing_pb2 import RewardResponse
from server.decision_log import dsjson_lines
from server.export import settled_quotes
from server.record import VERSION, RecordCodec
from server.store import JSON_SCHEMA_VERSION, SCHEMA_VERSION, SQLiteStore


def as_json_state(path: Path) -> None:
    """Rewrite a state file as a build of schema 2 wrote it: every decision JSON, no layouts, and
    no snapshot (so a start replays the whole JSON log)."""
    with sqlite3.connect(path) as db:
        layouts = dict(db.execute("SELECT digest, names FROM layouts").fetchall())
        records = RecordCodec(layouts.get, layouts.update)
        for table, row_id in (("pending", "quote_id"), ("decision_log", "seq")):
            for key, data in db.execute(f"SELECT {row_id}, decision FROM {table}").fetchall():
                text = json.dumps(records.decode(data).to_dict())
                db.execute(f"UPDATE {table} SET decision = ? WHERE {row_id} = ?", (text, key))
        db.execute("DROP TABLE layouts")
        db.execute("DELETE FROM snapshots")
        db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(JSON_SCHEMA_VERSION),))
    db.close()


def stored(path: Path) -> tuple[str, list[tuple[str, bytes | str]]]:
    """The file's schema version and each row's decision, pending then logged."""
    with sqlite3.connect(path) as db:
        version = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]
        rows = db.execute("SELECT quote_id, decision FROM pending UNION ALL "
                          "SELECT quote_id, decision FROM decision_log").fetchall()
    db.close()
    return version, rows


def evaluated(path: Path) -> list[tuple[object, ...]]:
    return [(d.quote_id, d.features, d.feature_names, d.prices.tolist(), d.pmf.tolist(), d.propensity,
             d.purchased) for d in read_state(path).decisions]


def test_a_json_state_file_recovers_exports_and_evaluates_and_takes_records_from_then_on(
        start_server: Callable[..., ServerHandle]) -> None:
    handle = start_server()
    for i in range(10):
        quote = handle.quote(user_id=f"user-{i}", context={"is_mobile": float(i % 2), "hour_sin": i / 10})
        handle.reward(quote.quote_id, purchased=i % 3 == 0)
    pending = handle.quote(user_id="later")
    probe = quote_request(quote_id="probe-1", user_id="probe")
    before = handle.stub.Quote(probe, timeout=DEADLINE)
    store = handle.server.service.store
    lines, settled = list(dsjson_lines(store)), list(settled_quotes(store))
    path = store.path
    handle.stop()
    logged = evaluated(path)
    assert len(logged) == 10

    as_json_state(path)
    version, rows = stored(path)
    assert version == str(JSON_SCHEMA_VERSION) and all(isinstance(data, str) for _, data in rows)
    assert evaluated(path) == logged  # a reader leaves the file as it is
    assert stored(path)[0] == str(JSON_SCHEMA_VERSION)

    handle.start()  # recovery replays the JSON log
    assert handle.stub.Quote(probe, timeout=DEADLINE) == before  # the pending JSON row, as answered
    fresh = handle.stub.Quote(quote_request(quote_id="probe-2", user_id="probe"), timeout=DEADLINE)
    assert fresh.model_version == before.model_version == "linucb:10"
    assert [a.purchase_probability for a in fresh.explanation.arms] == [
        a.purchase_probability for a in before.explanation.arms]
    store = handle.server.service.store
    assert list(dsjson_lines(store)) == lines and list(settled_quotes(store)) == settled
    assert handle.reward(pending.quote_id, purchased=True).status == RewardResponse.LEARNED
    handle.stop()

    version, rows = stored(path)
    assert version == str(SCHEMA_VERSION)
    kinds = {quote_id: type(data) for quote_id, data in rows}
    assert kinds["probe-2"] is bytes and kinds[pending.quote_id] is str  # it moved as it was stored
    assert all(data[0] == VERSION for _, data in rows if isinstance(data, bytes))
    assert evaluated(path)[:10] == logged
    reopened = SQLiteStore(path.parent, reader=True)
    try:
        assert reopened.pending("probe-2") is not None
    finally:
        reopened.close()
