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

A reward model for DR (``learner.policies.shared.SharedLogit``, the server's demand model, without
forgetting) is fitted on every logged decision in the same order, scored before it learns each one,
so it never predicts an outcome it has seen. It gives the purchase probability at any price, so DR
also covers prices the log never tried.

Limits, said in the report: the guardrails (floor, ceiling) are not logged; a bound is taken where
the log shows it (an arm refused beyond the nearest offered price), and a side with no refused arm
takes the default (floor at unit cost, no ceiling). A candidate's own ``--spread-limit`` applies,
around its own reference price (``Pricer.choose_many``, the server's pricing step); the logger's band shows
only as such bounds, and a stable price is not replayed. A candidate with the value model uses the
logged V and embedding: it is the logging model, not another one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from evaluation.candidates import Candidate, CandidateError
from evaluation.estimators import Estimate, doubly_robust, effective_sample_size, ips, snips
from evaluation.logs import LoggedDecision, LogReading
from learner import Pricer, Product
from learner.arms import same_price
from learner.policies.shared import SharedLogit
from learner.pricer import Ask, Pricing
from learner.primitives import log_price_ratio
from learner.seeding import decision_rng

CATEGORY_PREFIX = "category."
EMBEDDING_PREFIX = "user.embedding."
"""How ``learner.features.FeatureBuilder`` names the category slots and the value model's embedding."""
LOGGED_VALUE_SOURCE = "lstm"
"""``Decision.value_source`` of a V that the value model computed."""
ACCEPT_STREAM = "\x00explore_eval"
"""Appended to the quote id to seed the acceptance draw apart from the decision's own draws."""


def guardrails(decision: LoggedDecision) -> Product:
    """The product as far as the log shows its guardrails (see the module docstring)."""
    offered = decision.prices[decision.allowed]
    low, high = float(offered.min()), float(offered.max())
    refused = decision.prices[~decision.allowed]
    return Product("logged", unit_cost=decision.unit_cost, list_price=decision.list_price,
                   floor_price=low if (refused < low).any() else None,
                   ceiling_price=high if (refused > high).any() else None)


class RewardModel:
    """P(purchase | x, price level) fitted online on every logged decision, for DR."""

    def __init__(self, dim: int) -> None:
        self._model = SharedLogit(1, dim, np.zeros(1), l2=1.0, decay=1.0)

    def purchase_probability(self, x: np.ndarray, levels: np.ndarray) -> np.ndarray:
        return self._model.probabilities(x, levels)

    def learn(self, x: np.ndarray, level: float, purchased: bool) -> None:
        self._model.learn_one(x, 0, level, float(purchased))


@dataclass
class Terms:
    """Per-decision terms of one reward (profit or conversion)."""

    reward: list[float] = field(default_factory=list)
    model_value: list[float] = field(default_factory=list)
    model_factual: list[float] = field(default_factory=list)

    def add(self, reward: float, model_value: float, model_factual: float) -> None:
        self.reward.append(reward)
        self.model_value.append(model_value)
        self.model_factual.append(model_factual)

    def estimates(self, weight: np.ndarray) -> dict[str, Estimate]:
        reward = np.asarray(self.reward)
        return {"ips": ips(reward, weight), "snips": snips(reward, weight),
                "dr": doubly_robust(reward, weight, np.asarray(self.model_value),
                                    np.asarray(self.model_factual))}


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


@dataclass(frozen=True)
class _Log:
    """The decisions replayed, and each one's product as far as the log shows its guardrails."""

    decisions: Sequence[LoggedDecision]
    products: Sequence[Product]


class _Run:
    """One candidate going through the log."""

    def __init__(self, candidate: Candidate) -> None:
        self.candidate = candidate
        self.pricer: Pricer = candidate.pricer()
        names = self.pricer.features.names
        self.names = names
        self.index = {name: j for j, name in enumerate(names)}
        self.checked_names: tuple[str, ...] | None = None
        self.weight: list[float] = []
        self.profit, self.conversion = Terms(), Terms()
        self.could_take = 0
        self.unsupported = 0.0
        self.learned = 0
        self._planned: dict[int, tuple[np.ndarray, Pricing]] = {}

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

    def _value(self, decision: LoggedDecision) -> float:
        return decision.value if self.candidate.uses_value_model else decision.list_price - decision.unit_cost

    def _plan(self, log: _Log, start: int) -> None:
        """The candidate's pricing of the next ``LOOKAHEAD`` decisions from ``start``, all at once with
        its model as it is now: each holds until the candidate next learns (``step`` drops the rest
        then), so every decision is still priced by the model that has learned all before it."""
        pricer, config = self.pricer, self.candidate.config
        ahead = range(start, min(start + LOOKAHEAD, len(log.decisions)))
        decisions = [log.decisions[i] for i in ahead]
        products = [log.products[i] for i in ahead]
        xs = [self.features(decision) for decision in decisions]
        limit = config.spread_limit
        references: list[float | None] = [None] * len(decisions) if limit is None else list(
            pricer.references(products, [pricer.neutral_features(x) for x in xs]))
        asks = [Ask(product, self._value(decision), x, decision_rng(config.seed, decision.quote_id),
                    limit=limit, reference=reference)
                for decision, product, x, reference in zip(decisions, products, xs, references, strict=True)]
        self._planned = dict(zip(ahead, zip(xs, pricer.choose_many(asks), strict=True), strict=True))

    def step(self, log: _Log, index: int, model: RewardModel, multiplier: float) -> np.ndarray:
        """Score decision ``index`` with the candidate's current model, then maybe learn it; returns
        the candidate's features of it."""
        if index not in self._planned:
            self._plan(log, index)
        x, pricing = self._planned.pop(index)
        decision, config = log.decisions[index], self.candidate.config
        prices, allowed, levels = pricing.arm_prices.prices, pricing.arm_prices.allowed, pricing.levels
        # A guardrail-bound quote is no arm's price: nothing the log can weigh.
        pmf = np.zeros(len(prices)) if pricing.guardrail_bound else pricing.pmf
        match = np.flatnonzero(same_price(prices, decision.price) & allowed)
        arm = int(match[0]) if match.size else -1
        probability = float(pmf[arm]) if arm >= 0 else 0.0
        weight = probability / decision.propensity
        logged_at = (same_price(prices[:, None], decision.prices[None, :]) * decision.pmf).sum(axis=1)
        self.unsupported += float(pmf[logged_at == 0.0].sum())
        self.could_take += arm >= 0
        level = float(log_price_ratio(decision.price, decision.list_price))
        buy = model.purchase_probability(x, np.append(levels, level))
        margins = prices - decision.unit_cost
        self.weight.append(weight)
        self.conversion.add(float(decision.purchased), float(pmf @ buy[:-1]), float(buy[-1]))
        self.profit.add(decision.profit, float(pmf @ (buy[:-1] * margins)),
                        float(buy[-1]) * (decision.price - decision.unit_cost))
        if arm >= 0 and probability > 0.0:
            draw = decision_rng(config.seed, decision.quote_id + ACCEPT_STREAM).random()
            if draw < multiplier * weight:
                self.pricer.policy.learn_one(x, arm, level, float(decision.purchased), probability)
                self.learned += 1
                self._planned.clear()  # priced by the model before this outcome
        return x

    def result(self) -> Result:
        weight = np.asarray(self.weight)
        n = weight.size
        return Result(label=self.candidate.label, decisions=n, profit=self.profit.estimates(weight),
                      conversion=self.conversion.estimates(weight),
                      effective_sample_size=effective_sample_size(weight),
                      could_not_take=1.0 - self.could_take / n, unsupported_mass=self.unsupported / n,
                      learned=self.learned)


@dataclass(frozen=True)
class Evaluation:
    """The candidates' results, and what the log itself earned (the logging policy, on-policy)."""

    decisions: int
    logged_profit: Estimate
    logged_conversion: Estimate
    deterministic_share: float
    """Share of logged decisions with propensity 1: the candidate's other prices get no weight there."""
    multiplier: float
    results: list[Result]


def evaluate(reading: LogReading, candidates: Sequence[Candidate]) -> Evaluation:
    """Replay ``reading`` through every candidate at once (one pass over the log)."""
    decisions = reading.decisions
    if not decisions:
        raise ValueError("the log holds no decision to evaluate on")
    runs = [_Run(candidate) for candidate in candidates]
    models: dict[tuple[str, ...], RewardModel] = {}
    for run in runs:
        models.setdefault(run.names, RewardModel(len(run.names)))
    multiplier = min(decision.propensity for decision in decisions)
    log = _Log(decisions, [guardrails(decision) for decision in decisions])
    for index, decision in enumerate(decisions):
        xs: dict[tuple[str, ...], np.ndarray] = {}
        for run in runs:
            xs.setdefault(run.names, run.step(log, index, models[run.names], multiplier))
        level = float(log_price_ratio(decision.price, decision.list_price))
        for names, model in models.items():
            model.learn(xs[names], level, decision.purchased)
    results = [run.result() for run in runs]
    for result in results:
        if result.could_not_take == 1.0:
            raise CandidateError(f"candidate {result.label!r} does not fit the log: it could take none of "
                                 f"the {len(decisions)} logged prices (another grid or V)")
    profit = np.array([decision.profit for decision in decisions])
    purchased = np.array([float(decision.purchased) for decision in decisions])
    deterministic = sum(decision.propensity == 1.0 for decision in decisions) / len(decisions)
    return Evaluation(decisions=len(decisions), logged_profit=Estimate.of_terms(profit),
                      logged_conversion=Estimate.of_terms(purchased), deterministic_share=deterministic,
                      multiplier=multiplier, results=results)
