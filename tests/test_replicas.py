"""Replicas: real server processes on one real redis-server apply one outcome log in one order, so
each holds the same model; an outcome is learned once, whichever replica it reached."""

from __future__ import annotations

import re
import signal
import threading
import time
import urllib.request
from pathlib import Path

import grpc

from bench.process import ServerProcess, free_port
from builders import quote_request
from conftest import DEADLINE, wait_for
from pricing.v1 import pricing_pb2, pricing_pb2_grpc
from server.pseudonyms import UserIdKey
from server.redis_store import RedisStore
from server.store import StoredSnapshot

LEARNED, DUPLICATE = pricing_pb2.RewardResponse.LEARNED, pricing_pb2.RewardResponse.DUPLICATE


class Replica:
    """A ``pricebandit-server --store redis://…`` child process and a stub to it."""

    def __init__(self, folder: Path, url: str, key_file: Path, processes: list[ServerProcess],
                 *flags: str) -> None:
        self.process = ServerProcess(folder, "--store", url, "--user-id-key-file", str(key_file), *flags)
        processes.append(self.process)
        self.channel = grpc.insecure_channel(self.process.wait_until_serving())
        self.stub = pricing_pb2_grpc.PricingServiceStub(self.channel)

    def quote(self, quote_id: str, user_id: str = "shopper") -> pricing_pb2.QuoteResponse:
        return self.stub.Quote(quote_request(quote_id=quote_id, user_id=user_id), timeout=DEADLINE)

    def reward(self, quote_id: str, purchased: bool) -> pricing_pb2.RewardResponse:
        return self.stub.Reward(pricing_pb2.RewardRequest(quote_id=quote_id, purchased=purchased),
                                timeout=DEADLINE)

    def metric(self, name: str) -> float:
        url = f"http://127.0.0.1:{self.process.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=DEADLINE) as response:
            text = response.read().decode()
        found = re.search(rf"^{name} (\S+)$", text, re.M)
        assert found, text
        return float(found.group(1))

    def model_version(self) -> str:
        """The model's outcome count as its ``/metrics`` says (``pricebandit_model_version``)."""
        return str(int(self.metric("pricebandit_model_version")))

    def stop(self) -> None:
        """SIGTERM: it drains, expires what is due and writes its final snapshot."""
        self.channel.close()
        self.process.process.send_signal(signal.SIGTERM)
        code, log = self.process.finish()
        assert code == 0, log


def replicas(tmp_path: Path, url: str, processes: list[ServerProcess], count: int,
             *flags: str) -> list[Replica]:
    key_file = tmp_path / "user-id.key"
    UserIdKey.create(key_file)  # one key for all: a shopper is the same pseudonym on every replica
    return [Replica(tmp_path / f"replica{i}", url, key_file, processes, *flags) for i in range(count)]


def latest_snapshot(url: str) -> StoredSnapshot:
    store = RedisStore(url)
    try:
        found = store.latest_snapshot()
    finally:
        store.close()
    assert found is not None
    return found


def test_a_reward_to_the_replica_that_did_not_quote_is_learned_once_and_every_replica_follows(
        tmp_path: Path, redis_url: str, processes: list[ServerProcess]) -> None:
    first, second = replicas(tmp_path, redis_url, processes, 2)
    first.quote("q-1")
    answer = second.reward("q-1", True)
    assert (answer.status, answer.model_version) == (LEARNED, "linucb:1")
    # The follower wakes on the log's new entry (XREAD BLOCK): milliseconds on a quiet machine
    # (``python -m bench.replicas`` measures it); CI's shared cores get a wider bound.
    wait_for(lambda: first.model_version() == "1", 5.0, "the quoting replica learned the outcome")
    assert first.reward("q-1", True).status == DUPLICATE  # and not learned again, on either
    time.sleep(0.2)
    assert (first.model_version(), second.model_version()) == ("1", "1")
    for replica in (first, second):  # both include log entry 1, and nothing is left to apply
        position = (replica.metric("pricebandit_log_applied_seq"),
                    replica.metric("pricebandit_log_lag_entries"))
        assert position == (1.0, 0.0)


def test_after_a_burst_over_both_replicas_both_hold_the_same_model(
        tmp_path: Path, redis_url: str, processes: list[ServerProcess]) -> None:
    """Quotes on either, rewards sent to both at once (each to the replica that did not quote it),
    some left to expire (every replica's sweeper runs): each outcome learned once, in one order,
    and both models equal bit for bit."""
    group = replicas(tmp_path, redis_url, processes, 2, "--reward-window-seconds", "5")
    rewarded, expiring = 60, 10
    for i in range(rewarded + expiring):
        group[i % 2].quote(f"q-{i}", user_id=f"u{i % 7}")
    statuses: list[int] = []

    def reward_on(replica: int) -> None:  # the quotes the other replica made
        for i in range(1 - replica, rewarded, 2):
            statuses.append(group[replica].reward(f"q-{i}", i % 3 == 0).status)

    threads = [threading.Thread(target=reward_on, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert statuses == [LEARNED] * rewarded
    total = str(rewarded + expiring)
    for replica in group:
        wait_for(lambda replica=replica: replica.model_version() == total, 20.0, "every outcome learned")
    group[0].stop()
    snapshot = latest_snapshot(redis_url)
    group[1].stop()
    other = latest_snapshot(redis_url)
    assert snapshot.last_seq == other.last_seq == rewarded + expiring
    assert snapshot.blob == other.blob


def test_with_three_replicas_every_unrewarded_quote_is_learned_as_no_purchase_once(
        tmp_path: Path, redis_url: str, processes: list[ServerProcess]) -> None:
    """Three sweepers race for the same expired quotes: each is closed once (the close decides) and
    learned by all three."""
    group = replicas(tmp_path, redis_url, processes, 3, "--reward-window-seconds", "1")
    count = 60
    for i in range(count):
        group[i % 3].quote(f"q-{i}", user_id=f"u{i}")
    for replica in group:
        wait_for(lambda replica=replica: replica.model_version() == str(count), 20.0, "every quote expired")
    store = RedisStore(redis_url)
    try:
        entries = list(store.log_after(0))
        assert store.pending_count() == 0
    finally:
        store.close()
    assert sorted(entry.decision.quote_id for entry in entries) == sorted(f"q-{i}" for i in range(count))
    assert {(entry.kind, entry.reward, entry.learned) for entry in entries} == {("expired", 0.0, True)}
    assert sum(replica.metric("pricebandit_quotes_expired_total") for replica in group) == count


def test_replicas_on_one_port_share_the_connections_and_one_model(
        tmp_path: Path, redis_url: str, processes: list[ServerProcess]) -> None:
    """``--reuse-port``: the kernel hands each new connection to one of the replicas listening."""
    port = str(free_port())
    group = replicas(tmp_path, redis_url, processes, 2, "--port", port, "--reuse-port", "true")
    count = 24
    for i in range(count):  # a connection of its own per call: no shared subchannel
        options = [("grpc.use_local_subchannel_pool", 1)]
        with grpc.insecure_channel(f"127.0.0.1:{port}", options=options) as channel:
            stub = pricing_pb2_grpc.PricingServiceStub(channel)
            stub.Quote(quote_request(quote_id=f"q-{i}", user_id=f"u{i}"), timeout=DEADLINE)
            stub.Reward(pricing_pb2.RewardRequest(quote_id=f"q-{i}", purchased=i % 2 == 0), timeout=DEADLINE)
    closed = [replica.metric("pricebandit_model_updates_total") for replica in group]
    assert sum(closed) == count and min(closed) > 0, closed  # both took calls (all on one: 2**-23)
    for replica in group:
        wait_for(lambda replica=replica: replica.model_version() == str(count), 5.0, "one model")
