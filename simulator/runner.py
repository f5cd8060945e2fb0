"""A comparison run: every contender prices the same rounds; tallies are kept against the oracle.

Regret is exact: each round carries the purchase probability of every price, so the regret of a quote
is the oracle's expected profit minus the quote's expected profit, not a noisy difference of sales.
Profit, revenue and purchases are the realized ones (the same uniform decides for every contender).
On a scenario with an abrupt change (``Scenario.change_round``), the per-round expected profits after
it are kept too, and each contender's recovery is measured against the changed market's best fixed
price (``simulator.recovery``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
from tqdm import tqdm

from learner import PricerConfig
from simulator.contenders import (
    CONTENDERS,
    VALUE_CONTENDERS,
    Contender,
    Learning,
    PricerContender,
    is_contender,
    make_contender,
)
from simulator.market import Block
from simulator.recovery import recovery_rounds
from simulator.scenarios import Scenario
from simulator.tally import Tally

MAX_BLOCK = 2000
"""Rounds dealt at once: bounds memory, and how often the progress bar moves."""


@dataclass(frozen=True)
class Row:
    """One contender's cumulative tallies after ``round`` rounds."""

    scenario: str
    policy: str
    round: int
    profit: float
    revenue: float
    purchases: int
    conversion: float
    expected_profit: float
    regret: float
    oracle_share: float
    """Expected profit as a share of the oracle's."""
    decisions_per_second: float | None


@dataclass
class Results:
    scenario: str
    seed: int
    rounds: int
    best_fixed_alpha: float | None
    seconds: float
    rows: list[Row] = field(default_factory=list)
    change_round: int | None = None
    """Where the market changed abruptly (None: it did not)."""
    recovery_alpha: float | None = None
    """The best fixed alpha of the changed market (rounds ``change_round`` to the end), in hindsight."""
    recovery: dict[str, int | None] = field(default_factory=dict)
    """Rounds after the change until each contender (named as in ``rows``) was back within 2 points of
    that price's share of the oracle over a trailing window; None: never (``simulator.recovery``)."""
    spread: dict[str, tuple[float, float]] = field(default_factory=dict)
    """Each learner's 5th and 95th percentile of quoted price over its reference price."""

    def final(self) -> list[Row]:
        """The last row of each contender, in the order they were run."""
        last: dict[str, Row] = {}
        for row in self.rows:
            last[row.policy] = row
        return list(last.values())

    def to_dict(self) -> dict[str, object]:
        return {"scenario": self.scenario, "seed": self.seed, "rounds": self.rounds,
                "best_fixed_alpha": self.best_fixed_alpha, "seconds": self.seconds,
                "change_round": self.change_round, "recovery_alpha": self.recovery_alpha,
                "recovery": dict(self.recovery), "spread": {k: list(v) for k, v in self.spread.items()},
                "final": [asdict(row) for row in self.final()], "rows": [asdict(row) for row in self.rows]}


def tally_block(tally: Tally, block: Block, prices: np.ndarray) -> np.ndarray:
    """Add the quotes of ``block`` at ``prices`` to ``tally``; returns each quote's expected profit."""
    rows = np.arange(len(block))
    probability = block.purchase_probability(rows, prices)
    tally.add(prices, block.unit_cost, probability, block.uniform < probability, block.oracle_profit())
    return probability * (prices - block.unit_cost)


class ChangeTrace:
    """Exact expected profit per round from round ``change`` on: each contender's, every grid arm's
    (the fixed prices) and the oracle's, for the recovery measure."""

    def __init__(self, change: int, rounds: int, names: Sequence[str], arms: int) -> None:
        self.change = change
        self.profit = {name: np.zeros(rounds - change) for name in names}
        self.arms = np.zeros((rounds - change, arms))
        self.oracle = np.zeros(rounds - change)

    def _span(self, block: Block) -> tuple[slice, slice] | None:
        """Rows of ``block`` at or after the change, and where they go in the trace."""
        first = max(self.change - block.start, 0)
        if first >= len(block):
            return None
        return slice(first, len(block)), slice(block.start + first - self.change, block.start + len(block)
                                               - self.change)

    def add(self, name: str, block: Block, expected_profit: np.ndarray) -> None:
        span = self._span(block)
        if span is not None:
            self.profit[name][span[1]] = expected_profit[span[0]]

    def add_truth(self, block: Block) -> None:
        span = self._span(block)
        if span is not None:
            self.arms[span[1]] = block.expected_profit[span[0]]
            self.oracle[span[1]] = block.oracle_profit()[span[0]]

    def best_arm(self) -> int:
        return int(np.argmax(self.arms.sum(axis=0)))

    def recovery(self, fixed: Mapping[str, int] | None = None) -> dict[str, int | None]:
        """Recovery rounds of each contender, and of each fixed arm named in ``fixed``."""
        reference = self.arms[:, self.best_arm()]
        series = {**self.profit, **{name: self.arms[:, arm] for name, arm in (fixed or {}).items()}}
        return {name: recovery_rounds(profit, reference, self.oracle) for name, profit in series.items()}


class HindsightArms:
    """The tallies of every fixed arm at once; the best one is chosen when the run is over."""

    def __init__(self, alphas: Sequence[float]) -> None:
        self.alphas = tuple(alphas)
        self.tallies = [Tally() for _ in self.alphas]
        self.history: list[tuple[int, list[Tally]]] = []

    def add(self, block: Block) -> None:
        for arm, tally in enumerate(self.tallies):
            tally_block(tally, block, block.prices[:, arm])

    def checkpoint(self, rounds: int) -> None:
        self.history.append((rounds, [Tally(**asdict(t)) for t in self.tallies]))

    def best_arm(self) -> int:
        return int(np.argmax([t.expected_profit for t in self.tallies]))


def compare(
    scenario: Scenario,
    *,
    rounds: int,
    seed: int = 0,
    policies: Sequence[str] = CONTENDERS,
    checkpoints: int = 20,
    pricer: PricerConfig | None = None,
    options: Mapping[str, Mapping[str, float]] | None = None,
    progress: bool = False,
    value_model: str = "default",
) -> Results:
    """Run ``policies`` side by side on ``rounds`` of ``scenario`` and tally them at ``checkpoints``;
    the ``+lstm`` learners use ``value_model`` (a model file, or the shipped ``default``)."""
    pricer = pricer or PricerConfig()
    policies = list(dict.fromkeys(policies))
    unknown = [name for name in policies if not is_contender(name)]
    if unknown or not policies:
        raise ValueError(f"unknown policies {unknown}; choose from {', '.join(CONTENDERS + VALUE_CONTENDERS)}"
                         " (a learner may carry guards: linucb@spread=0.1)")
    if checkpoints < 1:
        raise ValueError(f"checkpoints must be >= 1, got {checkpoints}")
    contenders = [make_contender(name, feedback=scenario.feedback, seed=seed, pricer=pricer, options=options,
                                 value_model=value_model)
                  for name in policies if name != "best_fixed"]
    hindsight = HindsightArms(pricer.alphas) if "best_fixed" in policies else None
    tallies = {c.name: Tally() for c in contenders}
    spent = {c.name: 0.0 for c in contenders}
    stream = scenario.stream(seed, rounds)
    change = scenario.change_round(rounds)
    trace = (ChangeTrace(change, rounds, [c.name for c in contenders], len(pricer.alphas))
             if change is not None and change < rounds else None)
    every = -(-rounds // checkpoints)
    rows: list[Row] = []
    started = time.perf_counter()
    with tqdm(total=rounds * max(1, len(contenders)), unit="decision", disable=not progress,
              desc=scenario.name) as bar:
        for block in stream.blocks(MAX_BLOCK, cuts=range(every, rounds, every)):
            for contender in contenders:
                bar.set_postfix_str(contender.name, refresh=False)
                tick = time.perf_counter()
                prices = contender.play(block, stream.market)
                spent[contender.name] += time.perf_counter() - tick
                expected = tally_block(tallies[contender.name], block, prices)
                if trace is not None:
                    trace.add(contender.name, block, expected)
                bar.update(len(block))
            if hindsight is not None:
                hindsight.add(block)
            if trace is not None:
                trace.add_truth(block)
            done = block.start + len(block)
            if done % every == 0 or done == rounds:
                rows.extend(_row(scenario.name, c.name, done, tallies[c.name], _speed(c, spent[c.name]))
                            for c in contenders)
                if hindsight is not None:
                    hindsight.checkpoint(done)
    best_alpha = None
    fixed: dict[str, int] = {}
    if hindsight is not None:
        best = hindsight.best_arm()
        best_alpha = hindsight.alphas[best]
        fixed[f"best_fixed(alpha={best_alpha:g})"] = best
        rows.extend(_row(scenario.name, next(iter(fixed)), done, arm_tallies[best], None)
                    for done, arm_tallies in hindsight.history)
    results = Results(scenario.name, seed, rounds, best_alpha, time.perf_counter() - started, rows)
    results.spread = {c.name: c.spread() for c in contenders if isinstance(c, PricerContender)}
    if trace is not None:
        results.change_round = trace.change
        results.recovery_alpha = float(pricer.alphas[trace.best_arm()])
        results.recovery = trace.recovery(fixed)
    return results


def _speed(contender: Contender, seconds: float) -> float | None:
    """Decisions per second of a learning contender (the others decide a block at once)."""
    return contender.decisions / seconds if isinstance(contender, Learning) and seconds > 0 else None


def _row(scenario: str, policy: str, done: int, tally: Tally, speed: float | None) -> Row:
    return Row(scenario=scenario, policy=policy, round=done, profit=tally.profit, revenue=tally.revenue,
               purchases=tally.purchases, conversion=tally.purchases / tally.quotes,
               expected_profit=tally.expected_profit, regret=tally.regret,
               oracle_share=tally.oracle_share, decisions_per_second=speed)
