"""The policies compared in a run. Each prices a block of rounds; the learning ones learn as they go.

The learner policies run through the same ``learner.Pricer`` the server runs; outcomes reach them
through a ``FeedbackQueue`` that applies the server's reward-window rule, so a delayed scenario
teaches them exactly what the server would learn.
"""

from __future__ import annotations

import heapq
import itertools
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, cast

import numpy as np

from learner import Decision, FeatureBuilder, PricerConfig, Product, QuoteRequest, build_pricer
from learner.policies import POLICIES
from learner.stability import StableWindow
from learner.value import ValueModel
from learner.value import load as load_value_model
from learner.value.events import BehaviorEvent
from simulator.behavior import user_history
from simulator.market import Block, Market
from simulator.scenarios import Feedback
from simulator.seeds import RandomStream, generator


class FeedbackQueue:
    """Outcomes waiting to be learned, released in time order.

    A report at or before the quote's window end is learned when it arrives; silence, or a report
    after the window, is learned as no purchase when the window closes (a late purchase is lost, as
    on the server). Draws two uniforms per outcome, so two queues with the same seed given the same
    rounds delay them identically.
    """

    def __init__(self, feedback: Feedback, seed: int) -> None:
        self.feedback = feedback
        self._rng = generator(seed, RandomStream.FEEDBACK)
        self._heap: list[tuple[float, int, float, Any]] = []
        self._order = itertools.count()
        self.late_reports = 0

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, now: float, token: Any, purchased: bool) -> None:
        feedback = self.feedback
        delay_draw, report_draw = self._rng.random(2)
        expires = now + feedback.reward_window_seconds
        reported = purchased or report_draw < feedback.no_purchase_report_rate
        arrives = now - feedback.report_delay_seconds * np.log1p(-delay_draw)
        if reported and arrives <= expires:
            heapq.heappush(self._heap, (arrives, next(self._order), float(purchased), token))
            return
        self.late_reports += reported
        heapq.heappush(self._heap, (expires, next(self._order), 0.0, token))

    def release(self, now: float, learn: Callable[[Any, float, float], None]) -> None:
        """Learn every outcome due at or before ``now``: ``learn(token, reward, at)`` with ``at`` the
        time it was settled (the report's arrival, or the window's end)."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            at, _, reward, token = heapq.heappop(heap)
            learn(token, reward, at)


class Contender(ABC):
    """Something that prices rounds. ``play`` returns the price it quoted in each row of a block."""

    name: str

    @abstractmethod
    def play(self, block: Block, market: Market) -> np.ndarray: ...


class Oracle(Contender):
    """Knows each shopper's willingness: quotes the grid price with the highest expected profit."""

    name = "oracle"

    def play(self, block: Block, market: Market) -> np.ndarray:
        return block.prices[np.arange(len(block)), block.oracle_arms()]


class UniformRandom(Contender):
    name = "random"

    def __init__(self, seed: int) -> None:
        self._rng = generator(seed, RandomStream.RANDOM)

    def play(self, block: Block, market: Market) -> np.ndarray:
        arms = self._rng.integers(block.prices.shape[1], size=len(block))
        return block.prices[np.arange(len(block)), arms]


class Learning(Contender):
    """A contender that decides one round at a time and learns outcomes through a FeedbackQueue."""

    def __init__(self, feedback: Feedback, seed: int) -> None:
        self.queue = FeedbackQueue(feedback, seed)
        self.decisions = 0
        self.seconds = 0.0
        """Wall time spent in ``play``: deciding, drawing the outcome and learning."""

    def play(self, block: Block, market: Market) -> np.ndarray:
        prices = np.empty(len(block))
        times = block.times.tolist()
        uniform = block.uniform.tolist()
        for row in range(len(block)):
            now = times[row]
            self.queue.release(now, self.learn)
            token, price = self.decide(block, market, row)
            prices[row] = price
            purchased = uniform[row] < float(block.purchase_probability(row, price))
            if token is not None:
                self.queue.push(now, token, purchased)
        self.decisions += len(block)
        return prices

    @abstractmethod
    def decide(self, block: Block, market: Market, row: int) -> tuple[Any, float]:
        """The price for ``row`` and a token to learn its outcome with (None: nothing to learn)."""

    @abstractmethod
    def learn(self, token: Any, reward: float, at: float) -> None: ...


class PricerContender(Learning):
    """A ``learner.Pricer``, as the server runs it: ``quote(request, now)`` then ``update``.

    With a value model, each shopper's behavior history is observed before their first quote, as
    the server's ``Observe`` would have received it from the site's tracker. With ``responses``, each
    settled quote also advances the shopper's state (``Pricer.learn_response``): the service learning
    from its own price experiments, which the server does not do yet.

    With ``stable_price_seconds`` in the config, a shopper's latest quote per product is remembered
    as the server's store does, and a repeat in the window is priced pinned to it (every round is a
    new showing here, so it is always a new quote at the same price, never the open quote returned).
    Every quote's price over its reference price is kept (``price_ratios``): the spread quoted.
    """

    def __init__(self, name: str, config: PricerConfig, feedback: Feedback, seed: int,
                 value_model: ValueModel | None = None, *, responses: bool = False) -> None:
        super().__init__(feedback, seed)
        self.name = name
        self.responses = responses
        self.pricer = build_pricer(config, value_model)
        self._observed: set[int] = set()
        self.stable = StableWindow(config.stable_price_seconds)
        self._recent: dict[tuple[str, str], tuple[Decision, float]] = {}
        self.price_ratios: list[float] = []

    def decide(self, block: Block, market: Market, row: int) -> tuple[Any, float]:
        user = int(block.users[row])
        if self.pricer.users is not None and user not in self._observed:
            self._observed.add(user)
            history = [BehaviorEvent(**event) for event in user_history(market, user)]
            if history:
                self.pricer.observe(history, float(block.times[row]))
        request = QuoteRequest(user_id=block.user_ids[row], product=self.product(block, market, row),
                               quote_id=f"q-{block.start + row}", context=market.request_context(block, row))
        decision = self._quote(request, float(block.times[row]))
        self.price_ratios.append(decision.price / decision.reference_price)
        return (decision if self.pricer.learnable(decision) else None), decision.price

    def product(self, block: Block, market: Market, row: int) -> Product:
        """The product of ``row`` as the shop describes it to the Pricer."""
        return market.catalog.products[int(block.products[row])]

    def _quote(self, request: QuoteRequest, now: float) -> Decision:
        if not self.stable.enabled:
            return self.pricer.quote(request, now)
        key = (request.user_id, request.product.product_id)
        earlier = self._recent.get(key)
        if earlier is not None and self.stable.holds(earlier[0], earlier[1], request, now):
            decision = self.pricer.quote(request, now, stable_of=earlier[0])
        else:
            decision = self.pricer.quote(request, now)
        self._recent[key] = (decision, earlier[1] if decision.stable_of and earlier else now)
        return decision

    def spread(self) -> tuple[float, float]:
        """The 5th and 95th percentiles of price over reference price, over every quote so far."""
        low, high = np.percentile(self.price_ratios, [5, 95]) if self.price_ratios else (np.nan, np.nan)
        return float(low), float(high)

    def learn(self, token: Any, reward: float, at: float) -> None:
        self.pricer.update(token, reward)
        if self.responses:
            self.pricer.learn_response(token, reward, at)


class VowpalWabbit(Learning):
    """VW ``--cb_explore_adf --squarecb`` over the Pricer's own features.

    The shared example holds ``x`` (the same FeatureBuilder); each action is one grid arm, crossed
    with ``x`` (``-q sa``), which makes one linear model per arm like the ridge policies. VW learns
    costs, so the cost of an outcome is minus its profit in units of the user value:
    ``-alpha`` for a purchase, 0 otherwise (in [-1, 0]).
    """

    name = "vw"

    def __init__(self, feedback: Feedback, seed: int, alphas: tuple[float, ...],
                 features: FeatureBuilder) -> None:
        import vowpal_wabbit_next as vw  # an optional dependency: only this contender needs it

        super().__init__(feedback, seed)
        self._vw = vw
        self.workspace = vw.Workspace(["--cb_explore_adf", "--squarecb", "--quiet", "-q", "sa",
                                       "--random_seed", str(seed)])
        self._parser = vw.TextFormatParser(self.workspace)
        self._features = features
        self._alphas = alphas
        self._actions = [f"|a arm{k} alpha:{alpha}" for k, alpha in enumerate(alphas)]
        self._rng = generator(seed, RandomStream.VW)

    def decide(self, block: Block, market: Market, row: int) -> tuple[Any, float]:
        product = market.catalog.products[int(block.products[row])]
        x = self._features.build(market.request_context(block, row), product)
        shared = "shared |s " + " ".join(f"f{j}:{v:.6g}" for j, v in enumerate(x.tolist()) if v != 0.0)
        examples = [self._parser.parse_line(shared), *(self._parser.parse_line(a) for a in self._actions)]
        pmf = np.zeros(len(self._alphas))
        # --cb_explore_adf predicts ActionProbs: (action index, probability) pairs.
        for action, probability in cast(list[tuple[int, float]], self.workspace.predict_one(examples)):
            pmf[action] = probability
        arm = int(min(np.searchsorted(np.cumsum(pmf), self._rng.random() * pmf.sum(), side="right"),
                      len(pmf) - 1))
        return (examples, arm, float(pmf[arm]), self._alphas[arm]), float(block.prices[row, arm])

    def learn(self, token: Any, reward: float, at: float) -> None:
        examples, arm, probability, alpha = token
        examples[1 + arm].set_label(self._vw.CBLabel(label=(-alpha * reward, probability)))
        self.workspace.learn_one(examples)


LEARNER_POLICIES: tuple[str, ...] = tuple(POLICIES)
CONTENDERS: tuple[str, ...] = ("oracle", "best_fixed", "random", "greedy", *LEARNER_POLICIES, "vw")
"""The default comparison; ``best_fixed`` is computed by the runner from the truth."""
VALUE_MODEL_SUFFIX = "+lstm"
RESPONSES_SUFFIX = "+responses"
VALUE_CONTENDERS: tuple[str, ...] = tuple(
    f"{name}{suffix}" for suffix in (VALUE_MODEL_SUFFIX, RESPONSES_SUFFIX) for name in LEARNER_POLICIES)
"""Each learner policy with the shipped user value model in the loop (``+lstm``), and with its own
settled quotes advancing the shoppers' states too (``+responses``); slower, so asked for by name."""


GUARD_SEPARATOR = "@"
GUARDS = ("spread", "stable", "protect")
"""``<learner>@spread=0.1`` (every price within 10% of the reference; ``none``: no band),
``<learner>@stable=86400`` (a shopper keeps a product's price for a day), ``<learner>@protect=is_mobile``
(a context feature logged but never priced; ``+`` joins several); guards join with ``,``."""


def guarded(name: str, config: PricerConfig) -> tuple[str, PricerConfig]:
    """Split ``linucb@spread=0.1,stable=600`` into the learner's name and its config with the guards."""
    base, _, guards = name.partition(GUARD_SEPARATOR)
    for guard in filter(None, guards.split(",")):
        key, _, value = guard.partition("=")
        try:
            if key == "spread":
                config = replace(config, spread_limit=None if value == "none" else float(value))
            elif key == "stable":
                config = replace(config, stable_price_seconds=float(value))
            elif key == "protect":
                protected = tuple(filter(None, value.split("+")))
                config = replace(config, protected_features=protected, context_features=tuple(
                    feature for feature in config.context_features if feature not in protected))
            else:
                raise ValueError(f"unknown guard {key!r}; choose from {', '.join(GUARDS)}")
        except ValueError as error:
            raise ValueError(f"policy {name!r}: {guard!r}: {error}") from None
    return base, config


def is_contender(name: str) -> bool:
    base = name.partition(GUARD_SEPARATOR)[0]
    return name in CONTENDERS + VALUE_CONTENDERS or (
        GUARD_SEPARATOR in name and (base in LEARNER_POLICIES or base in VALUE_CONTENDERS))


def make_contender(name: str, *, feedback: Feedback, seed: int, pricer: PricerConfig,
                   options: Mapping[str, Mapping[str, float]] | None = None,
                   value_model: str = "default") -> Contender:
    """The contender called ``name``. ``pricer`` is the Pricer configuration the learning ones share
    (its policy is replaced by theirs), ``options`` each learner policy's hyperparameters by name,
    ``value_model`` the model file (or ``default``) of the ``+lstm`` learners. A learner's name may
    carry guards (``GUARDS``): ``linucb@spread=0.1``."""
    options = options or {}
    pricer = replace(pricer, reward_window_seconds=feedback.reward_window_seconds)
    if GUARD_SEPARATOR in name:
        base, guarded_config = guarded(name, pricer)
        if not is_contender(name):
            raise ValueError(f"guards apply to learners only, not {base!r}")
        contender = make_contender(base, feedback=feedback, seed=seed, pricer=guarded_config,
                                   options=options, value_model=value_model)
        contender.name = name
        return contender
    if name == "oracle":
        return Oracle()
    if name == "random":
        return UniformRandom(seed)
    if name == "greedy":
        greedy = replace(pricer, policy="egreedy", policy_options={"epsilon": 0.0})
        return PricerContender("greedy", greedy, feedback, seed)
    if name in POLICIES:
        config = replace(pricer, policy=name, policy_options=dict(options.get(name, {})))
        return PricerContender(name, config, feedback, seed)
    if name in VALUE_CONTENDERS:
        policy = name.split("+")[0]
        config = replace(pricer, policy=policy, policy_options=dict(options.get(policy, {})))
        return PricerContender(name, config, feedback, seed, load_value_model(value_model),
                               responses=name.endswith(RESPONSES_SUFFIX))
    if name == "vw":
        return VowpalWabbit(feedback, seed, tuple(pricer.alphas),
                            FeatureBuilder(pricer.context_features, pricer.category_buckets))
    raise ValueError(f"unknown policy {name!r}; choose from {', '.join(CONTENDERS + VALUE_CONTENDERS)}")
