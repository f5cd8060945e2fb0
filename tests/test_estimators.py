"""The off-policy estimators: obp's values on the same inputs, and intervals that cover."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from evaluation.estimators import (
    Z_95,
    Estimate,
    doubly_robust,
    effective_sample_size,
    ips,
    snips,
    student_t_quantile,
    widened,
)

FIXTURE = Path(__file__).parent / "fixtures" / "obp_estimators.npz"


def test_estimates_equal_open_bandit_pipeline_on_its_fixture() -> None:
    data = np.load(FIXTURE)
    rows = np.arange(data["action"].size)
    probability = data["evaluation"][rows, data["action"]]
    weight = probability / data["pscore"]
    reward, q_hat = data["reward"], data["q_hat"]
    assert abs(ips(reward, weight).value - float(data["obp_ipw"])) < 1e-9
    assert abs(snips(reward, weight).value - float(data["obp_snipw"])) < 1e-9
    model_value = (data["evaluation"] * q_hat).sum(axis=1)
    dr = doubly_robust(reward, weight, model_value, q_hat[rows, data["action"]])
    assert abs(dr.value - float(data["obp_dr"])) < 1e-9


def test_intervals_cover_a_known_value_about_95_times_in_100() -> None:
    """Uniform logging over 4 actions, a candidate that prefers action 0; the truth is exact."""
    rng = np.random.default_rng(5)
    means = np.array([0.6, 0.3, 0.2, 0.1])
    candidate = np.array([0.7, 0.1, 0.1, 0.1])
    truth = float(candidate @ means)
    covered = {"ips": 0, "snips": 0, "dr": 0}
    trials, n = 300, 400
    for _ in range(trials):
        action = rng.integers(4, size=n)
        reward = (rng.random(n) < means[action]).astype(float)
        weight = candidate[action] / 0.25
        q_hat = np.full((n, 4), 0.3)  # a poor model: DR must still cover through its correction
        estimates = {"ips": ips(reward, weight), "snips": snips(reward, weight),
                     "dr": doubly_robust(reward, weight, q_hat @ candidate, q_hat[np.arange(n), action])}
        for name, estimate in estimates.items():
            covered[name] += estimate.low <= truth <= estimate.high
    for name, count in covered.items():
        assert 0.91 * trials <= count <= 0.99 * trials, (name, count)


def test_snips_is_ips_when_every_weight_is_one_and_ess_counts_weights() -> None:
    reward = np.array([0.0, 2.0, 4.0, 6.0])
    ones = np.ones(4)
    assert snips(reward, ones).value == ips(reward, ones).value == 3.0
    assert effective_sample_size(ones) == 4.0
    assert effective_sample_size(np.array([4.0, 0.0, 0.0, 0.0])) == 1.0
    assert np.isnan(snips(reward, np.zeros(4)).value)


def test_obps_readme_result_on_the_open_bandit_dataset_sample() -> None:
    """Random logging, campaign "all", evaluated for BernoulliTS with the ZOZOTOWN prior: obp's README
    gives IPW 0.00455288 and SNIPW 0.0047758331."""
    data = np.load(Path(__file__).parent / "fixtures" / "obd_bernoulli_ts.npz")
    weight = data["evaluation_probability"] / data["pscore"]
    assert abs(ips(data["reward"], weight).value - 0.00455288) < 5e-9
    assert abs(snips(data["reward"], weight).value - 0.0047758331) < 5e-11


def test_student_t_quantiles_match_the_tables() -> None:
    assert abs(student_t_quantile(0.975, 1) - 12.706204736174707) < 1e-9
    assert abs(student_t_quantile(0.975, 3) - 3.182446305284263) < 1e-9
    assert abs(student_t_quantile(0.975, 10) - 2.228138851986274) < 1e-9
    assert math.isclose(student_t_quantile(0.975, math.inf), Z_95, rel_tol=1e-12)


def test_the_bootstrap_spread_widens_an_interval_to_cover_the_learning_paths() -> None:
    """The plain replay's estimate is the truth plus the log's noise plus its learning path's deviation;
    its interval counts only the log's noise. The bootstrap streams are scored on the same log (the
    same noise) along paths of their own. The plain interval then misses the truth far more often than
    1 time in 20; widened by the streams' spread, it covers."""
    rng = np.random.default_rng(11)
    truth, noise, path, streams, trials = 5.0, 0.1, 0.15, 4, 400
    plain_covers = widened_covers = 0
    for _ in range(trials):
        shared = truth + rng.normal(0.0, noise)
        value, *others = shared + rng.normal(0.0, path, size=1 + streams)
        plain = Estimate(value, value - Z_95 * noise, value + Z_95 * noise)
        replicates = [Estimate(v, v - Z_95 * noise, v + Z_95 * noise) for v in others]
        plain_covers += plain.low <= truth <= plain.high
        wide = widened(plain, replicates)
        widened_covers += wide.low <= truth <= wide.high
        assert wide.value == plain.value
    assert plain_covers < 0.8 * trials and widened_covers >= 0.93 * trials, (plain_covers, widened_covers)
    assert widened(plain, []) == plain
    same = widened(plain, [plain] * 3)  # one path (prices that do not depend on learning): no spread
    assert math.isclose(same.low, plain.low) and math.isclose(same.high, plain.high)
