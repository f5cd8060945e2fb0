"""The value model through a real server: Observe, recent_events on a quote, states that survive a
restart, start-up refusals of bad model files, and a serving process that never imports TensorFlow."""

from __future__ import annotations

import math
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.process import ServerProcess
from builders import behavior
from conftest import DEADLINE, ServerHandle, drive, rewrite_header
from learner.value import artifact, load
from pricing.v1 import pricing_pb2

Event = pricing_pb2.BehaviorEvent
DEFAULT = load("default")


def bargain_hunter(user_id: str = "shopper") -> list[Event]:
    """Refuses the list price, buys at 30% off."""
    return [behavior(3000, user_id=user_id),
            behavior(2900, user_id=user_id, product_id="amp-2", price=210.0, purchased=True),
            behavior(2800, Event.ADD_TO_CART, user_id=user_id, product_id="amp-2", price=210.0,
                     purchased=True),
            behavior(100, Event.PURCHASE, user_id=user_id, product_id="amp-2", price=210.0,
                     purchased=True)]


def test_observe_moves_the_users_value_and_survives_a_restart(pricing: ServerHandle) -> None:
    stranger = pricing.quote(user_id="stranger")
    result = pricing.stub.Observe(iter(bargain_hunter()), timeout=DEADLINE)
    assert (result.accepted, result.rejected, list(result.rejections)) == (4, 0, [])
    assert result.value_model_version == DEFAULT.version
    known = pricing.quote(user_id="shopper")
    assert known.explanation.value_source == "lstm"
    assert known.explanation.value_model_version == DEFAULT.version
    # The quoted product's list margin is 150% of cost: a few percent of willingness move V less.
    assert known.user_value < stranger.user_value * 0.98
    pricing.restart()
    assert pricing.quote(user_id="shopper").user_value == pytest.approx(known.user_value)


def test_bad_events_are_refused_with_reasons_and_change_nothing(pricing: ServerHandle) -> None:
    pricing.stub.Observe(iter(bargain_hunter()), timeout=DEADLINE)
    before = pricing.quote(user_id="shopper").user_value
    stream = [
        behavior(50, 9),
        behavior(50, price=math.nan),
        behavior(-7200),  # two hours ahead
        behavior(2900),  # older than the last accepted event
        behavior(50, user_id=""),
        Event(user_id="shopper", event_type=Event.VIEW),  # no timestamp
        behavior(50, dwell_seconds=-3.0),
        behavior(50, list_price=-5.0),
    ]
    result = pricing.stub.Observe(iter(stream), timeout=DEADLINE)
    assert (result.accepted, result.rejected) == (0, 8)
    reasons = {r.index: r.reason for r in result.rejections}
    assert reasons[0].startswith("event_type: 9 is not a known event type")
    assert reasons[1] == "price: nan is not a finite amount"
    assert reasons[2].startswith("timestamp:") and "in the future" in reasons[2]
    assert "not after this user's last event" in reasons[3]
    assert reasons[4] == "user_id: must not be empty"
    assert reasons[5] == "timestamp: is required"
    assert reasons[6].startswith("dwell_seconds: -3.0 must be finite")
    assert reasons[7] == "list_price: -5.0 must be >= 0"
    assert pricing.quote(user_id="shopper").user_value == pytest.approx(before)


def test_a_long_stream_is_applied_in_batches_and_reports_the_first_100_refusals(pricing: ServerHandle
                                                                               ) -> None:
    stream = [behavior(60, user_id=f"crowd-{i}", price=math.nan if i % 8 == 0 else 50.0)
              for i in range(1200)]  # more than two batches of 500
    result = pricing.stub.Observe(iter(stream), timeout=DEADLINE)
    assert (result.accepted, result.rejected) == (1050, 150)
    assert [r.index for r in result.rejections] == list(range(0, 800, 8))
    assert pricing.quote(user_id="crowd-1199").user_value != pytest.approx(
        pricing.quote(user_id="crowd-1200").user_value, rel=0.01)


def test_recent_events_on_a_quote_are_applied_before_pricing(pricing: ServerHandle) -> None:
    stranger = pricing.quote(user_id="walk-in")
    events = [behavior(300, user_id=""),  # refused at list, then at 20% off: a low willingness
              behavior(200, user_id="walk-in", product_id="amp-3", price=240.0)]
    first = pricing.quote(user_id="walk-in", recent_events=events)
    assert first.user_value != pytest.approx(stranger.user_value, rel=0.01)
    assert pricing.quote(user_id="walk-in").user_value == pytest.approx(first.user_value)
    with pytest.raises(grpc.RpcError) as error:
        pricing.quote(user_id="walk-in", recent_events=[behavior(10, price=-1.0)])
    assert error.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert error.value.details() == "recent_events[0].price: -1.0 must be >= 0"
    with pytest.raises(grpc.RpcError) as error:
        pricing.quote(user_id="walk-in", recent_events=[behavior(10, user_id="someone-else")])
    assert error.value.details().startswith("recent_events[0].user_id: 'someone-else' is not the quoted user")


def test_without_a_value_model_the_list_margin_prices(start_server: Callable[..., ServerHandle]) -> None:
    plain = start_server(value_model="none")
    quote = plain.quote()
    assert (quote.user_value, quote.explanation.value_source) == (60.0, "list_margin")
    assert quote.explanation.value_model_version == ""
    result = plain.stub.Observe(iter(bargain_hunter()), timeout=DEADLINE)
    assert (result.accepted, result.rejected) == (0, 4)
    assert "no value model is configured" in result.rejections[0].reason


def test_observe_needs_the_token_when_one_is_configured(start_server: Callable[..., ServerHandle]) -> None:
    guarded = start_server(auth_token="s3cret")
    with pytest.raises(grpc.RpcError) as error:
        guarded.stub.Observe(iter(bargain_hunter()), timeout=DEADLINE)
    assert error.value.code() is grpc.StatusCode.UNAUTHENTICATED
    result = guarded.stub.Observe(iter(bargain_hunter()), timeout=DEADLINE,
                                  metadata=(("authorization", "Bearer s3cret"),))
    assert result.accepted == 4


SERVE_AND_QUOTE = textwrap.dedent("""
    import sys, tempfile
    import grpc
    from server.app import build_server
    from server.config import ServerConfig
    from pricing.v1 import pricing_pb2, pricing_pb2_grpc
    sys.path.insert(0, "tests")
    from builders import behavior, quote_request
    running = build_server(ServerConfig(port=0, metrics_port=0, data_dir=tempfile.mkdtemp()))
    running.load()
    with grpc.insecure_channel(running.address) as channel:
        quote = pricing_pb2_grpc.PricingServiceStub(channel).Quote(quote_request(), timeout=10)
    running.stop()
    assert quote.explanation.value_source == "lstm", quote
    heavy = sorted(name for name in sys.modules if name.split(".")[0] in {"tensorflow", "keras", "tqdm"})
    print("heavy modules:", heavy)
""")


def test_serving_never_imports_tensorflow() -> None:
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, "-c", SERVE_AND_QUOTE], cwd=root, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "heavy modules: []" in done.stdout


@pytest.mark.parametrize(("content", "message"), [
    (b"PK\x03\x04 definitely not a model", "is corrupt or not a value model"),
    (None, "schema version 3, this build reads version 2"),
])
def test_a_bad_model_file_stops_the_start_saying_what_to_do(
    tmp_path: Path, refused_start: Callable[..., str], content: bytes | None, message: str
) -> None:
    path = tmp_path / "model.npz"
    if content is None:  # a well-formed file from a future release
        artifact.save(path, DEFAULT.network.weights(), name="future", info={})
        rewrite_header(path, {"schema_version": 3})
    else:
        path.write_bytes(content)
    log = refused_start(tmp_path / "data", "--value-model", str(path))
    assert "cannot start" in log and message in log and "pricebandit-train" in log
    assert "--value-model default" in log


def test_a_snapshot_made_without_the_value_model_stops_the_start(
    tmp_path: Path, processes: list[ServerProcess], refused_start: Callable[..., str]
) -> None:
    first = ServerProcess(tmp_path, "--value-model", "none")
    processes.append(first)
    drive(first.wait_until_serving(), 3, "a")
    first.process.send_signal(signal.SIGTERM)
    assert first.finish()[0] == 0
    log = refused_start(tmp_path)
    assert "user_embedding_dim: snapshot None vs configured 4" in log and "--data-dir" in log


def test_a_log_written_without_the_value_model_stops_the_start(
    tmp_path: Path, processes: list[ServerProcess], refused_start: Callable[..., str]
) -> None:
    first = ServerProcess(tmp_path, "--value-model", "none")
    processes.append(first)
    drive(first.wait_until_serving(), 3, "a")
    first.process.send_signal(signal.SIGKILL)  # a crash: the log holds entries no snapshot covers
    first.finish()
    log = refused_start(tmp_path)
    assert "decision log entry 1 was written with 16 features, this configuration has 20" in log
    assert "the value model or the context features changed" in log and "--data-dir" in log


numbers = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.0, -1.0, 5.0, 1e13]))
hostile_events = st.builds(
    lambda user, ago, kind, price, dwell, rating, category: behavior(
        ago, kind, user_id=user, price=price, dwell_seconds=dwell, rating=rating, category=category),
    user=st.one_of(st.just(""), st.just("shopper"), st.text(max_size=8), st.just("x" * 300)),
    ago=st.one_of(st.floats(-1e6, 1e6), st.just(1e-3)), kind=st.integers(0, 6), price=numbers,
    dwell=numbers, rating=numbers,
    category=st.one_of(st.just("toys"), st.text(max_size=4), st.just("c" * 200)),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stream=st.lists(hostile_events, max_size=12))
def test_any_event_stream_is_answered_event_by_event_and_states_stay_finite(
    pricing: ServerHandle, stream: list[Event]
) -> None:
    result = pricing.stub.Observe(iter(stream), timeout=DEADLINE)
    assert result.accepted + result.rejected == len(stream)
    for rejection in result.rejections:
        fields = "user_id|timestamp|event_type|category|price|unit_cost|list_price|dwell_seconds|rating"
        assert re.match(rf"^({fields}): \S", rejection.reason), rejection.reason
    users = pricing.server.service.pricer.users
    assert users is not None
    for user in {event.user_id for event in stream}:
        state = users.get(user or "-")
        assert np.all(np.isfinite(state.h)) and np.all(np.isfinite(state.c))
    assert math.isfinite(pricing.quote(user_id="shopper").user_value)


def observe_calls_counted(handle: ServerHandle) -> float:
    """Observe calls the server has finished, whatever their code."""
    samples = handle.server.metrics.rpc_requests.collect()[0].samples
    return sum(sample.value for sample in samples
               if sample.name.endswith("_total") and sample.labels["method"] == "Observe")


def test_a_stream_that_ends_early_keeps_whole_batches_and_a_resend_completes_it(
    pricing: ServerHandle,
) -> None:
    history = {user: [behavior(10_000 - i, user_id=user, dwell_seconds=float(i % 50)) for i in range(700)]
               for user in ("interrupted", "clean")}

    def crashing_client() -> Iterator[Event]:
        yield from history["interrupted"][:600]
        raise ConnectionError("the tracker died mid-stream")

    with pytest.raises(grpc.RpcError):
        pricing.stub.Observe(crashing_client(), timeout=DEADLINE)
    # The caller hears of the break before the server's handler has finished with what it read; the
    # resend starts once that call is counted, so the two streams never interleave their batches.
    deadline = time.monotonic() + DEADLINE
    while observe_calls_counted(pricing) == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    resent = pricing.stub.Observe(iter(history["interrupted"]), timeout=DEADLINE)
    # Whole batches of 500 were applied, each once; or all 600 sent, where grpcio reported the
    # client's death as a clean end of stream (it sometimes does: the server cannot tell).
    assert resent.rejected in (0, 500, 600)
    assert resent.accepted == 700 - resent.rejected
    counted = pricing.server.metrics.behavior_events
    assert counted.labels("accepted")._value.get() == 700
    assert counted.labels("rejected")._value.get() == resent.rejected
    clean = pricing.stub.Observe(iter(history["clean"]), timeout=DEADLINE)
    assert (clean.accepted, clean.rejected) == (700, 0)
    interrupted, whole = pricing.quote(user_id="interrupted"), pricing.quote(user_id="clean")
    assert interrupted.user_value == pytest.approx(whole.user_value)


def test_a_closed_quote_advances_its_shoppers_state_once_and_durably(
        start_server: Callable[..., ServerHandle]) -> None:
    """A reward and an expiry each advance the shopper's state by one event, committed with the
    close: a repeated reward adds nothing, and a restart keeps what was applied."""
    pricing = start_server(reward_window_seconds=0.3)
    users = pricing.server.service.pricer.users
    assert users is not None
    bought = pricing.quote(user_id="buyer")
    assert pricing.reward(bought.quote_id, True).status == pricing_pb2.RewardResponse.LEARNED
    assert pricing.reward(bought.quote_id, True).status == pricing_pb2.RewardResponse.DUPLICATE
    ignored = pricing.quote(user_id="ignorer")
    deadline = time.monotonic() + 10
    while pricing.server.service.store.pending_count() and time.monotonic() < deadline:
        time.sleep(0.05)  # the sweeper closes the unrewarded quote as no purchase
    assert users.get(pricing.pseudonym("buyer")).events == 1
    assert users.get(pricing.pseudonym("ignorer")).events == 1
    assert pricing.quote(user_id="buyer").user_value != ignored.user_value  # the two answers differ
    pricing.restart()
    users = pricing.server.service.pricer.users
    assert users is not None and users.get(pricing.pseudonym("buyer")).events == 1


def test_closed_quotes_leave_states_alone_when_switched_off(
        start_server: Callable[..., ServerHandle]) -> None:
    pricing = start_server(learn_responses=False)
    quote = pricing.quote(user_id="buyer")
    pricing.reward(quote.quote_id, True)
    users = pricing.server.service.pricer.users
    assert users is not None and users.get(pricing.pseudonym("buyer")).events == 0
