"""The pricing objective: expected profit = P(purchase at this price) * margin.

Margins are measured in units of the user value ``V`` so that exploration rules that compare gaps
(SquareCB, epsilon-greedy) behave the same for a 5-dollar and a 5,000-dollar product.
"""

from __future__ import annotations

import numpy as np


def margin_payoffs(prices: np.ndarray, unit_cost: float | np.ndarray,
                   user_value: float | np.ndarray) -> np.ndarray:
    """Each arm's margin ``price - cost`` divided by ``V`` (plain margin when ``V`` is 0); with a row
    of prices per ask, ``unit_cost`` and ``user_value`` are columns (n, 1)."""
    margins = np.asarray(prices, dtype=float) - unit_cost
    return np.divide(margins, user_value, out=margins, where=np.greater(user_value, 0))


def expected_profit(purchase_probability: np.ndarray, prices: np.ndarray,
                    unit_cost: float | np.ndarray) -> np.ndarray:
    """Expected profit per quote in currency units, for each arm (with a row of arms per quote,
    ``unit_cost`` is a column (n, 1))."""
    return np.asarray(purchase_probability) * (np.asarray(prices) - unit_cost)
