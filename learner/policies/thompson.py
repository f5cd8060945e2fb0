"""Linear Thompson sampling: draw each arm's purchase probability from its posterior, take the best."""

from __future__ import annotations

from typing import Any

import numpy as np

from learner.errors import InvalidInput
from learner.policies.base import PolicySettings
from learner.policies.demand_policy import DemandPolicy, Distribution


class LinearThompson(DemandPolicy):
    """Posterior draw of every arm's score ``s = mean + v * L z``, with ``L Lᵀ`` the covariance of the
    arms' scores (the demand model's ``row_factor``) and ``z`` standard normals from the decision's
    seeded generator; the purchase probability is the model's link of the draw.

    Drawing the scores instead of whole ``θ`` vectors is exact and cheap: with one model per arm the
    scores are independent and ``L`` is the diagonal of their deviations; with the shared model they
    move together and ``L`` has one column per price-basis term. The first draw chooses the arm;
    ``samples`` draws in all estimate the probability of each arm being chosen.
    """

    name = "thompson"

    def __init__(self, settings: PolicySettings, *, v: float = 0.5, samples: int = 256) -> None:
        if not (np.isfinite(v) and v > 0):
            raise InvalidInput("v", f"must be finite and > 0, got {v}")
        if samples < 1:
            raise InvalidInput("samples", f"must be >= 1, got {samples}")
        super().__init__(settings)
        self.v, self.samples = float(v), int(samples)

    def _distribution(self, x, levels, scores, payoffs, allowed, greedy, estimates, rngs):  # type: ignore[no-untyped-def]
        model = self._model
        factors = self.v * model.row_factor(x, levels)  # (n, K, r)
        normals = np.stack([rng.standard_normal((self.samples, factors.shape[2])) for rng in rngs])
        draws = normals @ factors.transpose(0, 2, 1)  # (n, samples, K)
        draws += scores[:, None, :]
        profits = model.link(draws) * payoffs[:, None, :]
        profits[~np.broadcast_to(allowed[:, None, :], profits.shape)] = -np.inf
        winners = profits.argmax(axis=2)  # (n, samples)
        # every row's win counts in one bincount: row i's arms are counted at i·K + arm
        offsets = (np.arange(len(winners)) * self.n_arms)[:, None]
        wins = np.bincount((winners + offsets).ravel(), minlength=len(winners) * self.n_arms)
        pmf = wins.reshape(len(winners), self.n_arms) / self.samples
        return Distribution(pmf, drawn=winners[:, 0])

    def hyperparameters(self) -> dict[str, Any]:
        return {**super().hyperparameters(), "v": self.v, "samples": self.samples}
