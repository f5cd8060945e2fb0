"""Seasons with stock: one product, a fixed number of units, a sell-by date, a salvage value.

A season deals a named demand scenario's shoppers (``stationary`` or ``drift``) to a one-product shop
(a winter coat, ``COAT``) over ``SEASON_DAYS``; a shopper who comes after the last unit sold buys
nothing. The stock is set from the truth, as a share of what the best uniform price would sell with
unlimited supply, so "scarce" and "overstocked" mean the same on every seed. Contenders:

- ``pricer``: today's learner, pricing each quote for margin alone (it ignores stock);
- ``stock``: the same learner told the stock, sell-by time and salvage (``learner.inventory``);
- ``markdown``: a classic schedule: list price, then fixed discounts at fixed dates;
- ``hindsight``: the best non-personalized price path in hindsight on the same shoppers and luck:
  every constant grid price and every path of one markdown (one grid price, then another from one of
  nine dates on), scored with stock-outs and salvage. It knows the outcomes, so it bounds what a
  single price path could have earned.

Profit counts the stock as bought up front: each sale earns its price, each unit left its salvage,
and every unit cost its unit cost.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from learner import PricerConfig, Product
from learner.inventory import Stock
from simulator.contenders import PricerContender
from simulator.market import Block, Market
from simulator.scenarios import DAY, SCENARIOS, Scenario

COAT = Product("coat-winter", unit_cost=80.0, list_price=120.0, category="apparel")
"""A winter coat at apparel's median markup (45% over cost: 50%)."""
SEASON_DAYS = 60.0
SEASON_ROUNDS = 20_000
"""Shoppers who see the product in a season (one every ~4.3 minutes)."""
MARKDOWN_PATH = ((0.0, 1.0), (0.5, 0.6), (0.75, 0.2))
"""(share of the season, alpha from then on): list price, then 13% off at mid-season, 27% off at
three quarters (alpha 0.6 and 0.2 of the margin over cost)."""
CHANGE_POINTS = tuple(round(0.1 * i, 10) for i in range(1, 10))
"""Dates at which the hindsight path may mark down once: 10%, 20%, ..., 90% of the season."""
CONTENDERS = ("pricer", "stock", "markdown", "hindsight")


@dataclass(frozen=True)
class StockScenario:
    name: str
    description: str
    demand: str
    """The named scenario whose shoppers and drift the season deals (``simulator.scenarios``)."""
    stock_share: float
    """Units in stock, as a share of the expected sales of the best uniform price with unlimited stock."""
    salvage_share: float
    """What a unit left at the sell-by time fetches, as a share of its unit cost."""

    def market_scenario(self, rounds: int) -> Scenario:
        return SCENARIOS[self.demand].with_seconds_per_round(SEASON_DAYS * DAY / rounds)


STOCK_SCENARIOS: dict[str, StockScenario] = {
    s.name: s for s in (
        StockScenario("launch", "stock as much as the best uniform price sells; 30% salvage",
                      "stationary", 1.0, 0.3),
        StockScenario("launch_drift", "the same under the drift scenario's weekly season and promotion",
                      "drift", 1.0, 0.3),
        StockScenario("scarce", "a bestseller: half what the best uniform price would sell; no salvage",
                      "stationary", 0.5, 0.0),
        StockScenario("overstocked", "1.6 times what the best uniform price sells; 30% salvage",
                      "stationary", 1.6, 0.3),
    )
}


@dataclass
class SeasonResult:
    """How one contender's season went."""

    contender: str
    profit: float
    sold: int
    units_left: int
    sold_out_at: float | None
    """Share of the season dealt when the last unit sold (None: stock left at the end)."""
    price_low: float
    price_high: float
    """5th and 95th percentile of the prices quoted while stock lasted."""
    prices: np.ndarray = field(repr=False)
    """The price quoted in each round (NaN once sold out)."""
    stock_left: np.ndarray = field(repr=False)
    """Units left after each round."""


@dataclass(frozen=True)
class Season:
    """One seeded season of a stock scenario: its shoppers, its stock, and its bookkeeping."""

    scenario: StockScenario
    seed: int
    rounds: int
    block: Block
    market: Market
    stock: int
    salvage: float
    sell_by: float

    @classmethod
    def deal(cls, scenario: StockScenario, seed: int, rounds: int = SEASON_ROUNDS) -> Season:
        stream = scenario.market_scenario(rounds).stream(seed, rounds, products=(COAT,))
        block = stream.market.deal(rounds)
        best_sales = float(block.probabilities[:, int(np.argmax(block.expected_profit.sum(axis=0)))].sum())
        sell_by = float(block.times[-1]) + stream.market.seconds_per_round
        stock = max(1, round(scenario.stock_share * best_sales))
        salvage = scenario.salvage_share * COAT.unit_cost
        return cls(scenario, seed, rounds, block, stream.market, stock, salvage, sell_by)

    def result(self, contender: str, prices: np.ndarray, bought: np.ndarray) -> SeasonResult:
        """Book a season whose every round was quoted ``prices`` and sold where ``bought`` (both
        already cut at the sell-out)."""
        sold = int(bought.sum())
        left = self.stock - sold
        revenue = float(prices[bought].sum())
        profit = revenue + left * self.salvage - self.stock * COAT.unit_cost
        sold_out_at = None if left else (int(np.flatnonzero(bought)[-1]) + 1) / self.rounds
        quoted = prices[~np.isnan(prices)]
        low, high = np.percentile(quoted, [5, 95]) if quoted.size else (np.nan, np.nan)
        return SeasonResult(contender, profit, sold, left, sold_out_at, float(low), float(high), prices,
                            self.stock - np.cumsum(bought))

    def play_path(self, contender: str, prices: np.ndarray) -> SeasonResult:
        """A fixed price path played on this season's shoppers: sales stop when the stock is gone."""
        wanted = self.block.purchased(np.arange(self.rounds), prices)
        bought = wanted & (np.cumsum(wanted) <= self.stock)
        quoted = prices.astype(float).copy()
        if bought.sum() == self.stock:
            quoted[int(np.flatnonzero(bought)[-1]) + 1:] = np.nan
        return self.result(contender, quoted, bought)

    def alpha_path(self, steps: Sequence[tuple[float, float]]) -> np.ndarray:
        """Prices of a path given as (share of the season, alpha from then on)."""
        share = np.arange(self.rounds) / self.rounds
        alpha = np.zeros(self.rounds)
        for start, value in steps:
            alpha[share >= start] = value
        return COAT.unit_cost + alpha * (COAT.list_price - COAT.unit_cost)


class StockedPricer(PricerContender):
    """The learner told the stock left, the sell-by time and the salvage value on every quote."""

    units_left: int = 0
    sell_by: float = 0.0
    salvage: float = 0.0

    def product(self, block: Block, market: Market, row: int) -> Product:
        return replace(super().product(block, market, row),
                       stock=Stock(self.units_left, self.sell_by, self.salvage))


def play_learner(season: Season, contender: PricerContender) -> SeasonResult:
    """A learner quotes each shopper while stock lasts and learns every outcome as it is reported."""
    block, queue = season.block, contender.queue
    prices = np.full(season.rounds, np.nan)
    bought = np.zeros(season.rounds, dtype=bool)
    left = season.stock
    times, uniform = block.times.tolist(), block.uniform.tolist()
    for row in range(season.rounds):
        queue.release(times[row], contender.learn)
        if left == 0:
            continue
        if isinstance(contender, StockedPricer):
            contender.units_left, contender.sell_by, contender.salvage = left, season.sell_by, season.salvage
        token, price = contender.decide(block, season.market, row)
        prices[row] = price
        bought[row] = uniform[row] < float(block.purchase_probability(row, price))
        left -= int(bought[row])
        if token is not None:
            queue.push(times[row], token, bool(bought[row]))
    return season.result(contender.name, prices, bought)


def hindsight(season: Season, alphas: Sequence[float]) -> SeasonResult:
    """The best constant or once-marked-down grid price path, knowing every shopper's outcome."""
    paths: list[tuple[tuple[float, float], ...]] = [((0.0, a),) for a in alphas]
    paths += [((0.0, a), (t, b)) for a, b in itertools.permutations(alphas, 2) for t in CHANGE_POINTS]
    results = (season.play_path("hindsight", season.alpha_path(path)) for path in paths)
    return max(results, key=lambda result: result.profit)


def play_season(scenario: StockScenario, seed: int, rounds: int = SEASON_ROUNDS,
                config: PricerConfig | None = None) -> list[SeasonResult]:
    """Every contender of ``CONTENDERS`` on one seeded season, in that order."""
    config = config or PricerConfig()
    season = Season.deal(scenario, seed, rounds)
    feedback = scenario.market_scenario(rounds).feedback
    config = replace(config, reward_window_seconds=feedback.reward_window_seconds)
    today = PricerContender("pricer", config, feedback, seed)
    ours = StockedPricer("stock", config, feedback, seed)
    return [play_learner(season, today), play_learner(season, ours),
            season.play_path("markdown", season.alpha_path(MARKDOWN_PATH)),
            hindsight(season, config.alphas)]
