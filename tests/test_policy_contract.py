"""One contract every policy, on every demand model, must pass (after river's ``checks``)."""

from __future__ import annotations

import numpy as np
import pytest

from builders import request
from learner import POLICIES, InvalidInput, Policy, make_policy
from learner.policies import DEMAND_MODELS
from learner.pricer import Pricer, PricerConfig

N_ARMS, DIM = 6, 5
PAYOFFS = np.linspace(0.0, 1.0, N_ARMS)
LEVELS = np.log(np.linspace(0.6, 1.0, N_ARMS))
"""Each arm's log(price / list price): cost at 60% of the list price, the top arm at list."""


def new_policy(name: str, demand: str) -> Policy:
    return make_policy(name, N_ARMS, DIM, demand_model=demand)


def contexts(seed: int, count: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(count, DIM))
    x[:, 0] = 1.0
    return x


def trained(name: str, demand: str, rounds: int = 200) -> Policy:
    policy = new_policy(name, demand)
    allowed = np.ones(N_ARMS, dtype=bool)
    for i, x in enumerate(contexts(1, rounds)):
        choice = policy.select(x, LEVELS, PAYOFFS, allowed, np.random.default_rng(i))
        reward = float(x[1] > 0 and choice.arm <= 3)
        policy.learn_one(x, choice.arm, LEVELS[choice.arm], reward, choice.probability)
    return policy


@pytest.fixture(params=sorted(POLICIES))
def name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=sorted(DEMAND_MODELS))
def demand(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_probabilities_sum_to_one_over_allowed_arms_only(name: str, demand: str) -> None:
    policy = trained(name, demand)
    allowed = np.array([False, True, True, False, True, True])
    for i, x in enumerate(contexts(2, 50)):
        choice = policy.select(x, LEVELS, PAYOFFS, allowed, np.random.default_rng(i))
        assert choice.pmf.sum() == pytest.approx(1.0)
        assert np.all(choice.pmf[~allowed] == 0.0)
        assert allowed[choice.arm]
        assert choice.probability == pytest.approx(choice.pmf[choice.arm])
        assert 0.0 < choice.probability <= 1.0
        if policy.deterministic:
            assert choice.probability == 1.0


def test_same_seed_gives_same_choices(name: str, demand: str) -> None:
    first, second = trained(name, demand), trained(name, demand)
    allowed = np.ones(N_ARMS, dtype=bool)
    for i, x in enumerate(contexts(3, 50)):
        a = first.select(x, LEVELS, PAYOFFS, allowed, np.random.default_rng(100 + i))
        b = second.select(x, LEVELS, PAYOFFS, allowed, np.random.default_rng(100 + i))
        assert (a.arm, a.probability) == (b.arm, b.probability)
        np.testing.assert_array_equal(a.pmf, b.pmf)


def test_snapshot_round_trip_gives_identical_decisions(name: str, demand: str) -> None:
    pricer = Pricer(PricerConfig(policy=name, demand_model=demand, context_features=("a", "b")))
    for i in range(60):
        decision = pricer.quote(request(f"q{i}", a=float(i % 3), b=-1.0), now=0.0)
        pricer.update(decision, float(i % 2))
    restored = Pricer(PricerConfig(policy=name, demand_model=demand, context_features=("a", "b")))
    restored.restore(pricer.snapshot())
    assert restored.model_version == pricer.model_version
    for i in range(40):
        req = request(f"replay{i}", a=float(i % 4), b=0.5)
        assert restored.quote(req, now=1.0) == pricer.quote(req, now=1.0)


def test_inputs_are_not_mutated(name: str, demand: str) -> None:
    policy = trained(name, demand, rounds=20)
    x = contexts(4, 1)[0]
    payoffs, allowed = PAYOFFS.copy(), np.ones(N_ARMS, dtype=bool)
    before = (x.copy(), payoffs.copy(), allowed.copy())
    choice = policy.select(x, LEVELS, payoffs, allowed, np.random.default_rng(0))
    policy.learn_one(x, choice.arm, LEVELS[choice.arm], 1.0, choice.probability)
    for original, now in zip(before, (x, payoffs, allowed), strict=True):
        np.testing.assert_array_equal(original, now)


HOSTILE_FEATURES = [
    np.array([1.0, np.nan, 0, 0, 0]),
    np.array([1.0, np.inf, 0, 0, 0]),
    np.array([1.0, -np.inf, 0, 0, 0]),
    np.array([1.0, 1e200, 0, 0, 0]),
    np.ones(DIM + 1),
]


@pytest.mark.parametrize("x", HOSTILE_FEATURES, ids=["nan", "inf", "-inf", "1e200", "wrong-shape"])
def test_hostile_features_are_refused_and_parameters_stay_finite(name: str, demand: str,
                                                                 x: np.ndarray) -> None:
    policy = trained(name, demand, rounds=30)
    before = policy.state()
    with pytest.raises(InvalidInput):
        policy.learn_one(x, 0, LEVELS[0], 1.0, 0.5)
    after = policy.state()
    for key in before:
        np.testing.assert_array_equal(before[key], after[key])
        assert np.all(np.isfinite(after[key]))


@pytest.mark.parametrize(
    ("arm", "reward", "probability"),
    [(-1, 1.0, 0.5), (N_ARMS, 1.0, 0.5), (0, np.nan, 0.5), (0, 2.0, 0.5), (0, 1.0, 0.0),
     (0, 1.0, np.inf), (0, 1.0, 1.5)],
)
def test_hostile_outcomes_are_refused(name: str, demand: str, arm: int, reward: float,
                                      probability: float) -> None:
    policy = trained(name, demand, rounds=10)
    with pytest.raises(InvalidInput):
        policy.learn_one(contexts(5, 1)[0], arm, 0.0, reward, probability)
    assert policy.updates == 10


def test_large_but_finite_features_keep_parameters_finite(name: str, demand: str) -> None:
    policy = new_policy(name, demand)
    rng = np.random.default_rng(6)
    allowed = np.ones(N_ARMS, dtype=bool)
    for i in range(300):
        x = rng.normal(size=DIM) * 10.0 ** rng.integers(-6, 7)
        choice = policy.select(x, LEVELS, PAYOFFS, allowed, np.random.default_rng(i))
        policy.learn_one(x, choice.arm, LEVELS[choice.arm], float(i % 2), choice.probability)
    for value in policy.state().values():
        assert np.all(np.isfinite(value))


def test_no_allowed_arm_is_refused(name: str, demand: str) -> None:
    with pytest.raises(InvalidInput, match="no arm is allowed"):
        new_policy(name, demand).select(contexts(7, 1)[0], LEVELS, PAYOFFS, np.zeros(N_ARMS, dtype=bool),
                                np.random.default_rng(0))


def test_a_fresh_model_prices_mid_grid_never_at_cost_nor_at_the_top(name: str, demand: str) -> None:
    """The prior demand curve puts a fresh model's best expected profit inside the grid."""
    pricer = Pricer(PricerConfig(policy=name, demand_model=demand))
    arms = [pricer.quote(request(f"fresh{i}"), now=0.0).arm for i in range(20)]
    greedy = [view.expected_profit for view in pricer.quote(request("look"), now=0.0).arms]
    assert 0 < int(np.argmax(greedy)) < len(greedy) - 1
    assert sum(arm == 0 for arm in arms) <= 2  # exploration may touch the cost price, rarely
