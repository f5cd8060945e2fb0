"""The value model as it serves (numpy only): events, the cell, user states in SQLite, the model file,
and the Pricer's V and embedding. Training and agreement with Keras: test_value_training.py."""

from __future__ import annotations

import dataclasses
import math
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from builders import request
from conftest import rewrite_header
from learner import InvalidInput, Pricer, PricerConfig, SnapshotError, Unavailable
from learner.value import BehaviorEvent, ModelFileError, UserState, UserStates, artifact, load
from learner.value.events import EVENT_TYPES, INPUT_DIM, INPUT_NAMES, encode
from learner.value.network import WEIGHT_NAMES
from learner.value.train import LogError, build_examples, read_log
from server.store import SQLiteStore
from simulator.behavior import user_history
from simulator.market import Market, MarketConfig

NOW = 1_800_000_000.0
DEFAULT = load("default")


def event(t: float, kind: str = "view", user: str = "u1", **fields: object) -> BehaviorEvent:
    values: dict[str, object] = {"category": "shoes", "price": 90.0, "unit_cost": 40.0, "list_price": 100.0,
                                 "dwell_seconds": 30.0}
    values.update(fields)
    return BehaviorEvent(user_id=user, timestamp=NOW - 10_000 + t, event_type=kind, **values)  # type: ignore[arg-type]


def buyer(user: str = "u1") -> list[BehaviorEvent]:
    """A user who buys at the full list price."""
    return [event(0, user=user, price=300, unit_cost=250, list_price=300, dwell_seconds=200, purchased=True),
            event(60, "add_to_cart", user=user, price=300, unit_cost=250, list_price=300, purchased=True),
            event(120, "purchase", user=user, price=300, unit_cost=250, list_price=300, purchased=True),
            event(500, user=user, price=280, unit_cost=240, list_price=280, dwell_seconds=150)]


def shopper(user: str, bought_at: float, refused_at: float, visits: int = 8) -> list[BehaviorEvent]:
    """A user who buys at ``bought_at`` times the list price and refuses ``refused_at`` times it."""
    events: list[BehaviorEvent] = []
    for i in range(visits):
        share = bought_at if i % 2 else refused_at
        kept = bool(i % 2)
        events.append(event(100 * i, user=user, product_id=f"p{i}", category="home", price=100 * share,
                            unit_cost=80, list_price=100, purchased=kept))
        if kept:
            events.append(event(100 * i + 50, "purchase", user=user, product_id=f"p{i}", category="home",
                                price=100 * share, unit_cost=80, list_price=100, purchased=True))
    return events


# -- events ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("fields", "field", "problem"), [
    ({"event_type": "click"}, "event_type", "not one of view, add_to_cart, purchase, review, quote"),
    ({"list_price": -1.0}, "list_price", "must be >= 0"),
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
    assert EVENT_TYPES == ("view", "add_to_cart", "purchase", "review", "quote")
    for kind in EVENT_TYPES:
        x = encode(BehaviorEvent("u", NOW, kind), None)
        assert x.shape == (INPUT_DIM,) and x.dtype == np.float32 and np.any(x != 0)
        assert x[INPUT_NAMES.index(f"type.{kind}")] == 1.0
    gap = encode(event(100), NOW - 10_000 + 40)[INPUT_NAMES.index("log_gap")]
    assert gap == pytest.approx(math.log1p(60) / 10)
    extremes = ((7e-283, 100.0, 1e12), (1e12, 0.0, 7e-283), (0.0, 1e12, 5.0), (50.0, 100.0, 0))
    for price, cost, listed in extremes:
        x = encode(BehaviorEvent("u", NOW, "view", price=price, unit_cost=cost, list_price=listed,
                                 dwell_seconds=86_400), None)
        assert np.all(np.isfinite(x)) and np.all(np.abs(x) <= 6)
    assert encode(BehaviorEvent("u", NOW, "view", price=50.0, unit_cost=100.0), None)[
        INPUT_NAMES.index("markup")] == -0.5


def test_the_list_price_and_quotes_are_encoded() -> None:
    def named(x: np.ndarray) -> dict[str, float]:
        return dict(zip(INPUT_NAMES, x.tolist(), strict=True))

    listed = named(encode(BehaviorEvent("u", NOW, "quote", price=90.0, unit_cost=60.0, list_price=120.0,
                                        purchased=True), None))
    assert listed["type.quote"] == 1.0 and listed["purchased"] == 1.0 and listed["has_list_price"] == 1.0
    assert listed["log_price_to_list"] == pytest.approx(math.log(0.75))
    assert listed["list_markup"] == pytest.approx(0.5)
    unknown = named(encode(BehaviorEvent("u", NOW, "view", price=90.0, unit_cost=60.0), None))
    assert unknown["has_list_price"] == unknown["log_price_to_list"] == unknown["list_markup"] == 0.0
    assert unknown["type.view"] == 1.0 and unknown["purchased"] == 0.0


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
    fresh_value, fresh_embedding = network.relative_value(network.zero_state, 80.0, "home", 100.0)
    value, embedding = network.relative_value(network.run(shopper("u", 0.75, 0.9)), 80.0, "home", 100.0)
    assert fresh_value == 1.0 and value > 0 and value != pytest.approx(fresh_value, rel=0.05)
    assert embedding.shape == (DEFAULT.embedding_dim,) and np.all(np.abs(embedding) <= 1)
    assert not np.allclose(embedding, fresh_embedding, atol=1e-3)


def test_demand_falls_with_price_and_the_model_recovers_the_shoppers_hidden_value() -> None:
    """On a simulated market the shipped model was not trained on (seed 3; it was trained on seed 7),
    the willingness read from each returning shopper's history tracks their hidden value."""
    network = DEFAULT.network
    chances = [network.purchase_probability(network.zero_state, 80.0, "home", 100.0, p)
               for p in (82, 90, 100, 110)]
    assert chances == sorted(chances, reverse=True) and chances[0] - chances[-1] > 0.3
    market = Market(MarketConfig(users=600), seed=3)
    item = market.catalog.products[0]
    hidden, predicted, factors = [], [], []
    for user in range(market.n_users):
        history = [BehaviorEvent(**e) for e in user_history(market, user)]
        if not history:
            continue
        state = network.run(history)
        hidden.append(float(market.traits.log_value(np.array([user]), market.catalog.category_index[:1])[0]))
        predicted.append(network.willingness(state, item.unit_cost, item.category, item.list_price)[0])
        factors.append(network.relative_value(state, item.unit_cost, item.category, item.list_price)[0])
    truth, factor = np.array(hidden), np.array(factors)
    assert len(truth) > 300 and np.corrcoef(truth, predicted)[0, 1] > 0.45
    low, high = np.quantile(truth, [0.25, 0.75])
    assert factor[truth > high].mean() > 1.05 and factor[truth < low].mean() < 0.85
    fresh = network.relative_value(network.zero_state, item.unit_cost, item.category, item.list_price)
    assert fresh[0] == 1.0


def test_states_persist_in_the_store_and_survive_eviction(store: SQLiteStore) -> None:
    users = UserStates(DEFAULT, store, capacity=2)
    assert users.get("new").events == 0  # a new user starts from the zero state
    result = users.observe(buyer("u1") + buyer("u2") + buyer("u3"), NOW)
    assert (result.accepted, result.rejected) == (12, 0)
    assert len(users) == 2  # bounded: u1 was evicted ...
    expected = DEFAULT.network.run(buyer("u1"))
    assert np.array_equal(users.get("u1").h, expected.h)  # ... and read back from the store unchanged
    store.close()  # a restart: the data dir has one owner at a time
    reopened = SQLiteStore(store.path.parent)
    restarted = UserStates(DEFAULT, reopened)
    assert np.array_equal(restarted.get("u3").c, DEFAULT.network.run(buyer("u3")).c)
    other_model = UserStates(dataclasses.replace(DEFAULT, version="other-00000000"), reopened)
    assert other_model.get("u1").events == 0  # a state means nothing to another model
    reopened.close()


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
    assert path.stat().st_size < 100_000
    assert DEFAULT.version.startswith("default-")
    assert DEFAULT.info["log_loss"] < DEFAULT.info["baseline_log_loss"] - 0.03
    assert DEFAULT.info["auc"] > DEFAULT.info["baseline_auc"] + 0.05


def test_save_then_load_gives_the_same_model(tmp_path: Path) -> None:
    version = artifact.save(tmp_path / "m.npz", DEFAULT.network.weights(), name="copy", info={"note": 1})
    loaded = load(tmp_path / "m.npz")
    assert loaded.version == version == "copy-" + DEFAULT.version.split("-")[1]
    state = loaded.network.run(buyer())
    assert loaded.network.relative_value(state, 50, "toys", 60)[0] == \
        DEFAULT.network.relative_value(state, 50, "toys", 60)[0]


def poison(path: Path, weight: str) -> None:
    weights = DEFAULT.network.weights()
    weights[weight] = np.full_like(weights[weight], np.nan)
    artifact.save(path, weights, name="diverged", info={})


@pytest.mark.parametrize(("damage", "message"), [
    (lambda p: p.write_bytes(p.read_bytes()[:500]), "is corrupt or not a value model"),
    (lambda p: p.write_bytes(b"junk" * 100), "is corrupt or not a value model"),
    (lambda p: rewrite_header(p, {"schema_version": 99}), "schema version 99, this build reads version 2"),
    (lambda p: rewrite_header(p, {"schema_version": 1}), "schema version 1, this build reads version 2"),
    (lambda p: rewrite_header(p, {"inputs": ["a"]}), "another event encoding"),
    (lambda p: rewrite_header(p, {"version": "copy-12345678"}), "does not match its recorded version"),
    (lambda p: p.unlink(), "cannot read"),
    (lambda p: poison(p, "lstm.bias"), "weights ['lstm.bias'] are not finite"),
])
def test_an_unusable_model_file_is_refused_saying_what_to_do(tmp_path: Path, damage: object,
                                                             message: str) -> None:
    path = tmp_path / "m.npz"
    artifact.save(path, DEFAULT.network.weights(), name="copy", info={})
    damage(path)  # type: ignore[operator]
    with pytest.raises(ModelFileError) as error:
        load(path)
    assert message in str(error.value) and "pricebandit-train" in str(error.value)
    assert "--value-model none" in str(error.value)


def test_every_weight_is_saved_and_loads_back_unchanged(tmp_path: Path) -> None:
    artifact.save(tmp_path / "m.npz", DEFAULT.network.weights(), name="copy", info={})
    with np.load(tmp_path / "m.npz") as archive:
        assert set(archive.files) == {"header", *WEIGHT_NAMES}
    loaded = load(tmp_path / "m.npz").network.weights()
    for name, weight in DEFAULT.network.weights().items():
        assert np.array_equal(loaded[name], weight), name


# -- the Pricer ---------------------------------------------------------------------------------
def model_pricer(store: SQLiteStore | None = None) -> Pricer:
    return Pricer(PricerConfig(user_embedding_dim=DEFAULT.embedding_dim), UserStates(DEFAULT, store))


def test_the_pricer_prices_on_the_users_value_and_feeds_the_embedding_to_the_bandit() -> None:
    pricer = model_pricer()
    history = shopper("careful", bought_at=0.9, refused_at=0.95)
    pricer.observe(history, NOW)
    fresh = pricer.quote(request("q-1", user_id="new"), NOW)
    known = pricer.quote(request("q-2", user_id="careful"), NOW)
    assert (fresh.value_source, fresh.value_model_version) == ("lstm", DEFAULT.version)
    assert fresh.user_value == 60.0  # no history: exactly the list margin
    factor, embedding = DEFAULT.network.relative_value(DEFAULT.network.run(history), 40.0, "shoes", 100.0)
    assert 0.5 < factor < 0.98  # one who refuses 95% of list is predicted to accept less margin ...
    expected = 60.0 * factor  # ... and the bounds [0.5, 2] leave it alone
    assert known.user_value == pytest.approx(expected)
    assert known.price == pytest.approx(40.0 + known.alpha * expected)
    assert known.feature_names[-4:] == tuple(f"user.embedding.{i}" for i in range(4))
    assert known.features[-4:] == pytest.approx(embedding.tolist())
    plain = Pricer().quote(request("q-3"), NOW)
    assert (plain.user_value, plain.value_source, plain.value_model_version) == (60.0, "list_margin", "")


def test_recent_events_are_applied_before_pricing_unless_the_quote_is_refused() -> None:
    pricer = model_pricer()
    with pytest.raises(InvalidInput, match="nan must be finite"):
        pricer.quote(dataclasses.replace(request("q-0", user_id="u1", nope=math.nan),
                                         recent_events=tuple(buyer())), NOW)
    assert pricer.users is not None and pricer.users.get("u1").events == 0
    with_events = pricer.quote(dataclasses.replace(request("q-1", user_id="u1"),
                                                   recent_events=tuple(buyer())), NOW)
    assert pricer.users.get("u1").events == 4
    assert with_events.user_value == pytest.approx(pricer.quote(request("q-2", user_id="u1"), NOW).user_value)
    with pytest.raises(InvalidInput, match=r"recent_events\[0\].user_id"):
        dataclasses.replace(request("q-3", user_id="u1"), recent_events=(buyer("u2")[0],))


def test_a_settled_quote_advances_the_shoppers_state_as_a_view_at_the_quoted_price() -> None:
    pricer = model_pricer()
    pricer.observe(shopper("careful", bought_at=0.9, refused_at=0.95), NOW)
    before = pricer.users.get("careful") if pricer.users else None
    assert before is not None and before.last_timestamp is not None
    refused = pricer.quote(request("q-1", user_id="careful"), NOW)
    late = before.last_timestamp - 10.0  # a close stamped before the last event still lands after it
    assert pricer.learn_response(refused, 0.0, late).accepted == 1
    after = pricer.users.get("careful")
    assert after.events == before.events + 1
    assert after.last_timestamp == pytest.approx(before.last_timestamp + 0.001)
    expected = DEFAULT.network.step(before, BehaviorEvent(
        user_id="careful", timestamp=after.last_timestamp, event_type="view", product_id=refused.product_id,
        category=refused.category, price=refused.price, unit_cost=refused.unit_cost,
        list_price=refused.list_price, purchased=False))
    np.testing.assert_array_equal(after.h, expected.h)
    assert Pricer().learn_response(refused, 1.0, NOW).accepted == 0  # no value model: nothing to advance


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
def test_every_offer_is_an_example_judged_on_the_events_before_it() -> None:
    history = [*shopper("u1", bought_at=0.9, refused_at=1.0, visits=2),
               event(300, product_id="p0", category="home", price=95, unit_cost=80, list_price=100),
               event(310, "add_to_cart", product_id="p0", category="home", price=95, unit_cost=80,
                     list_price=100),
               event(320, "purchase", product_id="p0", category="home", price=95, unit_cost=80,
                     list_price=100),  # no purchased flag on the view: the purchase tells
               event(400, "quote", product_id="p2", price=70, unit_cost=60, list_price=80),
               event(500, product_id="p3", price=70, unit_cost=60, list_price=0)]  # unknown list: none
    examples = build_examples(history, max_len=16)
    assert examples.events.shape == (1, 8, INPUT_DIM) and len(examples) == 4
    assert examples.weights[0].tolist() == [1, 1, 0, 1, 0, 0, 1, 0]
    assert examples.bought[0][examples.weights[0] > 0].tolist() == [0, 1, 1, 0]
    assert examples.offers[0, 0] == pytest.approx(0.0)  # refused at list
    assert examples.offers[0, 6] == pytest.approx(math.log(70 / 80))
    assert examples.products.shape == (1, 8, 11)
    assert np.all(examples.events[0].any(axis=1))  # one row per event, from the first, no padding
    assert len(build_examples(history, max_len=2)) == 2  # a user's first events only


def test_a_transactions_file_reads_as_purchases_but_cannot_train(tmp_path: Path) -> None:
    path = tmp_path / "tx.csv"
    path.write_text("customer_id,date,amount\n17,2011-01-04,12.5\n17,2011-02-01T10:00:00,30\n")
    events = list(read_log(path))
    assert [(e.user_id, e.event_type, e.price, e.unit_cost) for e in events] == [
        ("17", "purchase", 12.5, 0.0), ("17", "purchase", 30.0, 0.0)]
    assert events[0].timestamp == 1294099200.0
    with pytest.raises(LogError, match="no event that offers a price with a known list price"):
        build_examples(events)


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


def test_a_user_with_no_history_is_worth_the_list_margin_with_the_embedding_of_the_zero_state() -> None:
    """The zero state is answered without the heads: what they compute for it (here for an equal state
    that is not the zero state object) is the same, exactly."""
    network = DEFAULT.network
    zero = network.zero_state
    equal = UserState(zero.h.copy(), zero.c.copy())
    for cost, category, list_price in ((40.0, "shoes", 100.0), (3.5, "", 3.6), (900.0, "audio", 5e4)):
        shortcut, embedding = network.relative_value(zero, cost, category, list_price)
        computed, computed_embedding = network.relative_value(equal, cost, category, list_price)
        assert shortcut == computed == 1.0
        assert np.array_equal(embedding, computed_embedding)
        assert not embedding.flags.writeable  # shared: no caller may change it
