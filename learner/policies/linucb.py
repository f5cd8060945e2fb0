"""LinUCB: pick the arm with the highest optimistic expected profit."""

from __future__ import annotations

from typing import Any

import numpy as np

from learner.errors import InvalidInput
from learner.policies.base import Policy, clip01, masked_argmax


class LinUCB(Policy):
    """Upper confidence bound ``min(1, p̂ + beta * sqrt(xᵀA⁻¹x))`` times the payoff.

    Deterministic given the state: the chosen arm has probability 1.0, which is what is logged.
    """

    name = "linucb"
    deterministic = True

    def __init__(self, n_arms: int, dim: int, *, beta: float = 1.0, **kwargs: Any) -> None:
        if not (np.isfinite(beta) and beta >= 0):
            raise InvalidInput("beta", f"must be finite and >= 0, got {beta}")
        super().__init__(n_arms, dim, **kwargs)
        self.beta = float(beta)

    def upper_bounds(self, x: np.ndarray) -> np.ndarray:
        mean = self._ridge.mean(x)
        return clip01(mean + self.beta * np.sqrt(self._ridge.variance(x)))

    def _pmf(self, x, payoffs, allowed, greedy, estimates, rng):  # type: ignore[no-untyped-def]
        pmf = np.zeros(self.n_arms)
        pmf[masked_argmax(payoffs * self.upper_bounds(x), allowed)] = 1.0
        return pmf

    def hyperparameters(self) -> dict[str, Any]:
        return {**super().hyperparameters(), "beta": self.beta}
