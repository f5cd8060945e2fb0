"""What the value model costs when it serves, against one Keras call on the same history.

    .venv/bin/python -m bench.value_model [--users 300]

Prints microseconds per event update (in memory, and committed to SQLite in Observe-sized batches),
per quote-time lookup (cached state -> V and embedding), one Keras call on the user's whole history
in the same run (the ratio is the figure), bytes per user (in the cache and in SQLite), and the
shipped model's training time and validation log-loss and AUC against the pooled baseline. The
lookup is exactly what ``Pricer.quote`` calls: the cached state, then ``relative_value``.
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np

from learner.value import BehaviorEvent, UserStates, load
from learner.value.events import PRODUCT_DIM
from learner.value.train import encode_sequence
from server.store import SQLiteStore
from simulator.behavior import histories
from simulator.market import Market, MarketConfig

NOW = 2_000_000_000.0


def best_of(repeats: int, run: Callable[[], int]) -> float:
    """Seconds per item of the fastest of ``repeats`` runs (each returns how many items it did)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        items = run()
        best = min(best, (time.perf_counter() - start) / items)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=300)
    args = parser.parse_args()
    model = load("default")
    market = Market(MarketConfig(users=args.users), seed=42)  # the simulator's shoppers; 60% return
    events = [BehaviorEvent(**event) for event in histories(market)]
    by_user: dict[str, list[BehaviorEvent]] = {}
    for event in events:
        by_user.setdefault(event.user_id, []).append(event)
    print(f"value model {model.version}: {model.network.units} LSTM units, "
          f"{model.embedding_dim}-d embedding; {len(events)} events of {len(by_user)} users")

    def update_in_memory() -> int:
        users = UserStates(model)
        for event in events:
            users.observe((event,), NOW)
        return len(events)

    with tempfile.TemporaryDirectory() as folder:
        store = SQLiteStore(Path(folder))

        def update_in_sqlite() -> int:
            store._db.execute("DELETE FROM user_states")
            users = UserStates(model, store)
            for start in range(0, len(events), 500):
                users.observe(events[start:start + 500], NOW)
            return len(events)

        per_event = best_of(3, update_in_memory)
        per_event_sqlite = best_of(3, update_in_sqlite)
        store._db.execute("VACUUM")
        store.close()  # checkpoints the WAL into the file
        sqlite_bytes = (Path(folder) / SQLiteStore.FILENAME).stat().st_size

    users = UserStates(model)
    users.observe(events, NOW)
    names = list(by_user)

    def lookup() -> int:
        for name in names:
            model.network.relative_value(users.get(name), 40.0, "shoes", 100.0)
        return len(names)

    per_lookup = best_of(5, lookup)

    from learner.value.keras_model import keras_twin  # TensorFlow only from here on

    keras_model = keras_twin(model.network)
    longest = max(by_user.values(), key=len)
    inputs = {"events": encode_sequence(longest, len(longest))[None],
              "product": np.zeros((1, len(longest), PRODUCT_DIM), np.float32),
              "offer": np.zeros((1, len(longest), 1), np.float32)}
    keras_model.predict_on_batch(inputs)  # compile the predict function once

    def keras_call() -> int:
        for _ in range(20):
            keras_model.predict_on_batch(inputs)
        return 20

    per_keras = best_of(3, keras_call)

    gc.collect()
    tracemalloc.start()
    cache = UserStates(model, capacity=50_000)
    zero = model.network.step(model.network.zero_state, events[0])
    before = tracemalloc.get_traced_memory()[0]
    for i in range(50_000):
        cache._remember(f"user-{i:08d}", zero.__class__(zero.h.copy(), zero.c.copy(), 1.0, 1))
    cache_bytes = (tracemalloc.get_traced_memory()[0] - before) / 50_000
    tracemalloc.stop()

    us = 1e6
    print(f"event update, in memory:         {per_event * us:8.1f} µs")
    print(f"event update, committed (SQLite): {per_event_sqlite * us:7.1f} µs (batches of 500)")
    print(f"quote-time lookup (V + embedding): {per_lookup * us:6.1f} µs")
    print(f"one Keras call (predict_on_batch), {len(longest)}-event history: {per_keras * us:.1f} µs")
    print(f"ratio Keras call / event update:  {per_keras / per_event:8.0f}x")
    print(f"ratio Keras call / lookup:        {per_keras / per_lookup:8.0f}x")
    print(f"bytes per user: state {len(zero.to_bytes())}, in the cache {cache_bytes:.0f} "
          f"(key, entry, arrays), in SQLite {sqlite_bytes / len(by_user):.0f}")
    info = model.info
    print(f"shipped model: trained in {info['seconds']:.1f} s on {info['train_examples']} offers; "
          f"validation log-loss {info['log_loss']:.4f} vs pooled baseline {info['baseline_log_loss']:.4f}, "
          f"AUC {info['auc']:.3f} vs {info['baseline_auc']:.3f}")


if __name__ == "__main__":
    main()
