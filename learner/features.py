"""The feature map phi(context, product): the vector every policy sees for one decision."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

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
MAX_CONTEXT_NAME_LENGTH = 64
UNKNOWN_CONTEXT_MODES = ("ignore", "refuse")
DEFAULT_UNKNOWN_CONTEXT = "ignore"
"""An unknown context name is ignored (and counted), as Personalizer and Vowpal Wabbit accept new
fields: a checkout that starts sending one must not lose every quote. Ignored, not hashed into the
model: only configured names may ever move a price, so a field nobody reviewed (it may be a protected
characteristic) cannot. ``refuse`` is the strict mode, to catch a misspelt name in testing."""


@dataclass(frozen=True)
class ContextUse:
    """What became of a request's context: the values that price, the protected ones (logged, never
    priced), and the names ignored as unknown."""

    priced: Mapping[str, float] = field(default_factory=dict)
    protected: Mapping[str, float] = field(default_factory=dict)
    ignored: tuple[str, ...] = ()


class FeatureBuilder:
    """Builds ``x = [bias, context..., product..., category buckets..., user embedding...]``.

    Context names are a fixed schema (a missing name is 0.0) so that the vector means the same thing
    on every call and across restarts. ``protected`` names are accepted and logged but never enter
    the vector; any other name is ignored, or refused when ``unknown`` is ``refuse``. Product
    features are scale-free:
    log list price and markup; the category is hashed (CRC-32, stable across processes) into
    ``category_buckets`` one-hot slots. With a value model, its embedding of the user's behavior
    (``embedding_dim`` values in [-1, 1]) closes the vector.
    """

    def __init__(
        self,
        context_names: Sequence[str] = DEFAULT_CONTEXT_FEATURES,
        category_buckets: int = 8,
        embedding_dim: int = 0,
        protected: Sequence[str] = (),
        unknown: str = DEFAULT_UNKNOWN_CONTEXT,
    ) -> None:
        names = tuple(context_names)
        if len(set(names)) != len(names):
            raise InvalidInput("context_features", f"names must be unique, got {list(names)}")
        if len(names) > MAX_CONTEXT_ENTRIES:
            raise InvalidInput("context_features", f"at most {MAX_CONTEXT_ENTRIES} names")
        both = sorted(set(names) & set(protected))
        if both:
            raise InvalidInput("protected_features", f"{both} are also pricing context features; a "
                                                     "protected input may never price")
        if unknown not in UNKNOWN_CONTEXT_MODES:
            raise InvalidInput("unknown_context", f"{unknown!r}: choose one of {list(UNKNOWN_CONTEXT_MODES)}")
        self.protected = frozenset(protected)
        self.unknown = unknown
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

    def read_context(self, context: Mapping[str, float], field: str = "context") -> ContextUse:
        """Sort the context into priced, protected and ignored entries; raise InvalidInput naming
        the first bad entry (a non-finite or huge value, a bad name, or in strict mode an unknown one).
        Every value is checked, used or not: a NaN anywhere is a broken checkout."""
        if len(context) > MAX_CONTEXT_ENTRIES:
            raise InvalidInput(field, f"{len(context)} entries; at most {MAX_CONTEXT_ENTRIES}")
        priced: dict[str, float] = {}
        protected: dict[str, float] = {}
        ignored: list[str] = []
        for name, value in context.items():
            if name in self._index:
                priced[name] = value
            elif name in self.protected:
                protected[name] = value
            elif self.unknown == "refuse":
                known = ", ".join(self.context_names) or "(none)"
                raise InvalidInput(_where(field, name), f"unknown context feature; known names: {known}")
            elif not name or len(name) > MAX_CONTEXT_NAME_LENGTH or not name.isprintable():
                raise InvalidInput(_where(field, name), f"a context name has 1..{MAX_CONTEXT_NAME_LENGTH} "
                                                        "printable characters")
            else:
                ignored.append(name)
            if not math.isfinite(value) or abs(value) > MAX_FEATURE_MAGNITUDE:
                raise InvalidInput(_where(field, name), f"{value} must be finite with absolute value <= "
                                                        f"{MAX_FEATURE_MAGNITUDE:g}")
        return ContextUse(priced, protected, tuple(sorted(ignored)))

    def validate_context(self, context: Mapping[str, float], field: str = "context") -> None:
        """Raise InvalidInput naming the first bad entry (see ``read_context``)."""
        self.read_context(context, field)

    def neutral(self, x: np.ndarray, embedding: np.ndarray | None = None) -> np.ndarray:
        """``x`` (a vector, or rows) with every context value 0 and, with an embedding, that one in its
        place: the same vector as ``build({}, product, embedding)`` for the product ``x`` was built for."""
        neutral = x.copy()
        neutral[..., 1:1 + len(self.context_names)] = 0.0
        if self.embedding_dim and embedding is not None:
            neutral[..., -self.embedding_dim:] = embedding
        return neutral

    def build(self, context: Mapping[str, float], product: Product,
              embedding: np.ndarray | None = None) -> np.ndarray:
        """The feature vector for one decision: only the configured names price (validated first)."""
        return self.build_rows([self.read_context(context).priced], [product], [embedding])[0]

    def build_rows(self, priced: Sequence[Mapping[str, float]], products: Sequence[Product],
                   embeddings: Sequence[np.ndarray | None]) -> np.ndarray:
        """``build``'s vector of each row, from the priced entries ``read_context`` sorted out (read once
        per quote), the product and the embedding, as the rows of one matrix: a column at a time, and a
        context that consecutive rows share (a page's) set once."""
        x = np.zeros((len(products), self.dim))
        x[:, 0] = 1.0
        start = 0
        for end in range(1, len(priced) + 1):
            if end == len(priced) or priced[end] is not priced[start]:
                for name, value in priced[start].items():
                    x[start:end, 1 + self._index[name]] = value
                start = end
        offset = 1 + len(self.context_names)
        x[:, offset] = [math.log1p(product.list_price) / 10.0 for product in products]
        x[:, offset + 1] = [(product.list_price - product.unit_cost) / product.list_price
                            if product.list_price > 0 else 0.0 for product in products]
        buckets = [category_bucket(product.category, self.category_buckets) for product in products]
        x[np.arange(len(products)), offset + 2 + np.array(buckets, dtype=np.int64)] = 1.0
        if self.embedding_dim:
            for embedding in embeddings:
                if embedding is None or embedding.shape != (self.embedding_dim,):
                    raise ValueError(f"expected a user embedding of {self.embedding_dim} values, "
                                     f"got {embedding}")
            x[:, -self.embedding_dim:] = np.array(embeddings)
        return x


def _where(field: str, name: str) -> str:
    """The path of a context entry in an error (quoted, so it stays unambiguous); built only to refuse."""
    return f"{field}[{json.dumps(name[:MAX_CONTEXT_NAME_LENGTH])}]"
