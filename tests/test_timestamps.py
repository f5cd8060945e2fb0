"""Out-of-range Timestamps (issue 11, item 5): INVALID_ARGUMENT naming the field, and in an Observe
stream only that event is refused."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from builders import behavior
from conftest import DEADLINE, ServerHandle
from pricing.v1 import pricing_pb2

BAD_STAMPS = {
    "negative nanos": Timestamp(seconds=1767225600, nanos=-1),
    "nanos of a whole second": Timestamp(seconds=1767225600, nanos=1_000_000_000),
    "after year 9999": Timestamp(seconds=253402300800),
    "before year 1": Timestamp(seconds=-62135596801),
}


def stamped(stamp: Timestamp) -> pricing_pb2.BehaviorEvent:
    event = behavior(60)
    event.timestamp.CopyFrom(stamp)
    return event


def test_an_out_of_range_timestamp_refuses_only_its_event_in_a_stream(pricing: ServerHandle) -> None:
    events = [stamped(stamp) for stamp in BAD_STAMPS.values()] + [behavior(30)]
    answer = pricing.stub.Observe(iter(events), timeout=DEADLINE)
    assert (answer.accepted, answer.rejected) == (1, len(BAD_STAMPS))
    for rejection in answer.rejections:
        assert rejection.reason.startswith("timestamp: "), rejection.reason
        assert "not a valid Timestamp" in rejection.reason


@pytest.mark.parametrize("name", BAD_STAMPS)
def test_an_out_of_range_timestamp_in_recent_events_is_invalid_argument(pricing: ServerHandle,
                                                                         name: str) -> None:
    with pytest.raises(grpc.RpcError) as error:
        pricing.quote(recent_events=[behavior(90), stamped(BAD_STAMPS[name])])
    assert error.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert error.value.details().startswith("recent_events[1].timestamp: "), error.value.details()
