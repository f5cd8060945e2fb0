"""The feature map phi(context, product): the vector every policy sees for one decision."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence

import numpy as np

from learner.errors import InvalidInput
from learner.primitives import category_bucket
from learner.types import Product

MAX_FEATURE_MAGNITUDE = 1e6
"""Context values beyond this are refused: they carry no pricing signal and overflow x xᵀ sums."""

MAX_CONTEXT_ENTRIES = 64
DEFAULT_CONTEXT_FEATURES: tuple[str, ...] = (
    "is_mobile",
    "is_returning",
    "hour_sin",
    "hour_cos",
    "session_depth",
)


class FeatureBuilder:
    """Builds ``x = [bias, context..., product..., category buckets..., user embedding...]``.

    Context names are a fixed schema (a missing name is 0.0, an unknown one is refused) so that the
    vector means the same thing on every call and across restarts. Product features are scale-free:
    log list price and markup; the category is hashed (CRC-32, stable across processes) into
    ``category_buckets`` one-hot slots. With a value model, its embedding of the user's behavior
    (``embedding_dim`` values in [-1, 1]) closes the vector.
    """

    def __init__(
        self,
        context_names: Sequence[str] = DEFAULT_CONTEXT_FEATURES,
        category_buckets: int = 8,
        embedding_dim: int = 0,
    ) -> None:
        names = tuple(context_names)
        if len(set(names)) != len(names):
            raise InvalidInput("context_features", f"names must be unique, got {list(names)}")
        if len(names) > MAX_CONTEXT_ENTRIES:
            raise InvalidInput("context_features", f"at most {MAX_CONTEXT_ENTRIES} names")
        if category_buckets < 1:
            raise InvalidInput("category_buckets", f"must be >= 1, got {category_buckets}")
        if embedding_dim < 0:
            raise InvalidInput("embedding_dim", f"must be >= 0, got {embedding_dim}")
        self.context_names = names
        self.category_buckets = category_buckets
        self._index = {name: i for i, name in enumerate(names)}
        self.names: tuple[str, ...] = (
            "bias",
            *(f"context.{name}" for name in names),
            "product.log_list_price",
            "product.markup",
            *(f"category.{i}" for i in range(category_buckets)),
            *(f"user.embedding.{i}" for i in range(embedding_dim)),
        )
        self.embedding_dim = embedding_dim

    @property
    def dim(self) -> int:
        return len(self.names)

    def validate_context(self, context: Mapping[str, float], field: str = "context") -> None:
        """Raise InvalidInput naming the first bad entry: unknown name, or non-finite/huge value."""
        if len(context) > MAX_CONTEXT_ENTRIES:
            raise InvalidInput(field, f"{len(context)} entries; at most {MAX_CONTEXT_ENTRIES}")
        for name, value in context.items():
            if name not in self._index:
                known = ", ".join(self.context_names) or "(none)"
                raise InvalidInput(
                    f"{field}[{json.dumps(name[:64])}]",  # escaped: the field path stays unambiguous
                    f"unknown context feature; known names: {known}",
                )
            if not math.isfinite(value) or abs(value) > MAX_FEATURE_MAGNITUDE:
                raise InvalidInput(
                    f'{field}["{name}"]',
                    f"{value} must be finite with absolute value <= {MAX_FEATURE_MAGNITUDE:g}",
                )

    def build(self, context: Mapping[str, float], product: Product,
              embedding: np.ndarray | None = None) -> np.ndarray:
        """The feature vector for one decision (validates the context first)."""
        self.validate_context(context)
        x = np.zeros(self.dim)
        x[0] = 1.0
        for name, value in context.items():
            x[1 + self._index[name]] = value
        offset = 1 + len(self.context_names)
        x[offset] = math.log1p(product.list_price) / 10.0
        x[offset + 1] = (
            (product.list_price - product.unit_cost) / product.list_price
            if product.list_price > 0
            else 0.0
        )
        bucket = category_bucket(product.category, self.category_buckets)
        x[offset + 2 + bucket] = 1.0
        if self.embedding_dim:
            if embedding is None or embedding.shape != (self.embedding_dim,):
                raise ValueError(f"expected a user embedding of {self.embedding_dim} values, got {embedding}")
            x[-self.embedding_dim:] = embedding
        return x

