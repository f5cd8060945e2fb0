"""Running sums of one policy's quotes: what it sold, and its expected profit beside the oracle's."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Tally:
    quotes: int = 0
    purchases: int = 0
    revenue: float = 0.0
    profit: float = 0.0
    expected_profit: float = 0.0
    oracle_profit: float = 0.0
    """The best expected profit the grid offered for the same quotes."""

    def add(self, prices: np.ndarray, unit_cost: np.ndarray | float, probability: np.ndarray,
            purchased: np.ndarray, oracle_profit: np.ndarray | float) -> None:
        """Count quotes at ``prices``: ``probability`` of purchase (the truth), ``purchased`` (what
        happened), ``oracle_profit`` (the best expected profit of each shopper)."""
        prices, bought = np.asarray(prices, dtype=float), np.asarray(purchased, dtype=bool)
        margin = prices - unit_cost
        self.quotes += int(prices.size)
        self.purchases += int(bought.sum())
        self.revenue += float(prices[bought].sum())
        self.profit += float(margin[bought].sum())
        self.expected_profit += float(np.sum(probability * margin))
        self.oracle_profit += float(np.sum(oracle_profit))

    @property
    def regret(self) -> float:
        """Expected profit given up against the oracle: exact, since both are computed from the truth."""
        return self.oracle_profit - self.expected_profit

    @property
    def oracle_share(self) -> float:
        return self.expected_profit / self.oracle_profit if self.oracle_profit > 0 else float("nan")
