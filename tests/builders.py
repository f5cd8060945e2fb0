"""Request builders shared by the tests: a valid request, changed only where a test says."""

from __future__ import annotations

import time

from google.protobuf.timestamp_pb2 import Timestamp

from learner import Product, QuoteRequest
from pricing.v1 import pricing_pb2


def request(quote_id: str = "q-1", *, user_id: str = "user-1", product: Product | None = None,
            **context: float) -> QuoteRequest:
    """A learner QuoteRequest for the default product, with the given context values."""
    return QuoteRequest(user_id=user_id, quote_id=quote_id, context=context,
                        product=product or Product("sku-1", unit_cost=40.0, list_price=100.0,
                                                   category="shoes"))


def product(**fields: object) -> pricing_pb2.Product:
    values: dict[str, object] = {"product_id": "sku-1", "category": "shoes", "unit_cost": 40.0,
                                 "list_price": 100.0, "currency": "EUR"}
    values.update(fields)
    return pricing_pb2.Product(**values)  # type: ignore[arg-type]


def quote_request(**fields: object) -> pricing_pb2.QuoteRequest:
    values: dict[str, object] = {"user_id": "user-1", "product": product(),
                                 "context": {"is_mobile": 1.0}}
    values.update(fields)
    return pricing_pb2.QuoteRequest(**values)  # type: ignore[arg-type]


def behavior(seconds_ago: float, kind: int = pricing_pb2.BehaviorEvent.VIEW, user_id: str = "shopper",
             **fields: object) -> pricing_pb2.BehaviorEvent:
    """A wire behavior event ``seconds_ago`` before now: a view of an amplifier unless told."""
    stamp = Timestamp()
    stamp.FromNanoseconds(int((time.time() - seconds_ago) * 1e9))
    values: dict[str, object] = {"category": "audio", "price": 300.0, "unit_cost": 250.0,
                                 "list_price": 300.0, "dwell_seconds": 240.0, "product_id": "amp-1"}
    values.update(fields)
    return pricing_pb2.BehaviorEvent(user_id=user_id, timestamp=stamp, event_type=kind, **values)  # type: ignore[arg-type]
