"""The price grid and its guardrails: which arms a product allows, and what each would charge."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from learner.errors import InvalidInput
from learner.types import Product

DEFAULT_ALPHAS: tuple[float, ...] = tuple(round(0.1 * i, 10) for i in range(11))


MAX_SPREAD_LIMIT = 1.0
"""A spread limit above 100% (prices from 0 to twice the reference) would promise nothing."""


def check_spread_limit(field: str, limit: float) -> float:
    """``limit`` as a float in [0, MAX_SPREAD_LIMIT], else InvalidInput naming ``field``."""
    if isinstance(limit, bool) or not isinstance(limit, (int, float)) or not \
            0.0 <= float(limit) <= MAX_SPREAD_LIMIT:
        raise InvalidInput(field, f"{limit} must be a fraction in [0, {MAX_SPREAD_LIMIT:g}] "
                                  "(0.1: every price within 10% of the reference)")
    return float(limit)


@dataclass(frozen=True)
class PriceBounds:
    """The interval a quote must lie in: the product's floor and ceiling, narrowed by the spread band
    around the reference price, or pinned to one price (a stable price). Never empty."""

    low: float
    high: float

    @classmethod
    def of(cls, product: Product) -> PriceBounds:
        return cls(product.floor, product.ceiling)

    def contains(self, price: float) -> bool:
        return self.low - _slack(self.low) <= price <= self.high + _slack(self.high)


RELATIVE_SLACK = 1e-9
"""A price within this fraction of a bound counts as on it (``cost + 0.3 * V`` may round past a
floor set at exactly that price)."""


def same_price(a: np.ndarray | float, b: np.ndarray | float) -> np.ndarray:
    """Prices equal up to the grid's rounding (``RELATIVE_SLACK``, as ``PriceGrid.prices`` clamps).
    Written out: ``np.isclose`` costs a fifth of a whole replay step."""
    return np.abs(np.subtract(a, b)) <= RELATIVE_SLACK * np.maximum(1.0, np.abs(b))


def _slack(bound: float) -> float:
    """``RELATIVE_SLACK`` of ``bound`` (at least of 1; none for an infinite bound)."""
    return RELATIVE_SLACK * max(1.0, abs(bound)) if math.isfinite(bound) else 0.0


def _slacks(bounds: np.ndarray) -> np.ndarray:
    """``_slack`` of each bound."""
    return np.where(np.isfinite(bounds), RELATIVE_SLACK * np.maximum(1.0, np.abs(bounds)), 0.0)


def band_rows(reference: np.ndarray, limit: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's spread band ``[reference·(1 − limit), reference·(1 + limit)]``."""
    return reference * (1.0 - limit), reference * (1.0 + limit)


def intersect_rows(low: np.ndarray, high: np.ndarray, other_low: np.ndarray, other_high: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each row's two intervals at once, and whether they meet (within ``RELATIVE_SLACK``)."""
    low, high = np.maximum(low, other_low), np.minimum(high, other_high)
    return low, high, low <= high + _slacks(high)


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

    Arms whose price falls outside the bounds (the product's ``[floor, ceiling]``, narrowed by the
    spread band or a stable price) are masked before the policy scores them, so a logged probability
    is over the allowed arms only.
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

    def prices(self, product: Product, user_value: float, bounds: PriceBounds | None = None) -> ArmPrices:
        """Each arm's price, and the mask of arms inside ``bounds`` (default the product's): one row
        of ``price_rows``."""
        bounds = bounds or PriceBounds.of(product)
        prices, allowed = self.price_rows(np.array([product.unit_cost]), np.array([user_value]),
                                          np.array([bounds.low]), np.array([bounds.high]))
        return ArmPrices(prices=prices[0], allowed=allowed[0])

    def price_rows(self, unit_cost: np.ndarray, user_value: np.ndarray, low: np.ndarray,
                   high: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each arm's price for each row's cost and value (n, arms), and the mask of the arms inside
        the row's bounds ``[low, high]``.

        A price within ``RELATIVE_SLACK`` of a bound counts as inside and is clamped onto the bound, so
        every allowed price lies inside exactly.
        """
        prices = unit_cost[:, None] + self.alphas * user_value[:, None]
        low, high = low[:, None], high[:, None]
        allowed = (prices >= low - _slacks(low)) & (prices <= high + _slacks(high))
        clamped = np.minimum(np.maximum(prices, low), high)  # np.clip, without its dispatch
        return np.where(allowed, clamped, prices), allowed

    @staticmethod
    def nearest_bound(bounds: PriceBounds, prices: np.ndarray) -> tuple[int, float]:
        """When no arm fits: the bound (low or high) closest to the grid, and the arm nearest it."""
        ends = [bounds.low] + ([bounds.high] if np.isfinite(bounds.high) else [])
        distances = [float(np.min(np.abs(prices - end))) for end in ends]
        price = ends[int(np.argmin(distances))]
        return int(np.argmin(np.abs(prices - price))), price
