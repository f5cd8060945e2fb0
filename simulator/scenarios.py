"""Named scenarios: a market, how it changes over time, who shops when, and how outcomes are reported.

- ``stationary``: one market that never changes; every outcome is reported at once.
- ``drift``: a weekly season (willingness ±4%) and a promotion day (day 12: bargain hunters, -12%).
- ``cold_start``: from 30% to 60% of the run, a wave of 5,000 new shoppers (no history, 5% lower
  value) makes up 70% of traffic.
- ``delayed``: purchases are reported after an exponential delay (mean 5 minutes; those after the
  10-minute window are late and not learned); a no-purchase is never reported, only silence that the
  window turns into a no purchase.
- ``price_war``: at mid-run every shopper's willingness to pay drops 15% for good (a competitor's price
  war): a ``Step`` of the log willingness by log(0.85). ``Scenario.change_round`` says where, and the
  runner measures how long each contender takes to recover (``simulator.recovery``).
- ``far_below_list``: shoppers value items at a median 80% of list instead of 92%
  (``FAR_BELOW_LIST_MARKET``), so the most profitable prices lie far below list: the best fixed alpha
  is 0.4 on 200,000 rounds of seeds 0-2 (0.4 or 0.5 on 20,000; 0.7 on ``stationary``), 40-50% of the
  way from cost to list.
- ``returning``: everyone is a returning shopper with a long behavior history (about 20 sessions
  over 120 days) and the hidden value and price sensitivity vary much more than elsewhere
  (``RETURNING_VALUE_SPREAD``; ``RETURNING_SENSITIVITY_SPREAD`` is fitted on real scanner panels):
  past purchases and refusals (views at a seen price, not bought) reveal who pays.

The first four keep their parameters so that old and new numbers compare.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace

import numpy as np

from learner import Product
from simulator.market import START_TIME, Block, Market, MarketConfig, make_traits
from simulator.seeds import RandomStream, generator

DAY = 86_400.0


@dataclass(frozen=True)
class Feedback:
    """How the checkout reports outcomes, with the server's rule for the rest (see DESIGN, Rewards)."""

    report_delay_seconds: float = 0.0
    """Mean of the exponential delay between a quote and its report (0: at once)."""
    no_purchase_report_rate: float = 1.0
    """Share of no-purchases that are reported; the others are silence."""
    reward_window_seconds: float = 600.0


@dataclass(frozen=True)
class Wave:
    """New shoppers who arrive during ``[start, end)`` (fractions of the run) as ``share`` of traffic,
    as a campaign brings them; they leave when it ends."""

    start: float
    end: float
    share: float
    users: int
    value_shift: float


@dataclass(frozen=True)
class Season:
    """Log-willingness drift: a weekly cosine plus a one-day promotion shock."""

    weekly_amplitude: float = 0.0
    promotion_day: float | None = None
    promotion_shift: float = 0.0

    def __call__(self, days: np.ndarray) -> np.ndarray:
        shift = self.weekly_amplitude * np.cos(2 * np.pi * days / 7.0)
        if self.promotion_day is not None:
            on_promotion = (days >= self.promotion_day) & (days < self.promotion_day + 1.0)
            shift = shift + np.where(on_promotion, self.promotion_shift, 0.0)
        return shift


@dataclass(frozen=True)
class Step:
    """An abrupt, permanent change of everyone's willingness to pay: from round ``at · rounds`` on
    (``at`` a fraction of the run), every willingness is multiplied by ``factor`` (0.85: 15% less).
    Placed in rounds, not days, so it stays at the same point of the run on any clock."""

    at: float
    factor: float

    def round(self, rounds: int) -> int:
        """The first round of the changed market in a run of ``rounds``."""
        return int(self.at * rounds)

    def __call__(self, round_index: np.ndarray, rounds: int) -> np.ndarray:
        """The shift of the log willingness at each 0-based ``round_index`` of a run of ``rounds``."""
        return np.where(round_index >= self.round(rounds), math.log(self.factor), 0.0)


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    market: MarketConfig = field(default_factory=MarketConfig)
    seconds_per_round: float = 10.0
    season: Season = field(default_factory=Season)
    wave: Wave | None = None
    feedback: Feedback = field(default_factory=Feedback)
    step: Step | None = None

    def with_seconds_per_round(self, seconds: float) -> Scenario:
        """The same scenario on another clock: a short test run can then span the drift's weeks."""
        return replace(self, seconds_per_round=seconds)

    def change_round(self, rounds: int) -> int | None:
        """The round at which the market changes abruptly in a run of ``rounds`` (None: it never does)."""
        return None if self.step is None else self.step.round(rounds)

    def stream(self, seed: int, rounds: int, products: tuple[Product, ...] = ()) -> Stream:
        return Stream(self, seed, rounds, products)


class Stream:
    """Deals a scenario's ``rounds`` in blocks: the same seed gives the same shoppers and luck."""

    def __init__(self, scenario: Scenario, seed: int, rounds: int,
                 products: tuple[Product, ...] = ()) -> None:
        if rounds < 1:
            raise ValueError(f"rounds must be >= 1, got {rounds}")
        self.scenario, self.rounds = scenario, rounds

        def drift(times: np.ndarray) -> np.ndarray:
            shift = scenario.season((times - START_TIME) / DAY)
            if scenario.step is not None:
                round_index = np.rint((times - START_TIME) / scenario.seconds_per_round)
                shift = shift + scenario.step(round_index, rounds)
            return shift

        self.market = Market(scenario.market, seed, seconds_per_round=scenario.seconds_per_round,
                             drift=drift, products=products)
        self._rng = generator(seed, RandomStream.WAVE)
        self._wave_users: np.ndarray | None = None

    def blocks(self, size: int, cuts: Iterable[int] = ()) -> Iterator[Block]:
        """Blocks of at most ``size`` rounds, split at ``cuts``, where the wave starts or ends and where
        the market changes."""
        edges = {0, self.rounds, *cuts}
        if self.scenario.wave is not None:
            edges |= {int(self.scenario.wave.start * self.rounds), int(self.scenario.wave.end * self.rounds)}
        change = self.scenario.change_round(self.rounds)
        if change is not None:
            edges.add(change)
        bounds = sorted(e for e in edges if 0 <= e <= self.rounds)
        for lo, hi in itertools.pairwise(bounds):
            for start in range(lo, hi, size):
                yield self._deal(min(size, hi - start))

    def _deal(self, n: int) -> Block:
        wave = self.scenario.wave
        start = self.market.rounds_dealt
        if wave is None or start < wave.start * self.rounds:
            return self.market.deal(n)
        regulars = self._rng.integers(self.scenario.market.users, size=n)
        if start >= wave.end * self.rounds:  # the campaign is over and its shoppers are gone
            return self.market.deal(n, users=regulars)
        if self._wave_users is None:
            traits = make_traits(self._rng, self.scenario.market, wave.users, returning=False,
                                 value_shift=wave.value_shift)
            self._wave_users = self.market.add_users(traits)
        newcomer = self._rng.random(n) < wave.share
        users = np.where(newcomer, self._rng.choice(self._wave_users, size=n), regulars)
        return self.market.deal(n, users=users)


PRICE_WAR_FACTOR = 0.85
"""Willingness to pay after the price war, as a share of before: 15% less, for good."""

FAR_BELOW_LIST_MARKET = MarketConfig(value_median=0.80)
"""Median willingness 80% of list (92% elsewhere): the best fixed alpha falls from 0.7 to 0.4 (0.4 and 0.5
are close; short runs may pick 0.5) and the oracle's median arm to 0.4; on thin-margin items
(electronics) most shoppers will pay little above cost."""

RETURNING_VALUE_SPREAD = 0.15
"""Log-sd of the hidden value scale of returning shoppers (0.06 elsewhere). Brand choice cannot identify
it (the panels have no "buy nothing"); their households' premium for one brand over another spreads
0.23-1.2 in log price, so 0.15 is, if anything, modest."""
RETURNING_SENSITIVITY_SPREAD = 0.5
"""Log-sd of their price sensitivity (0.35 elsewhere): the median of the spreads fitted on the Ecdat
scanner panels Yogurt, Cracker and Catsup (0.35-0.65; ``python -m bench.scanner_panels``)."""
RETURNING_MARKET = MarketConfig(returning_share=1.0, value_spread=RETURNING_VALUE_SPREAD,
                                sensitivity_spread=RETURNING_SENSITIVITY_SPREAD, history_sessions=20.0,
                                history_days=120.0)
"""Everyone known, with about 20 past sessions over 120 days (6 over 60 elsewhere)."""

SCENARIOS: dict[str, Scenario] = {
    scenario.name: scenario
    for scenario in (
        Scenario("stationary", "one market that never changes; every outcome reported at once"),
        Scenario("drift", "weekly season (±4% willingness) and a promotion day on day 12 (-12%)",
                 season=Season(weekly_amplitude=0.04, promotion_day=12.0, promotion_shift=-0.12)),
        Scenario("cold_start", "30%-60% of the run: 5,000 new shoppers, 5% lower value, 70% of traffic",
                 wave=Wave(start=0.3, end=0.6, share=0.7, users=5000, value_shift=-0.05)),
        Scenario("delayed", "purchases reported after ~5 min (some after the 10-min window); "
                 "no purchase is silence",
                 feedback=Feedback(report_delay_seconds=300.0, no_purchase_report_rate=0.0)),
        Scenario("price_war", "at mid-run every shopper's willingness to pay drops 15% for good "
                 "(a competitor's price war)",
                 step=Step(at=0.5, factor=PRICE_WAR_FACTOR)),
        Scenario("far_below_list", "median willingness 80% of list (92% elsewhere): the best prices lie "
                 "far below list (best fixed alpha 0.4-0.5, not 0.7)",
                 market=FAR_BELOW_LIST_MARKET),
        Scenario("returning", f"everyone returning, ~20 past sessions each; value spread "
                 f"{RETURNING_VALUE_SPREAD:g}, sensitivity spread {RETURNING_SENSITIVITY_SPREAD:g} "
                 f"(fitted on real scanner panels): past purchases and refusals reveal who pays",
                 market=RETURNING_MARKET),
    )
}


def scenario(name: str) -> Scenario:
    try:
        return SCENARIOS[name]
    except KeyError:
        raise ValueError(f"unknown scenario {name!r}; choose one of {sorted(SCENARIOS)}") from None

