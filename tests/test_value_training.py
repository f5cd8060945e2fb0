"""Training with real TensorFlow: the Keras model, the numpy twin's agreement with it, and the
``pricebandit-train`` command on behavior logs and transactions files. Kept tiny (seconds)."""

from __future__ import annotations

import csv
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from learner.value import BehaviorEvent, load
from learner.value.events import product_inputs
from learner.value.simulate import simulate_events
from learner.value.train import TrainSettings, build_examples, encode_sequence, main, train

keras = pytest.importorskip("keras")
from learner.value.keras_model import build_value_model, export_weights, keras_twin  # noqa: E402
from learner.value.network import ValueNetwork  # noqa: E402

TINY = TrainSettings(epochs=4, max_len=16, batch_size=32)
TINY_FLAGS = ["--epochs", "4", "--max-len", "16", "--batch-size", "32", "--no-progress"]


def histories(n_users: int, seed: int) -> list[list[BehaviorEvent]]:
    by_user: dict[str, list[BehaviorEvent]] = {}
    for event in simulate_events(n_users, seed=seed):
        by_user.setdefault(event.user_id, []).append(event)
    return list(by_user.values())


def assert_numpy_agrees_with_keras(model: keras.Model, network: ValueNetwork, max_len: int) -> None:
    """Whole sequences of different lengths in one padded batch: masked steps must not move Keras."""
    users = [h[:max_len] for h in histories(6, seed=11)]
    users.append(users[0][:1])  # one event, the rest padding
    batch = np.stack([encode_sequence(h, max_len) for h in users])
    products = np.stack([product_inputs(10.0 * (i + 1), "shoes") for i in range(len(users))])
    out = model.predict({"events": batch, "product": products}, verbose=0)
    for i, history in enumerate(users):
        state = network.run(history)
        embedding = network.embedding(state)
        np.testing.assert_allclose(embedding, out["embedding"][i], atol=1e-5, rtol=0)
        np.testing.assert_allclose(network.log_value(embedding, products[i]), out["log_value"][i, 0],
                                   atol=1e-5, rtol=0)
    assert len({len(h) for h in users}) > 2


def test_numpy_cell_agrees_with_an_untrained_keras_model() -> None:
    model = build_value_model(units=8, embedding_dim=3, hidden=5, seed=3)
    assert [layer.name for layer in model.layers if layer.weights] == [
        "lstm", "embedding", "value_hidden", "log_value"]
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
    report = train(build_examples(simulate_events(300, seed=1), TINY.max_len), out, TINY,
                   name="tiny", progress=False)
    return out, report


def test_training_beats_the_naive_baseline_and_exports_a_servable_model(trained: tuple[Path, object]) -> None:
    out, report = trained
    assert report.r2 > report.baseline_r2 + 0.2  # type: ignore[attr-defined]
    assert report.mae < report.baseline_mae  # type: ignore[attr-defined]
    model = load(out)
    assert model.version == report.version  # type: ignore[attr-defined]
    assert model.info["settings"] == asdict(TINY) and model.info["r2"] == report.r2  # type: ignore[attr-defined]
    assert_numpy_agrees_with_keras(keras_twin(model.network), model.network, max_len=TINY.max_len)


def test_the_command_trains_on_a_jsonl_log_reproducibly(
    trained: tuple[Path, object], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "behavior.jsonl"
    with log.open("w") as handle:
        for event in simulate_events(300, seed=1):
            handle.write(json.dumps(asdict(event)) + "\n")
    assert main([str(log), "--out", str(tmp_path / "m.npz"), "--name", "tiny", *TINY_FLAGS]) == 0
    printed = capsys.readouterr().out
    assert "validation R²" in printed and "baseline, the user's mean past margin" in printed
    assert load(tmp_path / "m.npz").version == trained[1].version  # type: ignore[attr-defined]


def test_the_command_learns_from_a_transactions_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                                     ) -> None:
    """Customers whose spend is steady: their history predicts their next amount."""
    rng = np.random.default_rng(0)
    path = tmp_path / "transactions.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["customer_id", "date", "amount"])
        for customer in range(150):
            level = float(rng.lognormal(3.0, 0.8))
            for day in sorted(rng.choice(300, size=int(rng.integers(3, 9)), replace=False)):
                date = np.datetime64("2011-01-01") + int(day)
                writer.writerow([customer, str(date), round(level * float(rng.lognormal(0, 0.1)), 2)])
    assert main([str(path), "--out", str(tmp_path / "tx.npz"), *TINY_FLAGS]) == 0
    model = load(tmp_path / "tx.npz")
    assert model.info["r2"] > 0.5 and model.info["validation_examples"] > 50
    assert "validation R²" in capsys.readouterr().out


def test_a_bad_log_stops_the_command_naming_the_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                                     ) -> None:
    log = tmp_path / "bad.jsonl"
    good = {"user_id": "u", "timestamp": 1.7e9, "event_type": "view"}
    log.write_text(json.dumps(good) + "\n" + json.dumps({**good, "event_type": "click"}) + "\n")
    assert main([str(log), "--out", str(tmp_path / "m.npz")]) == 2
    assert "bad.jsonl:2: event_type: 'click' is not one of" in capsys.readouterr().err
    assert not (tmp_path / "m.npz").exists()
