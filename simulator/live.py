"""Live mode: the scenario's shoppers drive a running server over gRPC, as a checkout service would.

Each round is a ``Quote`` with a deadline; the shopper decides at the quoted price (the market knows
the exact purchase probability, so the regret against the best price the server offered is exact);
the outcome is reported with ``Reward`` after the scenario's delay (scaled to wall-clock seconds by
``delay_scale``), and a no-purchase the scenario leaves unreported is simply never sent: the server's
reward window turns that silence into a no purchase. A quote that fails (deadline, unavailable) is
counted and the checkout moves on, as it would with a fallback price.
"""

from __future__ import annotations

import heapq
import itertools
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import grpc
import numpy as np
from google.protobuf.timestamp_pb2 import Timestamp
from tqdm import tqdm

from pricing.v1 import pricing_pb2, pricing_pb2_grpc
from simulator.behavior import user_history
from simulator.market import Block, Market
from simulator.scenarios import Scenario
from simulator.seeds import RandomStream, generator
from simulator.tally import Tally

BLOCK = 500
MAX_DRAIN_SECONDS = 60.0


@dataclass
class LiveReport:
    tally: Tally = field(default_factory=Tally)
    """Answered quotes; the oracle is the best expected profit among the prices the server offered."""
    quote_errors: Counter[str] = field(default_factory=Counter)
    rewards: Counter[str] = field(default_factory=Counter)
    """Reward responses by status (LEARNED, DUPLICATE, LATE) or by error code."""
    silent: int = 0
    """No-purchases never reported."""
    behavior: Counter[str] = field(default_factory=Counter)
    """Behavior events sent with Observe: accepted, rejected, or lost to an error code."""
    seconds: float = 0.0

    @property
    def quotes_per_second(self) -> float:
        return self.tally.quotes / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        tally = self.tally
        return (f"{tally.quotes} quotes ({self.quotes_per_second:.0f}/s), errors {dict(self.quote_errors)}; "
                f"rewards {dict(self.rewards)}, {self.silent} silent; behavior events "
                f"{dict(self.behavior)}; {tally.purchases} purchases, "
                f"revenue {tally.revenue:.2f}, profit {tally.profit:.2f}, {100 * tally.oracle_share:.1f}% "
                f"of the best offered price's expected profit, regret {tally.regret:.2f}")


class RewardSender:
    """Outcomes waiting for their report time; sends those due (each with the deadline)."""

    def __init__(self, stub: pricing_pb2_grpc.PricingServiceStub, deadline: float,
                 report: LiveReport) -> None:
        self.stub, self.deadline, self.report = stub, deadline, report
        self._heap: list[tuple[float, int, str, bool]] = []
        self._order = itertools.count()

    def schedule(self, due: float, quote_id: str, purchased: bool) -> None:
        heapq.heappush(self._heap, (due, next(self._order), quote_id, purchased))

    def send_due(self, now: float) -> None:
        while self._heap and self._heap[0][0] <= now:
            _, _, quote_id, purchased = heapq.heappop(self._heap)
            try:
                response = self.stub.Reward(pricing_pb2.RewardRequest(quote_id=quote_id, purchased=purchased),
                                            timeout=self.deadline)
                self.report.rewards[pricing_pb2.RewardResponse.Status.Name(response.status)] += 1
            except grpc.RpcError as error:
                self.report.rewards[error.code().name] += 1

    def drain(self, limit: float = MAX_DRAIN_SECONDS, *, progress: bool = False) -> None:
        """Send every scheduled report at its time, waiting at most ``limit`` seconds."""
        give_up = time.monotonic() + limit
        with tqdm(total=len(self._heap), desc="reports due", unit="report", file=sys.stderr,
                  disable=not (progress and self._heap)) as bar:
            while self._heap and time.monotonic() < give_up:
                waiting = len(self._heap)
                time.sleep(max(0.0, min(self._heap[0][0], give_up) - time.monotonic()))
                self.send_due(time.monotonic())
                bar.update(waiting - len(self._heap))


def run_live(address: str, scenario: Scenario, *, rounds: int, seed: int = 0, deadline: float = 1.0,
             delay_scale: float = 1.0, send_behavior: bool = True,
             connect_timeout: float = 10.0, progress: bool = False) -> LiveReport:
    """Drive the server at ``address`` with ``rounds`` of ``scenario``; ``delay_scale`` turns the
    scenario's report delays (simulated seconds) into wall-clock seconds. With ``send_behavior``,
    each shopper's behavior history goes to ``Observe`` before their first quote, as a site's
    tracker would have sent it, so the server's value model knows returning shoppers."""
    feedback = scenario.feedback
    stream = scenario.stream(seed, rounds)
    rng = generator(seed, RandomStream.LIVE)
    report = LiveReport()
    observed: set[str] = set()
    started = time.monotonic()
    with grpc.insecure_channel(address) as channel:
        try:
            grpc.channel_ready_future(channel).result(timeout=connect_timeout)
        except grpc.FutureTimeoutError:
            raise ConnectionError(f"no server answered at {address} within {connect_timeout:g} s") from None
        stub = pricing_pb2_grpc.PricingServiceStub(channel)
        sender = RewardSender(stub, deadline, report)
        bar = tqdm(total=rounds, desc="quotes", unit="quote", file=sys.stderr, disable=not progress)
        for block in stream.blocks(BLOCK):
            for row in range(len(block)):
                bar.update()
                sender.send_due(time.monotonic())
                user_id = block.user_ids[row]
                if send_behavior and user_id not in observed:
                    observed.add(user_id)
                    send_history(stub, user_history(stream.market, int(block.users[row])), deadline,
                                 report)
                request = quote_request(stream.market, block, row, f"live-{seed}-{block.start + row}")
                try:
                    response = stub.Quote(request, timeout=deadline)
                except grpc.RpcError as error:
                    report.quote_errors[error.code().name] += 1
                    continue
                purchased = _settle(report, block, row, response)
                delay_draw, report_draw = rng.random(2)
                if purchased or report_draw < feedback.no_purchase_report_rate:
                    delay = -feedback.report_delay_seconds * float(np.log1p(-delay_draw)) * delay_scale
                    sender.schedule(time.monotonic() + delay, response.quote_id, purchased)
                else:
                    report.silent += 1
        bar.close()
        sender.drain(progress=progress)
    report.seconds = time.monotonic() - started
    return report


def send_history(stub: pricing_pb2_grpc.PricingServiceStub, history: list[dict[str, Any]],
                 deadline: float, report: LiveReport) -> None:
    """Stream one shopper's events (``simulator.behavior`` schema) to ``Observe``; count the answer."""
    if not history:
        return
    try:
        answer = stub.Observe(iter([behavior_message(event) for event in history]), timeout=deadline)
    except grpc.RpcError as error:
        report.behavior[error.code().name] += len(history)
        return
    report.behavior["accepted"] += answer.accepted
    report.behavior["rejected"] += answer.rejected


def behavior_message(event: dict[str, Any]) -> pricing_pb2.BehaviorEvent:
    stamp = Timestamp()
    stamp.FromNanoseconds(round(event["timestamp"] * 1e9))
    return pricing_pb2.BehaviorEvent(
        user_id=event["user_id"], timestamp=stamp,
        event_type=pricing_pb2.BehaviorEvent.EventType.Value(event["event_type"].upper()),
        product_id=event["product_id"], category=event["category"], price=event["price"],
        unit_cost=event["unit_cost"], list_price=event["list_price"], dwell_seconds=event["dwell_seconds"],
        rating=event["rating"], purchased=event["purchased"],
    )


def quote_request(market: Market, block: Block, row: int, quote_id: str) -> pricing_pb2.QuoteRequest:
    product = market.catalog.products[int(block.products[row])]
    return pricing_pb2.QuoteRequest(
        user_id=block.user_ids[row], quote_id=quote_id, context=market.request_context(block, row),
        product=pricing_pb2.Product(product_id=product.product_id, category=product.category,
                                    unit_cost=product.unit_cost, list_price=product.list_price,
                                    currency=product.currency),
    )


def _settle(report: LiveReport, block: Block, row: int, response: pricing_pb2.QuoteResponse) -> bool:
    """Tally one answered quote; returns whether the shopper bought."""
    cost = float(block.unit_cost[row])
    offered = np.array([response.price, *(arm.price for arm in response.explanation.arms if arm.allowed)])
    probability = block.purchase_probability(np.full(offered.size, row), offered)
    purchased = bool(block.uniform[row] < probability[0])
    report.tally.add(offered[:1], cost, probability[:1], np.array([purchased]),
                     float(np.max(probability * (offered - cost))))
    return purchased
