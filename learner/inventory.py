"""Inventory-aware pricing: what keeping one more unit is worth (``λ``), learned from how fast it sells.

A shop with 400 coats that are worth little after the season, or a bestseller that will sell out
next week at any price, should not price each quote for the most margin. For a product that carries
its stock, the Pricer maximises ``P(buy | price) · (price − cost − λ)``, where ``λ`` is the
opportunity cost of selling a unit now rather than keeping it:

    λ = μ · (list price − cost),   μ in [(salvage − cost) / (list price − cost), MAX_SHARE]

``μ`` is adapted by dual ascent on every settled quote of the product: raised when sales run ahead
of the pace that sells the stock exactly by its sell-by time, lowered when they fall behind. The pace
is the units left over the quotes still to come: the product's quote rate so far times the time left.
It starts at 0 (priced as without stock) until ``MIN_QUOTES`` have settled. At its lower bound a unit
that does not sell now fetches only its salvage value at the sell-by time (its cost is already paid),
so stock that will not clear is priced against what it fetches then; at the upper bound a unit is
worth its whole list margin kept.

Every update reads only the settled decision (the stock, sell-by time and salvage it was quoted with,
its time, its outcome), so replaying the outcome log in order restores ``μ`` exactly; the Pricer's
snapshot carries the per-product state.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import astuple, dataclass, field
from typing import Any

from learner.errors import InvalidInput, SnapshotError
from learner.primitives import check_money

STEP = 0.01
"""Dual-ascent step: ``μ`` moves by this share of the list margin per unit of sales above pace.
A hundred quotes that sell 30 points above pace raise the price by about a third of the margin."""
MAX_SHARE = 1.0
"""λ never exceeds the product's whole list margin."""
MIN_QUOTES = 20
"""Quotes settled before the pace is trusted (the quote rate needs a few to be estimated)."""


@dataclass(frozen=True)
class Stock:
    """What the shop says of a product's stock: units left now, the Unix time by which they must be
    sold, and what each unit still unsold then is worth (0: nothing)."""

    units: int
    sell_by: float
    salvage: float = 0.0

    def __post_init__(self) -> None:
        if isinstance(self.units, bool) or not isinstance(self.units, int):
            raise InvalidInput("product.stock.units", f"expected a whole number, got {self.units!r}")
        if self.units <= 0:
            raise InvalidInput("product.stock.units", f"{self.units}: a product with no stock left is not "
                                                      "quoted (leave stock out for unlimited supply)")
        if not math.isfinite(self.sell_by) or self.sell_by <= 0:
            raise InvalidInput("product.stock.sell_by", f"{self.sell_by} is not a Unix time")
        check_money("product.stock.salvage", self.salvage)


LEFTOVER_BUCKETS: tuple[tuple[str, float], ...] = (
    ("none", 0.0), ("under_5pct", 0.05), ("5_to_25pct", 0.25), ("over_25pct", math.inf))
"""Projected leftover shares by bucket name and upper bound: the metrics' labels (no product ids)."""
WILL_NOT_CLEAR = 0.25
"""A product priced at its salvage bound and projected to leave more than this share will not clear
at the lowest price the stock rule quotes: the floor price or a lower one is the shop's call."""


@dataclass
class StockSummary:
    """Products with stock by where their opportunity cost stands and what the pace would leave."""

    products: int = 0
    at_salvage: int = 0
    at_margin: int = 0
    leftover: dict[str, int] = field(default_factory=lambda: {name: 0 for name, _ in LEFTOVER_BUCKETS})
    will_not_clear: int = 0


@dataclass
class StockPace:
    """One product's dual price, what its pace is estimated from, and its latest stock terms."""

    mu: float = 0.0
    settled: int = 0
    first_quoted_at: float = math.nan
    last_quoted_at: float = math.nan
    sold: int = 0
    units: int = 0
    sell_by: float = math.nan
    mu_floor: float = 0.0
    """The lower bound of ``mu`` under the latest terms (the salvage bound)."""

    def _span(self) -> float | None:
        """Seconds between the first and last settled quote's times, once ``MIN_QUOTES`` have settled
        over some time (None before: rates from it are not trusted)."""
        span = self.last_quoted_at - self.first_quoted_at
        return span if self.settled >= MIN_QUOTES and span > 0 else None

    def projected_leftover(self, now: float) -> float | None:
        """The share of the units left that the sales rate so far would leave unsold at the sell-by
        time (None before the rate is trusted)."""
        span = self._span()
        if span is None or self.units <= 0:
            return None
        selling = self.sold / span * max(self.sell_by - now, 0.0)
        return max(0.0, self.units - selling) / self.units

    def quote_rate(self) -> float | None:
        """Quotes per second so far (None before the rate is trusted)."""
        span = self._span()
        return None if span is None else (self.settled - 1) / span


class StockBook:
    """``λ`` per product that carries stock; products without stock are never entered."""

    def __init__(self) -> None:
        self._paces: dict[str, StockPace] = {}

    def __len__(self) -> int:
        return len(self._paces)

    def opportunity_cost(self, product_id: str, unit_cost: float, list_price: float, stock: Stock) -> float:
        """``λ`` for a quote of this product now (see the module's formula)."""
        pace = self._paces.get(product_id)
        margin = list_price - unit_cost
        if pace is None or margin <= 0:
            return 0.0
        return _bounded(pace.mu, unit_cost, list_price, stock.salvage) * margin

    def learn(self, product_id: str, unit_cost: float, list_price: float, units: int, sell_by: float,
              salvage: float, quoted_at: float, sold: bool) -> None:
        """One settled quote of the product, quoted at ``quoted_at`` with ``units`` left to sell by
        ``sell_by``: dual ascent on ``μ`` against the pace at its quote time."""
        pace = self._paces.setdefault(product_id, StockPace(first_quoted_at=quoted_at))
        pace.settled += 1
        pace.sold += sold
        pace.units, pace.sell_by = units, sell_by
        pace.mu_floor = _bounded(-math.inf, unit_cost, list_price, salvage)
        pace.first_quoted_at = min(pace.first_quoted_at, quoted_at)
        pace.last_quoted_at = quoted_at if math.isnan(pace.last_quoted_at) else max(pace.last_quoted_at,
                                                                                      quoted_at)
        target = _target(pace, units, sell_by, quoted_at)
        if target is None:
            return
        pace.mu = _bounded(pace.mu + STEP * (float(sold) - target), unit_cost, list_price, salvage)

    def sell_through_target(self, product_id: str, stock: Stock, now: float) -> float | None:
        """The share of the quotes still to come that must buy to sell ``stock`` by its sell-by time
        at the product's quote rate so far (None before the rate is known)."""
        pace = self._paces.get(product_id)
        return None if pace is None else _target(pace, stock.units, stock.sell_by, now)

    def mu(self, product_id: str) -> float:
        pace = self._paces.get(product_id)
        return 0.0 if pace is None else pace.mu

    def summary(self, now: float) -> StockSummary:
        """Where the products with stock stand now (those past their sell-by time are left out)."""
        summary = StockSummary()
        for pace in self._paces.values():
            if not pace.sell_by > now:
                continue
            summary.products += 1
            at_salvage = pace.mu <= pace.mu_floor
            if at_salvage:
                summary.at_salvage += 1
            elif pace.mu >= MAX_SHARE:
                summary.at_margin += 1
            leftover = pace.projected_leftover(now)
            if leftover is not None:
                bucket = next(name for name, top in LEFTOVER_BUCKETS if leftover <= top)
                summary.leftover[bucket] += 1
                summary.will_not_clear += at_salvage and leftover > WILL_NOT_CLEAR
        return summary

    # -- snapshots -------------------------------------------------------------------------------
    def state(self) -> dict[str, list[float]]:
        """JSON-ready per-product state (floats round-trip exactly through JSON)."""
        return {product: list(astuple(pace)) for product, pace in sorted(self._paces.items())}

    def load(self, state: Mapping[str, Any]) -> None:
        paces: dict[str, StockPace] = {}
        for product, values in state.items():
            try:
                mu, settled, first, last, sold, units, sell_by, mu_floor = values
                paces[str(product)] = StockPace(float(mu), int(settled), float(first), float(last), int(sold),
                                                int(units), float(sell_by), float(mu_floor))
            except (TypeError, ValueError):
                raise SnapshotError(f"snapshot stock state of {product!r} is unreadable; corrupt") from None
        self._paces = paces


def _bounded(mu: float, unit_cost: float, list_price: float, salvage: float) -> float:
    """``mu`` within its bounds for these terms (the terms of a product may change between quotes)."""
    margin = list_price - unit_cost
    low = min((salvage - unit_cost) / margin, 0.0) if margin > 0 else 0.0
    return min(max(mu, low), MAX_SHARE)


def _target(pace: StockPace, units: int, sell_by: float, now: float) -> float | None:
    rate = pace.quote_rate()
    if rate is None:
        return None
    quotes_left = rate * max(sell_by - now, 0.0)
    return min(1.0, units / quotes_left) if quotes_left > 0 else 1.0
