"""The market: shoppers with hidden traits, a retail-like catalog, and logit demand with known truth.

A shopper ``u`` facing product ``p`` at time ``t`` would pay at most ``w = list_price * exp(m + s·ε)``,
ε standard logistic, where the log relative willingness ``m`` adds up the shopper's hidden value scale
and category taste, what the context reveals about intent (returning shoppers, deep sessions and
evenings pay more, mobile shoppers less) and the scenario's drift; the spread ``s`` shrinks as the
shopper's price sensitivity grows. The shopper buys when ``w`` exceeds the price, so the purchase
probability at price ``q`` is exactly ``sigmoid((m - log(q / list_price)) / s)``. Every round keeps
``m``, ``s`` and the uniform that decides the purchase beside it: the outcome of any price is known,
which is what makes the oracle and the regret exact, and what lets every policy face the same shopper
with the same luck (common random numbers).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from learner import DEFAULT_ALPHAS, DEFAULT_CONTEXT_FEATURES, Product
from simulator.seeds import RandomStream, generator

CATEGORY_MARKUP: dict[str, float] = {"electronics": 0.12, "grocery": 0.15, "apparel": 0.45,
                                     "home": 0.30, "beauty": 0.40, "toys": 0.30, "sports": 0.25,
                                     "books": 0.20}
"""Median markup over cost per category (US retail gross margins: electronics thin, apparel fat)."""
CATEGORIES: tuple[str, ...] = tuple(CATEGORY_MARKUP)
"""The catalog's categories, in the order of the table above (shoppers' tastes index them)."""

NEAR_COST_SHARE = 0.06
"""Share of items sold near cost (loss leaders, price-matched goods): markup 1-4%."""

CONTEXT_EFFECTS: dict[str, float] = {"is_mobile": -0.04, "is_returning": 0.06, "session_depth": 0.05}
"""Shift of the log relative willingness per unit of each observable context value."""

START_TIME = 1_767_225_600.0
"""2026-01-01T00:00:00Z: the simulated clock's first round."""

EVENING_EFFECT = 0.03
"""Evening shoppers (around 21:00) pay up to 3% more; morning ones 3% less (a cosine in the hour)."""


@dataclass(frozen=True)
class MarketConfig:
    """The shape of the population. Defaults are what the named scenarios start from."""

    users: int = 5000
    products: int = 400
    value_median: float = 0.92
    """Median willingness as a share of the list price: list prices are anchors most do not pay."""
    value_spread: float = 0.06
    taste_spread: float = 0.05
    sensitivity_spread: float = 0.35
    base_noise: float = 0.04
    """Logistic scale of one shopper's willingness at price sensitivity 1."""
    returning_share: float = 0.6
    mobile_share: float = 0.55
    history_sessions: float = 6.0
    """Mean number of sessions in a returning shopper's behavior history (``simulator.behavior``)."""
    history_days: float = 60.0
    """How many days before the run those sessions are spread over."""


@dataclass(frozen=True)
class Traits:
    """What the market knows about each shopper and no policy sees (arrays indexed by user)."""

    value_scale: np.ndarray
    price_sensitivity: np.ndarray
    taste: np.ndarray
    """(users, categories) multiplier on willingness, geometric mean 1 per user."""
    mobile_propensity: np.ndarray
    returning: np.ndarray

    def log_value(self, users: np.ndarray, categories: np.ndarray) -> np.ndarray:
        """The hidden part of the log relative willingness of ``users`` for ``categories``."""
        return np.log(self.value_scale[users]) + np.log(self.taste[users, categories])

    def noise_scale(self, users: np.ndarray, base_noise: float) -> np.ndarray:
        return base_noise / self.price_sensitivity[users]


@dataclass(frozen=True)
class Catalog:
    products: tuple[Product, ...]
    category_index: np.ndarray
    unit_cost: np.ndarray
    list_price: np.ndarray

    @classmethod
    def of(cls, products: tuple[Product, ...]) -> Catalog:
        """A catalog of exactly ``products`` (their categories must be the market's)."""
        return cls(products, np.array([CATEGORIES.index(p.category) for p in products]),
                   np.array([p.unit_cost for p in products]), np.array([p.list_price for p in products]))


def make_catalog(rng: np.random.Generator, n: int) -> Catalog:
    """``n`` products: list prices log-normal around $35, markups per category, a few near cost."""
    categories = rng.integers(len(CATEGORIES), size=n)
    list_price = np.round(np.exp(rng.normal(math.log(35.0), 1.0, size=n)), 2) + 0.99
    median = np.array([CATEGORY_MARKUP[CATEGORIES[c]] for c in categories])
    markup = median * np.exp(rng.normal(0.0, 0.35, size=n))
    near_cost = rng.random(n) < NEAR_COST_SHARE
    markup = np.where(near_cost, rng.uniform(0.01, 0.04, size=n), markup)
    unit_cost = np.round(list_price / (1.0 + markup), 2)
    products = tuple(
        Product(f"sku-{i:05d}", unit_cost=float(unit_cost[i]), list_price=float(list_price[i]),
                category=CATEGORIES[categories[i]])
        for i in range(n)
    )
    return Catalog(products, categories, unit_cost, list_price)


def make_traits(rng: np.random.Generator, config: MarketConfig, n: int, *, returning: bool | None = None,
                value_shift: float = 0.0) -> Traits:
    """``n`` shoppers. ``returning`` forces every one new (False) or known (True); ``value_shift`` moves
    their log value scale (a wave of bargain hunters is negative)."""
    returning_flags = (rng.random(n) < config.returning_share) if returning is None else np.full(n, returning)
    value = np.exp(math.log(config.value_median) + value_shift + config.value_spread * rng.standard_normal(n))
    sensitivity = np.exp(config.sensitivity_spread * rng.standard_normal(n))
    log_taste = config.taste_spread * rng.standard_normal((n, len(CATEGORIES)))
    log_taste -= log_taste.mean(axis=1, keepdims=True)
    mobile = np.clip(config.mobile_share + 0.3 * rng.standard_normal(n), 0.05, 0.95)
    return Traits(value, sensitivity, np.exp(log_taste), mobile, returning_flags)


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


@dataclass
class Block:
    """A run of consecutive rounds and their truth; row ``i`` is one shopper facing one product.

    ``prices`` and ``expected_profit`` are per arm of the grid (the oracle's choices); the purchase
    probability of any other price comes from ``purchase_probability``.
    """

    start: int
    times: np.ndarray
    users: np.ndarray
    user_ids: list[str]
    products: np.ndarray
    context: np.ndarray
    """(rows, len(context_names)) observable context, in ``Market.context_names`` order."""
    log_willingness: np.ndarray
    noise_scale: np.ndarray
    uniform: np.ndarray
    prices: np.ndarray
    probabilities: np.ndarray
    expected_profit: np.ndarray
    unit_cost: np.ndarray
    log_list_price: np.ndarray

    def __len__(self) -> int:
        return int(self.users.size)

    def purchase_probability(self, rows: np.ndarray | int, price: np.ndarray | float) -> np.ndarray:
        """Exact probability that the shopper of ``rows`` buys at ``price``."""
        relative = np.log(np.asarray(price, dtype=float)) - self.log_list_price[rows]
        return sigmoid((self.log_willingness[rows] - relative) / self.noise_scale[rows])

    def purchased(self, rows: np.ndarray | int, price: np.ndarray | float) -> np.ndarray:
        """Whether the shopper of ``rows`` buys at ``price``: the same uniform decides for every policy."""
        return self.uniform[rows] < self.purchase_probability(rows, price)

    def oracle_arms(self) -> np.ndarray:
        return np.argmax(self.expected_profit, axis=1)

    def oracle_profit(self) -> np.ndarray:
        return self.expected_profit.max(axis=1)


Drift = Callable[[np.ndarray], np.ndarray]
"""Shift of the log willingness of everyone at the given Unix times (seasons, promotions)."""


def no_drift(times: np.ndarray) -> np.ndarray:
    return np.zeros_like(times)


@dataclass
class Market:
    """A seeded population and catalog that deals blocks of rounds in order.

    New shoppers can join (``add_users``): they have no history and arrive through ``arrivals``.
    """

    config: MarketConfig
    seed: int
    start_time: float = START_TIME
    seconds_per_round: float = 10.0
    drift: Drift = no_drift
    alphas: tuple[float, ...] = DEFAULT_ALPHAS
    context_names: tuple[str, ...] = DEFAULT_CONTEXT_FEATURES
    products: tuple[Product, ...] = ()
    """What the shop sells (empty: ``config.products`` generated ones). Shoppers still browse by taste:
    a round whose category the catalog lacks shows one of its products at random."""

    def __post_init__(self) -> None:
        self.catalog = Catalog.of(self.products) if self.products else \
            make_catalog(generator(self.seed, RandomStream.CATALOG), self.config.products)
        self.traits = make_traits(generator(self.seed, RandomStream.TRAITS), self.config, self.config.users)
        self._rng = generator(self.seed, RandomStream.ROUNDS)
        self._alphas = np.asarray(self.alphas, dtype=float)
        self._category_weights = self._category_choice_weights()
        self.rounds_dealt = 0

    # -- population ------------------------------------------------------------------------------
    @property
    def n_users(self) -> int:
        return int(self.traits.value_scale.size)

    def user_id(self, user: int) -> str:
        return f"u-{self.seed}-{user:07d}"

    def add_users(self, traits: Traits) -> np.ndarray:
        """Append new shoppers; returns their indices."""
        first = self.n_users
        self.traits = Traits(*(np.concatenate([old, new]) for old, new in
                               zip(_fields(self.traits), _fields(traits), strict=True)))
        self._category_weights = self._category_choice_weights()
        return np.arange(first, self.n_users)

    def _category_choice_weights(self) -> np.ndarray:
        """Shoppers browse the categories they like: weight taste**8, normalized per user."""
        weights = self.traits.taste ** 8
        return weights / weights.sum(axis=1, keepdims=True)

    # -- rounds ----------------------------------------------------------------------------------
    def deal(self, n: int, users: np.ndarray | None = None) -> Block:
        """The next ``n`` rounds. ``users`` picks who shops in each (default: uniform over everyone)."""
        rng, traits, catalog = self._rng, self.traits, self.catalog
        start = self.rounds_dealt
        times = self.start_time + self.seconds_per_round * (start + np.arange(n, dtype=float))
        who = rng.integers(self.n_users, size=n) if users is None else np.asarray(users)
        category = _sample_rows(rng, self._category_weights[who])
        products = _product_in_category(rng, catalog.category_index, category)
        context = self._context(rng, who, times)
        log_willingness = traits.log_value(who, catalog.category_index[products])
        for j, name in enumerate(self.context_names):
            log_willingness = log_willingness + CONTEXT_EFFECTS.get(name, 0.0) * context[:, j]
        hour = ((times % 86_400) / 3600.0)
        log_willingness += EVENING_EFFECT * np.cos(2 * np.pi * (hour - 21.0) / 24.0) + self.drift(times)
        noise = traits.noise_scale(who, self.config.base_noise)
        unit_cost, list_price = catalog.unit_cost[products], catalog.list_price[products]
        prices = unit_cost[:, None] + self._alphas[None, :] * (list_price - unit_cost)[:, None]
        log_list = np.log(list_price)
        probabilities = sigmoid((log_willingness[:, None] - (np.log(prices) - log_list[:, None]))
                                / noise[:, None])
        self.rounds_dealt += n
        return Block(
            start=start, times=times, users=who, user_ids=[self.user_id(u) for u in who.tolist()],
            products=products, context=context, log_willingness=log_willingness, noise_scale=noise,
            uniform=rng.random(n), prices=prices, probabilities=probabilities,
            expected_profit=probabilities * (prices - unit_cost[:, None]), unit_cost=unit_cost,
            log_list_price=log_list,
        )

    def _context(self, rng: np.random.Generator, users: np.ndarray, times: np.ndarray) -> np.ndarray:
        """What the checkout sees: device, whether the shopper is known, the hour, pages so far."""
        hour = (times % 86_400) / 3600.0
        values = {
            "is_mobile": (rng.random(users.size) < self.traits.mobile_propensity[users]).astype(float),
            "is_returning": self.traits.returning[users].astype(float),
            "hour_sin": np.sin(2 * np.pi * hour / 24.0),
            "hour_cos": np.cos(2 * np.pi * hour / 24.0),
            "session_depth": np.minimum(rng.geometric(0.3, size=users.size), 10) / 10.0,
        }
        return np.column_stack([values.get(name, np.zeros(users.size)) for name in self.context_names])

    def request_context(self, block: Block, row: int) -> dict[str, float]:
        return dict(zip(self.context_names, block.context[row].tolist(), strict=True))


def _fields(traits: Traits) -> tuple[np.ndarray, ...]:
    return (traits.value_scale, traits.price_sensitivity, traits.taste, traits.mobile_propensity,
            traits.returning)


def _sample_rows(rng: np.random.Generator, weights: np.ndarray) -> np.ndarray:
    """One index per row of ``weights`` (rows sum to 1), by inverse CDF."""
    cdf = np.cumsum(weights, axis=1)
    picks = (rng.random((weights.shape[0], 1)) * cdf[:, -1:] > cdf).sum(axis=1)
    return np.minimum(picks, weights.shape[1] - 1)


def _product_in_category(rng: np.random.Generator, product_category: np.ndarray,
                         category: np.ndarray) -> np.ndarray:
    """A uniform product of each requested category (any product if a category has none)."""
    order = np.argsort(product_category, kind="stable")
    counts = np.bincount(product_category, minlength=len(CATEGORIES))
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
    count = counts[category]
    empty = count == 0
    index = offsets[category] + (rng.random(category.size) * np.maximum(count, 1)).astype(int)
    chosen = order[np.minimum(index, order.size - 1)]
    return np.where(empty, rng.integers(product_category.size, size=category.size), chosen)
