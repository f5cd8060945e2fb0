"""``python -m bench.offline_eval``: do the offline estimates agree with the simulator's truth?

A logging policy (default: ε-greedy with ε = 1, uniform over the grid, through the server's
``Pricer``) prices a simulator scenario; each learned outcome is written as the server writes it
(``server.decision_log.dsjson_line``). ``pricebandit-evaluate``'s replay then estimates each candidate
from those lines. The truth of a candidate is its exact expected profit per quote (the market's
purchase probability at its price, times the margin) over a run on the same market as long as the
replay let it learn (``Result.learned`` quotes: what rejection sampling gives it), through the
simulator's own ``PricerContender``. It prints, per candidate, the truth, the IPS, SNIPS and DR
estimates with their 95% intervals and whether they cover the truth; then the coverage counts,
Kendall's tau between each estimator's values and the truths, and the evaluation's CPU time.

    python -m bench.offline_eval                          # 20 candidates on 40,000 logged quotes
    python -m bench.offline_eval --rounds 100000 --candidates 1   # the 100,000-decision timing
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from evaluation.candidates import Candidate, parse_candidate
from evaluation.logs import read_dsjson
from evaluation.replay import DEFAULT_BOOTSTRAP, Evaluation, evaluate
from learner import Decision, PricerConfig
from server.config import parse_config
from server.decision_log import dsjson_line
from simulator.contenders import PricerContender
from simulator.runner import MAX_BLOCK
from simulator.scenarios import Feedback, Scenario, scenario

LOGGER_FLAGS = "--policy egreedy --policy-options epsilon=1"
TRUTH_REPEATS = 10
CANDIDATES: tuple[str, ...] = (
    "linucb (default):",
    "linucb beta=1: --policy-options beta=1",
    "linucb beta=0: --policy-options beta=0",
    "linucb per_arm: --demand-model per_arm",
    "linucb decay=1: --decay 1",
    "linucb decay=0.99: --decay 0.99",
    "thompson: --policy thompson",
    "thompson v=2: --policy thompson --policy-options v=2",
    "squarecb: --policy squarecb",
    "squarecb gamma=1: --policy squarecb --policy-options gamma_scale=1",
    "egreedy 0.1: --policy egreedy --policy-options epsilon=0.1",
    "egreedy 0.5: --policy egreedy --policy-options epsilon=0.5",
    "uniform: --policy egreedy --policy-options epsilon=1",
    "coarse grid: --alphas 0,0.2,0.4,0.6,0.8,1",
    "high grid: --alphas 0.5,0.6,0.7,0.8,0.9,1",
    "low grid: --alphas 0,0.1,0.2,0.3,0.4,0.5",
    "top arms: --alphas 0.8,0.9,1",
    "thompson per_arm: --policy thompson --demand-model per_arm",
    "egreedy 0.05 decay=1: --policy egreedy --policy-options epsilon=0.05 --decay 1",
    "squarecb per_arm: --policy squarecb --demand-model per_arm",
)
"""Twenty candidates: policies, their options, demand models, decays and grids (value model off:
the simulator's logger prices on the list margin)."""


class LoggingContender(PricerContender):
    """A PricerContender that also writes each learned outcome as the server's decision log does."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lines: list[str] = []

    def learn(self, token: Any, reward: float, at: float) -> None:
        super().learn(token, reward, at)
        decision: Decision = token
        self.lines.append(dsjson_line(decision, reward, learned=True, late=False))


def pricer_config(flags: str) -> PricerConfig:
    """The Pricer the server would run with ``flags`` (and no value model)."""
    return parse_config([*flags.split(), "--value-model", "none"], environ={}).pricer


def _blocks(spec: Scenario, seed: int, rounds: int, cut_every: int | None = None) -> Any:
    stream = spec.stream(seed, rounds)
    cuts = range(cut_every, rounds, cut_every) if cut_every else ()
    for block in stream.blocks(MAX_BLOCK, cuts=cuts):
        yield block, stream.market


def log_run(spec: Scenario, seed: int, rounds: int, flags: str = LOGGER_FLAGS) -> list[str]:
    """The DSJSON lines of ``rounds`` quotes priced by the logger, in learning order."""
    logger = LoggingContender("logger", pricer_config(flags), Feedback(), seed)
    for block, market in _blocks(spec, seed, rounds):
        logger.play(block, market)
    logger.queue.release(float("inf"), logger.learn)
    return logger.lines


@dataclass(frozen=True)
class Truth:
    profit: float
    conversion: float


def truth(spec: Scenario, seed: int, rounds: int, candidate: Candidate,
          repeats: int = TRUTH_REPEATS) -> Truth:
    """A candidate's exact expected profit and conversion per quote over ``rounds`` online quotes from
    a fresh start, averaged over ``repeats`` runs on consecutive stretches of the same market (one
    run's few hundred shoppers would make the truth itself noisier than the estimates)."""
    rounds = max(rounds, 1)
    profit = conversion = 0.0
    contender: PricerContender | None = None
    for block, market in _blocks(spec, seed, rounds * repeats, cut_every=rounds):
        if block.start % rounds == 0:
            contender = PricerContender(candidate.label, candidate.config, Feedback(), seed)
        assert contender is not None
        prices = contender.play(block, market)
        probability = block.purchase_probability(np.arange(len(block)), prices)
        profit += float(np.sum(probability * (prices - block.unit_cost)))
        conversion += float(np.sum(probability))
    return Truth(profit / (rounds * repeats), conversion / (rounds * repeats))


def kendall_tau(a: Sequence[float], b: Sequence[float]) -> float:
    """Kendall's tau-a: (concordant - discordant) pairs over all pairs."""
    total = score = 0
    for i in range(len(a)):
        for j in range(i + 1, len(a)):
            total += 1
            score += int(np.sign(a[i] - a[j]) * np.sign(b[i] - b[j]))
    return score / total if total else float("nan")


def run(spec: Scenario, seed: int, rounds: int, specs: Sequence[str],
        bootstrap: int = DEFAULT_BOOTSTRAP) -> dict[str, Any]:
    candidates = [replace(parse_candidate(text), value_model="none") for text in specs]
    lines = log_run(spec, seed, rounds)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "decisions.dsjson"
        path.write_text("\n".join(lines) + "\n")
        started = time.process_time()  # CPU time: the shared machine's load counts less
        evaluation: Evaluation = evaluate(read_dsjson(path), candidates, bootstrap)
        seconds = time.process_time() - started
    rows: list[dict[str, Any]] = []
    for candidate, result in zip(candidates, evaluation.results, strict=True):
        true = truth(spec, seed, result.learned, candidate)
        covered = {name: estimate.low <= true.profit <= estimate.high
                   for name, estimate in result.profit.items()}
        rows.append({"candidate": result.label, "true_profit": true.profit, "learned": result.learned,
                     "estimates": {name: e.to_dict() for name, e in result.profit.items()},
                     "covered": covered, "ess": result.effective_sample_size})
    tau = {name: kendall_tau([row["estimates"][name]["value"] for row in rows],
                             [row["true_profit"] for row in rows]) for name in ("ips", "snips", "dr")}
    return {"scenario": spec.name, "seed": seed, "rounds": rounds, "bootstrap": bootstrap, "candidates": rows,
            "coverage": {name: sum(row["covered"][name] for row in rows) for name in ("ips", "snips", "dr")},
            "kendall_tau": tau, "seconds": seconds, "seconds_per_candidate": seconds / len(candidates),
            "logged_profit": evaluation.logged_profit.to_dict()}


def report(outcome: dict[str, Any]) -> str:
    rows = [f"{outcome['scenario']}, seed {outcome['seed']}: {outcome['rounds']:,} quotes logged by "
            f"{LOGGER_FLAGS!r}; logged profit per quote {outcome['logged_profit']['value']:.4f}; "
            f"{outcome['bootstrap']} bootstrap streams per candidate", "",
            "| candidate | learned | true profit/quote | IPS | SNIPS | DR | covered (I/S/D) |",
            "|---|---|---|---|---|---|---|"]
    for row in outcome["candidates"]:
        cells = [f"{e['value']:.4f} [{e['low']:.4f}, {e['high']:.4f}]" for e in row["estimates"].values()]
        marks = "/".join("y" if row["covered"][name] else "n" for name in ("ips", "snips", "dr"))
        rows.append(f"| {row['candidate']} | {row['learned']:,} | {row['true_profit']:.4f} | "
                    + " | ".join(cells) + f" | {marks} |")
    n = len(outcome["candidates"])
    coverage, tau = outcome["coverage"], outcome["kendall_tau"]
    rows += ["", f"coverage of the truth by the 95% intervals: IPS {coverage['ips']}/{n}, SNIPS "
                 f"{coverage['snips']}/{n}, DR {coverage['dr']}/{n}",
             f"Kendall's tau, estimate vs truth: IPS {tau['ips']:.2f}, SNIPS {tau['snips']:.2f}, "
             f"DR {tau['dr']:.2f}",
             f"evaluation: {outcome['seconds']:.1f} CPU s for {n} candidates "
             f"({outcome['seconds_per_candidate']:.1f} s per candidate on {outcome['rounds']:,} decisions)"]
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    top = argparse.ArgumentParser(prog="python -m bench.offline_eval", description=__doc__.split("\n")[0])
    top.add_argument("--scenario", default="stationary")
    top.add_argument("--seed", type=int, default=0)
    top.add_argument("--rounds", type=int, default=40_000)
    top.add_argument("--candidates", type=int, default=len(CANDIDATES), help="the first N of the list")
    top.add_argument("--bootstrap", type=int, default=DEFAULT_BOOTSTRAP,
                     help="bootstrap streams of each candidate's learning (0: the plain replay alone)")
    top.add_argument("--json", type=Path)
    args = top.parse_args(argv)
    outcome = run(scenario(args.scenario), args.seed, args.rounds, CANDIDATES[:args.candidates],
                  args.bootstrap)
    print(report(outcome))
    if args.json:
        args.json.write_text(json.dumps(outcome, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
