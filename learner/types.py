"""The dataclasses that cross the learner's boundary: what is priced, and what was decided."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from functools import partial
from typing import Any, NamedTuple

from learner.errors import InvalidInput
from learner.inventory import Stock
from learner.primitives import check_money
from learner.value.events import BehaviorEvent

ONLINE, SHADOW = "online", "shadow"
MODES = (ONLINE, SHADOW)
"""What a server answers: its policy's price (online), or the shop's incumbent price while the policy's
choice is logged and the incumbent's outcomes learned (shadow)."""


@dataclass(frozen=True)
class Product:
    """A product as the shop describes it. Money in the product's currency, major units."""

    product_id: str
    unit_cost: float
    list_price: float
    category: str = ""
    floor_price: float | None = None
    ceiling_price: float | None = None
    currency: str = "USD"
    stock: Stock | None = None
    """Stock to sell by a time (None: supply is unlimited, priced for margin alone)."""

    def __post_init__(self) -> None:
        if not self.product_id:
            raise InvalidInput("product.product_id", "must not be empty")
        check_money("product.unit_cost", self.unit_cost)
        check_money("product.list_price", self.list_price)
        if self.list_price < self.unit_cost:
            raise InvalidInput(
                "product.list_price",
                f"{self.list_price} is below product.unit_cost {self.unit_cost}; "
                "a list price must cover the cost",
            )
        if self.floor_price is not None:
            check_money("product.floor_price", self.floor_price)
        if self.ceiling_price is not None:
            check_money("product.ceiling_price", self.ceiling_price)
        below_cost = self.ceiling_price is not None and self.unit_cost > self.ceiling_price
        if below_cost and self.floor_price is None:
            raise InvalidInput(
                "product.ceiling_price",
                f"{self.ceiling_price} is below product.unit_cost {self.unit_cost}, the default floor; "
                "set product.floor_price to allow a price below cost",
            )
        if self.ceiling_price is not None and self.floor > self.ceiling_price:
            raise InvalidInput(
                "product.floor_price",
                f"{self.floor} is above product.ceiling_price {self.ceiling_price}",
            )

    @property
    def floor(self) -> float:
        """The lowest price allowed: the floor if set, else the unit cost."""
        return self.unit_cost if self.floor_price is None else self.floor_price

    @property
    def ceiling(self) -> float:
        """The highest price allowed: the ceiling if set, else unbounded."""
        return math.inf if self.ceiling_price is None else self.ceiling_price


@dataclass(frozen=True)
class QuoteRequest:
    """One pricing question: this user, this product, in this context.

    ``recent_events`` are this user's behavior not yet observed, applied before pricing.
    ``spread_limit`` tightens the deployment's spread limit for this quote (never loosens it).
    """

    user_id: str
    product: Product
    quote_id: str
    context: Mapping[str, float] = field(default_factory=dict)
    recent_events: tuple[BehaviorEvent, ...] = ()
    spread_limit: float | None = None
    incumbent_price: float | None = None
    """The shop's own price (its incumbent rule), which a shadow quote answers (``Pricer.quote``)."""

    def __post_init__(self) -> None:
        if not self.user_id:
            raise InvalidInput("user_id", "must not be empty")
        if not self.quote_id:
            raise InvalidInput("quote_id", "must not be empty")
        for i, event in enumerate(self.recent_events):
            if event.user_id != self.user_id:
                raise InvalidInput(f"recent_events[{i}].user_id",
                                   f"{event.user_id!r} is not the quoted user {self.user_id!r}")
        if self.incumbent_price is not None:
            check_money("incumbent_price", self.incumbent_price)
            if self.incumbent_price <= 0:  # the demand model learns it at log(price / list price)
                raise InvalidInput("incumbent_price", f"{self.incumbent_price} must be above 0")


class ArmView(NamedTuple):
    """What the learner thought of one arm when it decided (a tuple: built 11 times per quote)."""

    arm: int
    alpha: float
    price: float
    allowed: bool
    purchase_probability: float
    expected_profit: float
    probability: float


arm_view = partial(tuple.__new__, ArmView)
"""``ArmView._make`` without its length check, for rows zipped from its 7 columns (11 per quote)."""


@dataclass(frozen=True)
class Decision:
    """A priced quote with everything needed to learn from its outcome and to replay it.

    ``features`` is the exact context vector the policy saw; ``propensity`` the probability with
    which the chosen arm was drawn. Times are Unix seconds. ``value_source`` says where
    ``user_value`` came from, and ``value_model_version`` which value model computed it (if one did).

    The disclosure: ``reference_price`` is what a shopper with no history and neutral context would
    be quoted now; ``spread_limit`` the band applied (None: none) and ``spread_bound`` whether it
    masked an arm the floor and ceiling allowed; ``input_effects`` how much each input moved the
    purchase logit at the quoted price away from the neutral shopper's, largest first; ``stable_of``
    the earlier quote whose price this one repeats. ``protected_context`` holds the inputs that were
    logged but may not price, ``ignored_context`` the unknown names that were ignored.

    A product quoted with stock keeps it here (``stock_units`` 0: none): the units left, the sell-by
    time and salvage value it was quoted with, ``opportunity_cost``, the ``λ`` its arms were weighed
    against, and ``sell_through_target``, the pace aimed at (``learner.inventory``); its outcome
    teaches the stock's pace from exactly these.

    A shadow quote (``mode == "shadow"``) answered the shop's incumbent price: ``price`` is that
    price, ``arm`` the grid arm nearest it (what a per-arm model learns it as), ``propensity`` 1
    (the incumbent's rule is deterministic as far as the log knows); what the policy would have
    done is ``proposed_arm``, ``proposed_price``, ``proposed_propensity`` and ``arms`` (its
    distribution), and ``incumbent_estimate`` its purchase probability at the incumbent's price.
    """

    quote_id: str
    user_id: str
    product_id: str
    category: str
    currency: str
    unit_cost: float
    list_price: float
    arm: int
    alpha: float
    price: float
    user_value: float
    propensity: float
    explored: bool
    deterministic: bool
    guardrail_bound: bool
    policy: str
    model_version: str
    value_source: str
    features: tuple[float, ...]
    feature_names: tuple[str, ...]
    arms: tuple[ArmView, ...]
    created_at: float
    expires_at: float
    request_fingerprint: str
    value_model_version: str = ""
    reference_price: float = 0.0
    spread_limit: float | None = None
    spread_bound: bool = False
    input_effects: tuple[tuple[str, float], ...] = ()
    stable_of: str = ""
    protected_context: Mapping[str, float] = field(default_factory=dict)
    ignored_context: tuple[str, ...] = ()
    stock_units: int = 0
    sell_by: float = 0.0
    salvage: float = 0.0
    opportunity_cost: float = 0.0
    sell_through_target: float | None = None
    mode: str = ONLINE
    proposed_arm: int = -1
    proposed_price: float = 0.0
    proposed_propensity: float = 0.0
    incumbent_estimate: float = 0.0

    @property
    def shadow(self) -> bool:
        """Whether this quote answered the incumbent's price, the policy's choice only logged."""
        return self.mode == SHADOW

    @property
    def margin(self) -> float:
        """Profit made if the shopper buys: price minus unit cost (negative below cost)."""
        return self.price - self.unit_cost

    @property
    def price_change(self) -> float:
        """``price / reference_price - 1``: how far personalization moved this price (0: not at all)."""
        return self.price / self.reference_price - 1.0 if self.reference_price > 0 else 0.0

    @property
    def value_factor(self) -> float:
        """``user_value`` over the list margin: how much the shopper's behavior scaled V (1: not)."""
        margin = self.list_price - self.unit_cost
        return self.user_value / margin if margin > 0 else 1.0

    @property
    def personalized(self) -> bool:
        """Whether the price differs from the reference (by more than rounding)."""
        return abs(self.price - self.reference_price) > 1e-9 * max(1.0, self.reference_price)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (arms as rows of ArmView's fields); ``from_dict`` restores an equal one.

        Written by hand, not with ``dataclasses.asdict``: this runs on every quote, and asdict's
        deep copy costs more than the whole pricing decision.
        """
        data = {name: getattr(self, name) for name in _PLAIN_FIELDS}
        data["arms"] = [list(view) for view in self.arms]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Decision:
        values = dict(data)
        values["features"] = tuple(map(float, values["features"]))
        values["feature_names"] = tuple(values["feature_names"])
        values["arms"] = tuple(map(ArmView._make, values["arms"]))
        values["input_effects"] = tuple((name, float(effect))
                                        for name, effect in values.get("input_effects", ()))
        values["ignored_context"] = tuple(values.get("ignored_context", ()))
        return cls(**values)


_PLAIN_FIELDS = tuple(spec.name for spec in fields(Decision) if spec.name != "arms")
