"""The policies that compose a demand model and add a rule to choose (LinUCB, Thompson, SquareCB,
ε-greedy): what they share, so each writes only its rule.

The demand model (``learner.policies.demand``: one logistic model shared across prices by default,
or one ridge model per arm) gives the purchase probability of every arm (a number in [0, 1]) and how
sure it is; the rule turns it into a distribution over arms to maximise expected profit
``payoff[a] * P(purchase | x, a)``. A policy of another kind need not inherit this: it meets
``base.Policy`` on its own.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar, NamedTuple

import numpy as np

from learner.errors import InvalidInput
from learner.policies.base import (
    Choice,
    Choices,
    PolicySettings,
    check_decisions,
    check_features,
    check_outcome,
    choose_rows,
    masked_argmax_rows,
)
from learner.policies.demand import DemandModel, check_levels
from learner.policies.ridge import RidgeArms
from learner.policies.shared import SharedLogit

DEMAND_MODELS: dict[str, type[DemandModel]] = {cls.name: cls for cls in (SharedLogit, RidgeArms)}
DEFAULT_DEMAND_MODEL = SharedLogit.name


class Distribution(NamedTuple):
    """A rule's distribution over arms per row (masked arms are zeroed after), and the arms when the
    rule drew them together with the distribution (Thompson's first posterior draws, LinUCB's best
    bounds; None: drawn from ``pmf``)."""

    pmf: np.ndarray
    drawn: np.ndarray | None = None


class DemandPolicy(ABC):
    """A demand model (``settings.demand_model``, over the grid's ``alphas``) plus a rule to choose,
    ``_distribution``. Meets ``base.Policy``."""

    name: ClassVar[str]
    deterministic: ClassVar[bool] = False

    def __init__(self, settings: PolicySettings) -> None:
        try:
            model = DEMAND_MODELS[settings.demand_model]
        except KeyError:
            raise InvalidInput("demand_model", f"unknown demand model {settings.demand_model!r}; choose one "
                                               f"of {sorted(DEMAND_MODELS)}") from None
        self.n_arms, self.dim = settings.n_arms, settings.dim
        self.l2, self.decay = settings.l2, settings.decay
        self._model = model(self.n_arms, self.dim, settings.alphas, l2=self.l2, decay=self.decay)

    # -- estimates -------------------------------------------------------------------------------
    def estimates(self, x: np.ndarray, levels: np.ndarray) -> np.ndarray:
        return self._model.probabilities(check_features(x, self.dim), check_levels(levels, self.n_arms))

    def score_effects(self, deltas: np.ndarray, levels: np.ndarray, arms: np.ndarray) -> np.ndarray:
        """The moves of each decision's chosen logit. Every demand model's score is a matrix product
        with the features, linear in them, so all decisions' changes go through one product (as the
        rows of one matrix, each with its decision's levels)."""
        deltas, levels = np.asarray(deltas, dtype=float), np.asarray(levels, dtype=float)
        if deltas.ndim != 3 or deltas.shape[2] != self.dim or not np.isfinite(deltas).all():
            raise InvalidInput("features", f"expected finite rows of {self.dim} features per decision, "
                                           f"got {deltas.shape}")
        if levels.ndim != 2 or levels.shape != (len(deltas), self.n_arms) or not np.isfinite(levels).all():
            raise InvalidInput("levels", f"expected finite levels of {self.n_arms} arms per decision, "
                                         f"got {levels.shape}")
        n, groups = deltas.shape[:2]
        scores = self._model.row_scores(deltas.reshape(n * groups, self.dim),
                                        np.repeat(levels, groups, axis=0))
        return scores[np.arange(n * groups), np.repeat(np.asarray(arms), groups)].reshape(n, groups)

    # -- choosing --------------------------------------------------------------------------------
    def select(
        self, x: np.ndarray, levels: np.ndarray, payoffs: np.ndarray, allowed: np.ndarray,
        rng: np.random.Generator,
    ) -> Choice:
        return self.select_many(np.asarray(x)[None], np.asarray(levels)[None], np.asarray(payoffs)[None],
                                np.asarray(allowed)[None], (rng,)).row(0)

    def select_many(
        self, x: np.ndarray, levels: np.ndarray, payoffs: np.ndarray, allowed: np.ndarray,
        rngs: Sequence[np.random.Generator],
    ) -> Choices:
        """Every row at once: one score per arm and row, the greedy arms, then the rule."""
        x, levels, payoffs, allowed = check_decisions(x, levels, payoffs, allowed, self.n_arms, self.dim,
                                                      len(rngs))
        scores = self._model.row_scores(x, levels)
        estimates = self._model.link(scores)
        greedy = masked_argmax_rows(payoffs * estimates, allowed, payoffs)
        pmf, drawn = self._distribution(x, levels, scores, payoffs, allowed, greedy, estimates, rngs)
        return choose_rows(pmf, allowed, greedy, estimates, rngs, drawn)

    @abstractmethod
    def _distribution(
        self,
        x: np.ndarray,
        levels: np.ndarray,
        scores: np.ndarray,
        payoffs: np.ndarray,
        allowed: np.ndarray,
        greedy: np.ndarray,
        estimates: np.ndarray,
        rngs: Sequence[np.random.Generator],
    ) -> Distribution:
        """The rule, for every row (each argument has one row per decision): a distribution over arms,
        given the model's ``scores`` (computed once), their ``estimates`` and the ``greedy`` arms."""

    # -- learning --------------------------------------------------------------------------------
    def learn_one(self, x: np.ndarray, arm: int, level: float, reward: float, probability: float) -> None:
        """The demand fit is on-policy: it does not weight by ``probability``, only checks it."""
        x = check_outcome(x, arm, level, reward, probability, self.n_arms, self.dim)
        self._model.learn_one(x, arm, float(level), float(reward))

    @property
    def updates(self) -> int:
        return self._model.total

    # -- snapshots -------------------------------------------------------------------------------
    def hyperparameters(self) -> dict[str, Any]:
        return {"name": self.name, "n_arms": self.n_arms, "dim": self.dim, "l2": self.l2,
                "decay": self.decay, **self._model.hyperparameters()}

    def state(self) -> dict[str, np.ndarray]:
        return self._model.state()

    def load(self, state: dict[str, np.ndarray]) -> None:
        self._model.load(state)
