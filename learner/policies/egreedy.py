"""Epsilon-greedy: the best expected profit, except a uniform allowed arm with probability epsilon."""

from __future__ import annotations

from typing import Any

import numpy as np

from learner.errors import InvalidInput
from learner.policies.base import Policy


class EpsilonGreedy(Policy):
    name = "egreedy"

    def __init__(self, n_arms: int, dim: int, *, epsilon: float = 0.05, **kwargs: Any) -> None:
        if not (np.isfinite(epsilon) and 0 <= epsilon <= 1):
            raise InvalidInput("epsilon", f"must be in [0, 1], got {epsilon}")
        super().__init__(n_arms, dim, **kwargs)
        self.epsilon = float(epsilon)

    def _pmf(self, x, levels, payoffs, allowed, greedy, estimates, rng):  # type: ignore[no-untyped-def]
        pmf = np.where(allowed, self.epsilon / allowed.sum(), 0.0)
        pmf[greedy] += 1.0 - self.epsilon
        return pmf

    def hyperparameters(self) -> dict[str, Any]:
        return {**super().hyperparameters(), "epsilon": self.epsilon}
