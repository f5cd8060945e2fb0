"""Work for callers who left (issue 11, item 7): once the caller's deadline has passed, a call stores
nothing and teaches the model nothing, checked right before each write (``time_left``)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from builders import request
from conftest import ServerHandle
from learner.errors import DeadlinePassed
from learner.value import BehaviorEvent
from server.service import PricingService


def running_out(*seconds: float) -> Iterator[float]:
    """A caller's remaining time as successive checks see it (the last value repeats)."""
    yield from seconds
    while True:
        yield seconds[-1]


def event(seconds_ago: float) -> BehaviorEvent:
    return BehaviorEvent(user_id="user-1", timestamp=time.time() - seconds_ago, event_type="view",
                         product_id="sku-1", category="shoes", price=90.0, unit_cost=40.0,
                         list_price=100.0)


@pytest.fixture
def service(pricing: ServerHandle) -> PricingService:
    return pricing.server.service


@pytest.mark.parametrize("remaining", [(0.0,), (1.0, 0.0)], ids=["before pricing", "after pricing"])
def test_a_quote_for_a_departed_caller_is_never_stored(service: PricingService,
                                                       remaining: tuple[float, ...]) -> None:
    clock = running_out(*remaining)
    with pytest.raises(DeadlinePassed, match=r"^deadline: "):
        service.quote([request("q-gone")], time_left=lambda: next(clock))
    assert service.store.find_decision("q-gone") is None
    assert service.store.pending_count() == 0
    service.quote([request("q-gone")], time_left=lambda: 1.0)  # the id is free for a retry
    assert service.store.find_decision("q-gone") is not None


def test_a_reward_for_a_departed_caller_is_not_learned(service: PricingService) -> None:
    service.quote([request("q-1")])
    with pytest.raises(DeadlinePassed):
        service.reward("q-1", True, time_left=lambda: 0.0)
    assert service.pricer.updates == 0
    assert service.store.pending("q-1") is not None  # still open: a retry in time is learned
    assert service.reward("q-1", True, time_left=lambda: 1.0).learned
    assert service.pricer.updates == 1


def test_events_for_a_departed_caller_are_not_applied(service: PricingService) -> None:
    assert service.pricer.users is not None
    with pytest.raises(DeadlinePassed):
        service.observe([event(60), event(30)], time_left=lambda: 0.0)
    assert service.pricer.users.get("user-1").events == 0
    assert service.observe([event(60), event(30)], time_left=lambda: 1.0).accepted == 2
