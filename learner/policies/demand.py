"""Demand models: what a policy believes about P(purchase | x, arm), and how sure it is.

A policy composes one demand model and adds a rule to choose. Every model gives, for a context
``x`` and the arms' prices ``levels`` (each arm's ``log(price / list price)``, ``log_price_ratio``),
each arm's *score* (a number the ``link`` turns into a purchase probability), the covariance of those
scores (how unsure it is, and how the arms' errors move together), and learns one outcome at a time
with an O(d²) step, deterministically, so a replay of the same log gives the same model.

Two are built:

- ``shared`` (``SharedLogit``): one logistic regression in which the price is an input. The features
  of an arm are ``x`` crossed with ``[1, level]``, so a purchase seen at one price informs every
  price, of this product and of every other: demand is smooth in the price, and one slope serves a
  thin-margin and a fat-margin product alike.
- ``per_arm`` (``RidgeArms``): one ridge regression of the purchase probability per arm (the arm's
  ``alpha``, whatever its price), linear link clipped to [0, 1]; nothing learned at one price informs
  another, and the levels are not used.

Both start from a prior demand curve, so a fresh model prices inside the grid, never at a
zero-margin arm and, for all but thin margins, below the top one. Both forget at the rate ``decay``
per learned outcome for *all* their evidence, played or not: a price the policy stopped playing grows
uncertain again, so even a deterministic policy goes back to look when the market moves. The prior
is given back a few coordinates at a time (``Forgetting``), so an update stays O(d²).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar

import numpy as np

from learner.errors import InvalidInput, SnapshotError

PRIOR_PURCHASE_AT_LIST = 0.3
PRIOR_LOGIT_PER_LOG_PRICE = -10.0
"""The shared model's prior demand curve: 30% buy at the list price, and the logit falls by 10 per
unit of log price (55% buy at 10% off list, 80% at 20% off). Its profit peaks at alpha 0.7 for a
product whose list price is 2.5 times its cost, 0.75-1 for a 25% markup: sane first prices, learned
away within a few hundred outcomes (the simulator's results hardly move with the prior)."""
PRIOR_PURCHASE_AT_COST = 0.95
PRIOR_PURCHASE_AT_FULL_ALPHA = 0.5
"""The per-arm models' prior, over the grid's alphas (they do not see prices): 95% buy at cost, half
at alpha 1, linear in the logit; its profit peaks near alpha 0.85 (the best uniform alpha of our
markets is 0.4-0.9)."""


def logit(p: float) -> float:
    return math.log(p / (1.0 - p))


def prior_purchase_by_alpha(alphas: np.ndarray) -> np.ndarray:
    """The per-arm prior purchase probability of each alpha."""
    at_cost = logit(PRIOR_PURCHASE_AT_COST)
    return sigmoid(at_cost + (logit(PRIOR_PURCHASE_AT_FULL_ALPHA) - at_cost) * np.asarray(alphas, float))


def sigmoid(z: np.ndarray) -> np.ndarray:
    """The logistic function through tanh: no overflow warning for large |z|."""
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, dtype=float)))


def clip01(values: np.ndarray) -> np.ndarray:
    """``values`` clipped to [0, 1]; two ufuncs, a third of what ``np.clip``'s dispatch costs."""
    return np.minimum(np.maximum(values, 0.0), 1.0)


def check_levels(levels: np.ndarray, n_arms: int, field: str = "levels") -> np.ndarray:
    """``levels`` as a float vector of ``n_arms`` finite values, or InvalidInput naming ``field``."""
    levels = np.asarray(levels, dtype=float)
    if levels.shape != (n_arms,) or not np.isfinite(levels).all():
        raise InvalidInput(field, f"need one finite value per arm ({n_arms}), got {levels.tolist()}")
    return levels


class DemandModel(ABC):
    """The statistics a policy composes; see the module docstring."""

    name: ClassVar[str]

    def __init__(self, n_arms: int, dim: int, alphas: np.ndarray, *, l2: float = 1.0,
                 decay: float = 1.0) -> None:
        if n_arms < 1 or dim < 1:
            raise InvalidInput("policy", f"need n_arms >= 1 and dim >= 1, got {n_arms}, {dim}")
        if not (np.isfinite(l2) and l2 > 0):
            raise InvalidInput("l2", f"must be finite and > 0, got {l2}")
        if not (0 < decay <= 1):
            raise InvalidInput("decay", f"must be in (0, 1], got {decay}")
        self.n_arms, self.dim, self.l2, self.decay = n_arms, dim, float(l2), float(decay)
        self.alphas = check_levels(alphas, n_arms, "alphas")
        self._counts = np.zeros(n_arms, dtype=np.int64)
        self._total = 0

    # -- beliefs ---------------------------------------------------------------------------------
    # The models compute on rows: ``x`` (n, d) and ``levels`` (n, K) (or (1, K), shared by every row),
    # answering per row and arm; row ``i`` of a batch is what that decision alone gives. The public
    # forms take one decision (``x`` (d,), ``levels`` (K,)) or rows, and answer in the same shape.
    @abstractmethod
    def row_scores(self, x: np.ndarray, levels: np.ndarray) -> np.ndarray:
        """Each arm's score (before the link) per row."""

    @abstractmethod
    def row_variance(self, x: np.ndarray, levels: np.ndarray) -> np.ndarray:
        """The variance of each arm's score per row."""

    @abstractmethod
    def row_factor(self, x: np.ndarray, levels: np.ndarray) -> np.ndarray:
        """(n, K, r): per row a matrix ``L`` with ``L Lᵀ`` the covariance of the arms' scores, so a
        draw of the scores is ``scores + L z`` with ``r`` standard normals ``z``."""

    @abstractmethod
    def link(self, scores: np.ndarray) -> np.ndarray:
        """Purchase probabilities (in [0, 1]) from scores."""

    def scores(self, x: np.ndarray, levels: np.ndarray) -> np.ndarray:
        return _answer(self.row_scores, x, levels)

    def score_variance(self, x: np.ndarray, levels: np.ndarray) -> np.ndarray:
        return _answer(self.row_variance, x, levels)

    def probabilities(self, x: np.ndarray, levels: np.ndarray) -> np.ndarray:
        return self.link(self.scores(x, levels))

    # -- learning --------------------------------------------------------------------------------
    @abstractmethod
    def learn_one(self, x: np.ndarray, arm: int, level: float, reward: float) -> None:
        """Learn one outcome of ``arm`` at price ``level``; refuse (InvalidInput) and change nothing if
        the result is not finite."""

    def _counted(self, arm: int) -> None:
        self._counts[arm] += 1
        self._total += 1

    @property
    def total(self) -> int:
        """Outcomes learned (a running int: read on every decision)."""
        return self._total

    # -- snapshots -------------------------------------------------------------------------------
    def hyperparameters(self) -> dict[str, Any]:
        return {"demand_model": self.name, "alphas": self.alphas.tolist()}

    @abstractmethod
    def _shapes(self) -> dict[str, tuple[int, ...]]:
        """The shape of each state array, by name (the attribute is ``_<name>``)."""

    def state(self) -> dict[str, np.ndarray]:
        return {key: np.array(getattr(self, f"_{key}")) for key in self._shapes()}

    def load(self, state: dict[str, np.ndarray]) -> None:
        """Replace the statistics with a snapshot's, after checking shapes and finiteness."""
        for key, shape in self._shapes().items():
            if key not in state:
                raise SnapshotError(f"snapshot lacks the {self.name} demand statistic {key!r}")
            if state[key].shape != shape:
                raise SnapshotError(
                    f"snapshot statistic {key!r} has shape {state[key].shape}, this setup needs "
                    f"{shape}: the snapshot was made with another arm grid or feature set"
                )
            if not np.all(np.isfinite(state[key])):
                raise SnapshotError(f"snapshot statistic {key!r} holds non-finite values")
        for key in self._shapes():
            setattr(self, f"_{key}", state[key].astype(np.int64 if key == "counts" else float))
        self._total = int(self._counts.sum())


def _answer(method: Callable[[np.ndarray, np.ndarray], np.ndarray], x: np.ndarray, levels: np.ndarray
            ) -> np.ndarray:
    """A row method on one decision or on rows, answering in the shape asked: per arm for one."""
    x, levels = np.asarray(x, dtype=float), np.asarray(levels, dtype=float)
    answer = method(np.atleast_2d(x), np.atleast_2d(levels))
    return answer[0] if x.ndim == 1 and levels.ndim == 1 else answer


PRIOR_RIPPLE = 0.9
"""Forgetting gives the prior back a few coordinates at a time (``Forgetting``): between two of its
restorations no coordinate's prior precision falls below this share of what it was just after one."""


@dataclass(frozen=True, eq=False)
class Forgetting:
    """How a precision matrix ``A`` (D×D, or a stack of them) ages by ``keep`` per learned outcome
    while keeping its prior ``l2·I``, with its inverse kept by low-rank steps: O(D²) per outcome at the
    default decay, where restoring the prior on the whole diagonal at once (``keep·A + (1-keep)·l2·I``)
    needs a full inverse, O(D³).

    The coordinates take turns: coordinate ``j`` is restored at the outcomes ``t`` with
    ``t ≡ j (mod cycle)``, by ``cycle·(1-keep)·l2``, what ``cycle`` outcomes of the whole-diagonal
    rule give it, so the prior's average is the same and it never strays below ``PRIOR_RIPPLE`` of its
    peak. The cycle is as long as that allows, up to D: at decay 0.9995 a single coordinate a step
    (one Sherman–Morrison step); at decay 0.9, half of them; a cycle of 1 is the whole-diagonal rule.
    """

    size: int
    keep: float
    l2: float
    cycle: int

    @staticmethod
    def of(size: int, keep: float, l2: float) -> Forgetting:
        longest = 1 + math.floor(math.log(PRIOR_RIPPLE) / math.log(keep)) if keep < 1.0 else size
        return Forgetting(size, keep, l2, max(1, min(size, longest)))

    @property
    def strength(self) -> float:
        """The prior precision a coordinate gets back on its turn."""
        return self.cycle * (1.0 - self.keep) * self.l2

    def turn(self, step: int) -> slice:
        """The coordinates restored on outcome ``step``."""
        return slice(step % self.cycle, None, self.cycle)

    @cached_property
    def _turns(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per turn: its coordinates, and the inverse of the prior it restores on them (``I / strength``)."""
        turns = [np.arange(self.size)[self.turn(first)] for first in range(self.cycle)]
        return [(coordinates, np.eye(coordinates.size) / self.strength) for coordinates in turns]

    def age(self, A: np.ndarray, A_inv: np.ndarray, step: int) -> tuple[np.ndarray, np.ndarray]:
        """New arrays: ``A`` aged with the prior restored on outcome ``step``'s coordinates, and its
        inverse by the Woodbury identity (their few columns: a rank-m step)."""
        turn = self.turn(step)
        diagonal, prior_inverse = self._turns[turn.start]
        A = self.keep * A
        A[..., diagonal, diagonal] += self.strength
        A_inv = A_inv * (1.0 / self.keep)
        columns = A_inv[..., :, turn].copy()
        core = prior_inverse + A_inv[..., turn, turn]
        gain = 1.0 / core if diagonal.size == 1 else np.linalg.inv(core)
        A_inv -= (columns @ gain) @ np.swapaxes(columns, -1, -2)
        return A, A_inv


def add_outer(A: np.ndarray, A_inv: np.ndarray, z: np.ndarray, weight: float
              ) -> tuple[np.ndarray, np.ndarray]:
    """New arrays: ``A + weight·z zᵀ`` and its inverse by one Sherman–Morrison step."""
    along = A_inv @ z
    return A + weight * (z[:, None] * z), A_inv - (weight / (1.0 + weight * float(z @ along))) * (
        along[:, None] * along)


def refuse_non_finite(*arrays: np.ndarray) -> None:
    """Raise InvalidInput if any array holds NaN or inf (one sum each: NaN and inf propagate).

    A precision matrix and its inverse are symmetric positive definite, so their largest entries
    lie on the diagonal (``|a_ij| <= sqrt(a_ii a_jj)``): the models pass only the diagonals of those,
    D numbers instead of D², and the check still sees any overflow. Called where the update runs, under
    its ``np.errstate`` (a sum that overflows is inf, not a warning)."""
    if not math.isfinite(sum(float(a.sum()) for a in arrays)):
        raise InvalidInput("features", "the update would make the model non-finite; refused")
