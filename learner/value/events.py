"""Behavior events: what a shopper did, checked at the boundary and encoded as one LSTM input step.

The encoding is the contract between training (Keras, whole sequences) and serving (numpy, one
event at a time): both call ``encode`` so a step means the same numbers in both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from learner.errors import InvalidInput
from learner.features import category_bucket
from learner.types import check_money

EVENT_TYPES: tuple[str, ...] = ("view", "add_to_cart", "purchase", "review")
CATEGORY_BUCKETS = 8
MAX_DWELL_SECONDS = 86_400.0
MAX_RATING = 5.0
INPUT_NAMES: tuple[str, ...] = (
    *(f"type.{name}" for name in EVENT_TYPES),
    "log_price", "log_unit_cost", "markup", "log_dwell", "rating", "has_rating", "purchased",
    "log_gap", *(f"category.{i}" for i in range(CATEGORY_BUCKETS)),
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
    x[_OFFSET + 8 + category_bucket(event.category, CATEGORY_BUCKETS)] = 1.0
    return x


def product_inputs(unit_cost: float, category: str) -> np.ndarray:
    """What the value head knows of the product being priced: its cost and category."""
    x = np.zeros(1 + CATEGORY_BUCKETS, dtype=np.float32)
    x[0] = math.log1p(unit_cost) / 5.0
    x[1 + category_bucket(category, CATEGORY_BUCKETS)] = 1.0
    return x


PRODUCT_DIM = 1 + CATEGORY_BUCKETS
