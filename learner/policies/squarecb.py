"""SquareCB: inverse-gap weighting over the ridge regression's expected profits."""

from __future__ import annotations

from typing import Any

import numpy as np

from learner.errors import InvalidInput
from learner.policies.base import PolicySettings
from learner.policies.demand_policy import DemandPolicy, Distribution


class SquareCB(DemandPolicy):
    """Foster & Rakhlin's inverse-gap weighting: arm ``a`` gets ``1 / (K + gamma * gap_a)``, where
    ``gap_a`` is how far its expected profit is below the best and ``K`` the number of allowed arms;
    the best arm takes the rest. ``gamma = gamma_scale * t ** gamma_exponent`` grows with the number
    of updates ``t`` (VW's defaults), so exploration fades as evidence accumulates.
    """

    name = "squarecb"

    def __init__(self, settings: PolicySettings, *, gamma_scale: float = 10.0,
                 gamma_exponent: float = 0.5) -> None:
        if not (np.isfinite(gamma_scale) and gamma_scale > 0):
            raise InvalidInput("gamma_scale", f"must be finite and > 0, got {gamma_scale}")
        if not (np.isfinite(gamma_exponent) and 0 <= gamma_exponent <= 1):
            raise InvalidInput("gamma_exponent", f"must be in [0, 1], got {gamma_exponent}")
        super().__init__(settings)
        self.gamma_scale, self.gamma_exponent = float(gamma_scale), float(gamma_exponent)

    @property
    def gamma(self) -> float:
        return self.gamma_scale * max(1, self.updates) ** self.gamma_exponent

    def _distribution(self, x, levels, scores, payoffs, allowed, greedy, estimates, rngs):  # type: ignore[no-untyped-def]
        rows = np.arange(len(greedy))
        profits = payoffs * estimates
        gaps = np.maximum(profits[rows, greedy][:, None] - profits, 0.0)
        pmf = np.where(allowed, 1.0 / (allowed.sum(axis=1, keepdims=True) + self.gamma * gaps), 0.0)
        pmf[rows, greedy] = 0.0
        pmf[rows, greedy] = 1.0 - pmf.sum(axis=1)
        return Distribution(pmf)

    def hyperparameters(self) -> dict[str, Any]:
        return {**super().hyperparameters(), "gamma_scale": self.gamma_scale,
                "gamma_exponent": self.gamma_exponent}
