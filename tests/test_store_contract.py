"""The store contract: what the service relies on of any backend, run against each (a real SQLite
file; a real ``redis-server``). A backend's own failure modes are tested in its own file."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import redis

from builders import request
from learner import AlreadyClosed, Decision, LogMoved, Pricer, QuoteIdTaken, Settlement, StoreCorrupt
from learner.value import BehaviorEvent, StateChange, UserStates, load
from server.pseudonyms import UserIdKey
from server.redis_store import RedisStore, key
from server.store import SQLiteStore, Store, StoredSnapshot, Switch, SwitchEntry

VALUE_MODEL = load("default")


def decision(quote_id: str, expires_at: float = 100.0, **fields: object) -> Decision:
    return replace(Pricer().quote(request(quote_id), now=0.0), expires_at=expires_at, **fields)  # type: ignore[arg-type]


@dataclass
class Backend:
    """A backend's state: ``open()`` gives a store on it (again: a restart), ``snapshots_kept``
    counts the snapshots it holds, by the backend's own means."""

    name: str
    open: Callable[[], Store]
    snapshots_kept: Callable[[], int]


def sqlite_backend(folder: Path) -> Backend:
    def kept() -> int:
        with sqlite3.connect(folder / SQLiteStore.FILENAME) as db:
            return int(db.execute("SELECT COUNT(*) FROM snapshots").fetchone()[0])

    return Backend("sqlite", lambda: SQLiteStore(folder), kept)


def redis_backend(url: str) -> Backend:
    return Backend("redis", lambda: RedisStore(url), lambda: _redis_snapshots(url))


def _redis_snapshots(url: str) -> int:
    client = redis.Redis.from_url(url)
    try:
        return int(client.llen(key("snapshots")))
    finally:
        client.close()


@pytest.fixture(params=["sqlite", "redis"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "sqlite":
        return sqlite_backend(tmp_path)
    return redis_backend(request.getfixturevalue("redis_url"))


@pytest.fixture
def store(backend: Backend) -> Iterator[Store]:
    opened = backend.open()
    yield opened
    opened.close()


def test_pending_quotes_round_trip_and_ids_are_unique(store: Store) -> None:
    first = decision("q-1")
    store.put_pending([first])
    assert store.pending("q-1") == first
    assert store.find_decision("q-1") == first
    assert store.pending("q-unknown") is None and store.find_decision("q-unknown") is None
    with pytest.raises(QuoteIdTaken):
        store.put_pending([decision("q-2"), decision("q-1")])
    assert store.pending("q-2") is None  # the whole batch was rolled back
    assert store.pending_count() == 1


def test_closing_moves_a_quote_into_the_log_exactly_once(store: Store) -> None:
    quote = decision("q-1")
    store.put_pending([quote])
    ran: list[int] = []
    seq = store.close_quote(quote, "reward", 1.0, True, 5.0, after_commit=ran.append)
    assert seq == store.last_seq() == 1 and ran == [1]
    assert store.pending("q-1") is None and store.pending_count() == 0
    assert store.find_decision("q-1") == quote
    with pytest.raises(AlreadyClosed):  # and its after-commit step never runs
        store.close_quote(quote, "expired", 0.0, True, 6.0, after_commit=ran.append)
    assert ran == [1]
    assert [(e.seq, e.kind, e.reward, e.learned) for e in store.log_after(0)] == [(1, "reward", 1.0, True)]
    assert store.settlement("q-1") == Settlement(reward=1.0, reported=True)
    assert store.settlement("q-unknown") is None


def test_a_late_report_is_part_of_the_settlement(store: Store) -> None:
    quote = decision("q-1")
    store.put_pending([quote])
    store.close_quote(quote, "expired", 0.0, True, 5.0)
    ran: list[int] = []
    assert store.append_log(quote, "late", 1.0, False, 6.0, after_commit=ran.append) == 2
    store.append_log(quote, "late", 0.0, False, 7.0)  # only the first late report counts
    assert ran == [2]
    assert store.settlement("q-1") == Settlement(reward=0.0, reported=False, late_reward=1.0)
    assert store.find_decision("q-1") == quote


def test_the_log_keeps_its_order_and_is_read_after_any_entry(store: Store) -> None:
    quotes = [decision(f"q-{i}") for i in range(5)]
    store.put_pending(quotes)
    for quote in quotes[:3]:
        store.close_quote(quote, "reward", 1.0, True, 5.0)
    store.append_log(quotes[0], "late", 0.0, False, 6.0)
    store.close_quote(quotes[3], "expired", 0.0, False, 7.0)
    entries = list(store.log_after(0))
    assert [(e.seq, e.decision.quote_id, e.kind, e.learned) for e in entries] == [
        (1, "q-0", "reward", True), (2, "q-1", "reward", True), (3, "q-2", "reward", True),
        (4, "q-0", "late", False), (5, "q-3", "expired", False)]
    assert entries[2].decision == quotes[2]
    assert [e.seq for e in store.log_after(3)] == [4, 5]
    assert list(store.log_after(5)) == [] and store.last_seq() == 5


def test_due_quotes_come_in_learning_order(store: Store) -> None:
    store.put_pending([decision("b", 2.0), decision("a", 2.0), decision("c", 1.0), decision("d", 9.0)])
    assert [d.quote_id for d in store.due(now=5.0, limit=2)] == ["c", "a"]
    store.put_pending([decision("f", 3.0), decision("e", 3.0)])
    assert store.due(now=0.5, limit=10) == []
    for quote_id in ("c", "a"):
        store.close_quote(store.pending(quote_id) or decision(quote_id), "expired", 0.0, True, 5.0)
    assert [d.quote_id for d in store.due(now=5.0, limit=10)] == ["b", "e", "f"]


def test_the_newest_three_snapshots_are_kept(store: Store, backend: Backend) -> None:
    assert store.latest_snapshot() is None
    for i in range(5):
        store.save_snapshot(f"blob-{i}".encode(), last_seq=i, created_at=float(i))
    assert store.latest_snapshot() == StoredSnapshot(b"blob-4", 4, 4.0)
    assert backend.snapshots_kept() == 3


def test_a_switch_takes_its_place_in_the_log_only_right_after_the_entry_it_follows(store: Store) -> None:
    """The rollout gate's switch: an entry of the log (outcome readers never see it), appended only
    after the entry its snapshot learned up to, with the adopted record and that snapshot in one
    write; a snapshot from before it (a replica that has not reached it) is refused."""
    quotes = [decision(f"q-{i}") for i in range(3)]
    store.put_pending(quotes)
    store.close_quote(quotes[0], "reward", 1.0, True, 5.0)
    store.save_snapshot(b"incumbent", 1, 5.0)
    assert store.adopted() is None
    switch = Switch('{"flags": "--policy thompson"}', b"\x00successor\xff", {"policy": "thompson"}, 6.0)
    store.close_quote(quotes[1], "reward", 0.0, True, 5.5)
    ran: list[int] = []
    with pytest.raises(LogMoved) as moved:  # entry 2 came after the entry the successor learned
        store.append_switch(switch, 1, after_commit=ran.append)
    assert (moved.value.expected, moved.value.found) == (1, 2) and ran == []
    assert store.last_seq() == 2 and store.adopted() is None and store.latest_snapshot() == \
        StoredSnapshot(b"incumbent", 1, 5.0)
    assert store.append_switch(switch, 2, after_commit=ran.append) == 3 and ran == [3]
    assert store.adopted() == switch.record
    assert store.latest_snapshot() == StoredSnapshot(b"\x00successor\xff", 3, 6.0)
    assert store.close_quote(quotes[2], "expired", 0.0, True, 7.0) == 4  # the next number
    assert [e.seq for e in store.log_after(0)] == [1, 2, 4] and store.last_seq() == 4
    assert [(e.seq, type(e).__name__) for e in store.entries_after(1)] == [
        (2, "LogEntry"), (3, "SwitchEntry"), (4, "LogEntry")]
    assert [e for e in store.entries_after(2) if isinstance(e, SwitchEntry)] == [SwitchEntry(3, switch)]
    assert not store.save_snapshot(b"old configuration", 2, 8.0)  # from before the switch
    assert store.save_snapshot(b"after", 4, 8.0)
    assert store.latest_snapshot() == StoredSnapshot(b"after", 4, 8.0)
    online = Switch('{"mode": "online"}', None, {"policy": "thompson"}, 9.0)
    assert store.append_switch(online, 4) == 5  # the mode alone: the snapshots stay as they are
    assert store.adopted() == online.record and store.latest_snapshot() == StoredSnapshot(b"after", 4, 8.0)
    assert store.save_snapshot(b"same configuration", 4, 9.5)


def test_state_survives_reopening(store: Store, backend: Backend) -> None:
    quotes = [decision("q-1"), decision("q-2")]
    store.put_pending(quotes)
    store.close_quote(quotes[1], "reward", 0.0, True, 5.0)
    store.save_snapshot(b"blob", 1, 5.0)
    store.append_switch(Switch("{}", None, {}, 6.0), 1)
    store.close()
    reopened = backend.open()
    try:
        assert reopened.pending("q-1") == quotes[0] and reopened.pending_count() == 1
        assert [e.decision for e in reopened.log_after(0)] == [quotes[1]] and reopened.last_seq() == 2
        assert [e.seq for e in reopened.entries_after(0)] == [1, 2]
        assert reopened.latest_snapshot() == StoredSnapshot(b"blob", 1, 5.0) and reopened.adopted() == "{}"
    finally:
        reopened.close()


def test_decisions_of_every_feature_layout_read_back_in_a_new_process(store: Store, backend: Backend) -> None:
    """A stored decision names its feature layout, which its store holds: a store opened afresh (a
    restart, another replica) reads each layout from there."""
    first = decision("q-1")
    layouts = [tuple(f"{prefix}{name}" for name in first.feature_names) for prefix in ("", "a.", "b.")]
    quotes = [replace(decision(f"q-{i}"), feature_names=names) for i, names in enumerate(layouts)]
    store.put_pending(quotes[:2])
    store.close_quote(quotes[1], "reward", 1.0, True, 5.0)
    store.append_log(quotes[2], "late", 0.0, False, 6.0)
    store.close()
    reopened = backend.open()
    try:
        assert reopened.pending("q-0") == quotes[0]
        assert [entry.decision for entry in reopened.log_after(0)] == quotes[1:]
        assert reopened.due(now=1e9, limit=5) == quotes[:1]
    finally:
        reopened.close()


def test_recent_quotes_keep_the_time_their_price_was_set(store: Store) -> None:
    first = decision("q-1", created_at=10.0)
    store.put_pending([first], remember_prices=True)
    store.put_pending([decision("q-other")])  # not remembered
    recent = store.recent_quote(first.user_id, first.product_id)
    assert recent is not None and (recent.decision, recent.priced_at, recent.open) == (first, 10.0, True)
    assert store.recent_quote(first.user_id, "sku-unknown") is None
    repeat = decision("q-2", created_at=50.0, stable_of="q-1")  # keeps q-1's price: the window holds
    store.put_pending([repeat], remember_prices=True)
    recent = store.recent_quote(first.user_id, first.product_id)
    assert recent is not None and (recent.decision.quote_id, recent.priced_at) == ("q-2", 10.0)
    store.close_quote(repeat, "reward", 1.0, True, 60.0)
    recent = store.recent_quote(first.user_id, first.product_id)
    assert recent is not None and (recent.decision, recent.open) == (repeat, False)
    assert store.forget_recent_quotes(priced_before=10.0) == 0
    assert store.forget_recent_quotes(priced_before=10.5) == 1
    assert store.recent_quote(first.user_id, first.product_id) is None


def test_user_states_change_with_a_close_or_not_at_all(store: Store) -> None:
    users = UserStates(VALUE_MODEL, store)
    quote = decision("q-0")
    store.put_pending([quote])
    assert store.load_user_state(quote.user_id, VALUE_MODEL.version) is None
    answer = BehaviorEvent(quote.user_id, 10.0, "view", price=30.0, unit_cost=20.0, list_price=30.0)
    store.close_quote(quote, "reward", 1.0, True, 20.0,
                      states=StateChange(users, [answer], 20.0, restamp=True))
    with pytest.raises(AlreadyClosed):  # the loser of a race to close applies nothing
        store.close_quote(quote, "expired", 0.0, True, 21.0,
                          states=StateChange(users, [replace(answer, timestamp=11.0)], 21.0, restamp=True))
    assert users.get(quote.user_id).events == 1
    stored = store.load_user_state(quote.user_id, VALUE_MODEL.version)
    assert stored is not None and users.decode(stored).events == 1
    assert store.load_user_state(quote.user_id, "another-model") is None
    users.observe([replace(answer, timestamp=12.0)], 22.0)  # save_user_states
    assert UserStates(VALUE_MODEL, store).get(quote.user_id).events == 2  # read from the store


def test_users_are_stored_under_one_user_id_key(store: Store) -> None:
    key, other = UserIdKey(b"k" * 32), UserIdKey(b"o" * 32)
    assert not store.keyed_users
    assert store.use_user_key(key) == 0
    assert store.keyed_users and store.use_user_key(key) == 0
    with pytest.raises(StoreCorrupt, match="another user-id key"):
        store.use_user_key(other)
