"""Replay the log, in order, through each candidate, and estimate what it would have earned.

For every logged decision, each candidate prices the same product for the same shopper as its Pricer
would (its grid at this V, the guardrails the log shows, its policy's distribution, seeded by its seed
and the quote id) *before* it learns anything from that decision, so a learning candidate is scored
as it learns, not frozen at its final model. What it learns is what it would have seen online, by
rejection sampling as Vowpal Wabbit's ``--explore_eval`` does: a logged decision whose action the
candidate could take is learned with probability ``M · pi / p`` (``pi`` the candidate's probability
of the logged price, ``p`` the logged propensity, ``M`` the smallest logged propensity, so the
probability never exceeds 1); the accepted decisions are then distributed as the candidate's own
traffic. A candidate thus learns from about ``M·n`` of ``n`` decisions: its estimate is that of a run
``M·n`` quotes long, spread over the log (reported as ``learned``).

The decisions a candidate learns decide its learning path, and another sample of shoppers would have
taught it otherwise: one path's estimate, with an interval for the log's noise alone, missed the truth
together for every learning candidate on some simulator logs (``python -m bench.offline_eval --seed
1``). So besides the plain replay, which gives the estimates, each candidate is replayed on
``bootstrap`` K streams of its learning: every accepted decision is learned a Poisson(1) number of
times, drawn per stream (the online bootstrap of bagging), while every stream is scored on the whole
log as it stands. The streams' estimates differ by their paths alone, and
``evaluation.estimators.widened`` adds that spread to the plain replay's interval. A candidate whose
prices do not depend on what it learned has one path in every stream. K = 0 is the plain replay alone:
K + 1 times faster, and its interval counts the log's noise only.

A reward model for DR (``learner.policies.shared.SharedLogit``, the server's demand model, without
forgetting) is fitted on every logged decision in the same order, a block of ``REWARD_MODEL_BLOCK``
at a time, each block scored before it is learned, so it never predicts an outcome it has seen. It
gives the purchase probability at any price, so DR also covers prices the log never tried.

Limits, said in the report: the guardrails (floor, ceiling) are not logged; a bound is taken where
the log shows it (an arm refused beyond the nearest offered price), and a side with no refused arm
takes the default (floor at unit cost, no ceiling). A candidate's own ``--spread-limit`` applies,
around its own reference price (``Pricer.choose_rows``, the server's pricing step); the logger's band shows
only as such bounds, and a stable price is not replayed. A candidate with the value model uses the
logged V and embedding: it is the logging model, not another one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from evaluation.candidates import Candidate, CandidateError
from evaluation.estimators import Estimate, doubly_robust, effective_sample_size, ips, snips, widened
from evaluation.logs import LoggedDecision, LogReading
from learner import Pricer, Product
from learner.arms import same_price
from learner.policies.shared import SharedLogit
from learner.pricer import AskRows, PricedRows
from learner.primitives import log_price_ratio
from learner.seeding import decision_rng

CATEGORY_PREFIX = "category."
EMBEDDING_PREFIX = "user.embedding."
"""How ``learner.features.FeatureBuilder`` names the category slots and the value model's embedding."""
LOGGED_VALUE_SOURCE = "lstm"
"""``Decision.value_source`` of a V that the value model computed."""
ACCEPT_STREAM = "\x00explore_eval"
"""Appended to the quote id to seed the acceptance draw apart from the decision's own draws."""
BOOTSTRAP_STREAM = "\x00bootstrap"
"""Appended to the quote id, with the stream's number, to seed how often a stream learns a decision."""
DEFAULT_BOOTSTRAP = 4
"""Bootstrap streams per candidate, unless asked otherwise (see the module docstring)."""


def guardrails(prices: np.ndarray, allowed: np.ndarray, unit_cost: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
    """Each decision's floor and ceiling as far as the log shows them (see the module docstring), from
    the logger's grid as rows (``prices`` padded with NaN): the lowest offered price where an arm
    below it was refused, else the unit cost; the highest where one above it was, else none."""
    offered = np.where(allowed, prices, np.nan)
    low, high = np.nanmin(offered, axis=1), np.nanmax(offered, axis=1)
    refused = ~allowed & ~np.isnan(prices)
    floor = np.where((refused & (prices < low[:, None])).any(axis=1), low, unit_cost)
    ceiling = np.where((refused & (prices > high[:, None])).any(axis=1), high, np.inf)
    return floor, ceiling


REWARD_MODEL_BLOCK = 64
"""Logged decisions the DR reward model learns at a time (``RewardModel.fit``)."""


class RewardModel:
    """P(purchase | x, price level) for DR, fitted on every logged decision in log order, a block of
    ``REWARD_MODEL_BLOCK`` at a time (one Newton step each, ``SharedLogit.learn_block``), every block
    scored before it is learned, so the model never predicts an outcome it has seen. It keeps each
    decision's logit intercept and slope from then, so a candidate's probabilities at any of its
    prices are computed at the end, at once."""

    def __init__(self, x: np.ndarray, level: np.ndarray, purchased: np.ndarray) -> None:
        model = SharedLogit(1, x.shape[1], np.zeros(1), l2=1.0, decay=1.0)
        terms = []
        for start in range(0, len(x), REWARD_MODEL_BLOCK):
            block = slice(start, start + REWARD_MODEL_BLOCK)
            terms.append(model.logit_terms(x[block]))
            model.learn_block(x[block], level[block], purchased[block])
        self._link, self._terms = model.link, np.concatenate(terms)

    def purchase_probabilities(self, levels: np.ndarray) -> np.ndarray:
        """Row ``i`` of ``levels`` (one per logged decision, in order): P(purchase) at each level, by
        the model as it stood before it learned decision ``i``."""
        return self._link(SharedLogit.scores_at(self._terms, levels))


def _estimates(reward: np.ndarray, weight: np.ndarray, model_value: np.ndarray,
               model_factual: np.ndarray) -> dict[str, Estimate]:
    """IPS, SNIPS and DR from per-decision terms of one reward (profit or conversion)."""
    return {"ips": ips(reward, weight), "snips": snips(reward, weight),
            "dr": doubly_robust(reward, weight, model_value, model_factual)}


@dataclass(frozen=True)
class Result:
    """One candidate's estimates and how much the log could say about it."""

    label: str
    decisions: int
    profit: dict[str, Estimate]
    conversion: dict[str, Estimate]
    effective_sample_size: float
    could_not_take: float
    """Share of logged decisions whose price the candidate could not have quoted (not on its grid,
    or outside the guardrails)."""
    unsupported_mass: float
    """Mean probability the candidate put on prices the logger gave no chance: IPS and SNIPS see
    none of it (they read it as no reward), only DR's model speaks for it."""
    learned: int


LOOKAHEAD = 8
"""Logged decisions a candidate prices at once (``_Run._plan``). It learns about one in eleven of a
uniform log's, so about six of eight are used before the next outcome makes the rest stale; 4, 8 and
16 cost the same within 10% (``python -m bench.offline_eval``)."""


UNSUPPORTED_CHUNK = 4096
"""Decisions compared at once for the unsupported mass (a chunk × candidate arms × logged arms)."""


@dataclass(frozen=True)
class _Log:
    """The decisions replayed as columns: the logged price and its level, cost, list price, V, the
    guardrails the log shows, outcome and profit, and the logger's grid as rows padded with NaN prices
    of probability 0."""

    decisions: Sequence[LoggedDecision]
    price: np.ndarray
    level: np.ndarray
    unit_cost: np.ndarray
    list_price: np.ndarray
    value: np.ndarray
    floor: np.ndarray
    ceiling: np.ndarray
    purchased: np.ndarray
    profit: np.ndarray
    logged_prices: np.ndarray
    logged_pmf: np.ndarray

    @staticmethod
    def of(decisions: Sequence[LoggedDecision]) -> _Log:
        width = max(decision.prices.size for decision in decisions)
        logged_prices = np.full((len(decisions), width), np.nan)
        logged_allowed = np.zeros((len(decisions), width), dtype=bool)
        logged_pmf = np.zeros((len(decisions), width))
        for i, decision in enumerate(decisions):
            size = decision.prices.size
            logged_prices[i, :size], logged_allowed[i, :size], logged_pmf[i, :size] = \
                decision.prices, decision.allowed, decision.pmf
        price = np.array([decision.price for decision in decisions])
        unit_cost = np.array([decision.unit_cost for decision in decisions])
        list_price = np.array([decision.list_price for decision in decisions])
        floor, ceiling = guardrails(logged_prices, logged_allowed, unit_cost)
        return _Log(decisions, price=price, level=log_price_ratio(price, list_price), unit_cost=unit_cost,
                    list_price=list_price, value=np.array([decision.value for decision in decisions]),
                    floor=floor, ceiling=ceiling,
                    purchased=np.array([float(decision.purchased) for decision in decisions]),
                    profit=np.array([decision.profit for decision in decisions]),
                    logged_prices=logged_prices, logged_pmf=logged_pmf)

    def products(self, rows: slice) -> list[Product]:
        """The decisions' products as far as the log shows them (what ``Pricer.references`` reads)."""
        columns = (self.unit_cost, self.list_price, self.floor, self.ceiling)
        return [Product("logged", unit_cost=cost, list_price=listed, floor_price=floor,
                        ceiling_price=None if math.isinf(ceiling) else ceiling)
                for cost, listed, floor, ceiling in zip(*(column[rows].tolist() for column in columns),
                                                        strict=True)]

    def unsupported_mass(self, prices: np.ndarray, pmf: np.ndarray) -> float:
        """The candidate's probability (rows of ``pmf`` at ``prices``) on prices the logger gave no
        chance, summed over the decisions."""
        total = 0.0
        for start in range(0, len(prices), UNSUPPORTED_CHUNK):
            rows = slice(start, start + UNSUPPORTED_CHUNK)
            same = same_price(prices[rows, :, None], self.logged_prices[rows, None, :])
            logged_at = (same * self.logged_pmf[rows, None, :]).sum(axis=2)
            total += float(pmf[rows][logged_at == 0.0].sum())
        return total


class _Plan(NamedTuple):
    """A candidate's pricing of the log's decisions ``start`` on (``_Run._planned``), with the arm of each
    logged price on its grid (-1: none) and the candidate's probability of it."""

    start: int
    priced: PricedRows
    pmf: np.ndarray
    """The candidate's distribution; zeros for a guardrail-bound quote, no arm's price, which the log
    cannot weigh."""
    arm: np.ndarray
    probability: np.ndarray


class _Run:
    """One candidate going through the log: the plain replay (``stream`` None) or one bootstrap stream
    of its learning. ``like``: the candidate's plain run, whose features it shares."""

    def __init__(self, candidate: Candidate, log: _Log, stream: int | None = None,
                 like: _Run | None = None) -> None:
        self.candidate = candidate
        self.bootstrap_key = None if stream is None else f"{BOOTSTRAP_STREAM}{stream}"
        self.pricer: Pricer = candidate.pricer()
        names = self.pricer.features.names
        self.names = names
        self.index = {name: j for j, name in enumerate(names)}
        self.checked_names: tuple[str, ...] | None = None
        self.x: np.ndarray = like.x if like is not None else np.array(
            [self.features(decision) for decision in log.decisions])
        self.value = log.value if candidate.uses_value_model else log.list_price - log.unit_cost
        n, arms = len(log.decisions), len(self.pricer.grid)
        self.weight = np.zeros(n)
        self.pmf, self.prices, self.levels = np.zeros((n, arms)), np.zeros((n, arms)), np.zeros((n, arms))
        self.could_take = 0
        self.learned = 0
        self._plan: _Plan | None = None

    def fail(self, decision: LoggedDecision, field_name: str, expected: str) -> CandidateError:
        return CandidateError(f"candidate {self.candidate.label!r} does not fit the log: line "
                              f"{decision.line}: {field_name}: expected {expected}")

    def features(self, decision: LoggedDecision) -> np.ndarray:
        """The candidate's x for this decision, or CandidateError if the log cannot give it."""
        uses_model = self.candidate.uses_value_model
        if uses_model and decision.value_source != LOGGED_VALUE_SOURCE:
            raise self.fail(decision, "_value_source", f"{LOGGED_VALUE_SOURCE!r} (a V from the value "
                            f"model) for a candidate with the value model, got {decision.value_source!r}; "
                            "evaluate it with --value-model none")
        if decision.feature_names is not None and decision.feature_names is not self.checked_names:
            missing = [name for name in self.names[1:] if name not in decision.feature_names]
            if missing:
                raise self.fail(decision, "features", f"the candidate's features {missing} in the log "
                                                      f"(it has {list(decision.feature_names)})")
            self.checked_names = decision.feature_names
        x = np.zeros(len(self.names))
        x[0] = 1.0
        for name, value in decision.features.items():
            j = self.index.get(name)
            if j is not None:
                x[j] = value
            elif name.startswith(CATEGORY_PREFIX) or (uses_model and name.startswith(EMBEDDING_PREFIX)):
                raise self.fail(decision, name, "a feature of the candidate's layout (another number "
                                                "of category buckets or embedding values)")
        return x

    def _planned(self, log: _Log, start: int) -> _Plan:
        """The candidate's pricing of the next ``LOOKAHEAD`` decisions from ``start``, all at once with
        its model as it is now, through ``Pricer.choose_rows``: it holds until the candidate next
        learns (``step`` drops it then), so every decision is still priced by the model that has
        learned all before it."""
        pricer, config = self.pricer, self.candidate.config
        ahead = slice(start, min(start + LOOKAHEAD, len(log.decisions)))
        x, count = self.x[ahead], len(log.decisions[ahead])
        limit = math.nan if config.spread_limit is None else config.spread_limit
        references = np.full(count, math.nan) if config.spread_limit is None else np.array(
            pricer.references(log.products(ahead), [pricer.neutral_features(row) for row in x]))
        priced = pricer.choose_rows(AskRows(
            unit_cost=log.unit_cost[ahead], list_price=log.list_price[ahead], floor=log.floor[ahead],
            ceiling=log.ceiling[ahead], value=self.value[ahead], x=x,
            rngs=[decision_rng(config.seed, decision.quote_id) for decision in log.decisions[ahead]],
            limit=np.full(count, limit), reference=references, stable_price=np.full(count, math.nan),
            opportunity=np.zeros(count)))
        masked = priced.masked
        pmf = np.where(priced.guardrail_bound[:, None], 0.0, priced.pmf)
        match = same_price(masked.prices, log.price[ahead, None]) & masked.allowed
        arm = np.where(match.any(axis=1), match.argmax(axis=1), -1)
        probability = np.where(arm >= 0, pmf[np.arange(count), arm], 0.0)
        return _Plan(start, priced, pmf, arm, probability)

    def step(self, log: _Log, index: int, multiplier: float) -> None:
        """Price decision ``index`` with the candidate's current model, then maybe learn it."""
        plan = self._plan
        if plan is None or index - plan.start >= len(plan.arm):
            plan = self._plan = self._planned(log, index)
        row = index - plan.start
        arm, probability, x = int(plan.arm[row]), float(plan.probability[row]), self.x[index]
        decision = log.decisions[index]
        weight = self.weight[index] = probability / decision.propensity
        self.pmf[index], self.prices[index] = plan.pmf[row], plan.priced.masked.prices[row]
        self.levels[index] = plan.priced.masked.levels[row]
        self.could_take += arm >= 0
        if arm >= 0 and probability > 0.0:
            seed = self.candidate.config.seed
            draw = decision_rng(seed, decision.quote_id + ACCEPT_STREAM).random()
            if draw < multiplier * weight:
                self.learned += 1
                times = 1 if self.bootstrap_key is None else int(
                    decision_rng(seed, decision.quote_id + self.bootstrap_key).poisson(1.0))
                for _ in range(times):
                    self.pricer.policy.learn_one(x, arm, float(log.level[index]), float(decision.purchased),
                                                 probability)
                if times:
                    self._plan = None  # priced by the model before this outcome

    def estimates(self, log: _Log, model: RewardModel) -> tuple[dict[str, Estimate], dict[str, Estimate]]:
        """The profit and conversion estimates, from every decision's terms at once."""
        weight, pmf, prices = self.weight, self.pmf, self.prices
        levels = np.concatenate([self.levels, log.level[:, None]], axis=1)
        buy = model.purchase_probabilities(levels)
        at_arms, at_logged = buy[:, :-1] * pmf, buy[:, -1]
        conversion = _estimates(log.purchased, weight, at_arms.sum(axis=1), at_logged)
        profit = _estimates(log.profit, weight, (at_arms * (prices - log.unit_cost[:, None])).sum(axis=1),
                            at_logged * (log.price - log.unit_cost))
        return profit, conversion

    def result(self, log: _Log, model: RewardModel, streams: Sequence[_Run] = ()) -> Result:
        """This plain replay's result, its intervals widened by the spread of its bootstrap
        ``streams`` (of which only the estimates are read)."""
        profit, conversion = self.estimates(log, model)
        replicates = [stream.estimates(log, model) for stream in streams]
        n = self.weight.size
        return Result(
            label=self.candidate.label, decisions=n,
            profit={name: widened(estimate, [other[name] for other, _ in replicates])
                    for name, estimate in profit.items()},
            conversion={name: widened(estimate, [other[name] for _, other in replicates])
                        for name, estimate in conversion.items()},
            effective_sample_size=effective_sample_size(self.weight),
            could_not_take=1.0 - self.could_take / n,
            unsupported_mass=log.unsupported_mass(self.prices, self.pmf) / n, learned=self.learned)


@dataclass(frozen=True)
class Evaluation:
    """The candidates' results, and what the log itself earned (the logging policy, on-policy)."""

    decisions: int
    logged_profit: Estimate
    logged_conversion: Estimate
    deterministic_share: float
    """Share of logged decisions with propensity 1: the candidate's other prices get no weight there."""
    multiplier: float
    bootstrap: int
    """Bootstrap streams per candidate (0: the plain replay's intervals)."""
    results: list[Result]


def evaluate(reading: LogReading, candidates: Sequence[Candidate],
             bootstrap: int = DEFAULT_BOOTSTRAP) -> Evaluation:
    """Replay ``reading`` through every candidate at once (one pass over the log), plainly and on
    ``bootstrap`` streams of its learning (0 or at least 2)."""
    decisions = reading.decisions
    if not decisions:
        raise ValueError("the log holds no decision to evaluate on")
    if bootstrap < 0 or bootstrap == 1:
        raise ValueError(f"bootstrap: expected 0 (none) or at least 2 streams (a spread needs two), "
                         f"got {bootstrap}")
    log = _Log.of(decisions)
    groups: list[tuple[_Run, list[_Run]]] = []  # each candidate's plain run and its bootstrap streams
    for candidate in candidates:
        plain = _Run(candidate, log)
        groups.append((plain, [_Run(candidate, log, stream, like=plain) for stream in range(bootstrap)]))
    runs = [run for plain, streams in groups for run in (plain, *streams)]
    models: dict[tuple[str, ...], RewardModel] = {}
    for run in runs:
        if run.names not in models:
            models[run.names] = RewardModel(run.x, log.level, log.purchased)
    multiplier = min(decision.propensity for decision in decisions)
    for index in range(len(decisions)):
        for run in runs:
            run.step(log, index, multiplier)
    results = [plain.result(log, models[plain.names], streams) for plain, streams in groups]
    for result in results:
        if result.could_not_take == 1.0:
            raise CandidateError(f"candidate {result.label!r} does not fit the log: it could take none of "
                                 f"the {len(decisions)} logged prices (another grid or V)")
    deterministic = sum(decision.propensity == 1.0 for decision in decisions) / len(decisions)
    return Evaluation(decisions=len(decisions), logged_profit=Estimate.of_terms(log.profit),
                      logged_conversion=Estimate.of_terms(log.purchased), deterministic_share=deterministic,
                      multiplier=multiplier, bootstrap=bootstrap, results=results)
