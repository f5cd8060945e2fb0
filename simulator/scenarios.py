"""Named scenarios: a market, how it changes over time, who shops when, and how outcomes are reported.

- ``stationary``: one market that never changes; every outcome is reported at once.
- ``drift``: a weekly season (willingness ±4%) and a promotion day (day 12: bargain hunters, -12%).
- ``cold_start``: from 30% to 60% of the run, a wave of 5,000 new shoppers (no history, 5% lower
  value) makes up 70% of traffic.
- ``delayed``: purchases are reported after an exponential delay (mean 5 minutes; those after the
  10-minute window are late and not learned); a no-purchase is never reported, only silence that the
  window turns into a no purchase.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace

import numpy as np

from simulator.market import START_TIME, Block, Market, MarketConfig, make_traits

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
class Scenario:
    name: str
    description: str
    market: MarketConfig = field(default_factory=MarketConfig)
    seconds_per_round: float = 10.0
    season: Season = field(default_factory=Season)
    wave: Wave | None = None
    feedback: Feedback = field(default_factory=Feedback)

    def with_seconds_per_round(self, seconds: float) -> Scenario:
        """The same scenario on another clock: a short test run can then span the drift's weeks."""
        return replace(self, seconds_per_round=seconds)

    def stream(self, seed: int, rounds: int) -> Stream:
        return Stream(self, seed, rounds)


class Stream:
    """Deals a scenario's ``rounds`` in blocks: the same seed gives the same shoppers and luck."""

    def __init__(self, scenario: Scenario, seed: int, rounds: int) -> None:
        if rounds < 1:
            raise ValueError(f"rounds must be >= 1, got {rounds}")
        self.scenario, self.rounds = scenario, rounds

        def drift(times: np.ndarray) -> np.ndarray:
            return scenario.season((times - START_TIME) / DAY)

        self.market = Market(scenario.market, seed, seconds_per_round=scenario.seconds_per_round,
                             drift=drift)
        self._rng = np.random.default_rng(np.random.SeedSequence([seed, 1]))
        self._wave_users: np.ndarray | None = None

    def blocks(self, size: int, cuts: Iterable[int] = ()) -> Iterator[Block]:
        """Blocks of at most ``size`` rounds, split at ``cuts`` and where the wave starts or ends."""
        edges = {0, self.rounds, *cuts}
        if self.scenario.wave is not None:
            edges |= {int(self.scenario.wave.start * self.rounds), int(self.scenario.wave.end * self.rounds)}
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
    )
}


def scenario(name: str) -> Scenario:
    try:
        return SCENARIOS[name]
    except KeyError:
        raise ValueError(f"unknown scenario {name!r}; choose one of {sorted(SCENARIOS)}") from None

