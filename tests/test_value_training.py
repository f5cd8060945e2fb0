"""Training with real TensorFlow: the Keras model, the numpy twin's agreement with it, and the
``pricebandit-train`` command on the simulator's behavior histories. Kept small (seconds)."""

from __future__ import annotations

import csv
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from learner.value import BehaviorEvent, load
from learner.value.events import offer_ratio, product_inputs
from learner.value.train import TrainSettings, build_examples, encode_sequence, main, train
from simulator.behavior import histories as market_histories
from simulator.market import Market, MarketConfig

keras = pytest.importorskip("keras")
from learner.value.keras_model import build_value_model, export_weights, keras_twin  # noqa: E402
from learner.value.network import ValueNetwork  # noqa: E402

TINY = TrainSettings(epochs=6, max_len=64, batch_size=16)
TINY_FLAGS = ["--epochs", "6", "--max-len", "64", "--batch-size", "16", "--no-progress"]


def simulated(n_users: int, seed: int) -> list[BehaviorEvent]:
    """The returning shoppers' histories of a small simulated market."""
    market = Market(MarketConfig(users=n_users, products=150), seed=seed)
    return [BehaviorEvent(**event) for event in market_histories(market)]


def histories(n_users: int, seed: int) -> list[list[BehaviorEvent]]:
    by_user: dict[str, list[BehaviorEvent]] = {}
    for event in simulated(n_users, seed):
        by_user.setdefault(event.user_id, []).append(event)
    return list(by_user.values())


def assert_numpy_agrees_with_keras(model: keras.Model, network: ValueNetwork, max_len: int) -> None:
    """Whole sequences of different lengths in one padded batch; at every step the numpy twin, holding
    the state after the events before it, must give Keras' embedding, willingness and logit for an
    offer there (padded steps must not move Keras)."""
    users = [h[:max_len] for h in histories(12, seed=11)][:6]
    users.append(users[0][:1])  # one event, the rest padding
    batch = np.stack([encode_sequence(h, max_len) for h in users])
    rng = np.random.default_rng(0)
    costs = rng.uniform(5.0, 200.0, size=(len(users), max_len))
    lists = costs * rng.uniform(1.0, 1.6, size=costs.shape)
    prices = lists * rng.uniform(0.7, 1.1, size=costs.shape)
    products = np.stack([[product_inputs(c, "shoes", lp) for c, lp in zip(cs, ls, strict=True)]
                         for cs, ls in zip(costs, lists, strict=True)])
    offers = np.vectorize(offer_ratio)(prices, lists)[..., None].astype(np.float32)
    out = model.predict({"events": batch, "product": products, "offer": offers}, verbose=0)
    for i, history in enumerate(users):
        state = network.zero_state
        for t in range(len(history) + 1 if len(history) < max_len else max_len):
            embedding = network.embedding(state)
            np.testing.assert_allclose(embedding, out["embedding"][i, t], atol=1e-5, rtol=0)
            m, _ = network.head(embedding, products[i, t])
            np.testing.assert_allclose(m, out["willingness"][i, t, 0], atol=1e-5, rtol=0)
            logit = network.purchase_logit(embedding, products[i, t], float(offers[i, t, 0]))
            np.testing.assert_allclose(logit, out["purchase"][i, t, 0], atol=1e-5, rtol=0)
            if t < len(history):
                state = network.step(state, history[t])
    assert len({len(h) for h in users}) > 2


def test_numpy_cell_agrees_with_an_untrained_keras_model() -> None:
    model = build_value_model(units=8, embedding_dim=3, hidden=5, seed=3)
    assert sorted(layer.name for layer in model.layers if layer.weights) == [
        "embedding", "lstm", "slope", "value_hidden", "willingness"]
    assert_numpy_agrees_with_keras(model, ValueNetwork(export_weights(model)), max_len=40)


def test_the_builder_is_seeded_and_refuses_bad_sizes() -> None:
    first = export_weights(build_value_model(seed=7))
    again = export_weights(build_value_model(seed=7))
    assert all(np.array_equal(first[k], again[k]) for k in first)
    assert not np.array_equal(first["lstm.kernel"], export_weights(build_value_model(seed=8))["lstm.kernel"])
    with pytest.raises(ValueError, match="units must be >= 1, got 0"):
        build_value_model(units=0)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("model") / "value.npz"
    report = train(build_examples(simulated(1000, seed=1), TINY.max_len), out, TINY,
                   name="tiny", progress=False)
    return out, report


def test_training_beats_the_pooled_baseline_and_exports_a_servable_model(trained: tuple[Path, object]
                                                                        ) -> None:
    """The pooled baseline knows the product and the price; only the history tells shoppers apart."""
    out, report = trained
    assert report.validation_examples > 1000  # type: ignore[attr-defined]
    assert report.log_loss < report.baseline_log_loss - 0.02  # type: ignore[attr-defined]
    assert report.auc > report.baseline_auc + 0.03  # type: ignore[attr-defined]
    model = load(out)
    assert model.version == report.version  # type: ignore[attr-defined]
    assert model.info["settings"] == asdict(TINY) and model.info["log_loss"] == report.log_loss  # type: ignore[attr-defined]
    assert_numpy_agrees_with_keras(keras_twin(model.network), model.network, max_len=TINY.max_len)


def test_the_command_trains_on_a_jsonl_log_reproducibly(
    trained: tuple[Path, object], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "behavior.jsonl"
    with log.open("w") as handle:
        for event in simulated(1000, seed=1):
            handle.write(json.dumps(asdict(event)) + "\n")
    assert main([str(log), "--out", str(tmp_path / "m.npz"), "--name", "tiny", *TINY_FLAGS]) == 0
    printed = capsys.readouterr().out
    assert "validation log-loss" in printed and "baseline, pooled over users" in printed
    assert load(tmp_path / "m.npz").version == trained[1].version  # type: ignore[attr-defined]


def test_the_command_refuses_a_transactions_file_saying_why(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "transactions.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["customer_id", "date", "amount"])
        writer.writerows([[1, "2011-01-04", 12.5], [1, "2011-02-01", 30.0]])
    assert main([str(path), "--out", str(tmp_path / "tx.npz"), *TINY_FLAGS]) == 2
    assert "no event that offers a price with a known list price" in capsys.readouterr().err
    assert not (tmp_path / "tx.npz").exists()


def test_a_bad_log_stops_the_command_naming_the_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                                     ) -> None:
    log = tmp_path / "bad.jsonl"
    good = {"user_id": "u", "timestamp": 1.7e9, "event_type": "view"}
    log.write_text(json.dumps(good) + "\n" + json.dumps({**good, "event_type": "click"}) + "\n")
    assert main([str(log), "--out", str(tmp_path / "m.npz")]) == 2
    assert "bad.jsonl:2: event_type: 'click' is not one of" in capsys.readouterr().err
    assert not (tmp_path / "m.npz").exists()
