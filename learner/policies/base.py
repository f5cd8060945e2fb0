"""The policy protocol: estimate each arm, choose one with a known probability, learn from the outcome.

A policy composes a demand model (``learner.policies.demand``: one logistic model shared across
prices by default, or one ridge model per arm), which gives the purchase probability of every arm (a
number in [0, 1]) and how sure it is, and adds a rule to choose: maximise expected profit
``payoff[a] * P(purchase | x, a)``, where ``payoff`` is the arm's margin in units of the user value
(the caller's objective). Masked arms (outside the price guardrails) get probability zero. Policies
never touch global random state: the caller passes the generator for each decision.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from learner.errors import InvalidInput, SnapshotError
from learner.policies.demand import DemandModel, check_levels
from learner.policies.ridge import RidgeArms
from learner.policies.shared import SharedLogit

DEMAND_MODELS: dict[str, type[DemandModel]] = {cls.name: cls for cls in (SharedLogit, RidgeArms)}
DEFAULT_DEMAND_MODEL = SharedLogit.name


@dataclass(frozen=True)
class Choice:
    """The arm chosen, the probability it had, the distribution it was drawn from, and the
    purchase-probability estimates it was based on."""

    arm: int
    probability: float
    pmf: np.ndarray
    explored: bool
    estimates: np.ndarray


MAX_FEATURE = 1e100
"""Beyond this, ``x xᵀ`` overflows float64; the server refuses anything above 1e6 long before."""


def check_features(x: np.ndarray, dim: int) -> np.ndarray:
    """Return ``x`` as a float vector of length ``dim``, refusing non-finite or overflowing values."""
    x = np.asarray(x, dtype=float)
    if x.shape != (dim,):
        raise InvalidInput("features", f"expected a vector of {dim} features, got shape {x.shape}")
    if not np.abs(x).max() <= MAX_FEATURE:  # also false for NaN (the max of a NaN is NaN)
        raise InvalidInput("features", f"every feature must be finite with magnitude <= {MAX_FEATURE:g}")
    return x


def sample_arm(pmf: np.ndarray, rng: np.random.Generator) -> int:
    """Draw an arm from ``pmf`` by inverse CDF with one uniform: reproducible for a seeded rng.

    A distribution on one arm needs no draw: the inverse CDF lands on that arm for every uniform,
    so skipping it changes no choice and spares a deterministic policy seeding a generator.
    """
    support = np.flatnonzero(pmf)
    if support.size == 1:
        return int(support[0])
    cdf = np.cumsum(pmf)
    arm = int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"))
    arm = min(arm, len(pmf) - 1)
    while pmf[arm] == 0:  # a uniform that lands exactly on a boundary of a zero-mass arm
        arm -= 1
    return arm


def masked_argmax(values: np.ndarray, allowed: np.ndarray, payoffs: np.ndarray) -> int:
    """Index of the largest allowed value; a tie goes to the arm with the larger payoff (a model that
    sees no difference never gives the margin away), then to the lowest index."""
    scores = np.where(allowed, values, -np.inf)
    best = scores.max()
    return int(np.where(scores == best, payoffs, -np.inf).argmax())


def default_alphas(n_arms: int) -> np.ndarray:
    """A grid from 0 (cost) to 1 (the full value), when the caller names none."""
    return np.linspace(0.0, 1.0, n_arms)


class Policy(ABC):
    """Base of the policies: a demand model (``demand_model``; ``alphas`` is the price grid), plus a
    rule to choose. Every decision and outcome says where each arm's price sits against the list
    price (``levels``: ``learner.primitives.log_price_ratio``), which the shared demand model reads."""

    name: ClassVar[str]
    deterministic: ClassVar[bool] = False

    def __init__(self, n_arms: int, dim: int, *, l2: float = 1.0, decay: float = 1.0,
                 demand_model: str = DEFAULT_DEMAND_MODEL, alphas: np.ndarray | None = None) -> None:
        try:
            model = DEMAND_MODELS[demand_model]
        except KeyError:
            raise InvalidInput("demand_model", f"unknown demand model {demand_model!r}; choose one of "
                                               f"{sorted(DEMAND_MODELS)}") from None
        self.n_arms, self.dim = n_arms, dim
        self.l2, self.decay = l2, decay
        self._model = model(n_arms, dim, default_alphas(n_arms) if alphas is None else alphas,
                            l2=l2, decay=decay)

    # -- estimates -------------------------------------------------------------------------------
    def estimates(self, x: np.ndarray, levels: np.ndarray) -> np.ndarray:
        """Estimated purchase probability of every arm at ``x`` and its price level, in [0, 1]."""
        return self._model.probabilities(check_features(x, self.dim), check_levels(levels, self.n_arms))

    def score_effects(self, deltas: np.ndarray, levels: np.ndarray, arm: int) -> np.ndarray:
        """How much each row of ``deltas`` (a change of the features) moves ``arm``'s purchase score
        (the logit, before the link). Every demand model's score is a matrix product with the
        features, linear in them, so all rows go through one product (as the columns of one matrix)."""
        deltas = np.asarray(deltas, dtype=float)
        if deltas.ndim != 2 or deltas.shape[1] != self.dim or not np.isfinite(deltas).all():
            raise InvalidInput("features", f"expected finite rows of {self.dim} features, got {deltas.shape}")
        return np.asarray(self._model.scores(deltas.T, check_levels(levels, self.n_arms))[arm])

    # -- choosing --------------------------------------------------------------------------------
    def select(
        self, x: np.ndarray, levels: np.ndarray, payoffs: np.ndarray, allowed: np.ndarray,
        rng: np.random.Generator,
    ) -> Choice:
        """Choose an allowed arm to maximise ``payoffs * P(purchase)``; report its probability."""
        x = check_features(x, self.dim)
        levels = check_levels(levels, self.n_arms)
        payoffs = np.asarray(payoffs, dtype=float)
        allowed = np.asarray(allowed, dtype=bool)
        if payoffs.shape != (self.n_arms,) or allowed.shape != (self.n_arms,):
            raise InvalidInput("payoffs", f"need one payoff and one mask entry per arm ({self.n_arms})")
        if not allowed.any():
            raise InvalidInput("allowed", "no arm is allowed")
        if not np.isfinite(payoffs).all():
            raise InvalidInput("payoffs", "every payoff must be finite")
        estimates = self._model.probabilities(x, levels)
        greedy = masked_argmax(payoffs * estimates, allowed, payoffs)
        pmf = self._pmf(x, levels, payoffs, allowed, greedy, estimates, rng)
        pmf = np.where(allowed, pmf, 0.0)
        pmf /= pmf.sum()
        arm = self._draw(pmf, rng)
        return Choice(arm=arm, probability=float(pmf[arm]), pmf=pmf, explored=arm != greedy,
                      estimates=estimates)

    def _draw(self, pmf: np.ndarray, rng: np.random.Generator) -> int:
        return sample_arm(pmf, rng)

    @abstractmethod
    def _pmf(
        self,
        x: np.ndarray,
        levels: np.ndarray,
        payoffs: np.ndarray,
        allowed: np.ndarray,
        greedy: int,
        estimates: np.ndarray,
        rng: np.random.Generator,
    ) -> np.ndarray:
        """The distribution over arms (masked arms are zeroed by the caller)."""

    # -- learning --------------------------------------------------------------------------------
    def learn_one(self, x: np.ndarray, arm: int, level: float, reward: float, probability: float) -> None:
        """Learn that ``arm``, priced at ``level``, earned ``reward`` (1 purchase, 0 none) at ``x``.

        ``probability`` is the logged propensity; the demand fit is on-policy and does not weight
        by it, but it is checked so that a corrupt log cannot slip through.
        """
        x = check_features(x, self.dim)
        if not 0 <= arm < self.n_arms:
            raise InvalidInput("arm", f"{arm} is not an arm index in [0, {self.n_arms})")
        if not (np.isfinite(reward) and 0.0 <= reward <= 1.0):
            raise InvalidInput("reward", f"{reward} must be in [0, 1]")
        if not (np.isfinite(probability) and 0.0 < probability <= 1.0):
            raise InvalidInput("probability", f"{probability} must be in (0, 1]")
        if not np.isfinite(level):
            raise InvalidInput("level", f"{level} must be finite")
        self._model.learn_one(x, arm, float(level), float(reward))

    @property
    def updates(self) -> int:
        return self._model.total

    # -- snapshots -------------------------------------------------------------------------------
    def hyperparameters(self) -> dict[str, Any]:
        """Everything that must match for a snapshot to be valid in this policy."""
        return {"name": self.name, "n_arms": self.n_arms, "dim": self.dim, "l2": self.l2,
                "decay": self.decay, **self._model.hyperparameters()}

    def state(self) -> dict[str, np.ndarray]:
        return self._model.state()

    def load(self, state: dict[str, np.ndarray]) -> None:
        self._model.load(state)


def check_hyperparameters(expected: dict[str, Any], found: dict[str, Any]) -> None:
    """Refuse a snapshot made by a differently configured policy, naming what differs."""
    if expected != found:
        diff = {k: (found.get(k), expected.get(k)) for k in expected.keys() | found.keys()
                if expected.get(k) != found.get(k)}
        details = ", ".join(f"{k}: snapshot {s!r} vs configured {c!r}" for k, (s, c) in sorted(diff.items()))
        raise SnapshotError(
            f"the snapshot was made by a differently configured policy ({details}); start with the "
            "same settings, or with a new --data-dir to begin learning afresh"
        )
