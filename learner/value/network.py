"""The trained value model in numpy: one LSTM step per event, then the value and embedding heads.

This is what serves. It computes exactly what the Keras model of ``keras_model.py`` computes (same
gate order i, f, g, o; sigmoid gates, tanh cell), one event at a time, so a user's state advances in
microseconds and TensorFlow is never imported by the server. The state is rounded to float32 after
every step, so a state read back from the store equals the one that was cached.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from learner.value.events import INPUT_DIM, PRODUCT_DIM, BehaviorEvent, encode, product_inputs

MAX_LOG_VALUE = math.log(1e9)
"""V is capped at a billion: a model extrapolating far beyond its data must not quote absurd prices."""
WEIGHT_NAMES: tuple[str, ...] = (
    "lstm.kernel", "lstm.recurrent_kernel", "lstm.bias",
    "embedding.kernel", "embedding.bias",
    "value_hidden.kernel", "value_hidden.bias",
    "log_value.kernel", "log_value.bias",
)


@dataclass(frozen=True)
class UserState:
    """A user's LSTM state after their last accepted event (float32), and that event's time."""

    h: np.ndarray
    c: np.ndarray
    last_timestamp: float | None = None
    events: int = 0

    _HEAD = struct.Struct("<dI")

    def to_bytes(self) -> bytes:
        stamp = math.nan if self.last_timestamp is None else self.last_timestamp
        return self._HEAD.pack(stamp, self.events) + self.h.tobytes() + self.c.tobytes()

    @classmethod
    def from_bytes(cls, blob: bytes, units: int) -> UserState:
        """Decode a stored state; ValueError when its size does not fit a model of ``units``."""
        head = cls._HEAD.size
        if len(blob) != head + 8 * units:
            raise ValueError(f"a user state of {len(blob)} bytes does not fit a model of {units} units")
        stamp, events = cls._HEAD.unpack_from(blob)
        vector = np.frombuffer(blob, dtype="<f4", offset=head)
        return cls(vector[:units].copy(), vector[units:].copy(),
                   None if math.isnan(stamp) else stamp, events)


class ValueNetwork:
    """The numpy twin of the Keras value model. Weights by ``WEIGHT_NAMES``; computes in float64."""

    def __init__(self, weights: Mapping[str, np.ndarray]) -> None:
        missing = [name for name in WEIGHT_NAMES if name not in weights]
        if missing:
            raise ValueError(f"missing weights {missing}")
        w = {name: np.asarray(weights[name], dtype=np.float64) for name in WEIGHT_NAMES}
        broken = [name for name, array in w.items() if not np.all(np.isfinite(array))]
        if broken:
            raise ValueError(f"weights {broken} are not finite (training diverged?)")
        self.kernel, self.recurrent, self.bias = w["lstm.kernel"], w["lstm.recurrent_kernel"], w["lstm.bias"]
        self.units = self.recurrent.shape[0]
        self.embed_w, self.embed_b = w["embedding.kernel"], w["embedding.bias"]
        self.hidden_w, self.hidden_b = w["value_hidden.kernel"], w["value_hidden.bias"]
        self.out_w, self.out_b = w["log_value.kernel"][:, 0], float(w["log_value.bias"][0])
        self.embedding_dim = self.embed_w.shape[1]
        expected = {
            "lstm.kernel": (INPUT_DIM, 4 * self.units), "lstm.recurrent_kernel": (self.units, 4 * self.units),
            "lstm.bias": (4 * self.units,), "embedding.kernel": (self.units, self.embedding_dim),
            "value_hidden.kernel": (self.embedding_dim + PRODUCT_DIM, self.hidden_b.shape[0]),
            "log_value.kernel": (self.hidden_b.shape[0], 1),
        }
        for name, shape in expected.items():
            if w[name].shape != shape:
                raise ValueError(f"weight {name} has shape {w[name].shape}, expected {shape}")
        self._stacked = np.vstack([self.kernel, self.recurrent])
        self._gate_scale = np.full(4 * self.units, 0.5)
        self._gate_scale[2 * self.units:3 * self.units] = 1.0
        self._zero = UserState(np.zeros(self.units, np.float32), np.zeros(self.units, np.float32))
        self._zero_embedding = self.embedding(self._zero)

    @property
    def zero_state(self) -> UserState:
        """Where a user with no history starts."""
        return self._zero

    def step(self, state: UserState, event: BehaviorEvent) -> UserState:
        """The state after ``event``: one LSTM step on the encoded event."""
        x = encode(event, state.last_timestamp)
        h, c = self.cell(x, state.h, state.c)
        return UserState(h.astype(np.float32), c.astype(np.float32), event.timestamp, state.events + 1)

    def cell(self, x: np.ndarray, h: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Keras' LSTM cell: z = [x, h] [K; R] + b, split into input, forget, candidate, output.

        One matrix product and one tanh for all four: sigmoid(z) = (tanh(z / 2) + 1) / 2, so the
        gates' pre-activations are halved (``_gate_scale``) and the candidate's kept.
        """
        u = self.units
        t = np.tanh((np.concatenate((x, h)) @ self._stacked + self.bias) * self._gate_scale)
        gates = 0.5 * t + 0.5
        c_next = gates[u:2 * u] * c + gates[:u] * t[2 * u:3 * u]
        return gates[3 * u:] * np.tanh(c_next), c_next

    def run(self, events: Iterable[BehaviorEvent], state: UserState | None = None) -> UserState:
        for event in events:
            state = self.step(state or self._zero, event)
        return state or self._zero

    def embedding(self, state: UserState) -> np.ndarray:
        return np.tanh(state.h @ self.embed_w + self.embed_b)

    def log_value(self, embedding: np.ndarray, product: np.ndarray) -> float:
        hidden = np.maximum(0.0, np.concatenate([embedding, product]) @ self.hidden_w + self.hidden_b)
        return float(hidden @ self.out_w + self.out_b)

    def relative_value(self, state: UserState, unit_cost: float, category: str) -> tuple[float, np.ndarray]:
        """How much more (above 1) or less this user is predicted to pay over cost for such a product
        than a user with no history, ``(1 + V_user) / (1 + V_new)``, and the user's embedding."""
        embedding = self.embedding(state)
        product = product_inputs(unit_cost, category)
        difference = self.log_value(embedding, product) - self.log_value(self._zero_embedding, product)
        return math.exp(min(difference, MAX_LOG_VALUE)), embedding

    def predict(self, state: UserState, unit_cost: float, category: str) -> tuple[float, np.ndarray]:
        """V (the margin this user is predicted to pay over cost, >= 0) and the user's embedding."""
        embedding = self.embedding(state)
        log_value = self.log_value(embedding, product_inputs(unit_cost, category))
        return max(0.0, math.expm1(min(log_value, MAX_LOG_VALUE))), embedding
