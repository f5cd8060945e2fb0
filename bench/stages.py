"""The cost of each stage of a Quote, a Reward and a QuoteBatch, timed one stage at a time with the
real parts.

Each stage runs over the same prepared inputs as in the server; a stage's cost is the best of a few
repeats of its mean, in CPU time of the measuring thread (so that other processes on a shared
machine do not count), except the store stages: their cost is mostly waiting for the disk, so they
are wall-clock time. "assemble the decision" is what ``Pricer.quote`` spends beyond the stages
timed inside it. A QuoteBatch's stages are per quote of a listing page (``BATCH_SIZE`` products),
each stage run on whole pages as the server runs it, with the server's value model in the loop.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from bench.load import BATCH_SIZE, BENCH_KEY, batch_requests, quote_requests
from learner import Pricer, PricerConfig, build_pricer
from learner.objective import margin_payoffs
from learner.primitives import log_price_ratio
from learner.seeding import decision_rng
from learner.value import load as load_value_model
from pricing.v1 import pricing_pb2
from server.config import ServerConfig
from server.metrics import create_metrics
from server.servicer import batch_response, quote_response
from server.store import SQLiteStore
from server.validation import RequestReader

REPEATS = 5


@dataclass(frozen=True)
class Stage:
    rpc: str
    name: str
    micros: float


def per_call(function: Callable[[Any], object], inputs: Sequence[Any], repeats: int = REPEATS,
             clock: Callable[[], float] = time.thread_time) -> float:
    """Best-of-``repeats`` mean seconds of ``function`` over ``inputs``, by ``clock``."""
    best = float("inf")
    for _ in range(repeats):
        start = clock()
        for item in inputs:
            function(item)
        best = min(best, (clock() - start) / len(inputs))
    return best


def measure(count: int, policy: str = "linucb") -> list[Stage]:
    """Stage costs in microseconds for ``count`` quotes and their rewards (the server's defaults)."""
    config = ServerConfig(pricer=PricerConfig(policy=policy))
    pricer = Pricer(config.pricer)
    reader = RequestReader(pricer.features, config.currency, config.max_batch, BENCH_KEY.pseudonym)
    wire = [message.SerializeToString() for message in quote_requests(count, seed=1)]
    requests = [reader.quote(pricing_pb2.QuoteRequest.FromString(data)) for data in wire]
    built = [(r, pricer.user_value(r)[0], pricer.features.build(r.context, r.product)) for r in requests]
    priced = [(x, pricer.grid.prices(r.product, v), r.product.unit_cost, v, r.product.list_price)
              for r, v, x in built]
    stages: list[tuple[str, str, float]] = [
        ("Quote", "decode + validate request",
         per_call(lambda data: reader.quote(pricing_pb2.QuoteRequest.FromString(data)), wire)),
        ("Quote", "value lookup", per_call(pricer.user_value, requests)),
        ("Quote", "features", per_call(lambda r: pricer.features.build(r.context, r.product), requests)),
        ("Quote", "price grid + payoffs",
         per_call(lambda b: margin_payoffs(pricer.grid.prices(b[0].product, b[1]).prices,
                                           b[0].product.unit_cost, b[1]), built)),
        ("Quote", "seed the sampler", per_call(lambda r: decision_rng(0, r.quote_id), requests)),
        ("Quote", "policy: score + choose",
         per_call(lambda p: pricer.policy.select(p[0], log_price_ratio(p[1].prices, p[4]),
                                                 margin_payoffs(p[1].prices, p[2], p[3]),
                                                 p[1].allowed, decision_rng(0, "q")), priced)),
    ]
    whole = per_call(lambda r: pricer.quote(r, 0.0), requests)
    stages.append(("Quote", "assemble the decision", whole - sum(s[2] for s in stages[1:])))
    decisions = [pricer.quote(r, 0.0) for r in requests]
    with tempfile.TemporaryDirectory(prefix="pricebandit-stages-") as data_dir:
        store = SQLiteStore(data_dir)
        batches = [[replace(d, quote_id=f"{d.quote_id}-{n}") for d in decisions] for n in range(REPEATS)]
        store_write = min(per_call(lambda d: store.put_pending([d]), batch, repeats=1,
                                   clock=time.perf_counter) for batch in batches)
        stages += [
            ("Quote", "store write (fsync)", store_write),
            ("Quote", "build + encode response",
             per_call(lambda d: quote_response(d).SerializeToString(), decisions)),
            ("Reward", "decode + validate request",
             per_call(lambda d: reader.reward(pricing_pb2.RewardRequest.FromString(
                 pricing_pb2.RewardRequest(quote_id=d.quote_id, purchased=True).SerializeToString())),
                 decisions)),
        ]
        pending = batches[0]
        stages.append(("Reward", "store read pending",
                       per_call(lambda d: store.pending(d.quote_id), pending, clock=time.perf_counter)))
        stages.append(("Reward", "store close (fsync)",
                       per_call(lambda d: store.close_quote(d, "reward", 1.0, True, 1.0),
                                pending, repeats=1, clock=time.perf_counter)))
        stages.append(("Reward", "learner update", per_call(lambda d: pricer.update(d, 1.0), decisions)))
        stages.append(("Reward", "encode response", per_call(
            lambda d: pricing_pb2.RewardResponse(quote_id=d.quote_id, learned=True, status=1,
                                                 model_version=d.model_version).SerializeToString(),
            decisions)))
        stages += batch_stages(config, store, max(1, count // BATCH_SIZE))
        store.close()
    return [Stage(rpc, name, round(seconds * 1e6, 1)) for rpc, name, seconds in stages]


def batch_stages(config: ServerConfig, store: SQLiteStore, count: int) -> list[tuple[str, str, float]]:
    """Seconds per quote of each stage of ``count`` QuoteBatch pages: what ``PricingServicer.QuoteBatch``
    and ``PricingService.quote`` run for a page, in their order, with ``config``'s value model."""
    pricer = build_pricer(config.pricer, load_value_model(config.value_model))
    reader = RequestReader(pricer.features, config.currency, config.max_batch, BENCH_KEY.pseudonym)
    wire = [page.SerializeToString() for page in batch_requests(count)]
    pages = [reader.batch(pricing_pb2.QuoteBatchRequest.FromString(data)) for data in wire]
    priced = [pricer.quote_many(page, 0.0) for page in pages]
    copies = [[[replace(d, quote_id=f"{d.quote_id}-{n}") for d in page] for page in priced]
              for n in range(REPEATS)]
    store_write = min(per_call(store.put_pending, batch, repeats=1, clock=time.perf_counter)
                      for batch in copies)
    metrics = create_metrics(policy=pricer.policy.name, version="bench", n_arms=len(pricer.grid),
                             pending_count=lambda: 0.0, model_updates_now=lambda: 0.0)
    stages = [
        ("decode + validate page",
         per_call(lambda data: reader.batch(pricing_pb2.QuoteBatchRequest.FromString(data)), wire)),
        ("price the page (Pricer.quote_many)", per_call(lambda page: pricer.quote_many(page, 0.0), pages)),
        ("store write of the page (fsync)", store_write),
        ("metrics", per_call(lambda page: metrics.record_quotes(page, 0.001), priced)),
        ("build + encode response", per_call(lambda page: batch_response(page).SerializeToString(), priced)),
    ]
    return [("QuoteBatch", name, seconds / BATCH_SIZE) for name, seconds in stages]
