"""The price grid and its guardrails: which arms a product allows, and what each would charge."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from learner.errors import InvalidInput
from learner.types import Product

DEFAULT_ALPHAS: tuple[float, ...] = tuple(round(0.1 * i, 10) for i in range(11))


@dataclass(frozen=True)
class ArmPrices:
    """Every arm's price for one product and user value, and which of them the guardrails allow."""

    prices: np.ndarray
    allowed: np.ndarray

    @property
    def any_allowed(self) -> bool:
        return bool(self.allowed.any())


class PriceGrid:
    """A fixed grid of ``alpha`` values; arm ``a`` quotes ``unit_cost + alpha[a] * V``.

    Arms whose price falls outside the product's ``[floor, ceiling]`` are masked before the policy
    scores them, so a logged probability is over the allowed arms only.
    """

    def __init__(self, alphas: tuple[float, ...] = DEFAULT_ALPHAS) -> None:
        values = np.asarray(alphas, dtype=float)
        if values.ndim != 1 or values.size < 2:
            raise InvalidInput("alphas", f"need at least two arms, got {list(alphas)}")
        if not np.all(np.isfinite(values)) or np.any(values < 0):
            raise InvalidInput("alphas", f"every alpha must be finite and >= 0, got {list(alphas)}")
        if np.any(np.diff(values) <= 0):
            raise InvalidInput("alphas", f"alphas must be strictly increasing, got {list(alphas)}")
        self.alphas = values
        self.alphas.setflags(write=False)

    def __len__(self) -> int:
        return int(self.alphas.size)

    def prices(self, product: Product, user_value: float) -> ArmPrices:
        """Each arm's price, and the mask of arms inside ``[floor, ceiling]``.

        A price within a relative 1e-9 of a bound counts as inside (``cost + 0.3 * V`` may round
        past a floor set at exactly that price) and is clamped onto the bound, so every allowed
        price lies inside exactly.
        """
        prices = product.unit_cost + self.alphas * user_value
        floor, ceiling = product.floor, product.ceiling
        allowed = (prices >= floor - 1e-9 * max(1.0, floor)) & (prices <= ceiling + 1e-9 * max(1.0, ceiling))
        clamped = np.minimum(np.maximum(prices, floor), ceiling)  # np.clip, without its dispatch
        return ArmPrices(prices=np.where(allowed, clamped, prices), allowed=allowed)

    @staticmethod
    def nearest_bound(product: Product, prices: np.ndarray) -> tuple[int, float]:
        """When no arm fits: the bound (floor or ceiling) closest to the grid, and the arm nearest it."""
        bounds = [product.floor] + ([product.ceiling] if np.isfinite(product.ceiling) else [])
        distances = [float(np.min(np.abs(prices - bound))) for bound in bounds]
        price = bounds[int(np.argmin(distances))]
        return int(np.argmin(np.abs(prices - price))), price
