"""``pricebandit-train``: train the value model on a behavior log and write a model file.

Input: a behavior log (JSON lines or CSV with ``user_id, timestamp, event_type, product_id, category,
price, unit_cost, dwell_seconds, rating, purchased``), or a plain transactions file (CSV with
``customer_id, date, amount``, the shape of public retail data sets: every row is a purchase at cost
0), or ``--simulate N`` users of the built-in market. Every purchase after a user's first event is one
example: the events before it are the sequence, its margin ``price - unit_cost`` the target. Users
are split into training and validation; the report compares the model's R² on validation with the
naive baseline that predicts each user's mean past margin.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import logging
import math
import sys
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from learner.value import artifact
from learner.value.events import INPUT_DIM, PRODUCT_DIM, BehaviorEvent, encode, product_inputs
from learner.value.simulate import simulate_events

log = logging.getLogger("pricebandit.train")
TRANSACTION_COLUMNS = {"customer_id", "date", "amount"}


class LogError(ValueError):
    """A behavior log that cannot be read; the message names the file, line and field."""


# -- reading logs ----------------------------------------------------------------------------------
def parse_time(text: Any) -> float:
    """Unix seconds from a number or an ISO 8601 date/time (UTC when no zone is given)."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return float(text)
    try:
        return float(text)
    except ValueError:
        stamp = datetime.fromisoformat(str(text).strip())
        return (stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)).timestamp()


def _flag(value: Any) -> bool:
    return str(value).strip().lower() in {"1", "true", "yes", "1.0"}


def _number(value: Any) -> float:
    return 0.0 if value in (None, "") else float(value)


def event_from_row(row: dict[str, Any]) -> BehaviorEvent:
    """One row of a behavior log or transactions file as an event."""
    if row.keys() >= TRANSACTION_COLUMNS:
        return BehaviorEvent(user_id=str(row["customer_id"]), timestamp=parse_time(row["date"]),
                             event_type="purchase", price=_number(row["amount"]), purchased=True)
    return BehaviorEvent(
        user_id=str(row["user_id"]), timestamp=parse_time(row["timestamp"]),
        event_type=str(row["event_type"]), product_id=str(row.get("product_id") or ""),
        category=str(row.get("category") or ""), price=_number(row.get("price")),
        unit_cost=_number(row.get("unit_cost")), dwell_seconds=_number(row.get("dwell_seconds")),
        rating=_number(row.get("rating")), purchased=_flag(row.get("purchased")),
    )


def read_log(path: Path) -> Iterator[BehaviorEvent]:
    """Events of a ``.jsonl``/``.json`` or ``.csv`` log; LogError names the line of a bad row."""
    with path.open(newline="", encoding="utf-8") as handle:
        rows: Iterable[tuple[int, Any]] = (
            enumerate(csv.DictReader(handle), start=2) if path.suffix.lower() == ".csv"
            else ((n, text) for n, text in enumerate(handle, start=1) if text.strip()))
        for line, row in rows:
            try:
                yield event_from_row(row if isinstance(row, dict) else json.loads(row))
            except (KeyError, ValueError, TypeError) as exc:
                problem = f"missing column {exc}" if isinstance(exc, KeyError) else str(exc)
                raise LogError(f"{path}:{line}: {problem}") from None


# -- examples ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Examples:
    """Padded event sequences, the product each target purchase was of, and the targets."""

    sequences: np.ndarray  # (n, max_len, INPUT_DIM), zero rows at the front are padding
    products: np.ndarray  # (n, PRODUCT_DIM)
    margins: np.ndarray  # (n,) what was paid over cost
    past_mean: np.ndarray  # (n,) the user's mean margin before (NaN: no purchase before)
    users: np.ndarray  # (n,) user id of each example

    def __len__(self) -> int:
        return len(self.margins)

    def take(self, mask: np.ndarray) -> Examples:
        return Examples(self.sequences[mask], self.products[mask], self.margins[mask],
                        self.past_mean[mask], self.users[mask])


def build_examples(events: Iterable[BehaviorEvent], max_len: int = 64) -> Examples:
    """One example per purchase with history: the user's last ``max_len`` events before it.

    Events about the purchased product itself are left out of its history: its view and cart
    events carry the very price being predicted, which a quote does not know yet (it sets it).
    """
    by_user: dict[str, list[BehaviorEvent]] = defaultdict(list)
    for event in events:
        by_user[event.user_id].append(event)
    sequences, products, margins, past_mean, users = [], [], [], [], []
    for user, history in by_user.items():
        history.sort(key=lambda event: event.timestamp)
        paid: list[float] = []
        for k, event in enumerate(history):
            if event.event_type != "purchase":
                continue
            before = [e for e in history[:k] if not event.product_id or e.product_id != event.product_id]
            if before:
                sequences.append(encode_sequence(before[-max_len:], max_len))
                products.append(product_inputs(event.unit_cost, event.category))
                margins.append(max(0.0, event.price - event.unit_cost))
                past_mean.append(float(np.mean(paid)) if paid else math.nan)
                users.append(user)
            paid.append(max(0.0, event.price - event.unit_cost))
    if not margins:
        raise LogError("the log holds no purchase after a user's first event: nothing to learn")
    return Examples(np.stack(sequences), np.stack(products).reshape(-1, PRODUCT_DIM),
                    np.asarray(margins), np.asarray(past_mean), np.asarray(users))


def encode_sequence(events: Sequence[BehaviorEvent], max_len: int) -> np.ndarray:
    """Events in time order as a (max_len, INPUT_DIM) window, zero rows in front as padding."""
    window = np.zeros((max_len, INPUT_DIM), np.float32)
    previous: float | None = None
    start = max_len - len(events)
    for i, event in enumerate(events):
        window[start + i] = encode(event, previous)
        previous = event.timestamp
    return window


def split_by_user(examples: Examples, validation: float, seed: int) -> tuple[Examples, Examples]:
    """A user's examples all go to one side (a stable hash of seed and user id decides)."""
    def held_out(user: str) -> bool:
        digest = hashlib.blake2b(f"{seed}\x00{user}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") / 2**64 < validation

    mask = np.array([held_out(str(user)) for user in examples.users])
    return examples.take(~mask), examples.take(mask)


def r_squared(target: np.ndarray, predicted: np.ndarray) -> float:
    residual = float(np.sum((target - predicted) ** 2))
    total = float(np.sum((target - target.mean()) ** 2))
    return 1.0 - residual / total if total > 0 else 0.0


# -- training ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrainSettings:
    units: int = 16
    embedding_dim: int = 4
    hidden: int = 16
    max_len: int = 64
    epochs: int = 30
    batch_size: int = 64
    learning_rate: float = 0.01
    validation: float = 0.2
    seed: int = 0


SETTING_HELP = {
    "units": "LSTM units (the user state is 2 x units float32)",
    "embedding_dim": "values of the user embedding given to the bandit",
    "hidden": "units of the value head's hidden layer",
    "max_len": "events of history per example (the most recent)",
    "epochs": "passes over the training examples",
    "batch_size": "examples per gradient step",
    "learning_rate": "Adam's step size",
    "validation": "share of users held out for validation",
    "seed": "seed of the weights, the shuffling and the user split",
}


@dataclass(frozen=True)
class TrainReport:
    version: str
    train_examples: int
    validation_examples: int
    r2: float
    baseline_r2: float
    mae: float
    baseline_mae: float
    seconds: float

    def summary(self) -> str:
        return (f"model {self.version}: {self.train_examples} training / {self.validation_examples} "
                f"validation examples, {self.seconds:.1f} s\n"
                f"validation R² {self.r2:.3f} (baseline, the user's mean past margin: "
                f"{self.baseline_r2:.3f}); MAE {self.mae:.2f} (baseline {self.baseline_mae:.2f})")


def train(examples: Examples, out: Path, settings: TrainSettings = TrainSettings(), *,
          name: str = "value", progress: bool = True) -> TrainReport:
    """Fit the Keras model, evaluate it against the baseline on held-out users, write ``out``."""
    import keras  # TensorFlow is imported only here: serving never reaches this function
    from tqdm.auto import tqdm

    from learner.value.keras_model import build_value_model, export_weights

    started = time.perf_counter()
    fit, held = split_by_user(examples, settings.validation, settings.seed)
    if len(fit) == 0 or len(held) == 0:
        raise LogError(f"{len(examples)} examples are too few to split into training and validation")
    keras.utils.set_random_seed(settings.seed)
    model = build_value_model(units=settings.units, embedding_dim=settings.embedding_dim,
                              hidden=settings.hidden, seed=settings.seed, max_len=settings.max_len)
    model.compile(optimizer=keras.optimizers.Adam(settings.learning_rate),
                  loss={"log_value": "mse"})
    bar = tqdm(total=settings.epochs, desc="training", unit="epoch", disable=not progress, file=sys.stderr)

    class Progress(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            bar.set_postfix({k: f"{v:.4f}" for k, v in (logs or {}).items() if k.endswith("loss")})
            bar.update(1)

    inputs = {"events": fit.sequences, "product": fit.products}
    held_inputs = {"events": held.sequences, "product": held.products}
    # Fit a standardized target (a raw log margin of 3 to 7 drives the ReLUs dead in the first steps),
    # then fold the scale into the output layer so the exported model predicts log1p(margin) itself.
    center, spread = float(np.log1p(fit.margins).mean()), float(np.log1p(fit.margins).std()) or 1.0
    model.fit(inputs, {"log_value": (np.log1p(fit.margins) - center) / spread}, epochs=settings.epochs,
              batch_size=settings.batch_size, verbose=0, callbacks=[Progress()],
              validation_data=(held_inputs, {"log_value": (np.log1p(held.margins) - center) / spread}))
    bar.close()
    output = model.get_layer("log_value")
    kernel, bias = output.get_weights()
    output.set_weights([kernel * spread, bias * spread + center])
    predicted = np.maximum(0.0, np.expm1(model.predict(held_inputs, verbose=0)["log_value"][:, 0]))
    baseline = np.where(np.isnan(held.past_mean), fit.margins.mean(), held.past_mean)
    seconds = time.perf_counter() - started
    report_fields = {
        "train_examples": len(fit), "validation_examples": len(held),
        "r2": r_squared(held.margins, predicted), "baseline_r2": r_squared(held.margins, baseline),
        "mae": float(np.mean(np.abs(held.margins - predicted))),
        "baseline_mae": float(np.mean(np.abs(held.margins - baseline))), "seconds": seconds,
    }
    info = {**report_fields, "settings": settings.__dict__,
            "trained_at": datetime.now(UTC).isoformat(timespec="seconds")}
    version = artifact.save(out, export_weights(model), name=name, info=info)
    return TrainReport(version=version, **report_fields)  # type: ignore[arg-type]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pricebandit-train",
                                     description="Train the user value model and write a model file.")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("log", nargs="?", type=Path,
                        help="behavior log (.jsonl or .csv) or transactions .csv")
    source.add_argument("--simulate", type=int, metavar="USERS", help="train on this many simulated users")
    parser.add_argument("--out", type=Path, required=True, help="where to write the model file (.npz)")
    parser.add_argument("--name", default="value", help="model name, the prefix of its version")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    defaults = TrainSettings()
    for key, value in defaults.__dict__.items():
        parser.add_argument(f"--{key.replace('_', '-')}", type=type(value), default=value,
                            help=f"{SETTING_HELP[key]} (default {value})")
    args = parser.parse_args(argv)
    settings = TrainSettings(**{key: getattr(args, key) for key in defaults.__dict__})
    try:
        events = simulate_events(args.simulate, seed=settings.seed) if args.simulate else read_log(args.log)
        examples = build_examples(events, settings.max_len)
        report = train(examples, args.out, settings, name=args.name, progress=not args.no_progress)
    except (OSError, ValueError) as error:  # LogError, InvalidInput, a bad size: said in one line
        print(f"pricebandit-train: {error}", file=sys.stderr)
        return 2
    print(report.summary())
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
