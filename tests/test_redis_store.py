"""The Redis store's own behaviour against a real redis-server: several stores (replicas) on one
Redis, its durability across a Redis crash, and its named failures (what every backend must do is
tests/test_store_contract.py)."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import redis

from bench.redis_process import RedisProcess
from builders import request
from learner import AlreadyClosed, Decision, Pricer, StoreCorrupt, StoreFailed
from learner.value import BehaviorEvent, StateChange, UserStates, load
from server.record import VERSION
from server.redis_store import CLAIM_SECONDS, RedisStore, key
from server.store import JSON_SCHEMA_VERSION, SCHEMA_VERSION

VALUE_MODEL = load("default")


def decision(quote_id: str, expires_at: float = 100.0) -> Decision:
    return replace(Pricer().quote(request(quote_id), now=0.0), expires_at=expires_at)


@pytest.fixture
def replicas(redis_url: str) -> Iterator[list[RedisStore]]:
    """Two stores on one Redis, as two server processes hold them."""
    stores = [RedisStore(redis_url), RedisStore(redis_url)]
    yield stores
    for store in stores:
        store.close()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    """A redis-server of this test's own, to kill and restart."""
    server = RedisProcess(tmp_path / "redis")
    yield server
    server.stop()


def test_each_expired_quote_is_claimed_by_one_replica_until_its_claim_lapses(
        replicas: list[RedisStore]) -> None:
    first, second = replicas
    first.put_pending([decision(f"q-{i}", expires_at=1.0) for i in range(6)])
    claimed = [first.due(5.0, 4), second.due(5.0, 10), first.due(5.0, 10)]
    assert [[d.quote_id for d in batch] for batch in claimed] == [
        ["q-0", "q-1", "q-2", "q-3"], ["q-4", "q-5"], []]
    first.close_quote(claimed[0][0], "expired", 0.0, True, 5.0)
    lapsed = 5.0 + CLAIM_SECONDS  # the first sweeper died: its claims go to another
    assert [d.quote_id for d in second.due(lapsed, 10)] == ["q-1", "q-2", "q-3", "q-4", "q-5"]


def test_replicas_racing_to_close_the_same_quotes_close_each_once_in_one_order(
        replicas: list[RedisStore]) -> None:
    quotes = [decision(f"q-{i}") for i in range(40)]
    replicas[0].put_pending(quotes)
    won: list[list[int]] = [[], []]

    def close_all(index: int) -> None:
        for quote in quotes:
            with contextlib.suppress(AlreadyClosed):
                won[index].append(replicas[index].close_quote(quote, "reward", 1.0, True, 5.0))

    threads = [threading.Thread(target=close_all, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(won[0] + won[1]) == list(range(1, 41))  # 40 entries, none twice, no gap
    assert [e.decision.quote_id for e in replicas[1].log_after(0)] == [q.quote_id for q in quotes]


def test_state_changes_of_two_replicas_for_one_user_both_apply(replicas: list[RedisStore]) -> None:
    """Each change is computed from the state Redis holds under WATCH: a change that another replica
    overtook is computed again, never written over the other's."""
    users = [UserStates(VALUE_MODEL, store) for store in replicas]
    quotes = [decision(f"q-{i}") for i in range(20)]
    replicas[0].put_pending(quotes)

    def close(index: int) -> None:
        for i, quote in enumerate(quotes[index::2]):
            seen = BehaviorEvent(quote.user_id, 10.0 + i, "view", price=30.0, unit_cost=20.0, list_price=30.0)
            replicas[index].close_quote(quote, "reward", 1.0, True, 20.0,
                                        states=StateChange(users[index], [seen], 20.0, restamp=True))

    threads = [threading.Thread(target=close, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert UserStates(VALUE_MODEL, replicas[0]).get(quotes[0].user_id).events == 20


def test_a_new_entry_wakes_a_waiting_follower(replicas: list[RedisStore]) -> None:
    writer, follower = replicas
    assert not follower.wait_for_log(0, 0.05)
    quote = decision("q-1")
    writer.put_pending([quote])
    threading.Timer(0.1, lambda: writer.close_quote(quote, "reward", 1.0, True, 5.0)).start()
    assert follower.wait_for_log(0, 5.0)
    assert not follower.wait_for_log(1, 0.05)


def test_acknowledged_writes_survive_a_redis_crash(own_redis: RedisProcess) -> None:
    store = RedisStore(own_redis.url)
    quotes = [decision("q-1"), decision("q-2")]
    store.put_pending(quotes)
    store.close_quote(quotes[0], "reward", 1.0, True, 5.0)
    store.close()
    own_redis.kill()  # SIGKILL: only what appendfsync always wrote survives
    own_redis.start()
    store = RedisStore(own_redis.url)
    try:
        assert store.pending("q-2") == quotes[1] and [e.seq for e in store.log_after(0)] == [1]
    finally:
        store.close()


def test_redis_down_is_named_and_health_follows_it_back(own_redis: RedisProcess) -> None:
    store = RedisStore(own_redis.url)
    try:
        assert store.check() is None
        own_redis.kill()
        with pytest.raises(StoreFailed, match=r"unreachable .*check that redis-server runs") as failed:
            store.put_pending([decision("q-1")])
        assert failed.value.cause == "unreachable"
        fault = store.check()
        assert fault is not None and fault.cause == "unreachable"
        assert store.recover() is not None
        own_redis.start()
        assert store.recover() is None and store.check() is None
        store.put_pending([decision("q-1")])
    finally:
        store.close()


def test_redis_out_of_memory_is_named(own_redis: RedisProcess) -> None:
    store = RedisStore(own_redis.url)
    admin = redis.Redis(port=own_redis.port)
    try:
        admin.config_set("maxmemory", "1")  # below what it uses: every write that adds is refused
        with pytest.raises(StoreFailed, match="out of memory") as failed:
            store.put_pending([decision("q-1")])
        assert failed.value.cause == "out of memory" and store.pending("q-1") is None
        assert store.recover() is not None
        admin.config_set("maxmemory", "0")
        assert store.recover() is None
    finally:
        admin.close()
        store.close()


def test_another_schema_version_is_refused(redis_url: str) -> None:
    redis.Redis.from_url(redis_url).hset(key("meta"), "schema_version", "99")
    with pytest.raises(StoreCorrupt, match=r"schema version 99.*another database"):
        RedisStore(redis_url)


def test_an_unreachable_redis_refuses_the_start(own_redis: RedisProcess) -> None:
    own_redis.kill()
    with pytest.raises(StoreFailed, match="unreachable"):
        RedisStore(own_redis.url)


def test_replicas_must_learn_with_one_configuration(replicas: list[RedisStore]) -> None:
    first, second = replicas
    settings = {"policy": "linucb", "decay": 1.0, "alphas": [0.0, 0.5]}
    first.use_learner(settings)
    second.use_learner(dict(settings))  # the same: fine, as often as it starts
    with pytest.raises(StoreCorrupt, match=r"other settings \(alphas, policy: alphas=\[0.0, 0.5\], "
                                           r"policy='linucb'\).*same learner flags"):
        second.use_learner({**settings, "policy": "thompson", "alphas": [0.0, 1.0]})


def test_without_a_cache_a_replica_reads_the_states_another_replica_wrote(replicas: list[RedisStore]) -> None:
    first, second = (UserStates(VALUE_MODEL, store, capacity=0) for store in replicas)
    assert second.get("shopper").events == 0
    first.observe([BehaviorEvent("shopper", 10.0, "view", price=30.0, unit_cost=20.0, list_price=30.0)], 20.0)
    assert second.get("shopper").events == 1 and len(second) == 0
    with pytest.raises(ValueError, match="0 only in front of a backend"):
        UserStates(VALUE_MODEL, capacity=0)


def test_a_redis_that_does_not_fsync_every_write_is_warned_of(tmp_path: Path, redis_url: str,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    RedisStore(redis_url).close()  # appendfsync always: nothing to say
    assert not caplog.records
    lax = RedisProcess(tmp_path / "lax", fsync="everysec")
    try:
        RedisStore(lax.url).close()
    finally:
        lax.stop()
    assert "appendfsync=everysec: a Redis crash can lose acknowledged quotes" in caplog.text


def test_a_layout_one_replica_stored_is_read_by_another_and_stored_once(replicas: list[RedisStore],
                                                                        redis_url: str) -> None:
    first, second = replicas
    quote = decision("q-1")
    other = replace(decision("q-2"), feature_names=tuple(f"other.{name}" for name in quote.feature_names))
    first.put_pending([quote, other])
    second.put_pending([replace(quote, quote_id="q-3")])
    assert second.pending("q-1") == quote and second.pending("q-2") == other
    first.close_quote(other, "reward", 1.0, True, 5.0)
    assert [entry.decision for entry in second.log_after(0)] == [other]
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.hlen(key("layouts")) == 2
        row = client.get(key("quote:q-1"))
        assert row[0] == VERSION and b"context.is_mobile" not in row
    finally:
        client.close()


def test_entries_from_before_records_still_read_and_the_store_takes_records(redis_url: str) -> None:
    """A Redis of schema 2 holds JSON decisions: they read and close as they are; new ones are records."""
    old, logged = decision("q-old"), decision("q-logged")
    client = redis.Redis.from_url(redis_url)
    try:
        client.hset(key("meta"), "schema_version", str(JSON_SCHEMA_VERSION))
        client.set(key("quote:q-old"), json.dumps(old.to_dict()))
        client.zadd(key("expiry"), {"q-old": old.expires_at})
        client.set(key("seq"), 1)
        client.xadd(key("log"), {"quote_id": "q-logged", "kind": "reward", "reward": "1.0", "learned": "1",
                                 "closed_at": "5.0", "decision": json.dumps(logged.to_dict())}, id="0-1")
        client.hset(key("closed"), "q-logged", 1)
        store = RedisStore(redis_url)
        try:
            assert client.hget(key("meta"), "schema_version") == str(SCHEMA_VERSION).encode()
            assert store.pending("q-old") == old and store.find_decision("q-logged") == logged
            assert store.close_quote(old, "expired", 0.0, True, 6.0) == 2
            store.put_pending([decision("q-new")])
            assert [entry.decision for entry in store.log_after(0)] == [logged, old]
            assert client.get(key("quote:q-new"))[0] == VERSION
        finally:
            store.close()
    finally:
        client.close()


@pytest.mark.parametrize("garbage", [b"{not json", b"\x01" + bytes(40), b"\x09garbage"])
def test_an_unreadable_decision_is_named(redis_url: str, garbage: bytes) -> None:
    store = RedisStore(redis_url)
    client = redis.Redis.from_url(redis_url)
    try:
        store.put_pending([decision("q-1")])
        client.set(key("quote:q-1"), garbage)
        with pytest.raises(StoreCorrupt, match=r"pending quote 'q-1' is unreadable \(.+\): the Redis store"):
            store.pending("q-1")
    finally:
        client.close()
        store.close()
