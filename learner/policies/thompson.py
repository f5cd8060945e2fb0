"""Linear Thompson sampling: draw each arm's purchase probability from its posterior, take the best."""

from __future__ import annotations

from typing import Any

import numpy as np

from learner.errors import InvalidInput
from learner.policies.base import Policy


class LinearThompson(Policy):
    """Posterior draw ``s = mean + v * L z`` with ``L`` the Cholesky factor of the arm scores'
    covariance and ``z`` standard normals from the decision's seeded generator.

    Arms have disjoint parameters, so the scores ``xᵀθ_a`` are independent given ``x`` and their
    covariance is diagonal: ``L`` is the vector of standard deviations ``sqrt(xᵀA_a⁻¹x)``. Drawing the
    scalar scores instead of whole ``θ`` vectors is exact and costs O(K d²), not O(K d³). The first
    draw chooses the arm; ``samples`` draws in all estimate the probability of each arm being chosen.
    """

    name = "thompson"

    def __init__(self, n_arms: int, dim: int, *, v: float = 0.5, samples: int = 256,
                 **kwargs: Any) -> None:
        if not (np.isfinite(v) and v > 0):
            raise InvalidInput("v", f"must be finite and > 0, got {v}")
        if samples < 1:
            raise InvalidInput("samples", f"must be >= 1, got {samples}")
        super().__init__(n_arms, dim, **kwargs)
        self.v, self.samples = float(v), int(samples)
        self._drawn_arm = 0

    def _pmf(self, x, payoffs, allowed, greedy, estimates, rng):  # type: ignore[no-untyped-def]
        mean = self._ridge.mean(x)
        scale = self.v * np.sqrt(self._ridge.variance(x))
        # In place on the draws (samples × arms): the same values as
        # where(allowed, clip01(mean + z * scale) * payoffs, -inf), without five temporaries.
        profits = rng.standard_normal((self.samples, self.n_arms))
        profits *= scale
        profits += mean
        np.maximum(profits, 0.0, out=profits)
        np.minimum(profits, 1.0, out=profits)
        profits *= payoffs
        profits[:, ~allowed] = -np.inf
        winners = profits.argmax(axis=1)
        self._drawn_arm = int(winners[0])
        return np.bincount(winners, minlength=self.n_arms) / self.samples

    def _draw(self, pmf: np.ndarray, rng: np.random.Generator) -> int:
        return self._drawn_arm

    def hyperparameters(self) -> dict[str, Any]:
        return {**super().hyperparameters(), "v": self.v, "samples": self.samples}
