"""Property-based hostile input over every RPC field, through one real server.

Whatever a client sends, it gets OK or a documented status whose message starts with the field at
fault; the server stays up, no learner parameter becomes non-finite, and the decision log stays
readable.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from conftest import DEADLINE, ServerHandle, make_config
from learner import DEFAULT_CONTEXT_FEATURES
from pricing.v1 import pricing_pb2
from server.decision_log import dsjson_lines

FIELD = re.compile(
    r'^(user_id|quote_id|request_id|products|product|context)'
    r'(\[\d+\])?(\.(product_id|category|unit_cost|list_price|floor_price|ceiling_price|currency))?'
    r'(\["(?:[^"\\]|\\.)*"\])?: \S'
)
SETTINGS = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

texts = st.one_of(st.text(max_size=40), st.sampled_from(["", " ", "x" * 257, "ü" * 300, "a\x00b", "\n",
                                                        "sku-1", "user-1", "EUR", "q-1"]))
valid_ids = st.from_regex(r"[A-Za-z0-9._:-]{1,24}", fullmatch=True)
ids = st.one_of(valid_ids, valid_ids, valid_ids, texts)
optional_ids = st.one_of(st.just(""), st.just(""), valid_ids, texts)
numbers = st.one_of(
    st.floats(0, 1e4),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1.0, 40.0, 100.0, -1.0, 1e-300, 1e12, 1e13, 1e300]),
)
names = st.sampled_from(DEFAULT_CONTEXT_FEATURES)
contexts = st.one_of(st.dictionaries(names, numbers, max_size=5),
                     st.dictionaries(st.one_of(names, st.text(max_size=12)), numbers, max_size=70))


@st.composite
def products(draw: st.DrawFn) -> pricing_pb2.Product:
    message = pricing_pb2.Product(product_id=draw(ids), category=draw(st.one_of(valid_ids, texts)),
                                  unit_cost=draw(numbers), list_price=draw(numbers),
                                  currency=draw(st.one_of(st.sampled_from(["", "EUR"]), texts)))
    if draw(st.booleans()):
        message.floor_price = draw(numbers)
    if draw(st.booleans()):
        message.ceiling_price = draw(numbers)
    return message


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    handle = ServerHandle(make_config(Path(tmp_path_factory.mktemp("hostile")), reward_window_seconds=0.5))
    yield handle
    healthy = health_pb2_grpc.HealthStub(handle.channel).Check(health_pb2.HealthCheckRequest(),
                                                                timeout=DEADLINE)
    assert healthy.status == health_pb2.HealthCheckResponse.SERVING
    for name, value in handle.server.service.pricer.policy.state().items():
        assert np.all(np.isfinite(value)), name
    for line in dsjson_lines(handle.server.service.store):
        assert json.loads(line)["EventId"]
    handle.stop()


def check_refusal(error: grpc.RpcError) -> None:
    event(f"refused: {error.details().split(':')[0][:20]}")
    assert error.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.ALREADY_EXISTS), error
    assert FIELD.match(error.details()), error.details()


def check_quote(quote: pricing_pb2.QuoteResponse, product: pricing_pb2.Product) -> None:
    floor = product.floor_price if product.HasField("floor_price") else product.unit_cost
    ceiling = product.ceiling_price if product.HasField("ceiling_price") else math.inf
    event("priced")
    assert math.isfinite(quote.price) and floor <= quote.price <= ceiling
    assert 0.0 < quote.propensity <= 1.0


@SETTINGS
@given(user_id=ids, product=products(), context=contexts, quote_id=optional_ids)
def test_any_quote_request_is_priced_or_refused_naming_the_field(
    server: ServerHandle, user_id: str, product: pricing_pb2.Product, context: dict[str, float],
    quote_id: str,
) -> None:
    request = pricing_pb2.QuoteRequest(user_id=user_id, product=product, context=context,
                                       quote_id=quote_id)
    try:
        check_quote(server.stub.Quote(request, timeout=DEADLINE), product)
    except grpc.RpcError as error:
        check_refusal(error)


@SETTINGS
@given(user_id=ids, items=st.lists(products(), max_size=55), context=contexts, request_id=optional_ids)
def test_any_batch_is_priced_whole_or_refused_naming_the_field(
    server: ServerHandle, user_id: str, items: list[pricing_pb2.Product], context: dict[str, float],
    request_id: str,
) -> None:
    request = pricing_pb2.QuoteBatchRequest(user_id=user_id, products=items, context=context,
                                            request_id=request_id)
    try:
        response = server.stub.QuoteBatch(request, timeout=DEADLINE)
    except grpc.RpcError as error:
        check_refusal(error)
        return
    assert len(response.quotes) == len(items)
    for quote, product in zip(response.quotes, items, strict=True):
        check_quote(quote, product)


@SETTINGS
@given(quote_id=ids, purchased=st.booleans(), twice=st.booleans())
def test_any_reward_is_answered_with_a_documented_status(
    server: ServerHandle, quote_id: str, purchased: bool, twice: bool
) -> None:
    for _ in range(2 if twice else 1):
        try:
            answer = server.reward(quote_id, purchased)
            assert answer.status in (pricing_pb2.RewardResponse.LEARNED,
                                     pricing_pb2.RewardResponse.DUPLICATE, pricing_pb2.RewardResponse.LATE)
        except grpc.RpcError as error:
            if error.code() is grpc.StatusCode.NOT_FOUND:
                assert error.details().startswith("quote_id: no quote")
            else:
                check_refusal(error)


@SETTINGS
@given(purchases=st.lists(st.booleans(), min_size=1, max_size=4))
def test_real_quotes_take_their_first_reward_and_refuse_contradictions(
    server: ServerHandle, purchases: list[bool]
) -> None:
    quote = server.quote()
    first = purchases[0]
    for purchased in purchases:
        try:
            server.reward(quote.quote_id, purchased)
        except grpc.RpcError as error:
            assert error.code() is grpc.StatusCode.ALREADY_EXISTS and purchased != first


def test_oversized_messages_are_refused_before_any_work(server: ServerHandle) -> None:
    huge = pricing_pb2.QuoteRequest(user_id="u" * (2 << 20))
    with pytest.raises(grpc.RpcError) as error:
        server.stub.Quote(huge, timeout=DEADLINE)
    assert error.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED


def test_thousands_of_context_keys_are_refused(server: ServerHandle) -> None:
    with pytest.raises(grpc.RpcError) as error:
        server.quote(context={f"k{i}": 1.0 for i in range(5000)})
    assert error.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert error.value.details() == "context: 5000 entries; at most 64"
