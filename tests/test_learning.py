"""Learning through the real server: the best price arm depends on the context, and every policy
finds it for each context after a few thousand quotes.

The market: returning shoppers (``is_returning = 1``) will pay up to ``cost + 0.78 V`` and new ones
up to ``cost + 0.38 V``, each with N(0, 0.05 V) noise, so the expected profit ``alpha * P(buy)`` peaks
at alpha 0.7 for returning and 0.3 for new shoppers, ahead of the neighbouring arms by at least
0.05 V.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable

import numpy as np
import pytest

from builders import product, quote_request
from conftest import DEADLINE, ServerHandle
from learner import DEFAULT_ALPHAS
from pricing.v1 import pricing_pb2

WILLINGNESS = {0.0: 0.38, 1.0: 0.78}
NOISE = 0.05
ROUNDS = 3000
ALPHAS = np.array(DEFAULT_ALPHAS)


def normal_cdf(z: float) -> float:
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


def expected_profit(alpha: float, segment: float) -> float:
    return alpha * (1.0 - normal_cdf((alpha - WILLINGNESS[segment]) / NOISE))


BEST_ARM = {segment: int(np.argmax([expected_profit(a, segment) for a in ALPHAS]))
            for segment in WILLINGNESS}


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["linucb", "thompson", "squarecb", "egreedy"])
def test_each_policy_prefers_the_best_arm_for_each_context(
    start_server: Callable[..., ServerHandle], policy: str
) -> None:
    handle = start_server(policy=policy, seed=3)
    rng = np.random.default_rng(11)
    late_choices: dict[float, Counter[int]] = {0.0: Counter(), 1.0: Counter()}
    profit, oracle = 0.0, 0.0
    for i in range(ROUNDS):
        segment = float(rng.integers(2))
        quote = handle.stub.Quote(
            quote_request(user_id=f"user-{i}", quote_id=f"{policy}-{i}", product=product(),
                          context={"is_returning": segment}),
            timeout=DEADLINE,
        )
        assert quote.alpha == ALPHAS[quote.arm]  # the server prices on the grid this market is set on
        willingness = WILLINGNESS[segment] + NOISE * rng.standard_normal()
        purchased = quote.alpha <= willingness
        handle.stub.Reward(pricing_pb2.RewardRequest(quote_id=quote.quote_id, purchased=purchased),
                           timeout=DEADLINE)
        if i >= ROUNDS * 3 // 4:
            late_choices[segment][quote.arm] += 1
            profit += expected_profit(quote.alpha, segment)
            oracle += expected_profit(ALPHAS[BEST_ARM[segment]], segment)
    for segment, choices in late_choices.items():
        favourite, _ = choices.most_common(1)[0]
        assert favourite == BEST_ARM[segment], (segment, choices)
    assert profit >= 0.85 * oracle, (profit, oracle)
    assert handle.server.service.pricer.updates == ROUNDS
