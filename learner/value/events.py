"""Behavior events: what a shopper did, checked at the boundary and encoded as one LSTM input step.

The encoding is the contract between training (Keras, whole sequences) and serving (numpy, one
event at a time): both call ``encode`` so a step means the same numbers in both.

Willingness to pay is read relative to the list price (a shopper who buys at 95% of list is worth
more than one who waits for a 20% discount, whatever the product costs), so an event carries the
product's ``list_price`` when the tracker knows it (0: unknown). A ``quote`` is a price offered to
the shopper (by this service: bought or not, ``purchased`` says) rather than one the shop showed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from learner.errors import InvalidInput
from learner.primitives import category_bucket, check_money, log_price_ratio

TRACKED_EVENT_TYPES: tuple[str, ...] = ("view", "add_to_cart", "purchase", "review")
"""What a site's tracker reports: the one list of them. The wire's ``BehaviorEvent.EventType`` names
each upper-cased (a test holds the two equal); the simulator's histories use exactly these."""
EVENT_TYPES: tuple[str, ...] = (*TRACKED_EVENT_TYPES, "quote")
"""Every kind the value model reads, in its input order: the tracked ones, then this service's quotes."""
OFFER_TYPES: frozenset[str] = frozenset({"view", "quote"})
"""Events that offer the shopper a price, so their outcome (bought or not) is an example of demand."""
CATEGORY_BUCKETS = 8
MAX_DWELL_SECONDS = 86_400.0
MAX_RATING = 5.0
INPUT_NAMES: tuple[str, ...] = (
    *(f"type.{name}" for name in EVENT_TYPES),
    "log_price", "log_unit_cost", "markup", "log_dwell", "rating", "has_rating", "purchased",
    "log_gap", "log_price_to_list", "list_markup", "has_list_price",
    *(f"category.{i}" for i in range(CATEGORY_BUCKETS)),
)
INPUT_DIM = len(INPUT_NAMES)
_TYPE_INDEX = {name: i for i, name in enumerate(EVENT_TYPES)}
_OFFSET = len(EVENT_TYPES)


@dataclass(frozen=True)
class BehaviorEvent:
    """One thing a shopper did. Money in major units; ``rating`` 0 means none (reviews: 1..5)."""

    user_id: str
    timestamp: float
    event_type: str
    product_id: str = ""
    category: str = ""
    price: float = 0.0
    unit_cost: float = 0.0
    dwell_seconds: float = 0.0
    rating: float = 0.0
    purchased: bool = False
    list_price: float = 0.0

    def __post_init__(self) -> None:
        if not self.user_id:
            raise InvalidInput("user_id", "must not be empty")
        if self.event_type not in _TYPE_INDEX:
            raise InvalidInput("event_type", f"{self.event_type!r} is not one of {', '.join(EVENT_TYPES)}")
        if not isinstance(self.timestamp, (int, float)) or not math.isfinite(self.timestamp) \
                or self.timestamp <= 0:
            raise InvalidInput("timestamp", f"{self.timestamp} must be a finite time after 1970")
        check_money("price", self.price)
        check_money("unit_cost", self.unit_cost)
        check_money("list_price", self.list_price)
        _check_range("dwell_seconds", self.dwell_seconds, MAX_DWELL_SECONDS)
        _check_range("rating", self.rating, MAX_RATING)


def _check_range(field: str, value: float, largest: float) -> None:
    if not isinstance(value, (int, float)) or not math.isfinite(value) or not 0 <= value <= largest:
        raise InvalidInput(field, f"{value} must be finite, between 0 and {largest:g}")


def encode(event: BehaviorEvent, previous_timestamp: float | None) -> np.ndarray:
    """The LSTM input for ``event``; ``previous_timestamp`` is the user's last event (None: first).

    Every step has exactly one event-type slot set, so no real step is all zeros: the zero vector is
    free to mean padding (Keras ``Masking(0.0)``).
    """
    x = np.zeros(INPUT_DIM, dtype=np.float32)
    x[_TYPE_INDEX[event.event_type]] = 1.0
    price, cost = event.price, event.unit_cost
    gap = 0.0 if previous_timestamp is None else max(0.0, event.timestamp - previous_timestamp)
    x[_OFFSET:_OFFSET + 8] = (
        math.log1p(price) / 5.0,
        math.log1p(cost) / 5.0,
        (price - cost) / max(price, cost) if price > 0 else 0.0,  # in [-1, 1], even far below cost
        math.log1p(event.dwell_seconds) / 5.0,
        event.rating / MAX_RATING,
        1.0 if event.rating > 0 else 0.0,
        1.0 if event.purchased or event.event_type == "purchase" else 0.0,
        math.log1p(gap) / 10.0,
    )
    if event.list_price > 0:
        x[_OFFSET + 8:_OFFSET + 11] = (offer_ratio(price, event.list_price) if price > 0 else 0.0,
                                      list_markup(event.list_price, cost), 1.0)
    x[_OFFSET + 11 + category_bucket(event.category, CATEGORY_BUCKETS)] = 1.0
    return x


def offer_ratio(price: float, list_price: float) -> float:
    """The offered price relative to list, as the bandit's demand model reads it (``log_price_ratio``)."""
    return float(log_price_ratio(price, list_price))


def list_markup(list_price: float, unit_cost: float) -> float:
    """The list margin as a share of the list price, in [-1, 1] (0 for a list price of 0)."""
    return (list_price - unit_cost) / max(list_price, unit_cost) if list_price > 0 else 0.0


def product_inputs(unit_cost: float, category: str, list_price: float) -> np.ndarray:
    """What the value head knows of the product being priced: its cost, list price and category."""
    x = np.zeros(PRODUCT_DIM, dtype=np.float32)
    x[0] = math.log1p(unit_cost) / 5.0
    x[1] = math.log1p(list_price) / 5.0
    x[2] = list_markup(list_price, unit_cost)
    x[3 + category_bucket(category, CATEGORY_BUCKETS)] = 1.0
    return x


PRODUCT_DIM = 3 + CATEGORY_BUCKETS
