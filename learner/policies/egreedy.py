"""Epsilon-greedy: the best expected profit, except a uniform allowed arm with probability epsilon."""

from __future__ import annotations

from typing import Any

import numpy as np

from learner.errors import InvalidInput
from learner.policies.base import PolicySettings
from learner.policies.demand_policy import DemandPolicy, Distribution


class EpsilonGreedy(DemandPolicy):
    name = "egreedy"

    def __init__(self, settings: PolicySettings, *, epsilon: float = 0.05) -> None:
        if not (np.isfinite(epsilon) and 0 <= epsilon <= 1):
            raise InvalidInput("epsilon", f"must be in [0, 1], got {epsilon}")
        super().__init__(settings)
        self.epsilon = float(epsilon)

    def _distribution(self, x, levels, scores, payoffs, allowed, greedy, estimates, rngs):  # type: ignore[no-untyped-def]
        pmf = np.where(allowed, self.epsilon / allowed.sum(axis=1, keepdims=True), 0.0)
        pmf[np.arange(len(greedy)), greedy] += 1.0 - self.epsilon
        return Distribution(pmf)

    def hyperparameters(self) -> dict[str, Any]:
        return {**super().hyperparameters(), "epsilon": self.epsilon}
