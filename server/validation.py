"""Wire messages to learner dataclasses, refusing bad fields with the field's name.

Every check that needs only the request lives here or in the learner's dataclasses; the message of
each InvalidInput starts with the field path as the caller spells it (``products[2].unit_cost``).
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Callable, Mapping

from google.protobuf.timestamp_pb2 import Timestamp

from learner import FeatureBuilder, InvalidInput, Product, QuoteRequest
from learner.arms import check_spread_limit
from learner.inventory import Stock
from learner.value import TRACKED_EVENT_TYPES, BehaviorEvent
from pricing.v1 import pricing_pb2

MAX_ID_LENGTH = 256
MAX_CATEGORY_LENGTH = 128
QUOTE_ID_PATTERN = re.compile(r"[A-Za-z0-9._:-]{1,128}")
REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9._:-]{1,120}")
CURRENCY_PATTERN = re.compile(r"[A-Z]{3}")
MAX_RECENT_EVENTS = 100
TIMESTAMP_SECONDS = (-62135596800, 253402300799)
"""The range google.protobuf.Timestamp allows: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z."""
EVENT_TYPES = {pricing_pb2.BehaviorEvent.EventType.Value(name.upper()): name for name in TRACKED_EVENT_TYPES}


def check_text(field: str, value: str, *, max_length: int, required: bool) -> str:
    if not value:
        if required:
            raise InvalidInput(field, "must not be empty")
        return value
    if len(value) > max_length:
        raise InvalidInput(field, f"is {len(value)} characters long; at most {max_length}")
    if not value.isprintable():
        raise InvalidInput(field, "must not contain control characters")
    return value


def check_pattern(field: str, value: str, pattern: re.Pattern[str], description: str) -> str:
    if not pattern.fullmatch(value):
        shown = value if len(value) <= 40 else value[:40] + "..."
        raise InvalidInput(field, f"{shown!r} is not {description}")
    return value


def new_quote_id() -> str:
    return f"q-{uuid.uuid4().hex}"


class RequestReader:
    """Turns pricing.v1 requests into learner requests for one feature schema and currency.

    User ids leave here as ``pseudonym(user_id)``: nothing behind the reader sees a raw id.
    """

    def __init__(self, features: FeatureBuilder, default_currency: str, max_batch: int,
                 pseudonym: Callable[[str], str]) -> None:
        self.features = features
        self.default_currency = default_currency
        self.max_batch = max_batch
        self.pseudonym = pseudonym

    def product(self, message: pricing_pb2.Product, field: str) -> Product:
        """The product of ``message``; a refusal names its field under ``field`` (``products[2]``),
        renamed from ``product.<name>`` only when one fails (a page's 50 products build no names)."""
        try:
            return Product(
                product_id=check_text("product.product_id", message.product_id,
                                      max_length=MAX_ID_LENGTH, required=True),
                category=check_text("product.category", message.category,
                                    max_length=MAX_CATEGORY_LENGTH, required=False),
                unit_cost=message.unit_cost,
                list_price=message.list_price,
                floor_price=message.floor_price if message.HasField("floor_price") else None,
                ceiling_price=message.ceiling_price if message.HasField("ceiling_price") else None,
                currency=check_pattern("product.currency", message.currency,
                                       CURRENCY_PATTERN, "an ISO 4217 code like 'EUR'")
                if message.currency else self.default_currency,
                stock=stock(message.stock) if message.HasField("stock") else None,
            )
        except InvalidInput as exc:
            if exc.field.startswith("product.") and field != "product":
                raise InvalidInput(field + exc.field[len("product"):], exc.problem) from None
            raise

    def context(self, context: Mapping[str, float]) -> dict[str, float]:
        values = dict(context)
        self.features.validate_context(values)
        return values

    def user_id(self, user_id: str) -> str:
        return self.pseudonym(check_text("user_id", user_id, max_length=MAX_ID_LENGTH, required=True))

    def event(self, message: pricing_pb2.BehaviorEvent, field: str, default_user: str = "") -> BehaviorEvent:
        """A wire event of its user, or of ``default_user`` (the raw id) when it names none."""
        try:
            return _event_of(message, self.user_id(message.user_id or default_user))
        except InvalidInput as exc:
            raise InvalidInput(f"{field}.{exc.field}" if field else exc.field, exc.problem) from None

    def quote(self, request: pricing_pb2.QuoteRequest) -> QuoteRequest:
        user_id = self.user_id(request.user_id)
        if not request.HasField("product"):
            raise InvalidInput("product", "is required")
        quote_id = (check_pattern("quote_id", request.quote_id, QUOTE_ID_PATTERN,
                                  "1..128 characters from [A-Za-z0-9._:-]")
                    if request.quote_id else new_quote_id())
        if len(request.recent_events) > MAX_RECENT_EVENTS:
            raise InvalidInput("recent_events", f"{len(request.recent_events)} events; at most "
                                                f"{MAX_RECENT_EVENTS} (send more through Observe)")
        events = tuple(self.event(message, f"recent_events[{i}]", default_user=request.user_id)
                       for i, message in enumerate(request.recent_events))
        for i, message in enumerate(request.recent_events):  # checked on raw ids, to name them
            if message.user_id and message.user_id != request.user_id:
                raise InvalidInput(f"recent_events[{i}].user_id",
                                   f"{message.user_id!r} is not the quoted user {request.user_id!r}")
        return QuoteRequest(user_id=user_id, product=self.product(request.product, "product"),
                            quote_id=quote_id, context=self.context(request.context), recent_events=events,
                            spread_limit=spread_limit(request),
                            incumbent_price=(request.incumbent_price if request.HasField("incumbent_price")
                                             else None))

    def batch(self, request: pricing_pb2.QuoteBatchRequest) -> list[QuoteRequest]:
        user_id = self.user_id(request.user_id)
        count = len(request.products)
        if not 1 <= count <= self.max_batch:
            raise InvalidInput("products", f"{count} products; send 1 to {self.max_batch} per batch")
        prefix = (check_pattern("request_id", request.request_id, REQUEST_ID_PATTERN,
                                "1..120 characters from [A-Za-z0-9._:-]")
                  if request.request_id else new_quote_id())
        context = self.context(request.context)
        limit = spread_limit(request)
        incumbents = list(request.incumbent_prices)
        if incumbents and len(incumbents) != count:
            raise InvalidInput("incumbent_prices", f"{len(incumbents)} prices for {count} products; send one "
                                                   "per product, in product order, or none")
        for i, price in enumerate(incumbents):
            if not (math.isfinite(price) and price > 0):
                raise InvalidInput(f"incumbent_prices[{i}]", f"{price} must be a finite price above 0")
        return [
            QuoteRequest(user_id=user_id, product=self.product(product, f"products[{i}]"),
                         quote_id=f"{prefix}:{i}", context=context, spread_limit=limit,
                         incumbent_price=incumbents[i] if incumbents else None)
            for i, product in enumerate(request.products)
        ]

    @staticmethod
    def reward(request: pricing_pb2.RewardRequest) -> str:
        return check_pattern("quote_id", check_text("quote_id", request.quote_id,
                                                    max_length=128, required=True),
                             QUOTE_ID_PATTERN, "a quote id issued by this service")


def spread_limit(request: pricing_pb2.QuoteRequest | pricing_pb2.QuoteBatchRequest) -> float | None:
    """The request's own spread limit, or None when it sets none."""
    if not request.HasField("spread_limit"):
        return None
    return check_spread_limit("spread_limit", request.spread_limit)


def stock(message: pricing_pb2.Stock) -> Stock:
    """A product's stock; InvalidInput names the field as ``product.stock.<field>``."""
    if not message.HasField("sell_by"):
        raise InvalidInput("product.stock.sell_by", "is required")
    try:
        sell_by = timestamp_seconds(message.sell_by)
    except InvalidInput as exc:
        raise InvalidInput("product.stock.sell_by", exc.problem) from None
    return Stock(units=message.units, sell_by=sell_by, salvage=message.salvage)


def timestamp_seconds(stamp: Timestamp) -> float:
    """Seconds since 1970 of a Timestamp inside its documented range; InvalidInput otherwise."""
    low, high = TIMESTAMP_SECONDS
    if not (low <= stamp.seconds <= high and 0 <= stamp.nanos <= 999_999_999):
        raise InvalidInput("timestamp", f"seconds {stamp.seconds}, nanos {stamp.nanos} is not a valid "
                                        f"Timestamp (seconds {low}..{high}, i.e. years 1 to 9999; "
                                        "nanos 0..999999999)")
    return (stamp.seconds * 1_000_000_000 + stamp.nanos) / 1e9


def _event_of(message: pricing_pb2.BehaviorEvent, user_id: str) -> BehaviorEvent:
    """A wire event as a learner event of ``user_id``; InvalidInput names the field in the event."""
    if not message.HasField("timestamp"):
        raise InvalidInput("timestamp", "is required")
    if message.event_type not in EVENT_TYPES:
        raise InvalidInput("event_type", f"{message.event_type} is not a known event type "
                                         f"({', '.join(name.upper() for name in TRACKED_EVENT_TYPES)})")
    return BehaviorEvent(
        user_id=user_id,
        timestamp=timestamp_seconds(message.timestamp),
        event_type=EVENT_TYPES[message.event_type],
        product_id=check_text("product_id", message.product_id, max_length=MAX_ID_LENGTH,
                              required=False),
        category=check_text("category", message.category, max_length=MAX_CATEGORY_LENGTH,
                            required=False),
        price=message.price, unit_cost=message.unit_cost, dwell_seconds=message.dwell_seconds,
        rating=message.rating, purchased=message.purchased, list_price=message.list_price,
    )
