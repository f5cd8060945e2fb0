"""Fairness guardrails through a real gRPC server with real SQLite state, restarts included."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable

import grpc
import pytest

from builders import product
from conftest import DEADLINE, ServerHandle
from pricing.v1 import pricing_pb2
from server.decision_log import dsjson_lines

WINDOW = 3600.0


def metric(handle: ServerHandle, series: str) -> float:
    url = f"http://127.0.0.1:{handle.server.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=DEADLINE) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(series + " "):
                return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no series {series}")


def teach(handle: ServerHandle, rounds: int = 40) -> None:
    """Outcomes that make mobile shoppers buy and others not: their prices then differ."""
    for i in range(rounds):
        mobile = float(i % 2)
        quote = handle.quote(user_id=f"teacher-{i}", context={"is_mobile": mobile, "session_depth": 0.5})
        handle.reward(quote.quote_id, purchased=bool(mobile))


def test_a_user_asking_again_keeps_the_quote_then_the_price_across_a_restart(
        start_server: Callable[..., ServerHandle]) -> None:
    pricing = start_server(stable_price_seconds=WINDOW, policy="thompson")
    first = pricing.quote(user_id="alice", context={"is_mobile": 1.0})
    again = pricing.quote(user_id="alice", context={"is_mobile": 0.0})
    assert again == first  # the open quote itself: a reload shows the same price and quote id
    others = {pricing.quote(user_id=f"bob-{i}").quote_id for i in range(3)}
    assert first.quote_id not in others
    pricing.reward(first.quote_id, purchased=False)
    after_reward = pricing.quote(user_id="alice")
    assert after_reward.quote_id != first.quote_id and after_reward.price == first.price
    assert after_reward.explanation.stable_of == first.quote_id and after_reward.propensity == 1.0
    pricing.restart()
    after_restart = pricing.quote(user_id="alice")
    assert after_restart == after_reward
    own_id = pricing.quote(user_id="alice", quote_id="order-1")
    assert (own_id.quote_id, own_id.price) == ("order-1", first.price)
    batch = pricing.stub.QuoteBatch(pricing_pb2.QuoteBatchRequest(
        user_id="alice", products=[product(), product(product_id="sku-2")]), timeout=DEADLINE)
    assert batch.quotes[0] == own_id and batch.quotes[1].explanation.stable_of == ""
    repriced = pricing.quote(user_id="alice", product=product(list_price=120.0))
    assert repriced.explanation.stable_of == "" and repriced.quote_id != first.quote_id
    assert metric(pricing, 'pricebandit_quotes_stable_total{kind="same_quote"}') >= 2


def test_the_stable_window_ends(start_server: Callable[..., ServerHandle]) -> None:
    pricing = start_server(stable_price_seconds=0.3)
    first = pricing.quote(user_id="carol")
    time.sleep(0.4)
    assert pricing.quote(user_id="carol").quote_id != first.quote_id
    without = start_server()
    assert without.quote(user_id="dave").quote_id != without.quote(user_id="dave").quote_id


def test_every_quote_and_batch_stays_in_the_band_and_says_so(
        start_server: Callable[..., ServerHandle]) -> None:
    open_server = start_server()
    banded = start_server(spread_limit=0.05)
    for handle in (open_server, banded):
        teach(handle)
    contexts = [{"is_mobile": m, "session_depth": d} for m in (0.0, 1.0) for d in (0.0, 1.0)]
    prices = [product(product_id=f"sku-{i}", list_price=60.0 + 20 * i, floor_price=40.0 + i)
              for i in range(4)]
    for i, context in enumerate(contexts):
        quotes = [banded.quote(user_id=f"s-{i}", context=context)]
        quotes += banded.stub.QuoteBatch(pricing_pb2.QuoteBatchRequest(
            user_id=f"s-{i}", products=prices, context=context), timeout=DEADLINE).quotes
        quotes += [banded.quote(user_id=f"t-{i}", context=context, spread_limit=0.0)]
        for quote in quotes:
            explanation = quote.explanation
            assert explanation.HasField("spread_limit") and explanation.reference_price > 0
            limit = explanation.spread_limit
            assert limit in (0.0, 0.05)
            reference = explanation.reference_price
            assert reference * (1 - limit) - 1e-9 <= quote.price <= reference * (1 + limit) + 1e-9
            assert explanation.personalized == (abs(quote.price - reference) > 1e-9 * reference)
            assert explanation.price_change == pytest.approx(
                quote.price / reference - 1 if explanation.personalized else 0.0)
            assert sum(arm.probability for arm in explanation.arms if arm.allowed) == pytest.approx(1.0)
    assert metric(banded, "pricebandit_quotes_spread_bound_total") > 0
    assert metric(banded, 'pricebandit_price_to_reference_ratio_count{price_band="10-100"}') > 0
    neutral = open_server.quote(user_id="nobody", context={})
    assert not neutral.explanation.personalized and not neutral.explanation.HasField("spread_limit")
    shopper = open_server.quote(user_id="somebody", context={"is_mobile": 1.0})
    assert shopper.explanation.inputs[0].name == "context.is_mobile"


def test_a_protected_input_changes_no_price_and_is_logged(start_server: Callable[..., ServerHandle]) -> None:
    pricing = start_server(protected_features=("age",), value_model="none")
    teach(pricing)
    young = pricing.quote(user_id="p", quote_id="age-20", context={"is_mobile": 1.0, "age": 20.0})
    old = pricing.quote(user_id="p", quote_id="age-70", context={"is_mobile": 1.0, "age": 70.0})
    assert (young.price, young.arm, young.explanation.arms) == (old.price, old.arm, old.explanation.arms)
    assert [i.name for i in young.explanation.inputs] == ["context.is_mobile"]
    pricing.reward(young.quote_id, purchased=True)
    line = json.loads(list(dsjson_lines(pricing.server.service.store))[-1])
    assert line["_protected"] == {"age": 20.0}
    assert metric(pricing, 'pricebandit_context_protected_total{feature="age"}') == 2


def test_unknown_context_is_ignored_and_counted_unless_strict(
        start_server: Callable[..., ServerHandle]) -> None:
    lenient = start_server()
    plain = lenient.quote(user_id="u", quote_id="plain")
    extra = lenient.quote(user_id="u", quote_id="extra", context={"is_mobile": 1.0, "shoe_size": 42.0})
    assert list(extra.explanation.ignored_context) == ["shoe_size"] and extra.price == plain.price
    for i in range(20):
        lenient.quote(user_id="u", context={f"new_field_{i}": 1.0})
    assert metric(lenient, 'pricebandit_context_ignored_total{feature="shoe_size"}') == 1
    assert metric(lenient, 'pricebandit_context_ignored_total{feature="other"}') == 5
    strict = start_server(unknown_context="refuse")
    with pytest.raises(grpc.RpcError) as error:
        strict.quote(context={"shoe_size": 42.0})
    assert error.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert error.value.details().startswith('context["shoe_size"]: unknown context feature; known names:')
