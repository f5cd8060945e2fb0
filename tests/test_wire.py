"""The response's arms written as wire bytes (``server/wire.py``) are the messages built field by field,
down to the serialized byte; a page's response is its quotes' responses."""

from __future__ import annotations

import math

from builders import request
from learner import Pricer, Product
from learner.inventory import Stock
from learner.types import ArmView
from pricing.v1 import pricing_pb2
from server.servicer import batch_response, quote_response
from server.wire import arm_estimates, varint

VIEWS = [
    ArmView(0, 0.0, 0.0, False, 0.0, 0.0, 0.0),  # every field its default: left out again
    ArmView(5, 0.5, 70.25, True, 0.31, -3.5, 1.0),
    ArmView(200, -0.0, math.inf, True, math.nan, 1e-300, 0.25),  # a two-byte arm number
    ArmView(2**20, 1.0, 1e300, False, 1.0, -math.inf, 5e-324),
]


def test_arms_merged_as_wire_bytes_serialize_as_the_messages_built_field_by_field() -> None:
    merged = pricing_pb2.Explanation(policy="linucb", reference_price=70.0)
    merged.MergeFromString(arm_estimates(VIEWS))
    built = pricing_pb2.Explanation(policy="linucb", reference_price=70.0, arms=[
        pricing_pb2.ArmEstimate(**view._asdict()) for view in VIEWS])
    assert merged.SerializeToString() == built.SerializeToString()  # bytes: a NaN is not equal to itself
    assert [view.arm for view in merged.arms] == [view.arm for view in VIEWS]


def test_varints_are_protobufs() -> None:
    for value in (0, 1, 127, 128, 300, 2**32 - 1):
        assert pricing_pb2.ArmEstimate.FromString(b"\x08" + varint(value)).arm == value


def test_a_page_answers_each_quote_as_a_quote_alone() -> None:
    pricer = Pricer()
    requests = [request(f"q-{i}", product=Product(
        f"sku-{i}", unit_cost=40.0, list_price=100.0 + i, category="shoes",
        stock=Stock(units=3, sell_by=5000.0) if i % 2 else None), is_mobile=1.0, session_depth=2.0)
        for i in range(4)]
    decisions = pricer.quote_many(requests, now=1.0)
    page = batch_response(decisions)
    assert list(page.quotes) == [quote_response(d) for d in decisions]
    quote = page.quotes[1]
    assert quote.explanation.HasField("opportunity_cost") and not page.quotes[0].explanation.HasField(
        "opportunity_cost")
    assert [arm.price for arm in quote.explanation.arms] == [view.price for view in decisions[1].arms]
    assert quote.expires_at.ToNanoseconds() == int(decisions[1].expires_at * 1e9)
    assert [(i.name, i.effect) for i in quote.explanation.inputs] == list(decisions[1].input_effects)
