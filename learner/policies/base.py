"""The policy contract: estimate each arm, choose one with a known probability, learn from the outcome.

``Policy`` is a protocol: what the Pricer, its snapshots and the offline replay use of a policy, and
all they use, so a policy of any kind (a demand model and a rule to choose, a counting rule, a tree)
meets it in one file and is registered in ``learner.policies.POLICIES``. A registered policy is built
as ``factory(settings, **options)``: ``settings`` what the Pricer sets for every policy, ``options``
its own keyword-only hyperparameters. The behavior most policies share is here as functions they opt
into (checking a decision's or an outcome's inputs, turning a distribution into a ``Choice``); the
policies that compose a demand model share a base class as well (``demand_policy.DemandPolicy``).

Masked arms (outside the price guardrails) get probability zero. Policies never touch global random
state: the caller passes the generator for each decision.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import numpy as np

from learner.errors import InvalidInput, SnapshotError
from learner.policies.demand import check_levels


@dataclass(frozen=True)
class Choice:
    """The arm chosen, the probability it had, the distribution it was drawn from, and the
    purchase-probability estimates it was based on."""

    arm: int
    probability: float
    pmf: np.ndarray
    explored: bool
    estimates: np.ndarray


@dataclass(frozen=True, eq=False)
class Choices:
    """The choices of several decisions made at once, one row each (``Policy.select_many``): a
    listing page priced with one matrix product per step instead of one call per product."""

    arms: np.ndarray
    probabilities: np.ndarray
    pmf: np.ndarray
    explored: np.ndarray
    estimates: np.ndarray

    def row(self, index: int) -> Choice:
        """Decision ``index`` as a Choice of its own."""
        return Choice(arm=int(self.arms[index]), probability=float(self.probabilities[index]),
                      pmf=self.pmf[index], explored=bool(self.explored[index]),
                      estimates=self.estimates[index])


@dataclass(frozen=True, eq=False)
class PolicySettings:
    """What the Pricer sets for every policy; a policy uses what it needs (``l2``, ``decay`` and
    ``demand_model`` are for those that compose a demand model)."""

    n_arms: int
    dim: int
    alphas: np.ndarray
    """The price grid: arm ``a`` quotes ``cost + alphas[a] * V``."""
    l2: float
    decay: float
    demand_model: str


class Policy(Protocol):
    """A contextual bandit over a price grid. Every decision and outcome says where each arm's price
    sits against the list price (``levels``: ``learner.primitives.log_price_ratio``); ``payoffs`` are
    the arms' margins in units of the user value. Decisions and updates must be deterministic given
    the generator passed in and the outcomes learned, so a replay of the same log gives the same
    policy, and a snapshot (``state``) restores it bit for bit."""

    name: ClassVar[str]
    deterministic: ClassVar[bool]
    """True: every choice has probability 1 (what is logged)."""

    @property
    def updates(self) -> int:
        """Outcomes learned (part of the model version)."""
        ...

    def select(self, x: np.ndarray, levels: np.ndarray, payoffs: np.ndarray, allowed: np.ndarray,
               rng: np.random.Generator) -> Choice:
        """Choose an allowed arm to maximise ``payoffs * P(purchase)``; report its probability (over
        allowed arms only) and the distribution. Refuse bad input with InvalidInput
        (``check_decision``)."""
        ...

    def select_many(self, x: np.ndarray, levels: np.ndarray, payoffs: np.ndarray, allowed: np.ndarray,
                    rngs: Sequence[np.random.Generator]) -> Choices:
        """``select`` for each row of ``x`` (n, dim), ``levels``, ``payoffs`` and ``allowed`` (n, arms),
        with row ``i`` drawn from ``rngs[i]``: row ``i`` chooses as ``select`` would alone (its
        probabilities equal to rounding: a matrix product over many rows may sum in another order).
        Refuse bad input with InvalidInput (``check_decisions``)."""
        ...

    def estimates(self, x: np.ndarray, levels: np.ndarray) -> np.ndarray:
        """Estimated purchase probability of every arm at ``x`` and its price level, in [0, 1]."""
        ...

    def score_effects(self, deltas: np.ndarray, levels: np.ndarray, arms: np.ndarray) -> np.ndarray:
        """How much each change of the features moves each decision's chosen purchase score: for
        decision ``i`` (a row of ``levels``, its arm ``arms[i]``), row ``g`` of ``deltas[i]`` (n, G, dim);
        (n, G) answers, the disclosure's input effects (zeros for a policy that does not read the
        features)."""
        ...

    def learn_one(self, x: np.ndarray, arm: int, level: float, reward: float, probability: float) -> None:
        """Learn that ``arm``, priced at ``level``, earned ``reward`` (1 purchase, 0 none) at ``x``, chosen
        with the logged ``probability``; refuse bad input with InvalidInput and change nothing
        (``check_outcome``)."""
        ...

    def hyperparameters(self) -> dict[str, Any]:
        """Everything that must match for a snapshot to be valid in this policy (JSON values)."""
        ...

    def state(self) -> dict[str, np.ndarray]:
        """The learned statistics, as arrays (a snapshot stores them)."""
        ...

    def load(self, state: dict[str, np.ndarray]) -> None:
        """Replace the statistics with a snapshot's, or raise SnapshotError saying what does not fit."""
        ...


PolicyFactory = Callable[..., Policy]
"""A registered policy: called ``factory(settings: PolicySettings, **options)``; its keyword-only
parameters are the options a user may set (``learner.policies.policy_options``)."""


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


def check_decision(x: np.ndarray, levels: np.ndarray, payoffs: np.ndarray, allowed: np.ndarray,
                   n_arms: int, dim: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``select``'s inputs as float and bool arrays, or InvalidInput naming what is wrong."""
    x = check_features(x, dim)
    levels = check_levels(levels, n_arms)
    payoffs = np.asarray(payoffs, dtype=float)
    allowed = np.asarray(allowed, dtype=bool)
    if payoffs.shape != (n_arms,) or allowed.shape != (n_arms,):
        raise InvalidInput("payoffs", f"need one payoff and one mask entry per arm ({n_arms})")
    if not allowed.any():
        raise InvalidInput("allowed", "no arm is allowed")
    if not np.isfinite(payoffs).all():
        raise InvalidInput("payoffs", "every payoff must be finite")
    return x, levels, payoffs, allowed


def check_decisions(x: np.ndarray, levels: np.ndarray, payoffs: np.ndarray, allowed: np.ndarray,
                    n_arms: int, dim: int, rows: int
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``select_many``'s inputs: ``rows`` decisions, each as ``check_decision`` checks one."""
    x = np.asarray(x, dtype=float)
    levels, payoffs = np.asarray(levels, dtype=float), np.asarray(payoffs, dtype=float)
    allowed = np.asarray(allowed, dtype=bool)
    if x.shape != (rows, dim):
        raise InvalidInput("features", f"expected {rows} rows of {dim} features, got shape {x.shape}")
    if not np.abs(x).max(initial=0.0) <= MAX_FEATURE:
        raise InvalidInput("features", f"every feature must be finite with magnitude <= {MAX_FEATURE:g}")
    if levels.shape != (rows, n_arms) or not np.isfinite(levels).all():
        raise InvalidInput("levels", f"need {rows} rows of one finite value per arm ({n_arms})")
    if payoffs.shape != (rows, n_arms) or allowed.shape != (rows, n_arms):
        raise InvalidInput("payoffs", f"need {rows} rows of one payoff and one mask entry per arm ({n_arms})")
    if not allowed.any(axis=1).all():
        raise InvalidInput("allowed", "no arm is allowed")
    if not np.isfinite(payoffs).all():
        raise InvalidInput("payoffs", "every payoff must be finite")
    return x, levels, payoffs, allowed


def check_outcome(x: np.ndarray, arm: int, level: float, reward: float, probability: float,
                  n_arms: int, dim: int) -> np.ndarray:
    """``learn_one``'s inputs checked (``x`` returned as a float vector), or InvalidInput. The
    probability is the logged propensity: checked so that a corrupt log cannot slip through."""
    x = check_features(x, dim)
    if not 0 <= arm < n_arms:
        raise InvalidInput("arm", f"{arm} is not an arm index in [0, {n_arms})")
    if not (np.isfinite(reward) and 0.0 <= reward <= 1.0):
        raise InvalidInput("reward", f"{reward} must be in [0, 1]")
    if not (np.isfinite(probability) and 0.0 < probability <= 1.0):
        raise InvalidInput("probability", f"{probability} must be in (0, 1]")
    if not np.isfinite(level):
        raise InvalidInput("level", f"{level} must be finite")
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


def choose(pmf: np.ndarray, allowed: np.ndarray, greedy: int, estimates: np.ndarray,
           rng: np.random.Generator, drawn: int | None = None) -> Choice:
    """The Choice of a distribution over arms: masked arms zeroed, the rest normalised, the arm drawn
    from it (``sample_arm``) unless the rule drew it already (``drawn``); ``explored`` when it is not
    the ``greedy`` arm."""
    pmf = np.where(allowed, pmf, 0.0)
    pmf /= pmf.sum()
    arm = sample_arm(pmf, rng) if drawn is None else drawn
    return Choice(arm=arm, probability=float(pmf[arm]), pmf=pmf, explored=arm != greedy,
                  estimates=estimates)


def sample_arms(pmf: np.ndarray, rngs: Sequence[np.random.Generator]) -> np.ndarray:
    """``sample_arm`` of each row: a row with all its mass on one arm takes it in one array step
    (every row, with a deterministic policy), the others draw with their own generator."""
    if len(rngs) != len(pmf):
        raise ValueError(f"{len(rngs)} generators for {len(pmf)} rows")
    support = pmf != 0
    arms = support.argmax(axis=1)
    for row in np.flatnonzero(support.sum(axis=1) != 1).tolist():
        arms[row] = sample_arm(pmf[row], rngs[row])
    return arms.astype(np.int64, copy=False)


def choose_rows(pmf: np.ndarray, allowed: np.ndarray, greedy: np.ndarray, estimates: np.ndarray,
                rngs: Sequence[np.random.Generator], drawn: np.ndarray | None = None) -> Choices:
    """``choose`` for each row: masked arms zeroed, each row normalised, row ``i``'s arm drawn with
    ``rngs[i]`` (``sample_arm``) unless the rule drew them all already (``drawn``)."""
    pmf = np.where(allowed, pmf, 0.0)
    pmf /= pmf.sum(axis=1, keepdims=True)
    arms = drawn if drawn is not None else sample_arms(pmf, rngs)
    rows = np.arange(len(arms))
    return Choices(arms=arms, probabilities=pmf[rows, arms], pmf=pmf, explored=arms != greedy,
                   estimates=estimates)


def masked_argmax_rows(values: np.ndarray, allowed: np.ndarray, payoffs: np.ndarray) -> np.ndarray:
    """For each row, the index of the largest allowed value; a tie goes to the arm with the larger
    payoff (a model that sees no difference never gives the margin away), then to the lowest index;
    a row whose allowed values are all NaN takes its first allowed arm. In arrays, a few calls for a
    whole page."""
    usable = allowed & ~np.isnan(values)
    masked = np.where(usable, values, -np.inf)
    top = usable & (masked == masked.max(axis=1, keepdims=True))
    tied = np.where(top, payoffs, -np.inf)
    best = top & (tied == tied.max(axis=1, keepdims=True))
    return np.where(best.any(axis=1), best.argmax(axis=1), allowed.argmax(axis=1))


def select_rows(select: Callable[..., Choice], x: np.ndarray, levels: np.ndarray, payoffs: np.ndarray,
                allowed: np.ndarray, rngs: Sequence[np.random.Generator]) -> Choices:
    """``select_many`` for a policy that decides one row at a time: ``select`` on each row."""
    if len(x) != len(rngs):
        raise InvalidInput("features", f"expected {len(rngs)} rows of features, got {len(x)}")
    picked = [select(*row, rng) for *row, rng in zip(x, levels, payoffs, allowed, rngs, strict=True)]
    return Choices(arms=np.array([c.arm for c in picked], dtype=np.int64),
                   probabilities=np.array([c.probability for c in picked]),
                   pmf=np.array([c.pmf for c in picked]), explored=np.array([c.explored for c in picked]),
                   estimates=np.array([c.estimates for c in picked]))


def masked_argmax(values: np.ndarray, allowed: np.ndarray, payoffs: np.ndarray) -> int:
    """``masked_argmax_rows`` of one row."""
    return int(masked_argmax_rows(values[None, :], allowed[None, :], payoffs[None, :])[0])


def default_alphas(n_arms: int) -> np.ndarray:
    """A grid from 0 (cost) to 1 (the full value), when the caller names none."""
    return np.linspace(0.0, 1.0, n_arms)


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
