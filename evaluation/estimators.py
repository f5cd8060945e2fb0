"""Off-policy estimators of a candidate's value per logged decision, each with a 95% interval.

For logged decision ``i`` with reward ``r_i``, logged propensity ``p_i`` of the action taken and the
candidate's probability ``pi_i`` of that same action, the importance weight is ``w_i = pi_i / p_i``.

- IPS: the mean of ``w_i r_i``. Unbiased when every action the candidate may take had a logged
  probability above zero.
- SNIPS: ``sum(w_i r_i) / sum(w_i)``: IPS divided by the mean weight, which trades a small bias for
  much less variance when a few weights are large.
- DR: the mean of ``dm_i + w_i (r_i - q_i)``, where ``dm_i`` is the reward model's value of the
  candidate's whole distribution and ``q_i`` its prediction for the logged action. Unbiased if
  either the propensities or the reward model are right; the only one that speaks for actions the
  logger never gave a chance.

These are the formulas of Open Bandit Pipeline's ``InverseProbabilityWeighting``,
``SelfNormalizedInverseProbabilityWeighting`` and ``DoublyRobust`` (tests/test_estimators.py checks
the point values against a fixture obp computed). The intervals are analytic, not obp's bootstrap:
the normal approximation ``mean ± 1.96 · sd / sqrt(n)`` of the per-decision terms for IPS and DR, and
for SNIPS the delta method (the terms ``w_i (r_i - SNIPS) / mean(w)``). They assume the decisions are
independent given the log's history, which holds for a learning candidate scored before it learns
each decision (a martingale), and they are too narrow when n is small or a few weights dominate:
read them with the effective sample size.

A learning candidate's estimate also depends on the path its learning took, and other shoppers would
have taught it otherwise; an interval for the log's noise alone leaves that out. The replay
(``evaluation.replay``) therefore also runs K bootstrap streams of the candidate's learning, and
``widened`` adds the variance between their estimates to the plain replay's: ``W + B``, with a
Student-t quantile whose degrees of freedom (Satterthwaite's, as Rubin's rules for multiple imputation
take them) say how well K streams know ``B``. The streams only measure the spread: a bootstrap path
learns from about 63% distinct decisions, so their mean would understate a learner.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

Z_95 = 1.959963984540054
"""The two-sided 95% quantile of the standard normal."""


@dataclass(frozen=True)
class Estimate:
    """A point estimate and its 95% interval."""

    value: float
    low: float
    high: float

    @staticmethod
    def of_terms(terms: np.ndarray) -> Estimate:
        """The mean of per-decision terms with its normal-approximation interval."""
        mean = float(np.mean(terms))
        half = Z_95 * float(np.std(terms, ddof=1)) / math.sqrt(terms.size) if terms.size > 1 else math.inf
        return Estimate(mean, mean - half, mean + half)

    @property
    def standard_error(self) -> float:
        return (self.high - self.low) / (2.0 * Z_95)

    def to_dict(self) -> dict[str, float]:
        return {"value": self.value, "low": self.low, "high": self.high}


NORMAL_DF = 1e6
"""Degrees of freedom past which Student's t is taken as the normal (their 97.5% quantiles differ by
2e-6 there, and the log-gamma ratio of the density loses digits beyond)."""


def student_t_quantile(probability: float, df: float) -> float:
    """The ``probability`` quantile (above 0.5) of Student's t with ``df`` degrees of freedom (any
    real df >= 1; past ``NORMAL_DF`` the normal's): Newton's method on the CDF, whose integral of the
    density from 0 is taken by Simpson's rule. Accurate to about 1e-9, all an interval needs, without
    scipy."""
    normal = statistics.NormalDist().inv_cdf(probability)
    if df > NORMAL_DF:
        return normal
    scale = math.exp(math.lgamma((df + 1) / 2) - math.lgamma(df / 2)) / math.sqrt(df * math.pi)

    def density(t: np.ndarray) -> np.ndarray:
        return scale * (1.0 + np.square(t) / df) ** (-(df + 1) / 2)

    t = normal
    for _ in range(50):
        values = density(np.linspace(0.0, t, 2049))
        cdf = 0.5 + (t / 2048 / 3) * (values[0] + values[-1] + 4 * values[1:-1:2].sum()
                                      + 2 * values[2:-1:2].sum())
        step = (cdf - probability) / float(values[-1])
        t -= step
        if abs(step) < 1e-12:
            break
    return float(t)


def widened(plain: Estimate, replicates: Sequence[Estimate]) -> Estimate:
    """``plain`` (the plain replay's estimate) with its interval widened by the variance between the
    bootstrap streams' ``replicates`` (see the module docstring); none: ``plain`` itself."""
    if not replicates:
        return plain
    values = np.array([replicate.value for replicate in replicates])
    if math.isnan(plain.value) or np.isnan(values).any():
        return Estimate(math.nan, math.nan, math.nan)
    within, between = plain.standard_error ** 2, float(values.var(ddof=1))
    df = math.inf if between == 0.0 else (len(values) - 1) * (1.0 + within / between) ** 2
    half = student_t_quantile(0.975, df) * math.sqrt(within + between)
    return Estimate(plain.value, plain.value - half, plain.value + half)


def ips(reward: np.ndarray, weight: np.ndarray) -> Estimate:
    return Estimate.of_terms(weight * reward)


def snips(reward: np.ndarray, weight: np.ndarray) -> Estimate:
    total = float(weight.sum())
    if total <= 0.0:  # the candidate took none of the logged actions: nothing to normalise
        return Estimate(math.nan, math.nan, math.nan)
    value = float((weight * reward).sum()) / total
    influence = weight * (reward - value) / (total / weight.size)
    half = Z_95 * math.sqrt(float(np.mean(influence ** 2)) / weight.size)
    return Estimate(value, value - half, value + half)


def doubly_robust_terms(reward: np.ndarray, weight: np.ndarray, model_value: np.ndarray,
                        model_factual: np.ndarray) -> np.ndarray:
    """DR's per-decision terms. ``model_value``: the reward model's expectation under the candidate;
    ``model_factual``: its prediction for the action that was logged."""
    return model_value + weight * (reward - model_factual)


def doubly_robust(reward: np.ndarray, weight: np.ndarray, model_value: np.ndarray,
                  model_factual: np.ndarray) -> Estimate:
    return Estimate.of_terms(doubly_robust_terms(reward, weight, model_value, model_factual))


def effective_sample_size(weight: np.ndarray) -> float:
    """``(sum w)² / sum w²``: how many decisions the weighted sample is worth (n when all w are 1)."""
    squares = float((weight ** 2).sum())
    return float(weight.sum()) ** 2 / squares if squares > 0 else 0.0
