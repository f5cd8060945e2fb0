"""End to end through a real gRPC server on a free loopback port, with real SQLite state."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status

from builders import product, quote_request
from conftest import DEADLINE, ServerHandle, series, wait_for
from learner.value import load as load_value_model
from pricing.v1 import pricing_pb2
from server.decision_log import dsjson_lines

RewardStatus = pricing_pb2.RewardResponse


def test_quote_then_reward_changes_the_learner(pricing: ServerHandle) -> None:
    before = time.time()
    quote = pricing.quote()
    assert quote.quote_id.startswith("q-")
    assert quote.model_version == "linucb:0"
    assert quote.currency == "EUR" and quote.product_id == "sku-1"
    model = load_value_model("default")
    assert quote.user_value == 60.0  # a user with no history is worth the list margin
    assert quote.price == pytest.approx(40.0 + quote.alpha * 60.0)
    assert quote.propensity == 1.0 and quote.explanation.deterministic
    assert len(quote.explanation.arms) == 11
    assert quote.explanation.value_source == "lstm"
    assert quote.explanation.value_model_version == model.version
    assert before + 600 - 1 <= quote.expires_at.ToNanoseconds() / 1e9 <= time.time() + 600
    estimate_before = quote.explanation.arms[quote.arm].purchase_probability

    reward = pricing.reward(quote.quote_id, purchased=True)
    assert (reward.learned, reward.status, reward.model_version) == (True, RewardStatus.LEARNED,
                                                                      "linucb:1")
    after = pricing.quote(user_id="user-2")
    assert after.model_version == "linucb:1"
    assert after.explanation.arms[quote.arm].purchase_probability > estimate_before


def test_caller_quote_id_is_idempotent(pricing: ServerHandle) -> None:
    first = pricing.quote(quote_id="order-7:line-1")
    again = pricing.quote(quote_id="order-7:line-1")
    assert again == first
    with pytest.raises(grpc.RpcError) as error:
        pricing.quote(quote_id="order-7:line-1", product=product(list_price=120.0))
    assert error.value.code() is grpc.StatusCode.ALREADY_EXISTS
    assert "order-7:line-1" in error.value.details() and "different request" in error.value.details()
    pricing.reward(first.quote_id, purchased=False)
    assert pricing.quote(quote_id="order-7:line-1") == first  # still the same after it closed


def test_quote_batch_prices_each_product_in_order(pricing: ServerHandle) -> None:
    request = pricing_pb2.QuoteBatchRequest(
        user_id="user-1", request_id="page-3",
        products=[product(product_id=f"sku-{i}", unit_cost=10.0 * (i + 1), list_price=30.0 * (i + 1))
                  for i in range(5)],
        context={"is_mobile": 1.0},
    )
    response = pricing.stub.QuoteBatch(request, timeout=DEADLINE)
    assert [q.product_id for q in response.quotes] == [f"sku-{i}" for i in range(5)]
    assert [q.quote_id for q in response.quotes] == [f"page-3:{i}" for i in range(5)]
    for i, quote in enumerate(response.quotes):
        assert 10.0 * (i + 1) <= quote.price <= 30.0 * (i + 1)
    assert pricing.stub.QuoteBatch(request, timeout=DEADLINE) == response
    assert pricing.reward("page-3:4", purchased=True).learned


def test_expired_quote_is_learned_as_no_purchase(start_server: Callable[..., ServerHandle]) -> None:
    handle = start_server(reward_window_seconds=0.3)
    quote = handle.quote()
    wait_for(lambda: handle.server.service.pricer.updates == 1)
    metrics = series(handle)
    assert metrics["pricebandit_quotes_expired_total"] == 1.0
    assert metrics["pricebandit_pending_quotes"] == 0.0
    assert metrics["pricebandit_model_version"] == 1.0
    next_quote = handle.quote(user_id="user-2")
    before = quote.explanation.arms[quote.arm].purchase_probability
    assert next_quote.explanation.arms[quote.arm].purchase_probability < before - 0.1

    late = handle.reward(quote.quote_id, purchased=True)
    assert (late.learned, late.status) == (False, RewardStatus.LATE)
    assert handle.reward(quote.quote_id, purchased=True).status == RewardStatus.DUPLICATE
    with pytest.raises(grpc.RpcError) as error:
        handle.reward(quote.quote_id, purchased=False)
    assert error.value.code() is grpc.StatusCode.ALREADY_EXISTS
    assert handle.server.service.pricer.updates == 1
    lines = [json.loads(line) for line in dsjson_lines(handle.server.service.store)]
    assert [(line["_skipLearn"], line["_late"], line["_label_cost"]) for line in lines] == [
        (False, False, -0.0), (True, True, -1.0)]


def test_duplicate_and_contradicting_rewards(pricing: ServerHandle) -> None:
    quote = pricing.quote()
    assert pricing.reward(quote.quote_id, purchased=True).status == RewardStatus.LEARNED
    duplicate = pricing.reward(quote.quote_id, purchased=True)
    assert (duplicate.learned, duplicate.status) == (False, RewardStatus.DUPLICATE)
    with pytest.raises(grpc.RpcError) as error:
        pricing.reward(quote.quote_id, purchased=False)
    assert error.value.code() is grpc.StatusCode.ALREADY_EXISTS
    assert "already reported as purchased" in error.value.details()
    assert pricing.server.service.pricer.updates == 1
    metrics = series(pricing)
    assert metrics['pricebandit_rewards_total{outcome="purchased",status="learned"}'] == 1.0
    assert metrics['pricebandit_rewards_total{outcome="purchased",status="duplicate"}'] == 1.0
    assert metrics['pricebandit_rpc_requests_total{code="ALREADY_EXISTS",method="Reward"}'] == 1.0
    assert metrics["pricebandit_revenue_total"] == pytest.approx(quote.price)
    assert metrics["pricebandit_profit_total"] == pytest.approx(quote.price - 40.0)


def test_unknown_quote_is_not_found(pricing: ServerHandle) -> None:
    with pytest.raises(grpc.RpcError) as error:
        pricing.reward("q-never-issued", purchased=True)
    assert error.value.code() is grpc.StatusCode.NOT_FOUND
    assert error.value.details() == "quote_id: no quote 'q-never-issued' was issued by this service"


BAD_QUOTES = [
    ({"user_id": ""}, "user_id: must not be empty"),
    ({"user_id": "u" * 257}, "user_id: is 257 characters long; at most 256"),
    ({"user_id": "bad\x00id"}, "user_id: must not contain control characters"),
    ({"product": None}, "product: is required"),
    ({"product": product(product_id="")}, "product.product_id: must not be empty"),
    ({"product": product(unit_cost=math.nan)}, "product.unit_cost: nan is not a finite amount"),
    ({"product": product(unit_cost=-1.0)}, "product.unit_cost: -1.0 must be >= 0"),
    ({"product": product(list_price=math.inf)}, "product.list_price: inf is not a finite amount"),
    ({"product": product(list_price=-math.inf)}, "product.list_price: -inf is not a finite amount"),
    ({"product": product(list_price=30.0)}, "product.list_price: 30.0 is below product.unit_cost 40.0"),
    ({"product": product(floor_price=90.0, ceiling_price=80.0)},
     "product.floor_price: 90.0 is above product.ceiling_price 80.0"),
    ({"product": product(floor_price=-1.0)}, "product.floor_price: -1.0 must be >= 0"),
    ({"product": product(ceiling_price=math.nan)}, "product.ceiling_price: nan is not a finite amount"),
    ({"product": product(unit_cost=1e300, list_price=1e300)}, "product.unit_cost: 1e+300 is above"),
    ({"product": product(currency="euro")}, "product.currency: 'euro' is not an ISO 4217 code"),
    ({"product": product(category="c" * 129)}, "product.category: is 129 characters long"),
    ({"context": {"shoe\nsize": 42.0}}, 'context["shoe\\nsize"]: a context name has 1..64 printable'),
    ({"context": {"shoe_size": math.inf}}, 'context["shoe_size"]: inf must be finite'),
    ({"spread_limit": 1.5}, "spread_limit: 1.5 must be a fraction in [0, 1]"),
    ({"context": {"is_mobile": math.nan}}, 'context["is_mobile"]: nan must be finite'),
    ({"context": {"is_mobile": 1e9}}, 'context["is_mobile"]: 1000000000.0 must be finite'),
    ({"context": {f"k{i}": 1.0 for i in range(100)}}, "context: 100 entries; at most 64"),
    ({"quote_id": "has space"}, "quote_id: 'has space' is not 1..128 characters from"),
    ({"quote_id": "x" * 129}, "quote_id: 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...' is not"),
]


@pytest.mark.parametrize(("fields", "message"), BAD_QUOTES, ids=[m.split(":")[0] + f"-{i}"
                                                                for i, (_, m) in enumerate(BAD_QUOTES)])
def test_bad_quote_requests_get_invalid_argument_naming_the_field(
    pricing: ServerHandle, fields: dict, message: str
) -> None:
    request = quote_request(**{k: v for k, v in fields.items() if v is not None})
    if fields.get("product", 0) is None:
        request.ClearField("product")
    with pytest.raises(grpc.RpcError) as error:
        pricing.stub.Quote(request, timeout=DEADLINE)
    assert error.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert error.value.details().startswith(message)
    assert pricing.quote().price > 0  # the server is still up and sane


@pytest.mark.parametrize(
    ("request_fields", "message"),
    [({"products": []}, "products: 0 products; send 1 to 50 per batch"),
     ({"products": [product()] * 51}, "products: 51 products; send 1 to 50 per batch"),
     ({"products": [product(), product(unit_cost=-2.0)]}, "products[1].unit_cost: -2.0 must be >= 0"),
     ({"products": [product(), product(), product(currency="eur")]}, "products[2].currency: 'eur' is not"),
     ({"products": [product(product_id="")]}, "products[0].product_id: must not be empty"),
     ({"products": [product()], "request_id": "a/b"}, "request_id: 'a/b' is not")],
)
def test_bad_batches_are_refused_whole(pricing: ServerHandle, request_fields: dict, message: str) -> None:
    request = pricing_pb2.QuoteBatchRequest(user_id="user-1", **request_fields)
    with pytest.raises(grpc.RpcError) as error:
        pricing.stub.QuoteBatch(request, timeout=DEADLINE)
    assert error.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert error.value.details().startswith(message)
    assert series(pricing)["pricebandit_pending_quotes"] == 0.0


@pytest.mark.parametrize(("quote_id", "message"), [("", "quote_id: must not be empty"),
                                                   ("q" * 129, "quote_id: is 129 characters long")])
def test_bad_rewards_get_invalid_argument(pricing: ServerHandle, quote_id: str, message: str) -> None:
    with pytest.raises(grpc.RpcError) as error:
        pricing.reward(quote_id, purchased=True)
    assert error.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert error.value.details().startswith(message)


def test_restart_keeps_what_was_learned_and_what_is_pending(start_server) -> None:  # type: ignore[no-untyped-def]
    handle = start_server(snapshot_every_updates=5)
    for i in range(12):
        quote = handle.quote(user_id=f"user-{i}", context={"is_mobile": float(i % 2)})
        handle.reward(quote.quote_id, purchased=i % 3 == 0)
    pending = handle.quote(user_id="later")
    probe = quote_request(quote_id="probe-1", user_id="probe")
    before = handle.stub.Quote(probe, timeout=DEADLINE)

    handle.restart()
    assert handle.stub.Quote(probe, timeout=DEADLINE) == before
    fresh = handle.stub.Quote(quote_request(quote_id="probe-2", user_id="probe"), timeout=DEADLINE)
    assert fresh.model_version == "linucb:12"
    assert [a.purchase_probability for a in fresh.explanation.arms] == [
        a.purchase_probability for a in before.explanation.arms]
    assert handle.reward(pending.quote_id, purchased=True).status == RewardStatus.LEARNED
    assert series(handle)["pricebandit_model_version"] == 13.0


def test_health_and_reflection(pricing: ServerHandle) -> None:
    assert pricing.channel is not None
    health = health_pb2_grpc.HealthStub(pricing.channel)
    for service in ("", "pricing.v1.PricingService"):
        answer = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=DEADLINE)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
    reflection = reflection_pb2_grpc.ServerReflectionStub(pricing.channel)
    responses = reflection.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=DEADLINE)
    names = {s.name for r in responses for s in r.list_services_response.service}
    assert {"pricing.v1.PricingService", "grpc.health.v1.Health"} <= names


def test_shutdown_reports_not_serving_and_refuses_new_work(pricing: ServerHandle) -> None:
    pricing.server.service.stop_serving()
    with pytest.raises(grpc.RpcError) as error:
        pricing.quote()
    assert error.value.code() is grpc.StatusCode.UNAVAILABLE
    assert "retry" in error.value.details()


def test_metrics_count_quotes_by_arm_and_rpcs_by_code(pricing: ServerHandle) -> None:
    arms = [pricing.quote(user_id=f"u{i}").arm for i in range(3)]
    with pytest.raises(grpc.RpcError):
        pricing.quote(user_id="")
    metrics = series(pricing)
    assert sum(metrics[f'pricebandit_quotes_total{{arm="{arm}"}}'] for arm in range(11)) == 3.0
    assert metrics[f'pricebandit_quotes_total{{arm="{arms[0]}"}}'] >= 1.0
    assert metrics['pricebandit_rpc_requests_total{code="OK",method="Quote"}'] == 3.0
    assert metrics['pricebandit_rpc_requests_total{code="INVALID_ARGUMENT",method="Quote"}'] == 1.0
    assert metrics['pricebandit_rpc_duration_seconds_count{method="Quote"}'] == 4.0
    assert metrics["pricebandit_quote_duration_seconds_count"] == 3.0
    assert metrics["pricebandit_pending_quotes"] == 3.0
    assert metrics['pricebandit_build_info{policy="linucb",version="0.1.0"}'] == 1.0


def test_decision_log_is_dsjson(pricing: ServerHandle) -> None:
    quote = pricing.quote(context={"is_mobile": 1.0, "hour_sin": 0.5},
                          product=product(floor_price=50.0, ceiling_price=90.0))
    pricing.reward(quote.quote_id, purchased=True)
    (line,) = [json.loads(text) for text in dsjson_lines(pricing.server.service.store)]
    offered = [a for a in quote.explanation.arms if a.allowed]
    assert line["EventId"] == quote.quote_id
    assert line["_label_cost"] == -1.0 and line["_label_probability"] == 1.0
    assert line["a"][0] == line["_label_Action"] == line["_labelIndex"] + 1
    assert len(line["a"]) == len(line["p"]) == len(line["c"]["_multi"]) == len(offered)
    assert line["c"]["_multi"][line["_labelIndex"]] == {"Price": {"alpha": quote.alpha}}
    assert line["c"]["Context"] == {"is_mobile": 1.0, "hour_sin": 0.5}
    assert line["VWState"] == {"m": "linucb:0"}
    assert line["o"] == [{"v": 1.0, "EventId": quote.quote_id}]
    assert line["Timestamp"].endswith("Z")
    assert "user-1" not in json.dumps(line)


def test_a_refused_field_comes_with_a_machine_readable_bad_request(pricing: ServerHandle) -> None:
    """The standard google.rpc.BadRequest detail names the field, so a client needs no parsing."""
    batch = pricing_pb2.QuoteBatchRequest(user_id="u", products=[
        pricing_pb2.Product(product_id="ok", unit_cost=1, list_price=2),
        pricing_pb2.Product(product_id="bad", unit_cost=-2, list_price=2)])
    with pytest.raises(grpc.RpcError) as refused:
        pricing.stub.QuoteBatch(batch, timeout=DEADLINE)
    status = rpc_status.from_call(refused.value)
    assert status is not None and status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    bad_request = error_details_pb2.BadRequest()
    assert len(status.details) == 1 and status.details[0].Unpack(bad_request)
    [violation] = bad_request.field_violations
    assert violation.field == "products[1].unit_cost" and "must be >= 0" in violation.description
    assert refused.value.details() == f"{violation.field}: {violation.description}"
