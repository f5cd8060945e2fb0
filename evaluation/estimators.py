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
"""

from __future__ import annotations

import math
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

    def to_dict(self) -> dict[str, float]:
        return {"value": self.value, "low": self.low, "high": self.high}


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
