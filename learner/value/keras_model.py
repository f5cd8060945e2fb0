"""The Keras value model (training and export only: importing this module imports TensorFlow).

One function builds it; every layer is named so that ``export_weights`` can hand the numpy twin in
``network.py`` exactly the arrays it computes with.
"""

from __future__ import annotations

import math
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's start-up chatter off stderr

import keras
import numpy as np

from learner.value.events import INPUT_DIM, PRODUCT_DIM
from learner.value.network import SLOPE_BOUNDS, WEIGHT_NAMES, ValueNetwork

INITIAL_SLOPE = 10.0
"""Where the demand slope starts: purchases fall from 73% to 27% over +-10% of price."""


class StateBefore(keras.layers.Layer):
    """The LSTM's output after step ``t - 1`` at step ``t``, zeros (the zero state) at step 0."""

    def call(self, after: object, mask: object = None) -> object:
        return keras.ops.pad(after, [[0, 0], [1, 0], [0, 0]])[:, :-1]

    def compute_mask(self, inputs: object, mask: object = None) -> None:
        return None  # the loss is weighted per step instead


class DemandLogit(keras.layers.Layer):
    """``exp(clip(log_slope)) * (willingness - offer)``: the logit of a purchase, falling in price."""

    def call(self, inputs: list) -> object:
        willingness, log_slope, offer = inputs
        return keras.ops.exp(keras.ops.clip(log_slope, *SLOPE_BOUNDS)) * (willingness - offer)


def build_value_model(*, units: int = 16, embedding_dim: int = 4, hidden: int = 16, seed: int = 0,
                      max_len: int | None = None) -> keras.Model:
    """A per-shopper demand model: P(purchase at the offered price | the shopper's events before it).

    Inputs, all (batch, time, ...): ``events`` (INPUT_DIM, zero rows at the end are padding and
    masked), and for each step ``t`` the offer made to the shopper at that step: ``product``
    (PRODUCT_DIM, its cost, list price and category) and ``offer`` (1, ``log(price / list)``). The
    offer at step ``t`` is judged on the state after events ``0..t-1`` (step 0 on the zero state, a
    new shopper), which is what the numpy twin computes from the state it holds when it prices.

    Outputs per step: ``purchase`` (the logit), ``embedding`` (tanh, ``embedding_dim`` values, fed to
    the bandit), ``willingness`` (``m``, the log of the price bought with probability 1/2 relative
    to list) and ``log_slope``. The head reads only the embedding, so it carries what demand needs.
    """
    for name, size in (("units", units), ("embedding_dim", embedding_dim), ("hidden", hidden)):
        if size < 1:
            raise ValueError(f"{name} must be >= 1, got {size}")
    events = keras.Input((max_len, INPUT_DIM), name="events")
    product = keras.Input((max_len, PRODUCT_DIM), name="product")
    offer = keras.Input((max_len, 1), name="offer")
    masked = keras.layers.Masking(mask_value=0.0, name="mask")(events)
    after = keras.layers.LSTM(
        units, name="lstm", return_sequences=True,
        kernel_initializer=keras.initializers.GlorotUniform(seed),
        recurrent_initializer=keras.initializers.Orthogonal(seed=seed + 1),
    )(masked)
    # The state before step t is the output after step t - 1: shift right by one, zeros first.
    before = StateBefore(name="state_before")(after)
    embedding = keras.layers.Dense(
        embedding_dim, activation="tanh", name="embedding",
        kernel_initializer=keras.initializers.GlorotUniform(seed + 2))(before)
    joined = keras.layers.Concatenate(name="head_inputs")([embedding, product])
    hidden_layer = keras.layers.Dense(
        hidden, activation="relu", name="value_hidden",
        kernel_initializer=keras.initializers.GlorotUniform(seed + 3))(joined)
    willingness = keras.layers.Dense(
        1, name="willingness", kernel_initializer=keras.initializers.GlorotUniform(seed + 4))(hidden_layer)
    log_slope = keras.layers.Dense(
        1, name="slope", kernel_initializer=keras.initializers.GlorotUniform(seed + 5),
        bias_initializer=keras.initializers.Constant(math.log(INITIAL_SLOPE)))(hidden_layer)
    logit = DemandLogit(name="purchase")([willingness, log_slope, offer])
    return keras.Model({"events": events, "product": product, "offer": offer},
                       {"purchase": logit, "embedding": embedding, "willingness": willingness,
                        "log_slope": log_slope}, name="value_model")


LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("lstm", ("kernel", "recurrent_kernel", "bias")), ("embedding", ("kernel", "bias")),
    ("value_hidden", ("kernel", "bias")), ("willingness", ("kernel", "bias")), ("slope", ("kernel", "bias")),
)


def export_weights(model: keras.Model) -> dict[str, np.ndarray]:
    """The model's weights by the names ``ValueNetwork`` reads (``<layer>.<weight>``)."""
    weights: dict[str, np.ndarray] = {}
    for layer_name, names in LAYERS:
        for weight_name, array in zip(names, model.get_layer(layer_name).get_weights(), strict=True):
            weights[f"{layer_name}.{weight_name}"] = np.asarray(array, dtype=np.float32)
    assert tuple(weights) == WEIGHT_NAMES
    return weights


def keras_twin(network: ValueNetwork, max_len: int | None = None) -> keras.Model:
    """A Keras model computing what ``network`` (e.g. a loaded model file) computes."""
    model = build_value_model(units=network.units, embedding_dim=network.embedding_dim,
                              hidden=network.hidden_b.shape[0], max_len=max_len)
    weights = network.weights()
    for layer_name, names in LAYERS:
        model.get_layer(layer_name).set_weights([weights[f"{layer_name}.{name}"] for name in names])
    return model
