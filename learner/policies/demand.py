"""Demand models: what a policy believes about P(purchase | x, arm), and how sure it is.

A policy composes one demand model and adds a rule to choose. Every model gives, for a context
``x``, each arm's *score* (a number the ``link`` turns into a purchase probability), the covariance
of those scores (how unsure it is, and how the arms' errors move together), and learns one outcome at
a time with an O(d²) step, deterministically, so a replay of the same log gives the same model.

Two are built:

- ``shared`` (``SharedLogit``): one logistic regression in which the price is an input. The features
  of arm ``a`` are ``x`` crossed with a small basis of the arm's price level (``[1, alpha_a]``), so a
  purchase seen at one price informs every price, and demand is smooth in the price.
- ``per_arm`` (``RidgeArms``): one ridge regression of the purchase probability per arm, linear link
  clipped to [0, 1]; nothing learned at one price informs another.

Both start from the same prior demand curve (``prior_purchase``), so a fresh model prices in the
middle of the grid like a uniform-price learner, never at the top arm nor at a zero-margin one. Both
forget at the rate ``decay`` per learned outcome for *all* their evidence, played or not: an arm the
policy stopped playing grows uncertain again, so even a deterministic policy goes back to look when
the market moves.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np

from learner.errors import InvalidInput, SnapshotError

PRIOR_PURCHASE_AT_COST = 0.95
PRIOR_PURCHASE_AT_FULL_ALPHA = 0.5
"""The prior demand curve: 95% buy at cost (alpha 0), half at alpha 1 (the full value ``V``); its
logit is linear in alpha. Its profit peaks near alpha 0.85, where the best uniform price of our
markets lies (0.7 on ``stationary``): a sane first price, learned away within a few hundred outcomes."""


def logit(p: float) -> float:
    return math.log(p / (1.0 - p))


def prior_logit(levels: np.ndarray) -> np.ndarray:
    """The prior score of each price level (alpha): a logit linear in the level."""
    at_cost = logit(PRIOR_PURCHASE_AT_COST)
    return at_cost + (logit(PRIOR_PURCHASE_AT_FULL_ALPHA) - at_cost) * np.asarray(levels, dtype=float)


def prior_purchase(levels: np.ndarray) -> np.ndarray:
    """The prior purchase probability of each price level."""
    return sigmoid(prior_logit(levels))


def sigmoid(z: np.ndarray) -> np.ndarray:
    """The logistic function through tanh: no overflow warning for large |z|."""
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, dtype=float)))


def clip01(values: np.ndarray) -> np.ndarray:
    """``values`` clipped to [0, 1]; two ufuncs, a third of what ``np.clip``'s dispatch costs."""
    return np.minimum(np.maximum(values, 0.0), 1.0)


def check_levels(levels: np.ndarray, n_arms: int) -> np.ndarray:
    levels = np.asarray(levels, dtype=float)
    if levels.shape != (n_arms,) or not np.all(np.isfinite(levels)):
        raise InvalidInput("levels", f"need one finite price level per arm ({n_arms}), got {levels.tolist()}")
    return levels


class DemandModel(ABC):
    """The statistics a policy composes; see the module docstring."""

    name: ClassVar[str]
    STATE_KEYS: ClassVar[tuple[str, ...]]

    def __init__(self, n_arms: int, dim: int, levels: np.ndarray, *, l2: float = 1.0,
                 decay: float = 1.0) -> None:
        if n_arms < 1 or dim < 1:
            raise InvalidInput("policy", f"need n_arms >= 1 and dim >= 1, got {n_arms}, {dim}")
        if not (np.isfinite(l2) and l2 > 0):
            raise InvalidInput("l2", f"must be finite and > 0, got {l2}")
        if not (0 < decay <= 1):
            raise InvalidInput("decay", f"must be in (0, 1], got {decay}")
        self.n_arms, self.dim, self.l2, self.decay = n_arms, dim, float(l2), float(decay)
        self.levels = check_levels(levels, n_arms)
        self._counts = np.zeros(n_arms, dtype=np.int64)
        self._total = 0

    # -- beliefs ---------------------------------------------------------------------------------
    @abstractmethod
    def scores(self, x: np.ndarray) -> np.ndarray:
        """Each arm's score at ``x`` (before the link)."""

    @abstractmethod
    def score_variance(self, x: np.ndarray) -> np.ndarray:
        """The variance of each arm's score at ``x``."""

    @abstractmethod
    def score_factor(self, x: np.ndarray) -> np.ndarray:
        """A (K, K) matrix ``L`` with ``L Lᵀ`` the covariance of the arms' scores at ``x``."""

    @abstractmethod
    def link(self, scores: np.ndarray) -> np.ndarray:
        """Purchase probabilities (in [0, 1]) from scores."""

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        return self.link(self.scores(x))

    # -- learning --------------------------------------------------------------------------------
    @abstractmethod
    def learn_one(self, x: np.ndarray, arm: int, reward: float) -> None:
        """Learn one outcome; refuse (InvalidInput) and change nothing if the result is not finite."""

    def _counted(self, arm: int) -> None:
        self._counts[arm] += 1
        self._total += 1

    @property
    def counts(self) -> np.ndarray:
        return self._counts.copy()

    @property
    def total(self) -> int:
        """Outcomes learned (a running int: read on every decision)."""
        return self._total

    # -- snapshots -------------------------------------------------------------------------------
    def hyperparameters(self) -> dict[str, Any]:
        return {"demand_model": self.name, "levels": self.levels.tolist()}

    @abstractmethod
    def _shapes(self) -> dict[str, tuple[int, ...]]:
        """The shape of each state array."""

    def state(self) -> dict[str, np.ndarray]:
        return {key: np.array(getattr(self, f"_{key}")) for key in self.STATE_KEYS}

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
        for key in self.STATE_KEYS:
            setattr(self, f"_{key}", state[key].astype(np.int64 if key == "counts" else float))
        self._total = int(self._counts.sum())


def refuse_non_finite(*arrays: np.ndarray) -> None:
    """Raise InvalidInput if any array holds NaN or inf (one sum each: NaN and inf propagate)."""
    with np.errstate(over="ignore", invalid="ignore"):
        finite = np.isfinite(sum(float(a.sum()) for a in arrays))
    if not finite:
        raise InvalidInput("features", "the update would make the model non-finite; refused")
