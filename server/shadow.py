"""Shadow mode's two numbers: how often the policy agrees with the shop's incumbent rule, and what it
would have earned instead (its lift over the incumbent, with a 95% interval).

Agreement of one shadow quote (``agreement``): ``exact`` when the policy's price is the incumbent's
(to the grid's rounding), ``one_step`` when the incumbent's price lies within one grid step of the
policy's (between the prices of the policy's arm's neighbours at this quote's V, the grid's ends
extended by the step next to them), else ``apart``.

Lift (``ShadowLedger``), over the last ``window`` settled shadow quotes: the incumbent's realised
profit per quote against the doubly robust estimate of the policy's (``evaluation.estimators``), with
the policy's own demand model, as it stood when it quoted, as the reward model (its estimates are
in the logged ``arms``; ``Decision.incumbent_estimate`` is the one at the incumbent's price). The
incumbent is deterministic, so the logged propensity of its price is 1 and the policy's weight is its
probability of that very price: 0 wherever they disagree. There IPS sees nothing and the estimate is
the reward model's alone (its correction term needs agreement): the interval is then as good as that
model, and narrower than the truth when the model is wrong. The lift's interval is that of the
per-quote differences (paired), not of the two estimates apart.
"""

from __future__ import annotations

import collections
import threading

import numpy as np

from evaluation.estimators import Estimate, doubly_robust_terms
from learner import Decision
from learner.arms import same_price

AGREEMENTS = ("exact", "one_step", "apart")
LEDGER_WINDOW = 10_000
"""Settled shadow quotes the lift is estimated on (the most recent)."""


def agreement(decision: Decision) -> str:
    """How the policy's price of a shadow quote stands to the incumbent's (see the module docstring)."""
    ours, theirs = decision.proposed_price, decision.price
    if same_price(ours, theirs):
        return "exact"
    prices = [view.price for view in decision.arms]
    arm = decision.proposed_arm
    below = prices[arm - 1] if arm > 0 else 2 * prices[arm] - prices[arm + 1]
    above = prices[arm + 1] if arm + 1 < len(prices) else 2 * prices[arm] - prices[arm - 1]
    return "one_step" if below - 1e-9 <= theirs <= above + 1e-9 else "apart"


class ShadowLedger:
    """Per settled shadow quote: the incumbent's profit, and the policy's DR terms."""

    def __init__(self, window: int = LEDGER_WINDOW) -> None:
        self._rows: collections.deque[tuple[float, float, float, float]] = collections.deque(maxlen=window)
        self._lock = threading.Lock()

    def add(self, decision: Decision, reward: float) -> None:
        """Record a settled shadow quote (``reward`` 1 purchase, 0 none)."""
        margins = np.array([view.price for view in decision.arms]) - decision.unit_cost
        buy = np.array([view.purchase_probability for view in decision.arms])
        pmf = np.array([view.probability for view in decision.arms])
        model_value = float(pmf @ (buy * margins))
        weight = float(sum(view.probability for view in decision.arms
                           if view.allowed and same_price(view.price, decision.price)))
        margin = decision.price - decision.unit_cost
        row = (reward * margin, weight, model_value, decision.incumbent_estimate * margin)
        with self._lock:
            self._rows.append(row)

    def estimates(self) -> tuple[Estimate, Estimate, Estimate] | None:
        """(the incumbent's profit per quote, the policy's, the policy's lift over it); None before two
        settled shadow quotes."""
        with self._lock:
            rows = np.array(self._rows)
        if len(rows) < 2:
            return None
        reward, weight, model_value, model_factual = rows.T
        terms = doubly_robust_terms(reward, weight, model_value, model_factual)
        return Estimate.of_terms(reward), Estimate.of_terms(terms), Estimate.of_terms(terms - reward)
