"""One logistic demand model shared across prices: the price is an input, not an index.

The features of an arm priced at level ``l = log(price / list price)`` in context ``x`` are
``z = [x, LEVEL_SCALE·l·x]``, so the purchase logit is ``u(x) + v(x)·l``: demand at every price, of
every product, comes from one parameter vector ``theta``, and each outcome teaches every arm. The log
price ratio is the right axis because a shopper's willingness to pay is a multiple of the list price
(the simulator's, and the logit demand of the pricing literature): one slope then fits a product
sold at 12% over cost and one at 45%. With alpha as the axis instead, the slope must be learned per
markup, and the model earned 2-4 points less on 20,000 rounds (``stationary`` and ``far_below_list``).

It is fitted online by one Newton step per outcome, with the precision ``A`` (the inverse covariance
of ``theta``: the Laplace approximation of Chapelle and Li's logistic Thompson sampling, with the full
matrix) built from the curvature ``w = p(1 - p)`` at the current estimate, floored at
``MIN_CURVATURE``:

    p = sigmoid(thetaᵀz),  A <- decay·A + prior restored + w·z zᵀ,  theta <- theta + A⁻¹ z (r - p)

where forgetting gives back the prior ``l2`` on a few coordinates of ``A`` per outcome, in turn
(``demand.Forgetting``: one coordinate at the default decay), so that the inverse follows by
low-rank steps.

The constant bound ``w = 1/4`` (Böhning's) was tried: ``A`` then does not depend on the order of the
outcomes, but its steps are too short where purchases are nearly certain or nearly impossible, so
the slope in price converged slowly, LinUCB grew confident in a too-flat demand curve and stayed one
arm too high on a steep market (tests/test_learning.py). The exact curvature weighs recent outcomes
more after a confidently predicted run (100 purchases then 30 refusals end near 30%, not 77%); in the
simulator both earned the same. The inverse follows each outcome by Sherman–Morrison steps, O(D²)
(D is 2d: 32 with the default features), and is recomputed exactly every ``refresh_every`` outcomes
so that rounding never accumulates.

The scores of all arms at one ``x`` are ``B (I ⊗ xᵀ) theta`` with ``B`` the (K, 2) matrix of rows
``[1, LEVEL_SCALE·l]``, so their covariance ``B S Bᵀ`` has rank 2 and a Thompson draw needs only two
normals. The first coordinate of ``x`` must be the bias (1), which carries the prior curve.
"""

from __future__ import annotations

import numpy as np

from learner.policies.demand import (
    PRIOR_LOGIT_PER_LOG_PRICE,
    PRIOR_PURCHASE_AT_LIST,
    DemandModel,
    Forgetting,
    add_outer,
    logit,
    refuse_non_finite,
    sigmoid,
)

MIN_CURVATURE = 0.01
"""Floor of ``p(1 - p)``: a confidently predicted outcome still adds some precision, so ``A`` keeps
growing and the steps keep shrinking however saturated the estimates."""
LEVEL_SCALE = 10.0
"""Log price ratios are multiplied by 10 so that the slope's coefficient is of order 1, like the rest
(a prior of precision ``l2`` on each coefficient then means the same for all)."""


class SharedLogit(DemandModel):
    name = "shared"

    def __init__(self, n_arms: int, dim: int, alphas: np.ndarray, *, l2: float = 1.0,
                 decay: float = 1.0, refresh_every: int = 1024) -> None:
        super().__init__(n_arms, dim, alphas, l2=l2, decay=decay)
        self.refresh_every = refresh_every
        self._forgetting = Forgetting.of(2 * dim, self.decay, self.l2)
        eye = np.eye(2 * dim)
        self._A: np.ndarray = self.l2 * eye
        self._A_inv: np.ndarray = eye / self.l2
        self._theta: np.ndarray = np.zeros(2 * dim)
        self._theta[0] = logit(PRIOR_PURCHASE_AT_LIST)  # the bias, at the list price
        self._theta[dim] = PRIOR_LOGIT_PER_LOG_PRICE / LEVEL_SCALE  # the bias's slope in the level

    @staticmethod
    def _basis(levels: np.ndarray) -> np.ndarray:
        """Rows ``[1, LEVEL_SCALE·l]`` per arm (and row), filled in place (``np.stack`` costs five times
        as much)."""
        basis = np.empty((*levels.shape, 2))
        basis[..., 0] = 1.0
        np.multiply(levels, LEVEL_SCALE, out=basis[..., 1])
        return basis

    def logit_terms(self, x: np.ndarray) -> np.ndarray:
        """Each row's intercept ``u`` and slope ``v`` of the purchase logit in the level, (n, 2):
        ``theta`` read as two rows against ``x``. With ``scores_at`` they give the score at any price
        later, from the model as it is now."""
        return x @ self._theta.reshape(2, self.dim).T

    @staticmethod
    def scores_at(terms: np.ndarray, levels: np.ndarray) -> np.ndarray:
        """``u + LEVEL_SCALE·l·v`` for each row's ``terms`` and its levels (n, K)."""
        return terms[:, :1] + (LEVEL_SCALE * levels) * terms[:, 1:]

    def row_scores(self, x: np.ndarray, levels: np.ndarray) -> np.ndarray:
        return self.scores_at(self.logit_terms(x), levels)

    def _term_covariances(self, x: np.ndarray) -> np.ndarray:
        """``S`` per row (n, 2, 2): the covariance of its intercept and slope, ``(I ⊗ xᵀ) A⁻¹ (I ⊗ x)``."""
        blocks = np.zeros((len(x), 2, 2 * self.dim))
        blocks[:, 0, :self.dim] = blocks[:, 1, self.dim:] = x
        return (blocks @ self._A_inv) @ blocks.transpose(0, 2, 1)

    def row_variance(self, x: np.ndarray, levels: np.ndarray) -> np.ndarray:
        """``[1, b] S [1, b]ᵀ = S₀₀ + b (2 S₀₁ + b S₁₁)`` with ``b = LEVEL_SCALE·l``, per arm."""
        covariance = self._term_covariances(x)
        slope = LEVEL_SCALE * levels
        return np.maximum(covariance[:, :1, 0] + slope * (2.0 * covariance[:, :1, 1]
                                                         + slope * covariance[:, 1:, 1]), 0.0)

    def row_factor(self, x: np.ndarray, levels: np.ndarray) -> np.ndarray:
        values, vectors = np.linalg.eigh(self._term_covariances(x))
        return self._basis(np.broadcast_to(levels, (len(x), levels.shape[-1]))) @ (
            vectors * np.sqrt(np.maximum(values, 0.0))[:, None, :])

    def link(self, scores: np.ndarray) -> np.ndarray:
        return sigmoid(scores)

    def learn_one(self, x: np.ndarray, arm: int, level: float, reward: float) -> None:
        dim = self.dim
        z = np.empty(2 * dim)
        z[:dim] = x
        np.multiply(LEVEL_SCALE * level, x, out=z[dim:])
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            p = 0.5 * (1.0 + float(np.tanh(0.5 * float(self._theta @ z))))  # sigmoid, on one number
            weight = max(p * (1.0 - p), MIN_CURVATURE)
            A, A_inv = self._A, self._A_inv
            if self.decay < 1.0:
                A, A_inv = self._forgetting.age(A, A_inv, self._total)
            A, A_inv = add_outer(A, A_inv, z, weight)
            if (self._total + 1) % self.refresh_every == 0:
                A_inv = np.linalg.inv(A)
            theta = self._theta + (A_inv @ z) * (reward - p)
            refuse_non_finite(A.diagonal(), A_inv.diagonal(), theta)
        self._A, self._A_inv, self._theta = A, A_inv, theta
        self._counted(arm)

    def learn_block(self, x: np.ndarray, levels: np.ndarray, rewards: np.ndarray) -> None:
        """One Newton step for a block of outcomes (rows of ``x``, their levels and rewards) at once:
        every outcome's curvature at the current estimate joins the precision, and ``theta`` moves by
        ``A⁻¹ Σ z (r − p)``. Without forgetting only, where the order inside a block does not matter:
        the offline replay's DR reward model (``evaluation.replay``), not a policy."""
        if self.decay < 1.0:
            raise ValueError("a block of outcomes has no order to forget in: use learn_one")
        z = np.concatenate([x, (LEVEL_SCALE * levels)[:, None] * x], axis=1)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            p = sigmoid(z @ self._theta)
            weight = np.maximum(p * (1.0 - p), MIN_CURVATURE)
            A = self._A + (z * weight[:, None]).T @ z
            A_inv = np.linalg.inv(A)
            theta = self._theta + A_inv @ (z.T @ (rewards - p))
            refuse_non_finite(A.diagonal(), A_inv.diagonal(), theta)
        self._A, self._A_inv, self._theta = A, A_inv, theta
        self._counts[0] += len(z)
        self._total += len(z)

    def _shapes(self) -> dict[str, tuple[int, ...]]:
        size = self._theta.size
        return {"A": (size, size), "A_inv": (size, size), "theta": (size,), "counts": (self.n_arms,)}
