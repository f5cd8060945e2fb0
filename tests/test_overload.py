"""Past its limits the server says so quickly (RESOURCE_EXHAUSTED) and skips work nobody awaits (a
call whose deadline passed while it waited for a worker); both are counted with their code."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

import grpc

from builders import product
from conftest import DEADLINE, ServerHandle
from pricing.v1 import pricing_pb2


def big_batch(index: int, size: int) -> pricing_pb2.QuoteBatchRequest:
    return pricing_pb2.QuoteBatchRequest(
        user_id="user-1", request_id=f"batch-{index}",
        products=[product(product_id=f"sku-{i}") for i in range(size)],
    )


def outcome(future: grpc.Future) -> str:
    try:
        future.result()
    except grpc.RpcError as error:
        return error.code().name
    return "OK"


def test_calls_past_the_concurrency_limit_get_resource_exhausted(
    start_server: Callable[..., ServerHandle],
) -> None:
    handle = start_server(workers=2, max_concurrent_rpcs=2, max_batch=200)
    futures = [handle.stub.QuoteBatch.future(big_batch(i, 200), timeout=DEADLINE) for i in range(30)]
    codes = Counter(outcome(future) for future in futures)
    assert set(codes) == {"OK", "RESOURCE_EXHAUSTED"}, codes
    assert codes["OK"] >= 2
    metrics = handle.server.metrics.rpc_requests
    assert metrics.labels("QuoteBatch", "OK")._value.get() == codes["OK"]
    assert metrics.labels("QuoteBatch", "RESOURCE_EXHAUSTED")._value.get() == codes["RESOURCE_EXHAUSTED"]
    assert handle.quote().price > 0  # and it serves again once the burst is over


def test_a_call_whose_deadline_passed_in_the_queue_does_no_work(
    start_server: Callable[..., ServerHandle],
) -> None:
    handle = start_server(workers=1, max_batch=200)
    store = handle.server.service.store
    slow = [handle.stub.QuoteBatch.future(big_batch(i, 200), timeout=DEADLINE) for i in range(4)]
    deadline = time.monotonic() + DEADLINE
    while store.pending_count() < 200:  # the first batch is done: the others now hold the worker
        assert time.monotonic() < deadline
        time.sleep(0.001)
    hurried = [handle.stub.Quote.future(pricing_pb2.QuoteRequest(
        user_id="user-1", product=product(), quote_id=f"hurried-{i}"), timeout=0.05) for i in range(5)]
    assert [outcome(f) for f in hurried] == ["DEADLINE_EXCEEDED"] * 5
    assert [outcome(f) for f in slow] == ["OK"] * 4
    assert store.pending_count() == 800
    assert all(store.find_decision(f"hurried-{i}") is None for i in range(5))
    counted = handle.server.metrics.rpc_requests.labels("Quote", "DEADLINE_EXCEEDED")
    deadline = time.monotonic() + DEADLINE
    while counted._value.get() < 5:  # the server answers them when a worker reaches them
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert counted._value.get() == 5
