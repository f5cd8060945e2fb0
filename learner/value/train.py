"""``pricebandit-train``: train the value model on a behavior log and write a model file.

Input: a behavior log (JSON lines or CSV with ``user_id, timestamp, event_type, product_id, category,
price, unit_cost, list_price, dwell_seconds, rating, purchased``), such as ``pricebandit-sim
behavior`` writes. The model is a per-shopper demand model: every event that offers the shopper a
price (a ``view``, or a ``quote``) with a known list price is one example; the shopper's events
before it are the history, and the target is whether they bought at that price (the event's
``purchased`` flag, or a later purchase of the same product before it is offered again). Users are
split into training and validation; the report compares the model's log-loss and AUC on validation
with a pooled logistic regression on the same product and price inputs that ignores the history.

A plain transactions file (CSV with ``customer_id, date, amount``) is still read, as purchases at
cost 0, but holds no offer that was refused and no list price, so it cannot train this model: the
command says so.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import logging
import math
import os
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from learner import cliargs
from learner.errors import LogError
from learner.value import artifact
from learner.value.events import (
    INPUT_DIM,
    OFFER_TYPES,
    PRODUCT_DIM,
    BehaviorEvent,
    encode,
    offer_ratio,
    product_inputs,
)

log = logging.getLogger("pricebandit.train")
TRANSACTION_COLUMNS = {"customer_id", "date", "amount"}


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
        list_price=_number(row.get("list_price")),
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
    """One row per user: their first events, and at each step the price offered there and its outcome.

    Step ``t`` of a row is an example when ``weights[t]`` is 1: the offer of event ``t`` (product
    inputs, ``log(price / list)``) judged on the user's events ``0..t-1``.
    """

    events: np.ndarray  # (users, steps, INPUT_DIM), zero rows at the end are padding
    products: np.ndarray  # (users, steps, PRODUCT_DIM) the product offered at each step
    offers: np.ndarray  # (users, steps) log(price / list price) offered at each step
    bought: np.ndarray  # (users, steps) 1 when that offer was bought
    weights: np.ndarray  # (users, steps) 1 where a step is an example
    users: np.ndarray  # (users,) user id of each row

    def __len__(self) -> int:
        """How many examples (offers), not rows."""
        return int(self.weights.sum())

    def take(self, mask: np.ndarray) -> Examples:
        return Examples(self.events[mask], self.products[mask], self.offers[mask], self.bought[mask],
                        self.weights[mask], self.users[mask])

    def flat(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The examples alone: product inputs, offers and outcomes, one row per example."""
        where = self.weights > 0
        return self.products[where], self.offers[where], self.bought[where]


def outcomes(history: Sequence[BehaviorEvent]) -> list[bool | None]:
    """For each event, whether the price it offers was bought (None: it offers no price to learn from).

    An offer counts as bought when it says so (``purchased``), or when a purchase of the same product
    follows before the product is offered again.
    """
    result: list[bool | None] = []
    for k, event in enumerate(history):
        if event.event_type not in OFFER_TYPES or event.price <= 0 or event.list_price <= 0:
            result.append(None)
            continue
        bought = event.purchased
        if not bought and event.product_id:
            for later in history[k + 1:]:
                if later.product_id != event.product_id:
                    continue
                if later.event_type in OFFER_TYPES:
                    break
                if later.event_type == "purchase":
                    bought = True
                    break
        result.append(bought)
    return result


def build_examples(events: Iterable[BehaviorEvent], max_len: int = 128) -> Examples:
    """One row per user with at least one offer among their first ``max_len`` events.

    A user's state starts from zero at their first event, as it does when the server observes them,
    so a row always starts at the user's first event; events past ``max_len`` are left out.
    """
    by_user: dict[str, list[BehaviorEvent]] = defaultdict(list)
    for event in events:
        by_user[event.user_id].append(event)
    rows: list[tuple[str, list[BehaviorEvent], list[bool | None]]] = []
    for user, history in by_user.items():
        history.sort(key=lambda event: event.timestamp)
        history = history[:max_len]
        targets = outcomes(history)
        if any(target is not None for target in targets):
            rows.append((user, history, targets))
    if not rows:
        raise LogError("the log holds no event that offers a price with a known list price (a view or "
                       "quote with price and list_price): nothing shows what a shopper would pay. "
                       "A transactions file of purchases alone cannot train this model")
    steps = max(len(history) for _, history, _ in rows)
    n = len(rows)
    sequences = np.zeros((n, steps, INPUT_DIM), np.float32)
    products = np.zeros((n, steps, PRODUCT_DIM), np.float32)
    offers, bought, weights = (np.zeros((n, steps), np.float32) for _ in range(3))
    for i, (_, history, targets) in enumerate(rows):
        sequences[i, :len(history)] = encode_sequence(history, len(history))
        for t, (event, target) in enumerate(zip(history, targets, strict=True)):
            if target is None:
                continue
            products[i, t] = product_inputs(event.unit_cost, event.category, event.list_price)
            offers[i, t] = offer_ratio(event.price, event.list_price)
            bought[i, t] = float(target)
            weights[i, t] = 1.0
    return Examples(sequences, products, offers, bought, weights, np.asarray([user for user, _, _ in rows]))


def encode_sequence(events: Sequence[BehaviorEvent], max_len: int) -> np.ndarray:
    """Events in time order as a (max_len, INPUT_DIM) window, zero rows at the end as padding."""
    window = np.zeros((max_len, INPUT_DIM), np.float32)
    previous: float | None = None
    for i, event in enumerate(events[:max_len]):
        window[i] = encode(event, previous)
        previous = event.timestamp
    return window


def split_by_user(examples: Examples, validation: float, seed: int) -> tuple[Examples, Examples]:
    """A user's examples all go to one side (a stable hash of seed and user id decides)."""
    def held_out(user: str) -> bool:
        digest = hashlib.blake2b(f"{seed}\x00{user}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") / 2**64 < validation

    mask = np.array([held_out(str(user)) for user in examples.users])
    return examples.take(~mask), examples.take(mask)


def pooled_inputs(products: np.ndarray, offers: np.ndarray) -> np.ndarray:
    """The baseline's inputs: product inputs, the offer, and the offer crossed with each."""
    return np.column_stack([np.ones(len(offers)), products, offers, offers[:, None] * products])


def fit_pooled(products: np.ndarray, offers: np.ndarray, bought: np.ndarray, *, l2: float = 1e-3,
               steps: int = 30) -> np.ndarray:
    """Logistic regression (Newton's method) of the outcome on what is known without the history."""
    x = pooled_inputs(products, offers)
    w = np.zeros(x.shape[1])
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ w, -30, 30)))
        gradient = x.T @ (p - bought) + l2 * len(x) * w
        hessian = (x * (p * (1 - p))[:, None]).T @ x + l2 * len(x) * np.eye(x.shape[1])
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.max(np.abs(step)) < 1e-8:
            break
    return w


def log_loss(bought: np.ndarray, logit: np.ndarray) -> float:
    """Mean binary cross-entropy of outcomes under the logits (natural log)."""
    return float(np.mean(np.logaddexp(0.0, logit) - bought * logit))


def auc(bought: np.ndarray, score: np.ndarray) -> float:
    """Probability that a random purchase scores above a random refusal (ties count half)."""
    positive = bought > 0.5
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return math.nan
    order = np.argsort(score, kind="stable")
    ranks = np.empty(len(score))
    sorted_scores = score[order]
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    ends = np.r_[starts[1:], len(score)]
    for a, b in zip(starts, ends, strict=True):
        ranks[order[a:b]] = (a + b + 1) / 2.0  # average 1-based rank of a tie
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


# -- training ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrainSettings:
    units: int = 16
    embedding_dim: int = 4
    hidden: int = 16
    max_len: int = 128
    epochs: int = 30
    batch_size: int = 32
    learning_rate: float = 0.01
    validation: float = 0.2
    seed: int = 0


SETTING_FLAGS: dict[str, tuple[Callable[[str], Any], str]] = {
    "units": (cliargs.positive_int, "LSTM units (the user state is 2 x units float32)"),
    "embedding_dim": (cliargs.positive_int, "values of the user embedding given to the bandit"),
    "hidden": (cliargs.positive_int, "units of the demand head's hidden layer"),
    "max_len": (cliargs.positive_int, "events per user (their first ones)"),
    "epochs": (cliargs.positive_int, "passes over the training users"),
    "batch_size": (cliargs.positive_int, "users per gradient step"),
    "learning_rate": (cliargs.positive, "Adam's step size"),
    "validation": (cliargs.share, "share of users held out for validation"),
    "seed": (cliargs.non_negative_int, "seed of the weights, the shuffling and the user split"),
}
"""Each setting's flag: how its text is read (what values are allowed) and its help."""


@dataclass(frozen=True)
class TrainReport:
    version: str
    train_examples: int
    validation_examples: int
    train_users: int
    log_loss: float
    baseline_log_loss: float
    auc: float
    baseline_auc: float
    seconds: float

    def summary(self) -> str:
        return (f"model {self.version}: {self.train_examples} training / {self.validation_examples} "
                f"validation offers ({self.train_users} training users), {self.seconds:.1f} s\n"
                f"validation log-loss {self.log_loss:.4f} (baseline, pooled over users: "
                f"{self.baseline_log_loss:.4f}); AUC {self.auc:.3f} (baseline {self.baseline_auc:.3f})")


def train(examples: Examples, out: Path, settings: TrainSettings = TrainSettings(), *,
          name: str = "value", progress: bool = True) -> TrainReport:
    """Fit the Keras model, evaluate it against the pooled baseline on held-out users, write ``out``."""
    import keras  # TensorFlow is imported only here: serving never reaches this function
    from tqdm.auto import tqdm

    from learner.value.keras_model import build_value_model, export_weights

    started = time.perf_counter()
    fit, held = split_by_user(examples, settings.validation, settings.seed)
    if len(fit) == 0 or len(held) == 0:
        raise LogError(f"{len(examples)} examples are too few to split into training and validation")
    keras.utils.set_random_seed(settings.seed)
    model = build_value_model(units=settings.units, embedding_dim=settings.embedding_dim,
                              hidden=settings.hidden, seed=settings.seed)
    model.compile(optimizer=keras.optimizers.Adam(settings.learning_rate),
                  loss={"purchase": keras.losses.BinaryCrossentropy(from_logits=True)})
    bar = tqdm(total=settings.epochs, desc="training", unit="epoch", disable=not progress, file=sys.stderr)

    class Progress(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            bar.set_postfix({k: f"{v:.4f}" for k, v in (logs or {}).items() if k.endswith("loss")})
            bar.update(1)

    def inputs(data: Examples) -> dict[str, np.ndarray]:
        return {"events": data.events, "product": data.products, "offer": data.offers[..., None]}

    model.fit(inputs(fit), {"purchase": fit.bought[..., None]}, sample_weight={"purchase": fit.weights},
              epochs=settings.epochs, batch_size=settings.batch_size, verbose=0, callbacks=[Progress()])
    bar.close()
    logits = model.predict(inputs(held), verbose=0)["purchase"][..., 0][held.weights > 0]
    products, offers, bought = held.flat()
    pooled = fit_pooled(*fit.flat())
    baseline = pooled_inputs(products, offers) @ pooled
    seconds = time.perf_counter() - started
    report_fields = {
        "train_examples": len(fit), "validation_examples": len(held), "train_users": len(fit.users),
        "log_loss": log_loss(bought, logits), "baseline_log_loss": log_loss(bought, baseline),
        "auc": auc(bought, logits), "baseline_auc": auc(bought, baseline), "seconds": seconds,
    }
    info = {**report_fields, "settings": settings.__dict__,
            "trained_at": datetime.now(UTC).isoformat(timespec="seconds")}
    version = artifact.save(out, export_weights(model), name=name, info=info)
    return TrainReport(version=version, **report_fields)  # type: ignore[arg-type]


@contextlib.contextmanager
def tensorflow_log_hidden() -> Iterator[None]:
    """Point file descriptor 2 at a temporary file while TensorFlow runs; Python's ``sys.stderr`` (the
    progress bar, warnings) keeps the terminal.

    TensorFlow's C++ libraries print their start-up log (oneDNN, CPU features) there before any of
    their settings apply: ``TF_CPP_MIN_LOG_LEVEL=3`` does not reach it (tensorflow/tensorflow#100442).
    On an error the hidden log is written out after all, since it may say why.
    """
    sys.stderr.flush()
    terminal = os.dup(2)
    python_stderr = sys.stderr
    with tempfile.TemporaryFile() as hidden, open(terminal, "w", buffering=1, closefd=False) as visible:
        os.dup2(hidden.fileno(), 2)
        sys.stderr = visible
        try:
            yield
        except BaseException:
            hidden.seek(0)
            os.write(terminal, hidden.read())
            raise
        finally:
            sys.stderr = python_stderr
            os.dup2(terminal, 2)
            os.close(terminal)


def main(argv: Sequence[str] | None = None) -> int:
    parser = cliargs.CommandParser(prog="pricebandit-train", formatter_class=cliargs.DefaultsHelp,
                                   description="Train the user value model and write a model file.")
    parser.add_argument("log", type=cliargs.input_file,
                        help="behavior log (.jsonl or .csv), e.g. from pricebandit-sim behavior")
    parser.add_argument("--out", type=cliargs.output_file, required=True,
                        help="where to write the model file (.npz)")
    parser.add_argument("--name", default="value", help="model name, the prefix of its version")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--tensorflow-log", action="store_true",
                        help="show TensorFlow's own start-up log (hidden unless training fails)")
    defaults = TrainSettings()
    for key, value in defaults.__dict__.items():
        parse, help = SETTING_FLAGS[key]
        parser.add_argument(f"--{key.replace('_', '-')}", type=parse, default=value, help=help)
    args = parser.parse_args(argv)
    settings = TrainSettings(**{key: getattr(args, key) for key in defaults.__dict__})
    try:
        examples = build_examples(read_log(args.log), settings.max_len)
        with contextlib.nullcontext() if args.tensorflow_log else tensorflow_log_hidden():
            report = train(examples, args.out, settings, name=args.name, progress=not args.no_progress)
    except (OSError, ValueError) as error:  # LogError, InvalidInput, a bad size: said in one line
        print(f"pricebandit-train: {error}", file=sys.stderr)
        return 2
    print(report.summary())
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
