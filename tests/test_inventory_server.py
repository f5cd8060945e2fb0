"""Stock on the wire (issue 15): validated like every field, explained on the quote, and its
opportunity cost restored exactly after a SIGKILL mid-season."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from prometheus_client import generate_latest

from bench.process import ServerProcess
from builders import product, quote_request
from conftest import DEADLINE, ServerHandle, make_config
from learner.inventory import MIN_QUOTES, StockBook
from pricing.v1 import pricing_pb2, pricing_pb2_grpc
from server.store import SQLiteStore


def stock(units: int = 40, days: float = 1.0, salvage: float = 5.0) -> pricing_pb2.Stock:
    sell_by = Timestamp()
    sell_by.FromNanoseconds(int((time.time() + days * 86_400) * 1e9))
    return pricing_pb2.Stock(units=units, sell_by=sell_by, salvage=salvage)


def stocked(**fields: float) -> pricing_pb2.Product:
    message = product()
    message.stock.CopyFrom(stock(**fields))  # type: ignore[arg-type]
    return message


def test_a_quote_with_stock_shows_its_opportunity_cost_and_one_without_none(pricing: ServerHandle) -> None:
    told = pricing.quote(product=stocked(), quote_id="q-stock")
    assert told.explanation.HasField("opportunity_cost")
    assert told.explanation.opportunity_cost == 0.0  # priced as without stock until a pace is known
    assert not told.explanation.HasField("sell_through_target")
    untold = pricing.quote(quote_id="q-plain")
    assert not untold.explanation.HasField("opportunity_cost")


@pytest.mark.parametrize(("message", "field"), [
    (pricing_pb2.Stock(units=0, sell_by=stock().sell_by), "product.stock.units"),
    (pricing_pb2.Stock(units=-5, sell_by=stock().sell_by), "product.stock.units"),
    (pricing_pb2.Stock(units=5), "product.stock.sell_by"),
    (pricing_pb2.Stock(units=5, sell_by=Timestamp(seconds=1, nanos=-1)), "product.stock.sell_by"),
    (pricing_pb2.Stock(units=5, sell_by=stock().sell_by, salvage=float("nan")), "product.stock.salvage"),
])
def test_bad_stock_is_invalid_argument_naming_the_field(pricing: ServerHandle, message: pricing_pb2.Stock,
                                                        field: str) -> None:
    bad = product()
    bad.stock.CopyFrom(message)
    with pytest.raises(grpc.RpcError) as error:
        pricing.quote(product=bad)
    assert error.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert error.value.details().startswith(field + ":")
    batch = pricing_pb2.QuoteBatchRequest(user_id="u", products=[product(), bad])
    with pytest.raises(grpc.RpcError) as error:
        pricing.stub.QuoteBatch(batch, timeout=DEADLINE)
    assert error.value.details().startswith("products[1]." + field.removeprefix("product."))


def learned_stock(data_dir: Path) -> StockBook:
    """The opportunity costs a clean replay of the state file's decision log gives."""
    book = StockBook()
    store = SQLiteStore(data_dir, reader=True)
    try:
        for entry in store.log_after(0):
            decision = entry.decision
            if entry.learned and decision.stock_units:
                book.learn(decision.product_id, decision.unit_cost, decision.list_price, decision.stock_units,
                           decision.sell_by, decision.salvage, decision.created_at, entry.reward > 0)
    finally:
        store.close()
    return book


def test_a_sigkill_mid_season_restores_the_opportunity_cost_exactly(
        tmp_path: Path, processes: list[ServerProcess]) -> None:
    data_dir = tmp_path / "state"
    child = ServerProcess(data_dir, "--snapshot-every-updates", "25")
    processes.append(child)
    with grpc.insecure_channel(child.wait_until_serving()) as channel:
        stub = pricing_pb2_grpc.PricingServiceStub(channel)
        for i in range(3 * MIN_QUOTES):
            answer = stub.Quote(quote_request(user_id=f"u{i}", product=stocked(units=40 - i // 3)),
                                timeout=DEADLINE)
            stub.Reward(pricing_pb2.RewardRequest(quote_id=answer.quote_id, purchased=i % 3 == 0),
                        timeout=DEADLINE)
    child.process.send_signal(signal.SIGKILL)
    child.finish()
    restarted = ServerHandle(make_config(data_dir))
    try:
        book = restarted.server.service.pricer.stock
        assert book.state() == learned_stock(data_dir).state()
        assert book.mu(product().product_id) != 0.0
    finally:
        restarted.stop()


def test_metrics_count_products_with_stock_without_naming_them(pricing: ServerHandle) -> None:
    answer = pricing.quote(product=stocked(), quote_id="q-metered")
    pricing.reward(answer.quote_id, False)
    exported = generate_latest(pricing.server.metrics.registry).decode()
    assert 'pricebandit_stock_products{opportunity_cost="between"} 1.0' in exported
    assert 'pricebandit_stock_will_not_clear_products 0.0' in exported
    assert "sku-1" not in exported
