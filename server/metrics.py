"""Prometheus metrics: one private registry per server, every labelled series created at start-up.

Names follow ``pricebandit_<what>_<unit>``; counters end in ``_total``; latency buckets start at
50 µs because a quote takes about a millisecond. No user or product ids in labels. The registry also
carries the standard ``process_*`` (CPU, memory, file descriptors) and ``python_*`` collectors, so one
scrape shows what the process costs. The dashboard and alert rules in ``ops/`` read these names.
"""

from __future__ import annotations

import collections
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from evaluation.estimators import Estimate
from learner import Decision
from learner.arms import PriceBounds
from learner.inventory import StockSummary
from pricing.v1 import pricing_pb2
from server.interception import observe_single_answer
from server.shadow import AGREEMENTS, LEDGER_WINDOW, ShadowLedger, agreement

LATENCY_BUCKETS = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
    0.5, 1.0, 2.5,
)
DELAY_BUCKETS = (0.1, 0.5, 1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
SERVICE = pricing_pb2.DESCRIPTOR.services_by_name["PricingService"]
RPC_METHODS = tuple(method.name for method in SERVICE.methods)
STATUS_CODES = tuple(code.name for code in grpc.StatusCode)
REWARD_OUTCOMES = ("purchased", "not_purchased")
REWARD_STATUSES = ("learned", "duplicate", "late")
STORE_OPERATIONS = ("quote", "reward", "expire", "snapshot", "observe")
BEHAVIOR_RESULTS = ("accepted", "rejected")
CONVERSION_WINDOW = 1000
STABLE_KINDS = ("same_quote", "same_price")
PRICE_BANDS = ((1.0, "<1"), (10.0, "1-10"), (100.0, "10-100"), (1000.0, "100-1000"), (math.inf, ">=1000"))
"""Products are bucketed by reference price (in their currency) for the spread histogram: no ids."""
SPREAD_BUCKETS = (0.5, 0.8, 0.9, 0.95, 0.98, 0.99, 1.0, 1.01, 1.02, 1.05, 1.1, 1.2, 1.5, 2.0)
IGNORED_LABELS = 16
"""Distinct unknown context names counted by name; later ones are counted as ``other``."""
OTHER = "other"
GATE_RESULTS = ("evaluated", "accepted", "refused")
GATE_POLICIES = ("running", "candidate", "logged")
SHADOW_GAUGES = (
    ("pricebandit_shadow_incumbent_profit", "The incumbent's realised profit per shadow quote"),
    ("pricebandit_shadow_policy_profit", "The policy's estimated profit per shadow quote (doubly robust)"),
    ("pricebandit_shadow_lift", "The policy's estimated profit per quote minus the incumbent's"),
)
"""In the order of ``ShadowLedger.estimates``."""
BOUNDS = ("estimate", "low", "high")
"""The ``bound`` label of an estimate's three numbers (the gate's and shadow mode's gauges)."""


def by_bound(estimate: Estimate | None) -> dict[str, float]:
    """An estimate's numbers by ``BOUNDS`` label; NaN for each while there is none."""
    values = (math.nan,) * 3 if estimate is None else (estimate.value, estimate.low, estimate.high)
    return dict(zip(BOUNDS, values, strict=True))


class BoundedLabels:
    """Label values chosen by callers (unknown context names), at most ``limit`` of them plus
    ``other``: a client sending random names cannot grow the series without bound."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, value: str) -> str:
        with self._lock:
            if value in self._seen:
                return value
            if len(self._seen) < self.limit:
                self._seen.add(value)
                return value
        return OTHER


def price_band(reference: float) -> str:
    return next(label for upper, label in PRICE_BANDS if reference < upper)


@dataclass
class Metrics:
    registry: CollectorRegistry
    rpc_requests: Counter
    rpc_duration: Histogram
    quote_duration: Histogram
    quotes: Counter
    quotes_explored: Counter
    quotes_guardrail_bound: Counter
    rewards: Counter
    reward_delay: Histogram
    quotes_expired: Counter
    revenue: Counter
    profit: Counter
    model_updates: Counter
    snapshots: Counter
    snapshot_timestamp: Gauge
    store_errors: Counter
    behavior_events: Counter
    quotes_spread_bound: Counter
    quotes_stable: Counter
    price_to_reference: Histogram
    context_ignored: Counter
    context_protected: Counter
    undecodable_requests: Counter
    shadow_quotes: Counter
    shadow_outside_bounds: Counter
    shadow: ShadowLedger
    gate_decisions: Counter
    gate_estimate: Gauge
    _recent: collections.deque[float]
    _recent_lock: threading.Lock
    _ignored_labels: BoundedLabels

    def record_quotes(self, decisions: Sequence[Decision], seconds: float) -> None:
        """Count new quotes: their arms, exploration, guardrails, stable prices, spread and inputs,
        each priced in ``seconds`` (a page's share each). A page's counts go to each series at once."""
        for arm, count in collections.Counter(d.arm for d in decisions).items():
            self.quotes.labels(str(arm)).inc(count)
        stable = self.quotes_stable.labels("same_price")
        for series, count in ((self.quotes_explored, sum(d.explored for d in decisions)),
                              (self.quotes_guardrail_bound, sum(d.guardrail_bound for d in decisions)),
                              (self.quotes_spread_bound, sum(d.spread_bound for d in decisions)),
                              (stable, sum(bool(d.stable_of) for d in decisions))):
            if count:
                series.inc(count)
        ratios: dict[str, list[float]] = collections.defaultdict(list)
        for d in decisions:
            if d.reference_price > 0:
                ratios[price_band(d.reference_price)].append(d.price / d.reference_price)
        for band, values in ratios.items():
            histogram = self.price_to_reference.labels(band)
            for value in values:
                histogram.observe(value)
        ignored = collections.Counter(self._ignored_labels(name)
                                      for d in decisions for name in d.ignored_context)
        for label, count in ignored.items():
            self.context_ignored.labels(label).inc(count)
        protected = collections.Counter(name for d in decisions for name in d.protected_context)
        for name, count in protected.items():
            self.context_protected.labels(name).inc(count)
        for _ in decisions:
            self.quote_duration.observe(seconds)

    def record_shadow_quote(self, decision: Decision, bounds: PriceBounds) -> None:
        """Count a shadow quote by agreement, and whether the incumbent's price is outside the
        product's floor and ceiling (answered all the same: the shop's rule is in force)."""
        self.shadow_quotes.labels(agreement(decision)).inc()
        if not bounds.contains(decision.price):
            self.shadow_outside_bounds.inc()

    def count_refused(self, method: str) -> None:
        """Count a call refused for overload (``server/admission.py``); unknown methods are not."""
        if method in RPC_METHODS:
            self.rpc_requests.labels(method, "RESOURCE_EXHAUSTED").inc()

    def record_settled(self, purchased: bool) -> None:
        """Remember a learned outcome for the rolling conversion ratio."""
        with self._recent_lock:
            self._recent.append(1.0 if purchased else 0.0)

    def conversion_ratio(self) -> float:
        """NaN ("no data") until an outcome is learned: 0 would read as a conversion collapse."""
        with self._recent_lock:
            return sum(self._recent) / len(self._recent) if self._recent else math.nan


class StockCollector(Collector):
    """Products sold against a stock, read from the learner at scrape time (counts, no product ids)."""

    def __init__(self, summary: Callable[[], StockSummary]) -> None:
        self._summary = summary

    def collect(self) -> Any:
        summary = self._summary()
        bounds = GaugeMetricFamily(
            "pricebandit_stock_products", "Products with stock before their sell-by time, by where the "
            "value of keeping a unit stands: at the salvage bound (priced as low as the stock rule goes), "
            "at the list-margin bound (selling far too fast), or between.", labels=["opportunity_cost"])
        bounds.add_metric(["at_salvage"], summary.at_salvage)
        bounds.add_metric(["at_margin"], summary.at_margin)
        bounds.add_metric(["between"], summary.products - summary.at_salvage - summary.at_margin)
        leftover = GaugeMetricFamily(
            "pricebandit_stock_projected_leftover_products", "Products with stock by the share of their "
            "units the sales rate so far would leave unsold at the sell-by time.", labels=["leftover"])
        for bucket, count in summary.leftover.items():
            leftover.add_metric([bucket], count)
        stuck = GaugeMetricFamily(
            "pricebandit_stock_will_not_clear_products", "Products priced at their salvage bound yet "
            "projected to leave over a quarter of their stock: they will not clear at the prices allowed.")
        stuck.add_metric([], summary.will_not_clear)
        return [bounds, leftover, stuck]


class ShadowCollector(Collector):
    """Shadow mode's profit and lift gauges, from one estimate of the ledger per scrape (it holds up to
    ``LEDGER_WINDOW`` settled quotes: estimating once per gauge would repeat that nine times)."""

    def __init__(self, ledger: ShadowLedger) -> None:
        self._ledger = ledger

    def collect(self) -> Any:
        found = self._ledger.estimates()
        families = []
        for which, (name, text) in enumerate(SHADOW_GAUGES):
            family = GaugeMetricFamily(name, f"{text}, over the last {LEDGER_WINDOW} settled shadow quotes; "
                                             "bound: the estimate or its 95% interval (NaN before two).",
                                       labels=["bound"])
            for bound, value in by_bound(None if found is None else found[which]).items():
                family.add_metric([bound], value)
            families.append(family)
        return families


def create_metrics(
    *, policy: str, version: str, n_arms: int, pending_count: Callable[[], float],
    model_updates_now: Callable[[], float], protected_features: tuple[str, ...] = (),
    stock_summary: Callable[[], StockSummary] = StockSummary,
    log_applied: Callable[[], float] = lambda: 0.0, log_lag: Callable[[], float] = lambda: 0.0,
) -> Metrics:
    """Build every metric in a fresh registry, with gauges that read live values at scrape time."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(StockCollector(stock_summary))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    info = Info("pricebandit_build", "Build and configuration of this server.", registry=registry)
    info.info({"version": version, "policy": policy})
    metrics = Metrics(
        registry=registry,
        rpc_requests=Counter("pricebandit_rpc_requests_total", "RPCs handled, by method and status code.",
                             ["method", "code"], registry=registry),
        rpc_duration=Histogram("pricebandit_rpc_duration_seconds", "Server time per RPC, by method.",
                               ["method"], buckets=LATENCY_BUCKETS, registry=registry),
        quote_duration=Histogram("pricebandit_quote_duration_seconds",
                                 "Time to price one product (learner and store), per quote.",
                                 buckets=LATENCY_BUCKETS, registry=registry),
        quotes=Counter("pricebandit_quotes_total", "Quotes issued, by chosen price arm.", ["arm"],
                       registry=registry),
        quotes_explored=Counter("pricebandit_quotes_explored_total",
                                "Quotes whose arm was not the best estimated expected profit.",
                                registry=registry),
        quotes_guardrail_bound=Counter("pricebandit_quotes_guardrail_bound_total",
                                       "Quotes where no arm fit the floor/ceiling and a bound was quoted.",
                                       registry=registry),
        rewards=Counter("pricebandit_rewards_total", "Reward reports, by outcome and what was done.",
                        ["outcome", "status"], registry=registry),
        reward_delay=Histogram("pricebandit_reward_delay_seconds",
                               "Time from a quote to its reward report.", buckets=DELAY_BUCKETS,
                               registry=registry),
        quotes_expired=Counter("pricebandit_quotes_expired_total",
                               "Quotes whose reward window closed unreported (learned as no purchase).",
                               registry=registry),
        revenue=Counter("pricebandit_revenue_total",
                        "Sum of prices of reported purchases, in the products' currency units.",
                        registry=registry),
        profit=Counter("pricebandit_profit_total",
                       "Sum of price minus unit cost of reported purchases, in currency units.",
                       registry=registry),
        model_updates=Counter("pricebandit_model_updates_total", "Outcomes learned by the model.",
                              registry=registry),
        snapshots=Counter("pricebandit_snapshots_total", "Learner snapshots written.", registry=registry),
        snapshot_timestamp=Gauge("pricebandit_snapshot_timestamp_seconds",
                                 "Unix time of the last snapshot written or loaded.", registry=registry),
        store_errors=Counter("pricebandit_store_errors_total", "Failed state-store operations.",
                             ["operation"], registry=registry),
        behavior_events=Counter("pricebandit_behavior_events_total",
                                "Behavior events streamed to Observe, by what was done with them.",
                                ["result"], registry=registry),
        quotes_spread_bound=Counter("pricebandit_quotes_spread_bound_total",
                                    "Quotes where the spread band masked an arm the floor and ceiling "
                                    "allowed.",
                                    registry=registry),
        quotes_stable=Counter("pricebandit_quotes_stable_total",
                              "Quotes that kept a user's earlier price for a product: the same open quote "
                              "returned, or a new quote at the same price.", ["kind"], registry=registry),
        price_to_reference=Histogram("pricebandit_price_to_reference_ratio",
                                     "Quoted price over the product's reference price, by the reference "
                                     "price's band (currency units).", ["price_band"],
                                     buckets=SPREAD_BUCKETS, registry=registry),
        context_ignored=Counter("pricebandit_context_ignored_total",
                                f"Quotes carrying an unknown context name, which was ignored (the first "
                                f"{IGNORED_LABELS} names by name, the rest as '{OTHER}').", ["feature"],
                                registry=registry),
        context_protected=Counter("pricebandit_context_protected_total",
                                  "Quotes carrying a protected context feature (logged, never priced).",
                                  ["feature"], registry=registry),
        undecodable_requests=Counter(
            "pricebandit_undecodable_requests_total",
            "Request messages whose bytes do not decode as the method's message type, by method.",
            ["method"], registry=registry),
        shadow_quotes=Counter(
            "pricebandit_shadow_quotes_total",
            "Shadow quotes (--mode shadow), by how the policy's price stands to the incumbent's: exact, "
            "one_step (within one grid step) or apart.", ["agreement"], registry=registry),
        shadow_outside_bounds=Counter(
            "pricebandit_shadow_incumbent_outside_bounds_total",
            "Shadow quotes whose incumbent price was outside the product's floor and ceiling (answered "
            "unchanged).", registry=registry),
        shadow=ShadowLedger(),
        gate_decisions=Counter(
            "pricebandit_gate_decisions_total",
            "Rollout gate calls (OperatorService), by result: evaluated (Evaluate), accepted or refused "
            "(Switch).", ["result"], registry=registry),
        gate_estimate=Gauge(
            "pricebandit_gate_estimate",
            "The last rollout gate evaluation's profit per quote: the running configuration's and the "
            "candidate's doubly robust estimates and what the log earned, each with its 95% interval "
            "(bound); NaN before the first.", ["policy", "bound"], registry=registry),
        _recent=collections.deque(maxlen=CONVERSION_WINDOW),
        _recent_lock=threading.Lock(),
        _ignored_labels=BoundedLabels(IGNORED_LABELS),
    )
    Gauge("pricebandit_pending_quotes", "Quotes waiting for their reward.",
          registry=registry).set_function(pending_count)
    Gauge("pricebandit_model_version", "The model version: outcomes learned since the model was "
          "created (survives restarts; the N in '<policy>:N').",
          registry=registry).set_function(model_updates_now)
    Gauge("pricebandit_log_applied_seq", "The last outcome-log entry the model includes (replicas that "
          "applied the same entry hold the same model).", registry=registry).set_function(log_applied)
    Gauge("pricebandit_log_lag_entries", "Outcome-log entries appended (by any replica) that the model "
          "does not include yet; NaN while the store cannot be read.",
          registry=registry).set_function(log_lag)
    Gauge("pricebandit_conversion_ratio",
          f"Share of the last {CONVERSION_WINDOW} learned quotes that were purchased (NaN before the "
          "first since start-up).",
          registry=registry).set_function(metrics.conversion_ratio)
    for agreed in AGREEMENTS:
        metrics.shadow_quotes.labels(agreed)
    for result in GATE_RESULTS:
        metrics.gate_decisions.labels(result)
    for policy_name in GATE_POLICIES:
        for bound, value in by_bound(None).items():
            metrics.gate_estimate.labels(policy_name, bound).set(value)
    registry.register(ShadowCollector(metrics.shadow))
    for method in RPC_METHODS:
        metrics.rpc_duration.labels(method)
        metrics.undecodable_requests.labels(method)
        for code in STATUS_CODES:
            metrics.rpc_requests.labels(method, code)
    for arm in range(n_arms):
        metrics.quotes.labels(str(arm))
    for outcome in REWARD_OUTCOMES:
        for status in REWARD_STATUSES:
            metrics.rewards.labels(outcome, status)
    for operation in STORE_OPERATIONS:
        metrics.store_errors.labels(operation)
    for result in BEHAVIOR_RESULTS:
        metrics.behavior_events.labels(result)
    for kind in STABLE_KINDS:
        metrics.quotes_stable.labels(kind)
    for _, band in PRICE_BANDS:
        metrics.price_to_reference.labels(band)
    for name in protected_features:
        metrics.context_protected.labels(name)
    return metrics


class MetricsInterceptor(grpc.ServerInterceptor):
    """Counts and times every RPC of the pricing service that a handler answers, by final status code
    (those refused for overload are counted by ``Metrics.count_refused``)."""

    SERVICE_PREFIX = f"/{SERVICE.full_name}/"

    def __init__(self, metrics: Metrics) -> None:
        # children resolved once: ``labels()`` takes a lock and validates on every call
        self._durations = {method: metrics.rpc_duration.labels(method) for method in RPC_METHODS}
        self._requests = {(method, code): metrics.rpc_requests.labels(method, code)
                          for method in RPC_METHODS for code in STATUS_CODES}

    def intercept_service(self, continuation: Callable[[Any], Any], details: Any) -> Any:
        handler = continuation(details)
        method = details.method[len(self.SERVICE_PREFIX):]
        duration = self._durations.get(method)
        if duration is None or not details.method.startswith(self.SERVICE_PREFIX):
            return handler  # not ours, or an unknown method: no label value is made up for it
        requests = self._requests

        def record(_context: grpc.ServicerContext, start: float, code: str) -> None:
            duration.observe(time.perf_counter() - start)
            requests[method, code].inc()

        return observe_single_answer(handler, lambda _context: time.perf_counter(), record)
