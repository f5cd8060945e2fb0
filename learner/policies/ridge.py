"""Per-arm ridge regression of the purchase probability: one independent linear model per price.

For each arm ``a``: ``A_a = l2*I + sum x xᵀ`` and ``b_a = l2*theta0_a + sum r x``, ``theta_a = A_a⁻¹ b_a``,
where ``theta0_a`` puts the prior purchase probability of the arm's alpha on the bias. An arm is an
index into the grid whatever its price, so the price levels are not used. The
inverse is kept up to date with a rank-1 Sherman–Morrison step, O(d²) per update, and recomputed
exactly every ``refresh_every`` updates so rounding never accumulates. With ``decay < 1``
every arm's evidence is discounted on every learned outcome, played or not, with the prior given back
a few coordinates at a time (``demand.Forgetting``; ``b`` regains ``l2*theta0`` on the same
coordinates), which keeps the prior and forgets old demand in K·O(d²)."""

from __future__ import annotations

import numpy as np

from learner.policies.demand import (
    DemandModel,
    Forgetting,
    add_outer,
    clip01,
    prior_purchase_by_alpha,
    refuse_non_finite,
)


class RidgeArms(DemandModel):
    name = "per_arm"

    def __init__(self, n_arms: int, dim: int, alphas: np.ndarray, *, l2: float = 1.0,
                 decay: float = 1.0, refresh_every: int = 1024) -> None:
        super().__init__(n_arms, dim, alphas, l2=l2, decay=decay)
        self.refresh_every = refresh_every
        self._forgetting = Forgetting.of(dim, self.decay, self.l2)
        eye = np.eye(dim)
        self._A = np.repeat(eye[None] * self.l2, n_arms, axis=0)
        self._A_inv = np.repeat(eye[None] / self.l2, n_arms, axis=0)
        self._prior = np.zeros((n_arms, dim))
        self._prior[:, 0] = prior_purchase_by_alpha(self.alphas)
        self._b = self.l2 * self._prior
        self._theta = self._prior.copy()

    def row_scores(self, x: np.ndarray, levels: np.ndarray) -> np.ndarray:
        return x @ self._theta.T

    def row_variance(self, x: np.ndarray, levels: np.ndarray) -> np.ndarray:
        """``xᵀ A_a⁻¹ x`` for every arm and row: batched matrix products, faster than einsum."""
        return np.maximum(((x @ self._A_inv) * x).sum(axis=2).T, 0.0)  # (K, n, d) -> (n, K)

    def row_factor(self, x: np.ndarray, levels: np.ndarray) -> np.ndarray:
        """The arms' scores are independent: the factor is the diagonal of their deviations."""
        return np.sqrt(self.row_variance(x, levels))[..., None] * np.eye(self.n_arms)

    def link(self, scores: np.ndarray) -> np.ndarray:
        return clip01(scores)

    def learn_one(self, x: np.ndarray, arm: int, level: float, reward: float) -> None:
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            if self.decay < 1.0:
                A, A_inv, b, theta = self._forgetting_all(x, arm, reward)
                refuse_non_finite(A.diagonal(axis1=1, axis2=2), A_inv.diagonal(axis1=1, axis2=2), theta)
                self._A, self._A_inv, self._b, self._theta = A, A_inv, b, theta
            else:
                rows = self._adding_one(x, arm, reward)
                refuse_non_finite(rows[0].diagonal(), rows[1].diagonal(), rows[3])
                self._A[arm], self._A_inv[arm], self._b[arm], self._theta[arm] = rows
        self._counted(arm)

    def _adding_one(self, x: np.ndarray, arm: int, reward: float
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Only ``arm`` changes: its new rows, its inverse recomputed on its own count."""
        A, A_inv = add_outer(self._A[arm], self._A_inv[arm], x, 1.0)
        if (self._counts[arm] + 1) % self.refresh_every == 0:
            A_inv = np.linalg.inv(A)
        b = self._b[arm] + reward * x
        return A, A_inv, b, A_inv @ b

    def _forgetting_all(self, x: np.ndarray, arm: int, reward: float
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Every arm ages, its mean drawn back to the prior on the coordinates whose turn it is; then
        ``arm`` learns; every inverse is recomputed exactly every ``refresh_every`` outcomes."""
        forgetting, step = self._forgetting, self._total
        A, A_inv = forgetting.age(self._A, self._A_inv, step)
        turn = forgetting.turn(step)
        b = self.decay * self._b
        b[:, turn] += forgetting.strength * self._prior[:, turn]
        A[arm], A_inv[arm] = add_outer(A[arm], A_inv[arm], x, 1.0)
        b[arm] += reward * x
        if (step + 1) % self.refresh_every == 0:
            A_inv = np.linalg.inv(A)
        return A, A_inv, b, np.einsum("kij,kj->ki", A_inv, b)

    def _shapes(self) -> dict[str, tuple[int, ...]]:
        k, d = self.n_arms, self.dim
        return {"A": (k, d, d), "A_inv": (k, d, d), "b": (k, d), "theta": (k, d), "counts": (k,)}
