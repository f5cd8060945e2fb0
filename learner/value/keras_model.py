"""The Keras value model (training and export only: importing this module imports TensorFlow).

One function builds it; every layer is named so that ``export_weights`` can hand the numpy twin in
``network.py`` exactly the arrays it computes with.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's start-up chatter off stderr

import keras
import numpy as np

from learner.value.events import INPUT_DIM, PRODUCT_DIM
from learner.value.network import WEIGHT_NAMES, ValueNetwork


def build_value_model(*, units: int = 16, embedding_dim: int = 4, hidden: int = 16, seed: int = 0,
                      max_len: int | None = None) -> keras.Model:
    """LSTM over a user's encoded events (zero rows are padding and masked) -> embedding -> value.

    Inputs: ``events`` (batch, time, INPUT_DIM) and ``product`` (batch, PRODUCT_DIM), the cost and
    category of the product being valued. Outputs: ``log_value`` (log1p of the margin over cost the
    user is predicted to pay) and ``embedding`` (tanh, ``embedding_dim`` values, fed to the bandit).
    The value is read from the embedding, so the embedding is made to carry what the value needs.
    """
    for name, size in (("units", units), ("embedding_dim", embedding_dim), ("hidden", hidden)):
        if size < 1:
            raise ValueError(f"{name} must be >= 1, got {size}")
    events = keras.Input((max_len, INPUT_DIM), name="events")
    product = keras.Input((PRODUCT_DIM,), name="product")
    masked = keras.layers.Masking(mask_value=0.0, name="mask")(events)
    state = keras.layers.LSTM(
        units, name="lstm", kernel_initializer=keras.initializers.GlorotUniform(seed),
        recurrent_initializer=keras.initializers.Orthogonal(seed=seed + 1),
    )(masked)
    embedding = keras.layers.Dense(
        embedding_dim, activation="tanh", name="embedding",
        kernel_initializer=keras.initializers.GlorotUniform(seed + 2))(state)
    joined = keras.layers.Concatenate(name="value_inputs")([embedding, product])
    hidden_layer = keras.layers.Dense(
        hidden, activation="relu", name="value_hidden",
        kernel_initializer=keras.initializers.GlorotUniform(seed + 3))(joined)
    log_value = keras.layers.Dense(
        1, name="log_value", kernel_initializer=keras.initializers.GlorotUniform(seed + 4))(hidden_layer)
    return keras.Model({"events": events, "product": product},
                       {"log_value": log_value, "embedding": embedding}, name="value_model")


def export_weights(model: keras.Model) -> dict[str, np.ndarray]:
    """The model's weights by the names ``ValueNetwork`` reads (``<layer>.<weight>``)."""
    weights: dict[str, np.ndarray] = {}
    for layer_name, names in (("lstm", ("kernel", "recurrent_kernel", "bias")),
                              ("embedding", ("kernel", "bias")), ("value_hidden", ("kernel", "bias")),
                              ("log_value", ("kernel", "bias"))):
        for weight_name, array in zip(names, model.get_layer(layer_name).get_weights(), strict=True):
            weights[f"{layer_name}.{weight_name}"] = np.asarray(array, dtype=np.float32)
    assert tuple(weights) == WEIGHT_NAMES
    return weights


def keras_twin(network: ValueNetwork) -> keras.Model:
    """A Keras model computing what ``network`` (e.g. a loaded model file) computes."""
    model = build_value_model(units=network.units, embedding_dim=network.embedding_dim,
                              hidden=network.hidden_b.shape[0])
    model.set_weights([network.kernel, network.recurrent, network.bias, network.embed_w, network.embed_b,
                       network.hidden_w, network.hidden_b, network.out_w[:, None], np.array([network.out_b])])
    return model
