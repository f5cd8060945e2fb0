"""The Pricer: one object that prices a quote and learns from its outcome.

The server and the simulator drive the same Pricer, so what the simulator measures is what
production runs. It is thread-safe: decisions and updates hold one lock, and both are O(K d²).
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, ClassVar, NamedTuple

import numpy as np

from learner import snapshot
from learner.arms import (
    DEFAULT_ALPHAS,
    PriceBounds,
    PriceGrid,
    band_rows,
    check_spread_limit,
    intersect_rows,
)
from learner.errors import InvalidInput, SnapshotError
from learner.features import DEFAULT_CONTEXT_FEATURES, DEFAULT_UNKNOWN_CONTEXT, ContextUse, FeatureBuilder
from learner.inventory import StockBook, StockSummary
from learner.objective import expected_profit, margin_payoffs
from learner.policies import DEFAULT_DEMAND_MODEL, make_policy
from learner.policies.base import check_hyperparameters, masked_argmax_rows
from learner.primitives import log_price_ratio
from learner.rewards import RewardWindow
from learner.seeding import decision_rng
from learner.types import SHADOW, Decision, Product, QuoteRequest, arm_view
from learner.value.artifact import ValueModel
from learner.value.events import BehaviorEvent
from learner.value.states import (
    DEFAULT_CACHE_USERS,
    Observation,
    StateBackend,
    StateChange,
    UserStates,
)

DEFAULT_DECAY = 0.9995
"""All evidence ages by this much per learned outcome (a memory of about 2,000 outcomes). Chosen in the
simulator across every scenario: against keeping everything (1.0) it lost 0.2 points on
``stationary`` at 50,000 rounds and gained 3.5 on ``drift`` and 10 on ``price_war`` (which it
follows within 2,000 rounds instead of never); 0.999 recovered faster but earned less elsewhere."""
VALUE_FACTOR_BOUNDS = (0.5, 2.0)
"""A user's value is between half and twice the list margin, however confident the model is."""


@dataclass(frozen=True)
class PricerConfig:
    """Everything that shapes decisions. A snapshot only loads into a Pricer of the same config."""

    policy: str = "linucb"
    demand_model: str = DEFAULT_DEMAND_MODEL
    alphas: tuple[float, ...] = DEFAULT_ALPHAS
    context_features: tuple[str, ...] = DEFAULT_CONTEXT_FEATURES
    category_buckets: int = 8
    l2: float = 1.0
    decay: float = DEFAULT_DECAY
    seed: int = 0
    reward_window_seconds: float = 600.0
    policy_options: Mapping[str, float] = field(default_factory=dict)
    user_embedding_dim: int = 0
    spread_limit: float | None = None
    """Every quote within this fraction of the product's reference price (None: no band)."""
    stable_price_seconds: float = 0.0
    """How long a user's price for a product stays the same (0: every quote is a fresh decision)."""
    protected_features: tuple[str, ...] = ()
    """Context names accepted and logged that may never price."""
    unknown_context: str = DEFAULT_UNKNOWN_CONTEXT

    GUARDRAILS: ClassVar[tuple[str, ...]] = ("reward_window_seconds", "spread_limit", "stable_price_seconds",
                                             "protected_features", "unknown_context")
    """Settings that shape no model: a snapshot loads whatever they are."""

    def __post_init__(self) -> None:
        if self.spread_limit is not None:
            check_spread_limit("spread_limit", self.spread_limit)
        if not (math.isfinite(self.stable_price_seconds) and self.stable_price_seconds >= 0):
            raise InvalidInput("stable_price_seconds", f"{self.stable_price_seconds} must be finite and >= 0")

    def decision_config(self) -> dict[str, Any]:
        """The part that must match between a snapshot and the Pricer loading it.

        The user embedding is part of the feature vector, so a snapshot made with another embedding
        size (or none: the key is absent then, as in snapshots from before the value model) is refused.
        """
        data = asdict(self)
        for name in self.GUARDRAILS:
            data.pop(name)
        if not self.user_embedding_dim:
            data.pop("user_embedding_dim")
        data["alphas"] = list(self.alphas)
        data["context_features"] = list(self.context_features)
        data["policy_options"] = dict(self.policy_options)
        return data


@dataclass(frozen=True, eq=False)
class AskRows:
    """Pricing asks as columns, a row each (``Pricer.choose_rows`` says what each does), with NaN for
    a limit, reference or stable price that is not set. ``of`` makes them from products and their
    asks; the replay fills them from its log's columns."""

    unit_cost: np.ndarray
    list_price: np.ndarray
    floor: np.ndarray
    ceiling: np.ndarray
    value: np.ndarray
    x: np.ndarray
    rngs: Sequence[np.random.Generator]
    limit: np.ndarray
    reference: np.ndarray
    stable_price: np.ndarray
    opportunity: np.ndarray

    @staticmethod
    def of(products: Sequence[Product], value: Sequence[float], x: np.ndarray | Sequence[np.ndarray],
           rngs: Sequence[np.random.Generator], *, limit: Sequence[float | None] | None = None,
           reference: Sequence[float | None] | None = None,
           stable_price: Sequence[float | None] | None = None,
           opportunity: Sequence[float] | None = None) -> AskRows:
        """An ask of each product: at ``value``, for features ``x``, drawing with ``rngs``; a column
        left out is not set (NaN; an opportunity cost of 0)."""
        def column(values: Sequence[float | None] | None, unset: float = np.nan) -> np.ndarray:
            if values is None:
                return np.full(len(products), unset)
            return np.array([unset if value is None else value for value in values], dtype=float)

        terms = np.array([(product.unit_cost, product.list_price, product.floor, product.ceiling)
                          for product in products], dtype=float).reshape(len(products), 4)
        return AskRows(
            unit_cost=terms[:, 0], list_price=terms[:, 1], floor=terms[:, 2], ceiling=terms[:, 3],
            value=column(value), x=np.array(x, dtype=float), rngs=list(rngs), limit=column(limit),
            reference=column(reference), stable_price=column(stable_price),
            opportunity=column(opportunity, 0.0))


class _Masked(NamedTuple):
    """The asks' arms under their guardrails (``Pricer._guardrail_rows``), a row per ask."""

    prices: np.ndarray
    allowed: np.ndarray
    payoffs: np.ndarray
    levels: np.ndarray
    spread_bound: np.ndarray
    pinned: np.ndarray
    """Whether the ask's stable price held."""
    low: np.ndarray
    high: np.ndarray
    """The bounds in force: floor and ceiling, narrowed by the band, or the pin where it held."""


@dataclass(frozen=True, eq=False)
class PricedRows:
    """``Pricer.choose_rows``: each ask's arms under its guardrails and the policy's choice (or, with no
    arm allowed, the bound nearest the grid), a row each; ``Pricing`` is one row of it."""

    masked: _Masked
    arm: np.ndarray
    price: np.ndarray
    pmf: np.ndarray
    propensity: np.ndarray
    explored: np.ndarray
    guardrail_bound: np.ndarray
    """No arm fit: ``price`` is the bound nearest the grid, ``arm`` the arm nearest it."""
    estimates: np.ndarray
    """The demand model's purchase probability of every arm."""

    def rows(self, start: int, stop: int) -> PricedRows:
        """The asks ``start`` to ``stop`` (views, not copies)."""
        return PricedRows(_Masked(*(column[start:stop] for column in self.masked)),
                          *(getattr(self, name)[start:stop] for name in _PRICED_COLUMNS))


_PRICED_COLUMNS = ("arm", "price", "pmf", "propensity", "explored", "guardrail_bound", "estimates")
"""``PricedRows``' arrays after ``masked``, in its order."""


@dataclass(frozen=True, eq=False)
class _Read:
    """A page's requests read for pricing (``Pricer._read``), in their order: each one's context
    sorted out, its user's value, spread limit and generator, and the page's feature matrix (a row
    each) and its neutral shopper's."""

    uses: list[ContextUse]
    values: list[float]
    x: np.ndarray
    neutral: np.ndarray
    limits: list[float | None]
    rngs: list[np.random.Generator]


class Pricer:
    """Prices quotes and learns outcomes; with ``users`` (a value model's per-user states), ``V`` and
    the user embedding in the features come from the user's behavior, else ``V`` is the list margin."""

    VALUE_SOURCE = "list_margin"
    MODEL_VALUE_SOURCE = "lstm"

    def __init__(self, config: PricerConfig | None = None, users: UserStates | None = None) -> None:
        self.config = config or PricerConfig()
        embedding_dim = 0 if users is None else users.model.embedding_dim
        if self.config.user_embedding_dim != embedding_dim:
            raise ValueError(f"PricerConfig.user_embedding_dim is {self.config.user_embedding_dim} but the "
                             f"value model gives {embedding_dim} embedding values")
        self.users = users
        self.grid = PriceGrid(tuple(self.config.alphas))
        self.features = FeatureBuilder(self.config.context_features, self.config.category_buckets,
                                       embedding_dim, protected=self.config.protected_features,
                                       unknown=self.config.unknown_context)
        self._neutral_embedding = None if users is None else \
            users.model.network.embedding(users.model.network.zero_state)
        # The inputs a disclosure names: each context feature, and the behavior embedding as one.
        self._input_groups: list[tuple[str, slice]] = [
            (f"context.{name}", slice(1 + i, 2 + i)) for i, name in enumerate(self.features.context_names)]
        if embedding_dim:
            dim = self.features.dim
            self._input_groups.append(("behavior", slice(dim - embedding_dim, dim)))
        self._input_masks = np.zeros((len(self._input_groups), self.features.dim))
        for row, (_, columns) in zip(self._input_masks, self._input_groups, strict=True):
            row[columns] = 1.0
        self.window = RewardWindow(self.config.reward_window_seconds)
        self.policy = make_policy(
            self.config.policy, len(self.grid), self.features.dim, self.config.policy_options,
            l2=self.config.l2, decay=self.config.decay, demand_model=self.config.demand_model,
            alphas=self.grid.alphas,
        )
        self.stock = StockBook()
        self._lock = threading.RLock()  # reentrant: quote_many holds it across choose_rows calls

    @property
    def model_version(self) -> str:
        return f"{self.policy.name}:{self.policy.updates}"

    @property
    def updates(self) -> int:
        return self.policy.updates

    def user_value(self, request: QuoteRequest) -> tuple[float, np.ndarray | None]:
        """V, what the product is worth to this user, and the user's embedding (None without a model).

        The shop's list margin, scaled by the value model's view of this user: the margin over cost
        they are predicted to accept for this product (at the price they buy with probability 1/2)
        relative to what a user with no history is predicted to accept, bounded to
        ``VALUE_FACTOR_BOUNDS``. A new user (or no model) gets exactly the list margin.
        """
        product = request.product
        list_margin = product.list_price - product.unit_cost
        if self.users is None:
            return list_margin, None
        state = self.users.get(request.user_id)
        factor, embedding = self.users.model.network.relative_value(state, product.unit_cost,
                                                                     product.category, product.list_price)
        low, high = VALUE_FACTOR_BOUNDS
        return list_margin * min(max(factor, low), high), embedding

    def observe(self, events: Sequence[BehaviorEvent], now: float) -> Observation:
        """Advance the users' states by ``events``; without a value model every event is refused."""
        if self.users is None:
            refused = Observation()
            for index in range(len(events)):
                refused.reject(index, "no value model is configured (--value-model none)")
            return refused
        return self.users.observe(events, now)

    def response_change(self, decision: Decision, reward: float, at: float) -> StateChange | None:
        """The shopper's answer to ``decision`` (a price offered, bought or not) as a change of their
        value-model state; None without a value model. It is a ``view`` at the quoted price: a quote
        shown at checkout is the shopper seeing the product at that price, and views at seen prices
        are what the value model is trained on. Stamped ``at`` (the close time), or just after the
        user's last event if that is later, so it is never refused as out of order. Apply it once
        per settled quote: the server commits it with the quote's close (exactly once, also across a
        crash); the simulator settles each quote once.
        """
        if self.users is None:
            return None
        event = BehaviorEvent(user_id=decision.user_id, timestamp=at, event_type="view",
                              product_id=decision.product_id, category=decision.category,
                              price=decision.price, unit_cost=decision.unit_cost,
                              list_price=decision.list_price, purchased=reward > 0)
        return StateChange(self.users, [event], at, restamp=True)

    def learn_response(self, decision: Decision, reward: float, at: float) -> Observation:
        """Apply ``response_change`` now (the simulator's ``+responses`` learners)."""
        change = self.response_change(decision, reward, at)
        return Observation() if change is None else change.users.apply(change)

    def spread_limit(self, request: QuoteRequest) -> float | None:
        """The band of this quote: the deployment's, tightened (never loosened) by the request's."""
        limits = [limit for limit in (self.config.spread_limit, request.spread_limit) if limit is not None]
        return min(limits) if limits else None

    def quote(self, request: QuoteRequest, now: float, *, stable_of: Decision | None = None,
              follow: bool = False) -> Decision:
        """Price one request (``quote_many``)."""
        return self.quote_many([request], now, stable_of=[stable_of], follow=follow)[0]

    def quote_many(self, requests: Sequence[QuoteRequest], now: float, *,
                   stable_of: Sequence[Decision | None] | None = None, follow: bool = False
                   ) -> list[Decision]:
        """Price each request: mask arms outside the guardrails, let the policy choose, record why.

        The guardrails are the product's floor and ceiling, the spread band around the reference
        price and, with ``stable_of[i]`` (an earlier quote whose price this user keeps), that one
        price; a pin that no longer fits the floor, ceiling or band is dropped and the quote priced
        afresh. With ``follow`` (shadow mode) each answer is the request's ``incumbent_price`` instead,
        the policy's choice kept beside it (``Decision.proposed_*``; see ``Decision``).

        A listing page goes through the policy as the rows of one matrix: its reference prices and its
        choices in one ``select_many`` (two where a spread band needs the references first); each row
        decides what the request would alone.
        """
        pins = list(stable_of) if stable_of is not None else [None] * len(requests)
        if len(pins) != len(requests):
            raise ValueError(f"{len(pins)} stable quotes for {len(requests)} requests")
        if follow and any(request.incumbent_price is None for request in requests):
            raise InvalidInput("incumbent_price", "is required in shadow mode: the shop's own price, which "
                                                  "the quote answers")
        read = self._read(requests, now)  # a refused request prices nothing
        with self._lock:
            version = self.model_version
            stocks = [self._stock_terms(request.product, now) for request in requests]
            products = [request.product for request in requests]
            opportunities = [opportunity for opportunity, _ in stocks]
            stable = [None if pin is None else pin.price for pin in pins]
            count = len(requests)
            if any(limit is not None for limit in read.limits):  # the band is around the reference: it first
                anchored = self.choose_rows(self._reference_asks(products, read.neutral, opportunities))
                references: list[float | None] = list(self._reference_prices(anchored))
                priced = self.choose_rows(AskRows.of(products, read.values, read.x, read.rngs,
                                                     limit=read.limits, reference=references,
                                                     opportunity=opportunities, stable_price=stable))
            else:  # each product's reference ask, then its quote, as the rows of one set of asks
                margins, reference_rngs = self._reference_terms(products)
                both = self.choose_rows(AskRows.of(
                    [*products, *products], [*margins, *read.values], np.concatenate((read.neutral, read.x)),
                    [*reference_rngs, *read.rngs], opportunity=[*opportunities, *opportunities],
                    stable_price=[None] * count + stable))
                references = list(self._reference_prices(both.rows(0, count)))
                priced = both.rows(count, 2 * count)
            effects = self._input_effects(read.x, read.neutral, priced.masked.levels, priced.arm)
            masked = priced.masked
            shown = [self._follow(read.x[i], request.product, masked.prices[i], masked.levels[i],
                                  request.incumbent_price)
                     if follow and request.incumbent_price is not None else None
                     for i, request in enumerate(requests)]
        return self._decisions(requests, read, priced, references, effects, shown, stocks, pins,
                               version=version, now=now)

    def _read(self, requests: Sequence[QuoteRequest], now: float) -> _Read:
        """Read each request for pricing, in order: its context sorted out (a page's shared context
        once), its recent events applied to the user's state, the user's value; then the page's
        features, one matrix."""
        shared: tuple[Mapping[str, float], ContextUse] | None = None
        uses, values, embeddings = [], [], []
        for request in requests:
            if shared is None or shared[0] is not request.context:
                shared = (request.context, self.features.read_context(request.context))
            if request.recent_events and self.users is not None:  # a refused context applies no event
                self.users.observe(request.recent_events, now, strict=True)
            value, embedding = self.user_value(request)
            uses.append(shared[1])
            values.append(value)
            embeddings.append(embedding)
        x = self.features.build_rows([use.priced for use in uses], [request.product for request in requests],
                                     embeddings)
        return _Read(uses, values, x, self.neutral_features(x), [self.spread_limit(r) for r in requests],
                     [decision_rng(self.config.seed, request.quote_id) for request in requests])

    def _stock_terms(self, product: Product, now: float) -> tuple[float, float | None]:
        """The opportunity cost of a unit of ``product`` and its sell-through target (0 and None
        without stock); called under the lock."""
        stock = product.stock
        if stock is None:
            return 0.0, None
        return (self.stock.opportunity_cost(product.product_id, product.unit_cost, product.list_price, stock),
                self.stock.sell_through_target(product.product_id, stock, now))

    def _decisions(self, requests: Sequence[QuoteRequest], read: _Read, priced: PricedRows,
                   references: Sequence[float | None], effects: Sequence[tuple[tuple[str, float], ...]],
                   shown: Sequence[tuple[int, float] | None], stocks: Sequence[tuple[float, float | None]],
                   pins: Sequence[Decision | None], *, version: str, now: float) -> list[Decision]:
        """The records of a page's priced quotes (see ``Decision``), a row of ``priced`` each: the
        page's arrays are read into lists once, each row's arms built from its columns."""
        masked = priced.masked
        costs = np.array([request.product.unit_cost for request in requests])
        profits = expected_profit(priced.estimates, masked.prices, costs[:, None])
        numbers, alphas = range(len(self.grid)), self.grid.alphas.tolist()
        arms = [tuple(map(arm_view, zip(numbers, alphas, *columns, strict=True))) for columns in zip(
            masked.prices.tolist(), masked.allowed.tolist(), priced.estimates.tolist(), profits.tolist(),
            priced.pmf.tolist(), strict=True)]
        deterministic, policy, names = self.policy.deterministic, self.policy.name, self.features.names
        expires_at = self.window.expires_at(now)
        value_source = self.VALUE_SOURCE if self.users is None else self.MODEL_VALUE_SOURCE
        value_model_version = "" if self.users is None else self.users.model.version
        decisions = []
        for parts in zip(requests, fingerprints(requests), read.uses, read.values, read.limits,
                         read.x.tolist(), arms, priced.arm.tolist(), priced.price.tolist(),
                         priced.propensity.tolist(), priced.explored.tolist(),
                         priced.guardrail_bound.tolist(), masked.spread_bound.tolist(),
                         masked.pinned.tolist(), references, effects, stocks, pins, strict=True):
            (request, digest, use, value, limit, features, views, arm, price, propensity, explored, bound,
             spread_bound, pinned, reference, effect, (opportunity, target), stable_of) = parts
            product, stock = request.product, request.product.stock
            decisions.append(Decision(
                quote_id=request.quote_id, user_id=request.user_id, product_id=product.product_id,
                category=product.category, currency=product.currency, unit_cost=product.unit_cost,
                list_price=product.list_price, arm=arm, alpha=alphas[arm], price=price, user_value=value,
                propensity=propensity, explored=explored, guardrail_bound=bound,
                features=tuple(features), arms=views, request_fingerprint=digest,
                reference_price=reference, spread_limit=limit, spread_bound=spread_bound,
                input_effects=effect, stable_of="" if not pinned or stable_of is None else stable_of.quote_id,
                protected_context=dict(use.protected), ignored_context=use.ignored,
                stock_units=0 if stock is None else stock.units,
                sell_by=0.0 if stock is None else stock.sell_by,
                salvage=0.0 if stock is None else stock.salvage, opportunity_cost=opportunity,
                sell_through_target=None if stock is None else target, deterministic=deterministic,
                policy=policy, model_version=version, feature_names=names, created_at=now,
                expires_at=expires_at, value_source=value_source, value_model_version=value_model_version,
            ))
        return [decision if answer is None or request.incumbent_price is None
                else self._shadow(decision, request.incumbent_price, *answer)
                for decision, request, answer in zip(decisions, requests, shown, strict=True)]

    def _shadow(self, decision: Decision, incumbent: float, arm: int, estimate: float) -> Decision:
        """``decision`` answering the shop's ``incumbent`` price, the policy's choice kept beside it."""
        return replace(decision, mode=SHADOW, price=float(incumbent), arm=arm,
                       alpha=float(self.grid.alphas[arm]), propensity=1.0, explored=False,
                       guardrail_bound=False, proposed_arm=decision.arm, proposed_price=decision.price,
                       proposed_propensity=decision.propensity, incumbent_estimate=estimate)

    def _follow(self, x: np.ndarray, product: Product, prices: np.ndarray, levels: np.ndarray,
                incumbent: float) -> tuple[int, float]:
        """The grid arm nearest the incumbent's price among the ask's arm ``prices``, and the demand
        model's purchase probability at that price (at its own level, so off the grid too); called
        under the lock of the quote."""
        arm = int(np.argmin(np.abs(prices - incumbent)))
        levels = levels.copy()
        levels[arm] = log_price_ratio(incumbent, product.list_price)
        return arm, float(self.policy.estimates(x, levels)[arm])

    def neutral_features(self, x: np.ndarray) -> np.ndarray:
        """``x`` (or each row of it) for the neutral shopper of the same product: every context value
        0 and, with a value model, the embedding of its zero state (what the reference price is quoted
        for)."""
        return self.features.neutral(x, self._neutral_embedding)

    def choose_rows(self, asks: AskRows) -> PricedRows:
        """The pricing step the server (``quote_many``) and the offline replay share, for each ask (a
        row of ``AskRows``): each arm's price at ``V = value``, masked outside the guardrails, and the
        policy's choice among the rest, the policy choosing for every ask with an allowed arm at once;
        a row of ``PricedRows`` is one ask's answer.

        The guardrails are the product's floor and ceiling, the spread band ``limit`` around
        ``reference`` (``Pricer.references``; needed with a limit) and, with ``stable_price`` (a
        price this user keeps), that one price; a pin that no longer fits is dropped. With no arm
        allowed, the price is the bound nearest the grid (``guardrail_bound``, propensity 1). Arms are
        weighed against the unit cost plus ``opportunity``, the value of a unit of stock kept
        (``learner.inventory``; 0 without stock).
        """
        with self._lock:
            masked = self._guardrail_rows(asks)
            n, arms = masked.prices.shape
            chosen = masked.allowed.any(axis=1)
            if chosen.all():  # the usual asks: the policy's answer is every row's, taken as it is
                picked = self.policy.select_many(asks.x, masked.levels, masked.payoffs, masked.allowed,
                                                 asks.rngs)
                return PricedRows(masked, picked.arms, masked.prices[np.arange(n), picked.arms], picked.pmf,
                                  picked.probabilities, picked.explored, np.zeros(n, dtype=bool),
                                  picked.estimates)
            arm, price = np.zeros(n, dtype=np.int64), np.zeros(n)
            pmf, propensity, explored = np.zeros((n, arms)), np.ones(n), np.zeros(n, dtype=bool)
            estimates = np.zeros((n, arms))
            rows = np.flatnonzero(chosen).tolist()
            if rows:
                picked = self.policy.select_many(asks.x[rows], masked.levels[rows], masked.payoffs[rows],
                                                 masked.allowed[rows], [asks.rngs[i] for i in rows])
                arm[rows], pmf[rows], propensity[rows] = picked.arms, picked.pmf, picked.probabilities
                explored[rows], estimates[rows] = picked.explored, picked.estimates
                price[rows] = masked.prices[rows, picked.arms]
            for row in np.flatnonzero(~chosen).tolist():  # no arm fits: the bound nearest the grid
                bounds = PriceBounds(float(masked.low[row]), float(masked.high[row]))
                arm[row], price[row] = PriceGrid.nearest_bound(bounds, masked.prices[row])
                pmf[row, arm[row]] = 1.0
                estimates[row] = self.policy.estimates(asks.x[row], masked.levels[row])
            bound = np.logical_not(chosen)
            return PricedRows(masked, arm, price, pmf, propensity, explored, bound, estimates)

    def _guardrail_rows(self, asks: AskRows) -> _Masked:
        """The arms each ask allows, their payoffs and levels, whether the band masked one, whether
        the stable pin held and the bounds in force, in arrays over the asks."""
        cost, value, floor, ceiling = asks.unit_cost, asks.value, asks.floor, asks.ceiling
        low, high = floor, ceiling
        prices, allowed = self.grid.price_rows(cost, value, floor, ceiling)
        spread_bound = pinned = np.zeros(len(cost), dtype=bool)
        limited = ~np.isnan(asks.limit)
        if limited.any():
            reference = asks.reference
            if np.isnan(reference[limited]).any():
                raise ValueError("a spread limit needs the reference price it is around")
            band_low, band_high = band_rows(reference, np.where(limited, asks.limit, 0.0))
            band_low, band_high, meets = intersect_rows(floor, ceiling, band_low, band_high)
            # the band holds the reference; where it misses floor and ceiling, the reference alone
            low = np.where(limited, np.where(meets, band_low, reference), floor)
            high = np.where(limited, np.where(meets, band_high, reference), ceiling)
            unbanded = allowed
            prices, allowed = self.grid.price_rows(cost, value, low, high)
            spread_bound = limited & (unbanded & ~allowed).any(axis=1)
        stable = asks.stable_price
        if not np.isnan(stable).all():  # a pin that no longer fits is dropped
            pin_low, pin_high, meets = intersect_rows(low, high, stable, stable)
            pinned = meets & ~np.isnan(stable)
            if pinned.any():
                low, high = np.where(pinned, pin_low, low), np.where(pinned, pin_high, high)
                prices, allowed = self.grid.price_rows(cost, value, low, high)
        payoffs = margin_payoffs(prices, (cost + asks.opportunity)[:, None], value[:, None])
        levels = log_price_ratio(prices, asks.list_price[:, None])
        return _Masked(prices, allowed, payoffs, levels, spread_bound, pinned, low, high)

    def references(self, products: Sequence[Product], neutrals: Sequence[np.ndarray],
                   opportunities: Sequence[float] | None = None) -> list[float]:
        """Each product's reference price: what the policy would quote a shopper with no history and
        neutral context (``neutrals``: every context value 0, the value model's zero state; V the list
        margin) under the product's floor and ceiling and the stock's opportunity cost, now, the
        policy choosing for all at once. Computed with each quote from the same model state, so it is
        always current. A stochastic policy's reference is the most probable arm of its distribution
        (drawn with a generator seeded by the product id), so it does not jitter from quote to
        quote."""
        asks = self._reference_asks(products, neutrals, opportunities)
        return self._reference_prices(self.choose_rows(asks))

    def _reference_asks(self, products: Sequence[Product], neutrals: np.ndarray | Sequence[np.ndarray],
                        opportunities: Sequence[float] | None) -> AskRows:
        """The asks of ``references``: the neutral shopper, at the list margin."""
        margins, rngs = self._reference_terms(products)
        return AskRows.of(products, margins, neutrals, rngs, opportunity=opportunities)

    def _reference_terms(self, products: Sequence[Product]) -> tuple[list[float], list[np.random.Generator]]:
        """Each product's list margin (the neutral shopper's V) and the generator of its reference ask."""
        margins = [product.list_price - product.unit_cost for product in products]
        rngs = [decision_rng(self.config.seed, f"reference\x00{product.product_id}") for product in products]
        return margins, rngs

    def _reference_prices(self, priced: PricedRows) -> list[float]:
        """The price of the most probable arm of each reference ask (the bound where none fits): a
        deterministic policy's choice is its only arm, so its price is the reference."""
        if self.policy.deterministic:
            return priced.price.tolist()
        masked = priced.masked
        arms = masked_argmax_rows(priced.pmf, masked.allowed, masked.payoffs)
        best = masked.prices[np.arange(len(arms)), arms]
        return np.where(priced.guardrail_bound, priced.price, best).tolist()

    def _input_effects(self, x: np.ndarray, neutral: np.ndarray, levels: np.ndarray,
                       arms: np.ndarray) -> list[tuple[tuple[str, float], ...]]:
        """For each decision (a row of ``x``, ``neutral`` and ``levels``): how much each input (a
        context feature; the behavior embedding as one) moves the chosen arm's purchase logit away
        from the neutral shopper's, largest first; inputs that do not differ are left out. Exact:
        every demand model's score is linear in the features."""
        groups = self._input_groups
        deltas = self._input_masks * (x - neutral)[:, None, :]  # [i, g]: the change in group g's columns
        moved = deltas.any(axis=2)
        if not moved.any():
            return [()] * len(x)
        effects = self.policy.score_effects(deltas, levels, arms)
        # each row's moved groups first, largest effect first, ties in group order (lexsort is stable)
        order = np.lexsort((-np.abs(effects), ~moved), axis=-1).tolist()
        names = [name for name, _ in groups]
        return [tuple((names[g], row_effects[g]) for g in row_order[:shown])
                for row_order, row_effects, shown in zip(order, effects.tolist(), moved.sum(axis=1).tolist(),
                                                         strict=True)]

    def own_arm(self, decision: Decision) -> int | None:
        """The arm of this Pricer's grid that ``decision``'s arm is: itself when the decision was made
        on this grid, else the arm of the same alpha (a decision priced before the rollout gate
        switched the grid); None when the grid has no such arm."""
        if len(decision.arms) == len(self.grid) and all(
                view.alpha == alpha for view, alpha in zip(decision.arms, self.grid.alphas, strict=True)):
            return decision.arm
        match = np.flatnonzero(np.abs(self.grid.alphas - decision.alpha) <= 1e-12)
        return int(match[0]) if match.size else None

    def learnable(self, decision: Decision) -> bool:
        """A guardrail-bound price was no arm's price, so its outcome says nothing about an arm; nor
        does a price whose alpha is not on this grid."""
        return not decision.guardrail_bound and self.own_arm(decision) is not None

    def update(self, decision: Decision, reward: float) -> None:
        """Learn the outcome of ``decision`` (1 purchase, 0 none)."""
        arm = None if decision.guardrail_bound else self.own_arm(decision)
        if arm is None:
            raise InvalidInput("quote_id", "a guardrail-bound quote, or one whose arm is not on this grid, "
                                           "is not learned")
        x = np.asarray(decision.features, dtype=float)
        level = float(log_price_ratio(decision.price, decision.list_price))
        with self._lock:
            self.policy.learn_one(x, arm, level, reward, decision.propensity)
            if decision.stock_units:
                self.stock.learn(decision.product_id, decision.unit_cost, decision.list_price,
                                 decision.stock_units, decision.sell_by, decision.salvage,
                                 decision.created_at, reward > 0)

    def stock_summary(self, now: float) -> StockSummary:
        with self._lock:
            return self.stock.summary(now)

    def with_config(self, config: PricerConfig) -> Pricer:
        """A fresh, untrained Pricer of ``config`` sharing this one's per-user value states (the rollout
        gate's successor: the value model and the embedding size stay as they are)."""
        return Pricer(replace(config, user_embedding_dim=self.config.user_embedding_dim), self.users)

    # -- snapshots -------------------------------------------------------------------------------
    def snapshot(self) -> bytes:
        with self._lock:
            header = {"pricer": self.config.decision_config(),
                      "policy": self.policy.hyperparameters(),
                      "model_version": self.model_version}
            if len(self.stock):  # absent without stock, so older snapshots and their readers agree
                header["stock"] = self.stock.state()
            return snapshot.encode(header, self.policy.state())

    def restore(self, blob: bytes) -> None:
        """Load a snapshot made by a Pricer of the same configuration, or raise SnapshotError."""
        header, arrays = snapshot.decode(blob)
        check_hyperparameters(self.config.decision_config(), header.get("pricer") or {})
        check_hyperparameters(self.policy.hyperparameters(), header.get("policy") or {})
        with self._lock:
            self.policy.load(arrays)
            self.stock.load(header.get("stock") or {})
        if self.model_version != header.get("model_version"):
            raise SnapshotError("snapshot model version does not match its statistics; corrupt")


def fingerprint(request: QuoteRequest) -> str:
    """A stable digest of what was asked, to tell an idempotent retry from a reused quote id."""
    return fingerprints([request])[0]


def fingerprints(requests: Sequence[QuoteRequest]) -> list[str]:
    """``fingerprint`` of each request: the SHA-256 of the JSON list of the user, the product's
    fields, the sorted context and, only when set (so older digests stay valid), the spread limit and
    the incumbent price. The list's JSON is its items' JSON joined by ``", "``, so a context that a
    page's requests share is encoded once, not once a product."""
    shared: tuple[Mapping[str, float], str] | None = None  # the last context and its JSON
    digests = []
    for request in requests:
        if shared is None or shared[0] is not request.context:
            shared = (request.context, json.dumps(sorted(request.context.items())))
        product = request.product
        items: list[Any] = [request.user_id, product.product_id, product.category, product.unit_cost,
                            product.list_price, product.floor_price, product.ceiling_price, product.currency]
        text = json.dumps(items)[:-1] + ", " + shared[1]
        if request.spread_limit is not None:
            text += ", " + json.dumps(request.spread_limit)
        if request.incumbent_price is not None:
            text += ", " + json.dumps(["incumbent_price", request.incumbent_price])
        digests.append(hashlib.sha256((text + "]").encode()).hexdigest())
    return digests


def build_pricer(config: PricerConfig, value_model: ValueModel | None = None,
                 backend: StateBackend | None = None, *, cache_users: int = DEFAULT_CACHE_USERS) -> Pricer:
    """The Pricer of ``config`` with ``value_model`` in the loop (None: it prices on the list margin):
    per-user states cached for ``cache_users`` users in front of ``backend`` (the server's store;
    None keeps them in memory only), and the features sized for the model's embedding. The server,
    the simulator and the offline evaluation all build their Pricer here."""
    if value_model is None:
        return Pricer(config)
    users = UserStates(value_model, backend, capacity=cache_users)
    return Pricer(replace(config, user_embedding_dim=value_model.embedding_dim), users)
