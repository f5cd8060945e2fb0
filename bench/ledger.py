"""The SIGKILL ledger run: kill the server at random moments under load, restart it, and check the
store (the SQLite file, or Redis) against a client-side ledger of everything the server acknowledged.

Shared by ``tests/test_crash_safety.py`` (a few restarts) and ``python -m bench.attack`` (many).
Nothing acknowledged may be lost or doubled, every acknowledged reward must be logged with the
reported outcome, and the final model must equal, bit for bit, a clean replay of the decision log.
"""

from __future__ import annotations

import random
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.process import ServerProcess
from bench.redis_process import RedisProcess
from learner import PricerConfig, build_pricer, snapshot
from learner.value import load as load_value_model
from pricing.v1 import pricing_pb2, pricing_pb2_grpc
from server.pseudonyms import UserIdKey
from server.redis_store import CLAIM_SECONDS, RedisStore
from server.store import SQLiteStore, Store

RewardStatus = pricing_pb2.RewardResponse
PRODUCT = pricing_pb2.Product(product_id="sku-1", category="shoes", unit_cost=40.0, list_price=100.0,
                              currency="EUR")


class UnexpectedAnswer(RuntimeError):
    """A call failed with something other than UNAVAILABLE (what a killed server answers)."""


@dataclass
class ClientLedger:
    """What the client was told: the quotes it got and the rewards the server acknowledged."""

    quotes: set[str] = field(default_factory=set)
    rewards: dict[str, tuple[bool, int]] = field(default_factory=dict)  # id -> (purchased, status)
    unanswered: list[tuple[str, str, bool]] = field(default_factory=list)  # (kind, id, purchased)


@dataclass
class LedgerReport:
    restarts: int = 0
    killed_by_sigkill: int = 0  # restarts whose server did die of the SIGKILL
    acknowledged_quotes: int = 0
    acknowledged_rewards: int = 0
    lost: int = 0  # acknowledged quotes never closed in the log
    doubled: int = 0  # quotes closed more than once
    wrong_rewards: int = 0  # acknowledged rewards logged with another outcome, or not at all
    unknown_closed: int = 0  # closed quotes the client was never told of (not an error: kills)
    model_equals_replay: bool = False
    final_exit_code: int = -1


def call_once(stub: pricing_pb2_grpc.PricingServiceStub, kind: str, quote_id: str, purchased: bool,
              ledger: ClientLedger) -> bool:
    """One quote or reward; True if answered (and ledgered), False if the server was gone."""
    try:
        if kind == "quote":
            stub.Quote(pricing_pb2.QuoteRequest(
                quote_id=quote_id, user_id=f"u-{quote_id}", product=PRODUCT,
                context={"is_mobile": float(len(quote_id) % 2)}), timeout=5)
            ledger.quotes.add(quote_id)
        else:
            answer = stub.Reward(pricing_pb2.RewardRequest(quote_id=quote_id, purchased=purchased),
                                 timeout=5)
            ledger.rewards[quote_id] = (purchased, answer.status)
        return True
    except grpc.RpcError as error:
        if error.code() is not grpc.StatusCode.UNAVAILABLE:
            raise UnexpectedAnswer(f"{kind} {quote_id}: {error.code().name} {error.details()}") from None
        ledger.unanswered.append((kind, quote_id, purchased))
        return False


def drive_until_killed(addresses: list[str], cycle: str, rng: random.Random, ledger: ClientLedger) -> None:
    """Quote and reward as fast as possible, each reward on the next server after the one that quoted
    (replicas: rewards reach another replica); stop at the first call a dead server cannot answer."""
    channels = [grpc.insecure_channel(address) for address in addresses]
    try:
        stubs = [pricing_pb2_grpc.PricingServiceStub(channel) for channel in channels]
        for kind, quote_id, purchased in ledger.unanswered:  # a real client retries what it lost
            call_once(stubs[0], kind, quote_id, purchased, ledger)
        ledger.unanswered.clear()
        for i in range(100_000):
            quote_id = f"c{cycle}-{i}"
            if not call_once(stubs[i % len(stubs)], "quote", quote_id, False, ledger):
                return
            if rng.random() < 0.7 and not call_once(stubs[(i + 1) % len(stubs)], "reward", quote_id,
                                                    rng.random() < 0.4, ledger):
                return
    finally:
        for channel in channels:
            channel.close()


def check_ledger(store: Store, ledger: ClientLedger, report: LedgerReport) -> None:
    """Fill ``report`` from the store of cleanly stopped servers (any backend) and the client's ledger."""
    entries = list(store.log_after(0))
    closed = Counter(entry.decision.quote_id for entry in entries if entry.kind != "late")
    report.acknowledged_quotes, report.acknowledged_rewards = len(ledger.quotes), len(ledger.rewards)
    report.lost = len(ledger.quotes - set(closed)) + store.pending_count()
    report.doubled = sum(1 for count in closed.values() if count > 1)
    report.unknown_closed = len(set(closed) - ledger.quotes)
    logged = {entry.decision.quote_id: entry.reward for entry in entries if entry.kind == "reward"}
    settled = (RewardStatus.LEARNED, RewardStatus.DUPLICATE)
    report.wrong_rewards = sum(1 for quote_id, (purchased, status) in ledger.rewards.items()
                               if status in settled and logged.get(quote_id) != float(purchased))


def equals_replay(store: Store, window_seconds: float) -> bool:
    """Whether the latest snapshot (a server's final one) equals, bit for bit, a clean replay of the log."""
    entries = list(store.log_after(0))
    latest = store.latest_snapshot()
    if latest is None:
        return False
    model = load_value_model("default")  # the server's default: the user embedding is in the features
    replayed = build_pricer(PricerConfig(reward_window_seconds=window_seconds), model)
    for entry in entries:
        if entry.learned:
            replayed.update(entry.decision, entry.reward)
    _, final = snapshot.decode(latest.blob)
    _, clean = snapshot.decode(replayed.snapshot())
    return (int(final["counts"].sum()) == sum(entry.learned for entry in entries)
            and all(np.array_equal(final[key], clean[key]) for key in clean))


def run_sigkill(data_dir: Path, restarts: int, seed: int = 20261129, window_seconds: float = 2.0,
                redis: RedisProcess | None = None, replicas: int = 1) -> LedgerReport:
    """``restarts`` times, a server on ``data_dir`` is SIGKILLed 0.3-1.5 s into a full-speed client
    and started again; then the retries, every window closes, and each server stops cleanly (its
    final snapshot is checked against a clean replay); then the ledger check.

    With ``redis`` the servers keep their state there (``--store``), in every other cycle Redis is
    SIGKILLed first and started again from its append-only file while the servers run on, and
    ``replicas`` servers share it (one key file), the victim of each cycle drawn among them."""
    rng = random.Random(seed)
    ledger = ClientLedger()
    report = LedgerReport(restarts=restarts)
    args = ["--reward-window-seconds", str(window_seconds), "--snapshot-every-updates", "50"]
    if redis is not None:
        key_file = data_dir / "user-id.key"
        UserIdKey.create(key_file)
        args += ["--store", redis.url, "--user-id-key-file", str(key_file)]
    folders = [data_dir] if replicas == 1 else [data_dir / f"replica{i}" for i in range(replicas)]
    children: list[ServerProcess] = []

    def start(index: int) -> ServerProcess:
        child = ServerProcess(folders[index], *args)
        children.append(child)
        return child

    try:
        group = [start(i) for i in range(replicas)]
        for cycle in range(restarts):
            addresses = [child.wait_until_serving() for child in group]
            if redis is not None and cycle % 2:
                killer = threading.Timer(rng.uniform(0.3, 1.5), redis.kill)
                killer.start()
                drive_until_killed(addresses, f"{cycle}r", rng, ledger)  # until Redis is gone
                killer.join()
                redis.start()
                for address in addresses:
                    wait_until_answering(address)
            victim = rng.randrange(replicas) if replicas > 1 else 0
            killer = threading.Timer(rng.uniform(0.3, 1.5), group[victim].process.send_signal,
                                     (signal.SIGKILL,))
            killer.start()
            drive_until_killed(addresses, str(cycle), rng, ledger)
            killer.join()
            group[victim].process.wait(timeout=10)
            report.killed_by_sigkill += group[victim].process.returncode == -signal.SIGKILL
            group[victim] = start(victim)
        with grpc.insecure_channel(group[0].wait_until_serving()) as channel:
            stub = pricing_pb2_grpc.PricingServiceStub(channel)
            for kind, quote_id, purchased in ledger.unanswered:
                if not call_once(stub, kind, quote_id, purchased, ledger):
                    raise UnexpectedAnswer(f"{kind} {quote_id}: UNAVAILABLE from a healthy server")
        for child in group[1:]:
            child.wait_until_serving()
        # every pending quote's window closes, and on Redis every claim of a killed server lapses
        time.sleep(window_seconds + 0.5 + (CLAIM_SECONDS if redis else 0.0))
        equal, codes = [], []
        for child in group:  # each writes its final snapshot: each must equal the replay
            child.process.send_signal(signal.SIGTERM)
            codes.append(child.finish()[0])
            store = open_store(data_dir, redis)
            try:
                equal.append(equals_replay(store, window_seconds))
            finally:
                store.close()
        report.model_equals_replay = all(equal)
        report.final_exit_code = next((code for code in codes if code), 0)
    finally:
        for child in children:
            if child.process.poll() is None:
                child.process.kill()
            child.finish()
    store = open_store(data_dir, redis)
    try:
        check_ledger(store, ledger, report)
    finally:
        store.close()
    return report


def open_store(data_dir: Path, redis: RedisProcess | None) -> Store:
    return SQLiteStore(data_dir) if redis is None else RedisStore(redis.url)


def wait_until_answering(address: str, seconds: float = 10.0) -> None:
    """Wait for a server whose store came back to answer again (its health says SERVING)."""
    deadline = time.monotonic() + seconds
    with grpc.insecure_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while health.Check(health_pb2.HealthCheckRequest(), timeout=5).status != \
                health_pb2.HealthCheckResponse.SERVING:
            if time.monotonic() > deadline:
                raise UnexpectedAnswer(f"the server did not serve again within {seconds:g} s of its store")
            time.sleep(0.05)
