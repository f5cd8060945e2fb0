"""Kill the server with SIGKILL at random moments while a client drives it; nothing acknowledged is
lost or doubled, and the model equals a clean replay of the decision log."""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import numpy as np

from bench.process import ServerProcess
from builders import quote_request
from learner import Decision, Pricer, PricerConfig, snapshot
from learner.value import UserStates
from learner.value import load as load_value_model
from pricing.v1 import pricing_pb2, pricing_pb2_grpc

CYCLES = 5
WINDOW_SECONDS = 2.0
RewardStatus = pricing_pb2.RewardResponse


@dataclass
class ClientLedger:
    """What the client was told: the quotes it got and the rewards the server acknowledged."""

    quotes: set[str] = field(default_factory=set)
    rewards: dict[str, tuple[bool, int]] = field(default_factory=dict)  # id -> (purchased, status)
    unanswered: list[tuple[str, str, bool]] = field(default_factory=list)  # (kind, id, purchased)


def drive_until_killed(address: str, cycle: int, rng: random.Random, ledger: ClientLedger) -> None:
    """Quote and reward as fast as possible; stop at the first call the dead server cannot answer."""
    with grpc.insecure_channel(address) as channel:
        stub = pricing_pb2_grpc.PricingServiceStub(channel)
        for kind, quote_id, purchased in ledger.unanswered:  # a real client retries what it lost
            call_once(stub, kind, quote_id, purchased, ledger)
        ledger.unanswered.clear()
        for i in range(100_000):
            quote_id = f"c{cycle}-{i}"
            if not call_once(stub, "quote", quote_id, False, ledger):
                return
            if rng.random() < 0.7 and not call_once(stub, "reward", quote_id, rng.random() < 0.4, ledger):
                return


def call_once(stub: pricing_pb2_grpc.PricingServiceStub, kind: str, quote_id: str, purchased: bool,
              ledger: ClientLedger) -> bool:
    try:
        if kind == "quote":
            stub.Quote(quote_request(quote_id=quote_id, user_id=f"u-{quote_id}",
                                     context={"is_mobile": float(len(quote_id) % 2)}), timeout=5)
            ledger.quotes.add(quote_id)
        else:
            answer = stub.Reward(pricing_pb2.RewardRequest(quote_id=quote_id, purchased=purchased),
                                 timeout=5)
            ledger.rewards[quote_id] = (purchased, answer.status)
        return True
    except grpc.RpcError as error:
        assert error.code() is grpc.StatusCode.UNAVAILABLE, error
        ledger.unanswered.append((kind, quote_id, purchased))
        return False


def test_sigkill_at_random_points_loses_nothing_acknowledged(
    tmp_path: Path, processes: list[ServerProcess]
) -> None:
    rng = random.Random(20261129)
    ledger = ClientLedger()
    args = ("--reward-window-seconds", str(WINDOW_SECONDS), "--snapshot-every-updates", "50")
    for cycle in range(CYCLES):
        child = ServerProcess(tmp_path, *args)
        processes.append(child)
        address = child.wait_until_serving()
        killer = threading.Timer(rng.uniform(0.3, 1.5), child.process.send_signal, (signal.SIGKILL,))
        killer.start()
        drive_until_killed(address, cycle, rng, ledger)
        killer.join()
        child.process.wait(timeout=10)
        assert child.process.returncode == -signal.SIGKILL

    last = ServerProcess(tmp_path, *args)
    processes.append(last)
    drive_until_killed_or_done = last.wait_until_serving()
    with grpc.insecure_channel(drive_until_killed_or_done) as channel:
        stub = pricing_pb2_grpc.PricingServiceStub(channel)
        for kind, quote_id, purchased in ledger.unanswered:
            assert call_once(stub, kind, quote_id, purchased, ledger)
    time.sleep(WINDOW_SECONDS + 0.5)  # every pending quote's window closes
    last.process.send_signal(signal.SIGTERM)
    code, log = last.finish()
    assert code == 0, log

    with sqlite3.connect(tmp_path / "pricebandit.sqlite3") as db:
        pending = db.execute("SELECT COUNT(*) FROM pending").fetchone()[0]
        entries = db.execute(
            "SELECT seq, quote_id, kind, reward, learned, decision FROM decision_log ORDER BY seq"
        ).fetchall()
        blob = db.execute("SELECT blob FROM snapshots ORDER BY id DESC LIMIT 1").fetchone()[0]

    assert pending == 0
    closed = Counter(quote_id for _, quote_id, kind, *_ in entries if kind != "late")
    assert set(closed) == ledger.quotes  # every acknowledged quote was closed ...
    assert max(closed.values()) == 1  # ... exactly once
    learned_rewards = {quote_id: reward for _, quote_id, kind, reward, _, _ in entries if kind == "reward"}
    for quote_id, (purchased, status) in ledger.rewards.items():
        if status in (RewardStatus.LEARNED, RewardStatus.DUPLICATE):
            assert learned_rewards[quote_id] == float(purchased), quote_id
    assert len(ledger.rewards) > 50 and len(ledger.quotes) > 80

    model = load_value_model("default")  # the server's default: the user embedding is in the features
    replayed = Pricer(PricerConfig(reward_window_seconds=WINDOW_SECONDS,
                                   user_embedding_dim=model.embedding_dim), UserStates(model))
    for _, _, _, reward, learned, decision in entries:
        if learned:
            replayed.update(Decision.from_dict(json.loads(decision)), reward)
    _, final = snapshot.decode(bytes(blob))
    _, clean = snapshot.decode(replayed.snapshot())
    assert int(final["counts"].sum()) == sum(learned for *_, learned, _ in entries)
    for key in clean:
        np.testing.assert_array_equal(final[key], clean[key], err_msg=key)
