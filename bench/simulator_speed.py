"""In-process simulation speed: decisions per second with each learner policy in the loop.

The baseline, run in the same process on the same rounds, is the simulator with a learner that
costs nothing (it quotes the list price and learns nothing): the ratio says how much of a simulated
decision is the Pricer. Usage, from the repository root: ``python -m bench.simulator_speed [--rounds N]``
(like every benchmark, a module of the ``bench`` package: it imports the project's packages).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from learner import FeatureBuilder, PricerConfig, cliargs
from learner.policies import POLICIES
from simulator.contenders import Learning, PricerContender, VowpalWabbit
from simulator.market import Block, Market
from simulator.scenarios import SCENARIOS


class ListPrice(Learning):
    name = "simulator alone"

    def decide(self, block: Block, market: Market, row: int) -> tuple[Any, float]:
        return row, float(block.prices[row, -1])

    def learn(self, token: Any, reward: float, at: float) -> None:
        pass


def decisions_per_second(contender: Learning, rounds: int) -> float:
    scenario = SCENARIOS["stationary"]
    stream = scenario.stream(seed=0, rounds=rounds)
    blocks = list(stream.blocks(2000))
    started = time.perf_counter()
    for block in blocks:
        contender.play(block, stream.market)
    return rounds / (time.perf_counter() - started)


def main(argv: Sequence[str] | None = None) -> None:
    parser = cliargs.CommandParser(prog="python -m bench.simulator_speed",
                                   description=__doc__.split("\n\n")[0], formatter_class=cliargs.DefaultsHelp)
    parser.add_argument("--rounds", type=cliargs.positive_int, default=20_000,
                        help="simulated decisions per contender")
    rounds = parser.parse_args(argv).rounds
    feedback = SCENARIOS["stationary"].feedback
    config = PricerConfig()
    baseline = decisions_per_second(ListPrice(feedback, 0), rounds)
    print(f"{'contender':<18} {'decisions/s':>12} {'x baseline':>11}")
    print(f"{'simulator alone':<18} {baseline:>12.0f} {1.0:>11.2f}")
    contenders: list[Learning] = [PricerContender(name, PricerConfig(policy=name), feedback, 0)
                                  for name in POLICIES]
    contenders.append(VowpalWabbit(feedback, 0, config.alphas,
                                   FeatureBuilder(config.context_features, config.category_buckets)))
    for contender in contenders:
        speed = decisions_per_second(contender, rounds)
        print(f"{contender.name:<18} {speed:>12.0f} {speed / baseline:>11.2f}")


if __name__ == "__main__":
    main()
