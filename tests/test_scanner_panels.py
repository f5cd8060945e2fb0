"""The scanner-panel estimators (``bench/household_choice.py``, numpy only) on synthetic households
whose price sensitivities are known: the per-household state must predict held-out choices better than
the pooled logit, and the fitted spread of log sensitivity must land near the true one."""

from __future__ import annotations

import numpy as np

from bench.household_choice import (
    chosen_log_loss,
    fit_per_household,
    fit_pooled,
    frozen_probabilities,
    pooled_probabilities,
    run_states,
    simulate,
    split_last,
)

TRUE_SPREAD = 0.6


def test_the_per_household_state_beats_pooled_and_recovers_the_sensitivity_spread() -> None:
    panel, truth = simulate(400, 20, TRUE_SPREAD, intercept_spread=1.0, seed=3)
    train, test = split_last(panel, 0.2)
    assert test.choices == 400 * 4
    pooled = fit_pooled(train)
    fit = fit_per_household(train, pooled, mean_iterations=1,
                            intercept_spreads=(0.5, 1.0, 2.0), sensitivity_spreads=(0.0, 0.3, 0.6, 1.0))
    states, _ = run_states(train, fit.prior_mean, fit.spread)
    pooled_loss = chosen_log_loss(pooled_probabilities(pooled, test), test).sum() / test.choices
    household_loss = chosen_log_loss(frozen_probabilities(states, test), test).sum() / test.choices
    assert household_loss < pooled_loss - 0.05
    assert 0.4 <= fit.spread[-1] <= 0.8
    assert 0.7 <= fit.spread[0] <= 1.4
    # the states are each household's own: posterior means of log sensitivity track the truth
    assert np.corrcoef(states.mean[:, -1], truth[:, -1])[0, 1] > 0.5


def test_with_no_heterogeneity_the_state_stays_at_the_pooled_model() -> None:
    panel, _ = simulate(300, 12, 0.0, intercept_spread=0.0, seed=4)
    train, test = split_last(panel, 0.2)
    pooled = fit_pooled(train)
    fit = fit_per_household(train, pooled, mean_iterations=0, refine=False,
                            intercept_spreads=(0.05, 0.5, 1.0), sensitivity_spreads=(0.0, 0.3, 0.6))
    assert fit.spread[0] == 0.05
    assert fit.spread[-1] == 0.0
    states, _ = run_states(train, fit.prior_mean, fit.spread)
    pooled_loss = chosen_log_loss(pooled_probabilities(pooled, test), test).sum() / test.choices
    household_loss = chosen_log_loss(frozen_probabilities(states, test), test).sum() / test.choices
    assert abs(household_loss - pooled_loss) < 0.01
