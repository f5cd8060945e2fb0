"""One logistic demand model shared across prices: price is an input, not an index.

The features of arm ``a`` at context ``x`` are ``z_a = basis(level_a) ⊗ x`` with ``basis(l) = [1, l]``
(``degree`` 1; ``[1, l, l²]`` at degree 2), so the purchase logit is ``u(x) + v(x)·alpha_a``: demand at
every price comes from one parameter vector ``theta``, and each outcome teaches every arm. It is
fitted online by one quasi-Newton step per outcome, with the precision ``A`` (the inverse covariance
of ``theta``, as in Chapelle and Li's logistic Thompson sampling) built from the bound 1/4 on the
logistic curvature ``p(1 - p)`` (Böhning's bound):

    p = sigmoid(thetaᵀz),  A <- decay·A + (1 - decay)·l2·I + ¼·z zᵀ,  theta <- theta + A⁻¹ z (r - p)

With the bound, ``A`` does not depend on ``theta``: it is the same whatever order the outcomes come
in. The exact curvature was tried: after a run of purchases it is near 0, so those purchases count
for little and a few refusals after them swing the estimate (130 outcomes, 77% bought, ended at
48%); in the simulator both earn the same.

With ``decay`` 1 the inverse follows by a rank-1 Sherman–Morrison step (O(D²)) and is recomputed
exactly every ``refresh_every`` outcomes; below 1, forgetting touches every direction of ``A``, so the
inverse is recomputed each time (D is 2d: 32 with the default features, about 20 µs).

The scores of all arms at one ``x`` are ``B (I ⊗ xᵀ) theta`` with ``B`` the (K, degree + 1) basis
matrix, so their covariance ``B S Bᵀ`` has rank degree + 1 and a Thompson draw needs only that many
normals. The first coordinate of ``x`` must be the bias (1), which carries the prior curve.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from learner.policies.demand import DemandModel, prior_logit, refuse_non_finite, sigmoid

CURVATURE = 0.25
"""The largest curvature of the logistic loss, ``max p(1 - p)``: the weight of every outcome in ``A``."""


class SharedLogit(DemandModel):
    name = "shared"
    STATE_KEYS: ClassVar[tuple[str, ...]] = ("A", "A_inv", "theta", "counts")

    def __init__(self, n_arms: int, dim: int, levels: np.ndarray, *, l2: float = 1.0,
                 decay: float = 1.0, degree: int = 1, refresh_every: int = 1024) -> None:
        super().__init__(n_arms, dim, levels, l2=l2, decay=decay)
        self.degree, self.refresh_every = int(degree), refresh_every
        self._basis = self.levels[:, None] ** np.arange(self.degree + 1)  # (K, degree + 1)
        size = self._basis.shape[1] * dim
        self._eye = np.eye(size)
        self._A = self.l2 * self._eye
        self._A_inv = self._eye / self.l2
        # The prior curve's logit a + b·level sits on the bias: theta[j·dim] is basis term j's bias.
        self._theta = np.zeros(size)
        at_cost = float(prior_logit(np.zeros(1))[0])
        self._theta[0] = at_cost
        if self.degree >= 1:
            self._theta[dim] = float(prior_logit(np.ones(1))[0]) - at_cost

    def _blocks(self, x: np.ndarray) -> np.ndarray:
        """``I ⊗ xᵀ``: one row per basis term, selecting that term's block of ``theta``."""
        return np.kron(np.eye(self._basis.shape[1]), x)

    def scores(self, x: np.ndarray) -> np.ndarray:
        return self._basis @ (self._theta.reshape(-1, self.dim) @ x)

    def _term_covariance(self, x: np.ndarray) -> np.ndarray:
        blocks = self._blocks(x)
        return (blocks @ self._A_inv) @ blocks.T

    def score_variance(self, x: np.ndarray) -> np.ndarray:
        return np.maximum(((self._basis @ self._term_covariance(x)) * self._basis).sum(axis=1), 0.0)

    def score_factor(self, x: np.ndarray) -> np.ndarray:
        values, vectors = np.linalg.eigh(self._term_covariance(x))
        return self._basis @ (vectors * np.sqrt(np.maximum(values, 0.0)))

    def link(self, scores: np.ndarray) -> np.ndarray:
        return sigmoid(scores)

    def features(self, x: np.ndarray, arm: int) -> np.ndarray:
        return np.kron(self._basis[arm], x)

    def learn_one(self, x: np.ndarray, arm: int, reward: float) -> None:
        z = self.features(x, arm)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            p = float(sigmoid(self._theta @ z))
            outer = CURVATURE * (z[:, None] * z)
            if self.decay < 1.0:
                A = self.decay * self._A + (1.0 - self.decay) * self.l2 * self._eye + outer
                A_inv = np.linalg.inv(A)
            else:
                A = self._A + outer
                if (self._total + 1) % self.refresh_every == 0:
                    A_inv = np.linalg.inv(A)
                else:
                    A_inv_z = self._A_inv @ z
                    A_inv = self._A_inv - (CURVATURE / (1.0 + CURVATURE * (z @ A_inv_z))) * (
                        A_inv_z[:, None] * A_inv_z)
            theta = self._theta + (A_inv @ z) * (reward - p)
            refuse_non_finite(A, A_inv, theta)
        self._A, self._A_inv, self._theta = A, A_inv, theta
        self._counted(arm)

    def hyperparameters(self) -> dict[str, Any]:
        return {**super().hyperparameters(), "degree": self.degree}

    def _shapes(self) -> dict[str, tuple[int, ...]]:
        size = self._theta.size
        return {"A": (size, size), "A_inv": (size, size), "theta": (size,), "counts": (self.n_arms,)}
