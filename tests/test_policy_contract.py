"""One contract every policy, on every demand model, must pass (after river's ``checks``).

It runs over every registered policy and over ``CountingGreedy`` below: a policy with no demand
model that meets the ``Policy`` protocol in one class, to show that the Pricer, its snapshots and the
offline evaluation take any policy that does.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pytest

from builders import request
from evaluation.candidates import Candidate
from evaluation.logs import LogReading, from_decision
from evaluation.replay import evaluate
from learner import POLICIES, InvalidInput, Policy, SnapshotError, make_policy
from learner.policies import DEMAND_MODELS, PolicySettings
from learner.policies.base import (
    Choice,
    Choices,
    check_decision,
    check_features,
    check_outcome,
    choose,
    masked_argmax,
    select_rows,
)
from learner.policies.demand import check_levels
from learner.pricer import Pricer, PricerConfig


class CountingGreedy:
    """ε-greedy over each arm's purchase rate, counted, whatever the context: a Beta prior per arm of
    two pseudo-outcomes at ``1 - alpha`` (falling demand, so a fresh policy prices mid-grid)."""

    name = "counting"
    deterministic = False

    def __init__(self, settings: PolicySettings, *, epsilon: float = 0.1) -> None:
        self.n_arms, self.dim, self.epsilon = settings.n_arms, settings.dim, float(epsilon)
        self._prior = 1.0 - np.asarray(settings.alphas, dtype=float)
        self._shown = np.zeros(self.n_arms)
        self._bought = np.zeros(self.n_arms)

    @property
    def updates(self) -> int:
        return int(self._shown.sum())

    def estimates(self, x: np.ndarray, levels: np.ndarray) -> np.ndarray:
        check_features(x, self.dim)
        check_levels(levels, self.n_arms)
        return (self._bought + 2.0 * self._prior) / (self._shown + 2.0)

    def score_effects(self, deltas: np.ndarray, levels: np.ndarray, arms: np.ndarray) -> np.ndarray:
        return np.zeros(deltas.shape[:2])  # no input moves a count

    def select(self, x: np.ndarray, levels: np.ndarray, payoffs: np.ndarray, allowed: np.ndarray,
               rng: np.random.Generator) -> Choice:
        x, levels, payoffs, allowed = check_decision(x, levels, payoffs, allowed, self.n_arms, self.dim)
        estimates = self.estimates(x, levels)
        greedy = masked_argmax(payoffs * estimates, allowed, payoffs)
        pmf = np.where(allowed, self.epsilon / allowed.sum(), 0.0)
        pmf[greedy] += 1.0 - self.epsilon
        return choose(pmf, allowed, greedy, estimates, rng)

    def select_many(self, x: np.ndarray, levels: np.ndarray, payoffs: np.ndarray, allowed: np.ndarray,
                    rngs: Sequence[np.random.Generator]) -> Choices:
        return select_rows(self.select, x, levels, payoffs, allowed, rngs)

    def learn_one(self, x: np.ndarray, arm: int, level: float, reward: float, probability: float) -> None:
        check_outcome(x, arm, level, reward, probability, self.n_arms, self.dim)
        self._shown[arm] += 1.0
        self._bought[arm] += reward

    def hyperparameters(self) -> dict[str, Any]:
        return {"name": self.name, "n_arms": self.n_arms, "dim": self.dim, "epsilon": self.epsilon,
                "prior": self._prior.tolist()}

    def state(self) -> dict[str, np.ndarray]:
        return {"shown": self._shown.copy(), "bought": self._bought.copy()}

    def load(self, state: dict[str, np.ndarray]) -> None:
        for key in ("shown", "bought"):
            if key not in state or state[key].shape != (self.n_arms,) or not np.isfinite(state[key]).all():
                raise SnapshotError(f"snapshot statistic {key!r} is missing or does not fit")
        self._shown, self._bought = state["shown"].astype(float), state["bought"].astype(float)


@pytest.fixture(autouse=True)
def counting_is_registered(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Registered as a new policy is: one entry in ``POLICIES`` (for the length of each test)."""
    monkeypatch.setitem(POLICIES, CountingGreedy.name, CountingGreedy)
    yield


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


@pytest.fixture(params=[*sorted(POLICIES), CountingGreedy.name])
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


def test_a_policy_with_no_demand_model_meets_the_protocol() -> None:
    policy: Policy = make_policy(CountingGreedy.name, N_ARMS, DIM, {"epsilon": 0.2})
    assert isinstance(policy, CountingGreedy) and policy.epsilon == 0.2
    with pytest.raises(InvalidInput, match="takes no option 'beta'"):
        make_policy(CountingGreedy.name, N_ARMS, DIM, {"beta": 1.0})


def test_the_offline_evaluation_replays_a_policy_with_no_demand_model() -> None:
    logger = Pricer(PricerConfig(policy="egreedy", policy_options={"epsilon": 0.5}))
    decisions = [logger.quote(request(f"log{i}", is_mobile=float(i % 2)), now=0.0) for i in range(40)]
    reading = LogReading([from_decision(i, d, float(i % 3 == 0)) for i, d in enumerate(decisions)])
    (result,) = evaluate(reading, [Candidate("counting", PricerConfig(policy=CountingGreedy.name),
                                             "none")]).results
    assert result.decisions == 40 and result.could_not_take == 0.0
    assert 0 < result.learned < 40  # learned what it would have chosen (rejection sampling)
