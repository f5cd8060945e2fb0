"""The trained value model in numpy: one LSTM step per event, then the embedding and demand heads.

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

from learner.value.events import (
    INPUT_DIM,
    PRODUCT_DIM,
    BehaviorEvent,
    encode,
    offer_ratio,
    product_inputs,
)

MAX_LOG_VALUE = math.log(1e3)
"""Willingness is capped at a thousand times the list price: a model extrapolating far beyond its
data must not overflow (the Pricer bounds the factor much tighter anyway)."""
SLOPE_BOUNDS = (-4.0, 6.0)
"""The head's log slope is clipped here (slopes e^-4 to e^6 per unit of log price) in both twins."""
NO_MARGIN = 0.05
"""An acceptable margin below this share of the list margin counts as this share (``relative_value``)."""
WEIGHT_NAMES: tuple[str, ...] = (
    "lstm.kernel", "lstm.recurrent_kernel", "lstm.bias",
    "embedding.kernel", "embedding.bias",
    "value_hidden.kernel", "value_hidden.bias",
    "willingness.kernel", "willingness.bias",
    "slope.kernel", "slope.bias",
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
        self.will_w, self.will_b = w["willingness.kernel"][:, 0], float(w["willingness.bias"][0])
        self.slope_w, self.slope_b = w["slope.kernel"][:, 0], float(w["slope.bias"][0])
        self.embedding_dim = self.embed_w.shape[1]
        expected = {
            "lstm.kernel": (INPUT_DIM, 4 * self.units), "lstm.recurrent_kernel": (self.units, 4 * self.units),
            "lstm.bias": (4 * self.units,), "embedding.kernel": (self.units, self.embedding_dim),
            "value_hidden.kernel": (self.embedding_dim + PRODUCT_DIM, self.hidden_b.shape[0]),
            "willingness.kernel": (self.hidden_b.shape[0], 1), "willingness.bias": (1,),
            "slope.kernel": (self.hidden_b.shape[0], 1), "slope.bias": (1,),
        }
        for name, shape in expected.items():
            if w[name].shape != shape:
                raise ValueError(f"weight {name} has shape {w[name].shape}, expected {shape}")
        self._stacked = np.vstack([self.kernel, self.recurrent])
        self._gate_scale = np.full(4 * self.units, 0.5)
        self._gate_scale[2 * self.units:3 * self.units] = 1.0
        self._zero = UserState(np.zeros(self.units, np.float32), np.zeros(self.units, np.float32))
        self._last_embedding: tuple[UserState, np.ndarray] | None = None
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
        """The state's embedding (read-only): the last state's is kept, since a listing page asks
        for one user's embedding once per product."""
        last = self._last_embedding
        if last is not None and last[0] is state:
            return last[1]
        embedding = np.tanh(state.h @ self.embed_w + self.embed_b)
        embedding.flags.writeable = False
        self._last_embedding = (state, embedding)  # one assignment: threads see a whole pair
        return embedding

    def head(self, embedding: np.ndarray, product: np.ndarray) -> tuple[float, float]:
        """``(m, k)``: the user's log willingness relative to the list price for this product, and
        how sharply their purchase probability falls around it (the slope per unit of log price)."""
        hidden = np.maximum(0.0, np.concatenate([embedding, product]) @ self.hidden_w + self.hidden_b)
        low, high = SLOPE_BOUNDS
        log_slope = min(max(float(hidden @ self.slope_w + self.slope_b), low), high)
        return float(hidden @ self.will_w + self.will_b), math.exp(log_slope)

    def purchase_logit(self, embedding: np.ndarray, product: np.ndarray, ratio: float) -> float:
        """The logit of buying at ``log(price / list) = ratio``: ``k * (m - ratio)``, falling in price."""
        m, k = self.head(embedding, product)
        return k * (m - ratio)

    def purchase_probability(self, state: UserState, unit_cost: float, category: str, list_price: float,
                             price: float) -> float:
        """P(this user buys the product at ``price``)."""
        logit = self.purchase_logit(self.embedding(state), product_inputs(unit_cost, category, list_price),
                                    offer_ratio(price, list_price))
        return 0.5 * (1.0 + math.tanh(0.5 * logit))

    def willingness(self, state: UserState, unit_cost: float, category: str, list_price: float
                    ) -> tuple[float, np.ndarray]:
        """``m``, the log of the price this user buys at with probability 1/2 relative to the list
        price (the median of their willingness to pay), and the user's embedding."""
        embedding = self.embedding(state)
        return self.head(embedding, product_inputs(unit_cost, category, list_price))[0], embedding

    def relative_value(self, state: UserState, unit_cost: float, category: str,
                       list_price: float) -> tuple[float, np.ndarray]:
        """How much more (above 1) or less margin this user is predicted to accept for the product than
        a user with no history, and the user's embedding.

        The margin a user accepts is read at the price they buy with probability 1/2, ``list *
        exp(m)``, the median of their willingness to pay: the model's most direct and best identified
        statement about the user. The profit-maximising price would also lean on the model's slope,
        which a few dozen events pin down far less well, and finding the best share of the accepted
        margin is what the bandit's arms do anyway. Both margins count as at least ``NO_MARGIN`` of the
        list margin, so a product a new user is predicted to buy only near cost gives a finite factor
        (the Pricer bounds it). A user with no history (the zero state) is the user compared
        against: 1 exactly, without the heads (both margins are one finite number).
        """
        if state is self._zero:
            return 1.0, self._zero_embedding
        embedding = self.embedding(state)
        product = product_inputs(unit_cost, category, list_price)
        user = self.head(embedding, product)[0]
        new = self.head(self._zero_embedding, product)[0]
        margin = list_price - unit_cost
        if margin <= 0:
            return 1.0, embedding
        floor = NO_MARGIN * margin

        def accepted(m: float) -> float:
            return max(list_price * math.exp(min(m, MAX_LOG_VALUE)) - unit_cost, floor)

        return accepted(user) / accepted(new), embedding

    def weights(self) -> dict[str, np.ndarray]:
        """The weights by ``WEIGHT_NAMES``, as a model file stores them."""
        return {
            "lstm.kernel": self.kernel, "lstm.recurrent_kernel": self.recurrent, "lstm.bias": self.bias,
            "embedding.kernel": self.embed_w, "embedding.bias": self.embed_b,
            "value_hidden.kernel": self.hidden_w, "value_hidden.bias": self.hidden_b,
            "willingness.kernel": self.will_w[:, None], "willingness.bias": np.array([self.will_b]),
            "slope.kernel": self.slope_w[:, None], "slope.bias": np.array([self.slope_b]),
        }
