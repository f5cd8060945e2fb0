"""The value model as it serves (numpy only): events, the cell, user states in SQLite, the model file,
and the Pricer's V and embedding. Training and agreement with Keras: test_value_training.py."""

from __future__ import annotations

import dataclasses
import io
import json
import math
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from builders import request
from learner import InvalidInput, Pricer, PricerConfig, SnapshotError, Unavailable
from learner.value import BehaviorEvent, ModelFileError, UserState, UserStates, ValueModel, artifact, load
from learner.value.events import INPUT_DIM, encode
from learner.value.network import WEIGHT_NAMES
from learner.value.simulate import simulate_events
from learner.value.train import build_examples, read_log
from server.store import SQLiteStore

NOW = 1_800_000_000.0
DEFAULT = load("default")


def event(t: float, kind: str = "view", user: str = "u1", **fields: object) -> BehaviorEvent:
    values: dict[str, object] = {"category": "shoes", "price": 90.0, "unit_cost": 40.0, "dwell_seconds": 30.0}
    values.update(fields)
    return BehaviorEvent(user_id=user, timestamp=NOW - 10_000 + t, event_type=kind, **values)  # type: ignore[arg-type]


def buyer(user: str = "u1") -> list[BehaviorEvent]:
    """A user who looks long at expensive things and buys them at a high margin."""
    return [event(0, user=user, price=300, unit_cost=100, dwell_seconds=200),
            event(60, "add_to_cart", user=user, price=300, unit_cost=100),
            event(120, "purchase", user=user, price=300, unit_cost=100, purchased=True),
            event(500, user=user, price=280, unit_cost=90, dwell_seconds=150)]


# -- events ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("fields", "field", "problem"), [
    ({"event_type": "click"}, "event_type", "not one of view, add_to_cart, purchase, review"),
    ({"price": math.nan}, "price", "not a finite amount"),
    ({"unit_cost": -1.0}, "unit_cost", "must be >= 0"),
    ({"dwell_seconds": math.inf}, "dwell_seconds", "must be finite"),
    ({"rating": 7.0}, "rating", "between 0 and 5"),
    ({"timestamp": math.nan}, "timestamp", "finite time"),
    ({"user_id": ""}, "user_id", "must not be empty"),
])
def test_a_bad_event_is_refused_naming_its_field(fields: dict[str, object], field: str, problem: str) -> None:
    values: dict[str, object] = {"user_id": "u1", "timestamp": NOW, "event_type": "view"}
    values.update(fields)
    with pytest.raises(InvalidInput) as error:
        BehaviorEvent(**values)  # type: ignore[arg-type]
    assert error.value.field == field and problem in error.value.problem


def test_an_encoded_event_is_never_the_padding_row() -> None:
    for kind in ("view", "add_to_cart", "purchase", "review"):
        x = encode(BehaviorEvent("u", NOW, kind), None)
        assert x.shape == (INPUT_DIM,) and x.dtype == np.float32 and np.any(x != 0)
    gap = encode(event(100), NOW - 10_000 + 40)[11]  # log_gap
    assert gap == pytest.approx(math.log1p(60) / 10)
    for price, cost in ((7e-283, 100.0), (1e12, 0.0), (0.0, 1e12), (50.0, 100.0)):  # all in range
        x = encode(BehaviorEvent("u", NOW, "view", price=price, unit_cost=cost, dwell_seconds=86_400), None)
        assert np.all(np.isfinite(x)) and np.all(np.abs(x) <= 6)
    assert encode(BehaviorEvent("u", NOW, "view", price=50.0, unit_cost=100.0), None)[6] == -0.5


# -- the numpy network and user states ------------------------------------------------------------
def test_user_state_bytes_round_trip_and_cost_140_bytes() -> None:
    state = DEFAULT.network.run(buyer())
    blob = state.to_bytes()
    assert len(blob) == 8 + 4 + 2 * 4 * DEFAULT.network.units == 140
    again = UserState.from_bytes(blob, DEFAULT.network.units)
    assert again.last_timestamp == state.last_timestamp and again.events == 4
    assert np.array_equal(again.h, state.h) and np.array_equal(again.c, state.c)
    assert UserState.from_bytes(DEFAULT.network.zero_state.to_bytes(), 16).last_timestamp is None
    with pytest.raises(ValueError, match="does not fit"):
        UserState.from_bytes(blob[:-4], DEFAULT.network.units)


def test_history_moves_value_and_embedding() -> None:
    network = DEFAULT.network
    fresh_value, fresh_embedding = network.predict(network.zero_state, 100.0, "shoes")
    value, embedding = network.predict(network.run(buyer()), 100.0, "shoes")
    assert value > 0 and fresh_value > 0 and value != pytest.approx(fresh_value, rel=0.05)
    assert embedding.shape == (DEFAULT.embedding_dim,) and np.all(np.abs(embedding) <= 1)
    assert not np.allclose(embedding, fresh_embedding, atol=1e-3)


@pytest.fixture
def store(tmp_path: Path) -> SQLiteStore:
    opened = SQLiteStore(tmp_path)
    yield opened  # type: ignore[misc]
    opened.close()


def test_states_persist_in_the_store_and_survive_eviction(store: SQLiteStore) -> None:
    users = UserStates(DEFAULT, store, capacity=2)
    assert users.get("new").events == 0  # a new user starts from the zero state
    result = users.observe(buyer("u1") + buyer("u2") + buyer("u3"), NOW)
    assert (result.accepted, result.rejected) == (12, 0)
    assert len(users) == 2  # bounded: u1 was evicted ...
    expected = DEFAULT.network.run(buyer("u1"))
    assert np.array_equal(users.get("u1").h, expected.h)  # ... and read back from the store unchanged
    restarted = UserStates(DEFAULT, SQLiteStore(store.path.parent))
    assert np.array_equal(restarted.get("u3").c, DEFAULT.network.run(buyer("u3")).c)
    other_model = UserStates(dataclasses.replace(DEFAULT, version="other-00000000"), store)
    assert other_model.get("u1").events == 0  # a state means nothing to another model


def test_stale_and_future_events_are_refused_and_change_nothing(store: SQLiteStore) -> None:
    users = UserStates(DEFAULT, store)
    history = buyer()
    users.observe(history, NOW)
    before = users.get("u1")
    again = users.observe([history[1], history[3]], NOW)
    assert again.accepted == 0 and [i for i, _ in again.rejections] == [0, 1]
    assert "not after this user's last event" in again.rejections[0][1]
    future = users.observe([BehaviorEvent("u1", NOW + 3600, "view")], NOW)
    reason = future.rejections[0][1]
    assert reason.startswith("timestamp:") and "3600 s in the future" in reason
    assert users.get("u1") == before
    with pytest.raises(InvalidInput, match=r"recent_events\[0\].timestamp"):
        users.observe([BehaviorEvent("u1", NOW + 3600, "view")], NOW, strict=True)
    assert users.observe(history, NOW, strict=True).accepted == 0  # already seen: skipped silently


def test_a_store_failure_leaves_every_state_as_it_was(store: SQLiteStore) -> None:
    users = UserStates(DEFAULT, store)
    users.observe(buyer()[:2], NOW)
    before = users.get("u1")
    store._db.execute("PRAGMA busy_timeout=50")
    with sqlite3.connect(store.path) as blocker:
        blocker.execute("BEGIN IMMEDIATE")
        with pytest.raises(Unavailable):
            users.observe(buyer()[2:], NOW)
        blocker.rollback()
    assert users.get("u1") == before
    assert UserStates(DEFAULT, store).get("u1").events == 2


# -- the model file -----------------------------------------------------------------------------
def test_the_shipped_model_is_small_and_reports_how_it_was_trained() -> None:
    path = Path(artifact.__file__).with_name(artifact.DEFAULT_MODEL)
    assert path.stat().st_size < 1_000_000
    assert DEFAULT.version.startswith("default-") and DEFAULT.info["r2"] > DEFAULT.info["baseline_r2"] + 0.2


def weights_of(model: ValueModel) -> dict[str, np.ndarray]:
    network = model.network
    return {"lstm.kernel": network.kernel, "lstm.recurrent_kernel": network.recurrent,
            "lstm.bias": network.bias, "embedding.kernel": network.embed_w,
            "embedding.bias": network.embed_b, "value_hidden.kernel": network.hidden_w,
            "value_hidden.bias": network.hidden_b, "log_value.kernel": network.out_w[:, None],
            "log_value.bias": np.array([network.out_b])}


def test_save_then_load_gives_the_same_model(tmp_path: Path) -> None:
    version = artifact.save(tmp_path / "m.npz", weights_of(DEFAULT), name="copy", info={"note": 1})
    loaded = load(tmp_path / "m.npz")
    assert loaded.version == version == "copy-" + DEFAULT.version.split("-")[1]
    state = loaded.network.run(buyer())
    assert loaded.network.predict(state, 50, "toys")[0] == DEFAULT.network.predict(state, 50, "toys")[0]


def rewrite_header(path: Path, change: dict[str, object]) -> None:
    with np.load(path) as archive:
        arrays = {name: archive[name] for name in archive.files}
    header = {**json.loads(arrays.pop("header").tobytes()), **change}
    buffer = io.BytesIO()
    np.savez(buffer, header=np.frombuffer(json.dumps(header).encode(), np.uint8), **arrays)
    path.write_bytes(buffer.getvalue())


def poison(path: Path, weight: str) -> None:
    weights = weights_of(DEFAULT)
    weights[weight] = np.full_like(weights[weight], np.nan)
    artifact.save(path, weights, name="diverged", info={})


@pytest.mark.parametrize(("damage", "message"), [
    (lambda p: p.write_bytes(p.read_bytes()[:500]), "is corrupt or not a value model"),
    (lambda p: p.write_bytes(b"junk" * 100), "is corrupt or not a value model"),
    (lambda p: rewrite_header(p, {"schema_version": 99}), "schema version 99, this build reads version 1"),
    (lambda p: rewrite_header(p, {"inputs": ["a"]}), "another event encoding"),
    (lambda p: rewrite_header(p, {"version": "copy-12345678"}), "does not match its recorded version"),
    (lambda p: p.unlink(), "cannot read"),
    (lambda p: poison(p, "lstm.bias"), "weights ['lstm.bias'] are not finite"),
])
def test_an_unusable_model_file_is_refused_saying_what_to_do(tmp_path: Path, damage: object,
                                                             message: str) -> None:
    path = tmp_path / "m.npz"
    artifact.save(path, weights_of(DEFAULT), name="copy", info={})
    damage(path)  # type: ignore[operator]
    with pytest.raises(ModelFileError) as error:
        load(path)
    assert message in str(error.value) and "pricebandit-train" in str(error.value)
    assert "--value-model none" in str(error.value)


def test_every_weight_is_saved() -> None:
    assert set(weights_of(DEFAULT)) == set(WEIGHT_NAMES)


# -- the Pricer ---------------------------------------------------------------------------------
def model_pricer(store: SQLiteStore | None = None) -> Pricer:
    return Pricer(PricerConfig(user_embedding_dim=DEFAULT.embedding_dim), UserStates(DEFAULT, store))


def test_the_pricer_prices_on_the_users_value_and_feeds_the_embedding_to_the_bandit() -> None:
    pricer = model_pricer()
    pricer.observe(buyer("big"), NOW)
    fresh = pricer.quote(request("q-1", user_id="new"), NOW)
    known = pricer.quote(request("q-2", user_id="big"), NOW)
    assert (fresh.value_source, fresh.value_model_version) == ("lstm", DEFAULT.version)
    assert fresh.user_value == 60.0  # no history: exactly the list margin
    factor, embedding = DEFAULT.network.relative_value(DEFAULT.network.run(buyer("big")), 40.0, "shoes")
    assert factor > 1.0  # a big spender is worth more than a new user ...
    expected = 60.0 * min(factor, 2.0)  # ... within twice the list margin
    assert known.user_value == pytest.approx(expected)
    assert known.price == pytest.approx(40.0 + known.alpha * expected)
    assert known.feature_names[-4:] == tuple(f"user.embedding.{i}" for i in range(4))
    assert known.features[-4:] == pytest.approx(embedding.tolist())
    plain = Pricer().quote(request("q-3"), NOW)
    assert (plain.user_value, plain.value_source, plain.value_model_version) == (60.0, "list_margin", "")


def test_recent_events_are_applied_before_pricing_unless_the_quote_is_refused() -> None:
    pricer = model_pricer()
    with pytest.raises(InvalidInput, match="unknown context feature"):
        pricer.quote(dataclasses.replace(request("q-0", user_id="u1", nope=1.0),
                                         recent_events=tuple(buyer())), NOW)
    assert pricer.users is not None and pricer.users.get("u1").events == 0
    with_events = pricer.quote(dataclasses.replace(request("q-1", user_id="u1"),
                                                   recent_events=tuple(buyer())), NOW)
    assert pricer.users.get("u1").events == 4
    assert with_events.user_value == pytest.approx(pricer.quote(request("q-2", user_id="u1"), NOW).user_value)
    with pytest.raises(InvalidInput, match=r"recent_events\[0\].user_id"):
        dataclasses.replace(request("q-3", user_id="u1"), recent_events=(buyer("u2")[0],))


def test_a_snapshot_without_the_value_model_is_refused_by_a_pricer_with_one() -> None:
    without = Pricer()
    with pytest.raises(SnapshotError, match="user_embedding_dim: snapshot None vs configured 4"):
        model_pricer().restore(without.snapshot())
    with pytest.raises(SnapshotError, match="user_embedding_dim: snapshot 4 vs configured None"):
        without.restore(model_pricer().snapshot())
    model_pricer().restore(model_pricer().snapshot())
    with pytest.raises(ValueError, match="user_embedding_dim is 0 but the value model gives 4"):
        Pricer(PricerConfig(), UserStates(DEFAULT))


# -- training data (no TensorFlow needed) -----------------------------------------------------------
def test_the_simulator_is_seeded_and_each_users_events_are_in_time_order() -> None:
    first, again = list(simulate_events(20, seed=5)), list(simulate_events(20, seed=5))
    assert first == again and first != list(simulate_events(20, seed=6))
    for user in {e.user_id for e in first}:
        stamps = [e.timestamp for e in first if e.user_id == user]
        assert stamps == sorted(stamps)
    assert {e.event_type for e in first} == {"view", "add_to_cart", "purchase", "review"}


def test_examples_hide_the_purchased_products_own_events_and_know_the_past_mean() -> None:
    history = [*buyer(), event(900, "purchase", price=120, unit_cost=100, product_id="p9", purchased=True)]
    history = [dataclasses.replace(e, product_id=e.product_id or "p1") for e in history]
    examples = build_examples(history, max_len=8)
    assert examples.margins.tolist() == [20.0]  # the first purchase has only its own product before it
    assert examples.past_mean.tolist() == [200.0]
    assert int(np.sum(np.any(examples.sequences[0] != 0, axis=1))) == 4  # all four events of p1
    assert examples.products.shape == (1, 9)


def test_a_transactions_file_reads_as_purchases(tmp_path: Path) -> None:
    path = tmp_path / "tx.csv"
    path.write_text("customer_id,date,amount\n17,2011-01-04,12.5\n17,2011-02-01T10:00:00,30\n")
    events = list(read_log(path))
    assert [(e.user_id, e.event_type, e.price, e.unit_cost) for e in events] == [
        ("17", "purchase", 12.5, 0.0), ("17", "purchase", 30.0, 0.0)]
    assert events[0].timestamp == 1294099200.0
    assert build_examples(events).margins.tolist() == [30.0]


def test_the_value_stays_within_half_and_twice_the_list_margin() -> None:
    pricer = model_pricer()
    cheap = [event(i * 60, "purchase", user="thrifty", price=10.2, unit_cost=10, purchased=True)
             for i in range(30)]
    pricer.observe(cheap + buyer("big") * 1, NOW)
    pricer.observe([event(i * 60 + 1000, "purchase", user="big", price=900, unit_cost=100,
                          purchased=True) for i in range(30)], NOW)
    for user in ("thrifty", "big", "new"):
        decision = pricer.quote(request(f"q-{user}", user_id=user), NOW)
        assert 30.0 <= decision.user_value <= 120.0
        assert decision.price <= 40.0 + 120.0
