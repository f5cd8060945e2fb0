"""How a decision and an update grow with the context dimension and the number of arms, per policy.

Policies are driven directly (``select`` with the per-decision seeded generator, then ``learn_one``)
on random contexts after a warm-up of updates, so the table is the learner alone: no features, no
decision record, no store. ``pricer_row`` adds the full ``Pricer.quote`` + ``Pricer.update`` path
for one configuration, and ``memory`` what a pending quote and the model take.
"""

from __future__ import annotations

import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from bench.load import BENCH_KEY, quote_requests
from learner import DEFAULT_CONTEXT_FEATURES, POLICIES, Choice, Pricer, PricerConfig, make_policy
from learner.seeding import decision_rng
from learner.value import BehaviorEvent
from learner.value import load as load_value_model
from server.record import RecordCodec
from server.store import SQLiteStore
from server.validation import RequestReader

DIMS = (16, 32, 64, 128)
ARMS = (5, 11, 21)
WARMUP_UPDATES = 200


@dataclass(frozen=True)
class Scaling:
    policy: str
    dim: int
    arms: int
    decide_us: float
    update_us: float

    @property
    def total_us(self) -> float:
        return round(self.decide_us + self.update_us, 1)


def best_mean(run: Callable[[int], object], count: int, repeats: int = 5) -> float:
    """Best-of-``repeats`` mean microseconds of ``run(i)`` for i in range(count), in CPU time of this
    thread: other processes on a shared machine do not count."""
    best = float("inf")
    for _ in range(repeats):
        start = time.thread_time()
        for i in range(count):
            run(i)
        best = min(best, (time.thread_time() - start) / count)
    return round(best * 1e6, 1)


def measure_policy(name: str, dim: int, n_arms: int, count: int) -> Scaling:
    rng = np.random.default_rng(dim * 100 + n_arms)
    policy = make_policy(name, n_arms, dim)
    xs = rng.uniform(-1.0, 1.0, size=(count + WARMUP_UPDATES, dim))
    xs[:, 0] = 1.0
    payoffs = np.linspace(0.0, 1.0, n_arms)
    levels = np.log(np.linspace(0.8, 1.0, n_arms))  # cost at 80% of the list price
    allowed = np.ones(n_arms, dtype=bool)
    for i in range(WARMUP_UPDATES):
        policy.learn_one(xs[i], i % n_arms, levels[i % n_arms], float(rng.random() < 0.5), 1.0)
    contexts = xs[WARMUP_UPDATES:]
    ids = [f"q-{i}" for i in range(count)]

    def decide_one(i: int) -> Choice:
        return policy.select(contexts[i], levels, payoffs, allowed, decision_rng(0, ids[i]))

    choices = [decide_one(i) for i in range(count)]
    decide = best_mean(decide_one, count)
    update = best_mean(lambda i: policy.learn_one(contexts[i], choices[i].arm, levels[choices[i].arm],
                                                  float(i % 2), choices[i].probability), count)
    return Scaling(name, dim, n_arms, decide, update)


def scaling(count: int, dims: tuple[int, ...] = DIMS, arms: tuple[int, ...] = ARMS) -> list[Scaling]:
    return [measure_policy(name, dim, n_arms, count)
            for name in POLICIES for dim in dims for n_arms in arms]


def pricer_config(policy: str, dim: int, n_arms: int) -> PricerConfig:
    """A Pricer whose feature vector has ``dim`` entries: the default context plus category buckets."""
    buckets = dim - 3 - len(DEFAULT_CONTEXT_FEATURES)
    alphas = tuple(round(i / (n_arms - 1), 10) for i in range(n_arms))
    return PricerConfig(policy=policy, alphas=alphas, category_buckets=buckets)


def pricer_row(policy: str, dim: int, n_arms: int, count: int) -> Scaling:
    """The full learner path: ``Pricer.quote`` (features, guardrails, policy, record) + ``update``."""
    pricer = Pricer(pricer_config(policy, dim, n_arms))
    reader = RequestReader(pricer.features, "USD", 50, BENCH_KEY.pseudonym)
    requests = [reader.quote(message) for message in quote_requests(count + WARMUP_UPDATES, seed=2)]
    for i, request in enumerate(requests[:WARMUP_UPDATES]):
        pricer.update(pricer.quote(request, 0.0), float(i % 3 == 0))
    timed = requests[WARMUP_UPDATES:]
    decisions = [pricer.quote(r, 0.0) for r in timed]
    decide = best_mean(lambda i: pricer.quote(timed[i], 0.0), count)
    update = best_mean(lambda i: pricer.update(decisions[i], float(i % 3 == 0)), count)
    return Scaling(f"Pricer({policy})", pricer.features.dim, n_arms, decide, update)


@dataclass(frozen=True)
class Memory:
    pending_row_bytes: float  # the stored record of one pending decision (server/record.py)
    pending_disk_bytes: float  # database pages per pending quote, indexes included
    decision_object_bytes: int  # a Decision in memory while its request is in flight
    model_bytes: int  # the default policy's statistics (the shared demand model's)
    user_state_bytes: int  # one user's state of the default value model, as SQLite stores it
    user_state_object_bytes: int  # the same state as a Python object (the cache's value)


def deep_size(value: object, seen: set[int] | None = None) -> int:
    """Bytes of an object and everything it holds (tuples, floats, strings; shared objects once)."""
    seen = set() if seen is None else seen
    if id(value) in seen:
        return 0
    seen.add(id(value))
    size = sys.getsizeof(value)
    if isinstance(value, (tuple, list)):
        size += sum(deep_size(item, seen) for item in value)
    elif hasattr(value, "__dataclass_fields__"):
        size += sum(deep_size(getattr(value, name), seen) for name in value.__dataclass_fields__)
    return size


def memory(count: int) -> Memory:
    pricer = Pricer()
    reader = RequestReader(pricer.features, "USD", 50, BENCH_KEY.pseudonym)
    decisions = [pricer.quote(reader.quote(m), 0.0) for m in quote_requests(count, seed=3)]
    with tempfile.TemporaryDirectory(prefix="pricebandit-memory-") as data_dir:
        store = SQLiteStore(data_dir)
        store.put_pending([replace(decisions[0], quote_id="q-empty")])
        path = store.path
        store.close()

        def pages() -> int:
            with sqlite3.connect(path) as db:
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                return int(db.execute("PRAGMA page_count").fetchone()[0]) * int(
                    db.execute("PRAGMA page_size").fetchone()[0])

        before = pages()
        store = SQLiteStore(data_dir)
        store.put_pending(decisions)
        store.close()
        grown = pages() - before
    layouts: dict[bytes, str] = {}
    row = sum(map(len, RecordCodec(layouts.get, layouts.update).encode(decisions))) / count
    model = sum(array.nbytes for array in pricer.policy.state().values())
    network = load_value_model("default").network
    state = network.step(network.zero_state, BehaviorEvent("user-1", 1.0, "view", price=90.0, unit_cost=40.0))
    return Memory(round(row, 1), round(grown / count, 1), deep_size(decisions[0]), model,
                  len(state.to_bytes()), deep_size(state))

