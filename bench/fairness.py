"""``python -m bench.fairness``: what each fairness promise costs, measured in the simulator (issue 13).

For each scenario (default ``stationary`` and ``cold_start``) and seed (default 0, 1, 2), one comparison
run prices the same shoppers with the oracle, the best fixed price in hindsight, the default learner
without a promise, and the same learner under each promise: a spread limit of 20%, 10%, 5% and 0 (one
price per product, the reference), a stable price per shopper and product for a day, and
``is_mobile`` as an input that may not price. Contenders are ``simulator.contenders`` names with
guards (``linucb@spread=0.1``). It prints, per scenario, each one's mean share of the oracle with the
spread over seeds, its gap to the best fixed price in points, its conversion and the spread it
actually quoted (the 5th-95th percentile of price / reference price, over every quote of every seed),
and writes the table as JSON and a PNG of share against limit.

    python -m bench.fairness                                       # 20,000 rounds, seeds 0 1 2
    python -m bench.fairness --rounds 5000 --seed 0 --jobs 2 --png fairness.png --json fairness.json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from learner import PricerConfig
from simulator.contenders import GUARD_SEPARATOR
from simulator.runner import compare
from simulator.scenarios import SCENARIOS

DEFAULT_SCENARIOS = ("stationary", "cold_start")
DEFAULT_SEEDS = (0, 1, 2)
DEFAULT_ROUNDS = 20_000
LIMITS: tuple[float | None, ...] = (None, 0.2, 0.1, 0.05, 0.0)
STABLE_SECONDS = 86_400
PROTECTED = "is_mobile"
ORACLE, BEST_FIXED = "oracle", "best_fixed"


def promises(policy: str) -> dict[str, str]:
    """Each promise's label and the contender that keeps it."""
    named = {"no limit" if limit is None else f"spread {limit:.0%}":
             policy if limit is None else f"{policy}{GUARD_SEPARATOR}spread={limit:g}" for limit in LIMITS}
    named[f"stable {STABLE_SECONDS // 3600} h"] = f"{policy}{GUARD_SEPARATOR}stable={STABLE_SECONDS}"
    named[f"{PROTECTED} protected"] = f"{policy}{GUARD_SEPARATOR}protect={PROTECTED}"
    return named


@dataclass
class Run:
    """One scenario on one seed: every contender's share, conversion and price ratios' quantiles."""

    scenario: str
    seed: int
    shares: dict[str, float] = field(default_factory=dict)
    conversion: dict[str, float] = field(default_factory=dict)
    spread: dict[str, tuple[float, float]] = field(default_factory=dict)


def run_one(scenario: str, seed: int, rounds: int) -> Run:
    config = PricerConfig()
    names = promises(config.policy)
    options = {config.policy: dict(config.policy_options)}
    results = compare(SCENARIOS[scenario], rounds=rounds, seed=seed, checkpoints=1, pricer=config,
                      policies=[ORACLE, BEST_FIXED, *names.values()], options=options)
    run = Run(scenario, seed)
    for row in results.final():
        label = BEST_FIXED if row.policy.startswith(BEST_FIXED) else row.policy
        run.shares[label], run.conversion[label] = row.oracle_share, row.conversion
    run.spread = dict(results.spread)
    return run


@dataclass(frozen=True)
class Line:
    """One promise on one scenario, over seeds."""

    promise: str
    share: float
    share_sd: float
    gap_to_best_fixed: float
    """Share minus the best fixed price's share, in points, mean over seeds."""
    conversion: float
    spread_p5: float
    spread_p95: float
    """Mean over seeds of each seed's 5th and 95th percentile of price / reference price."""


def summarize(runs: Sequence[Run], policy: str) -> dict[str, list[Line]]:
    table: dict[str, list[Line]] = {}
    for scenario in dict.fromkeys(run.scenario for run in runs):
        mine = [run for run in runs if run.scenario == scenario]
        best = np.array([run.shares[BEST_FIXED] for run in mine])
        lines = []
        for label, name in [(ORACLE, ORACLE), (BEST_FIXED, BEST_FIXED), *promises(policy).items()]:
            shares = np.array([run.shares[name] for run in mine])
            spreads = np.array([run.spread.get(name, (np.nan, np.nan)) for run in mine])
            lines.append(Line(label, float(shares.mean()), float(shares.std()),
                              float(100 * (shares - best).mean()),
                              float(np.mean([run.conversion[name] for run in mine])),
                              float(spreads[:, 0].mean()), float(spreads[:, 1].mean())))
        table[scenario] = lines
    return table


def format_table(table: dict[str, list[Line]], seeds: Sequence[int], rounds: int) -> str:
    out = []
    for scenario, lines in table.items():
        out.append(f"\n{scenario}: {rounds:,} rounds, seeds {', '.join(map(str, seeds))} (mean ± sd)")
        header = (f"{'promise':<22} {'% oracle':>15} {'vs best fixed':>14} {'conversion':>11} "
                  f"{'price/reference p5-p95':>23}")
        out += [header, "-" * len(header)]
        for line in lines:
            spread = "" if np.isnan(line.spread_p5) else f"{line.spread_p5:.3f}-{line.spread_p95:.3f}"
            out.append(f"{line.promise:<22} {100 * line.share:>8.1f} ± {100 * line.share_sd:<4.1f} "
                       f"{line.gap_to_best_fixed:>+13.1f} {line.conversion:>11.3f} {spread:>23}")
    return "\n".join(out)


def plot(table: dict[str, list[Line]], path: Path, rounds: int, seeds: Sequence[int]) -> None:
    """Share of the oracle (percent) and the quoted spread against the spread limit, per scenario."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = ["no limit" if limit is None else f"spread {limit:.0%}" for limit in LIMITS]
    ticks = ["none" if limit is None else f"{limit:.0%}" for limit in LIMITS]
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8), dpi=100)
    for index, (scenario, lines) in enumerate(table.items()):
        by = {line.promise: line for line in lines}
        color = f"C{index}"
        left.errorbar(range(len(labels)), [100 * by[label].share for label in labels],
                      yerr=[100 * by[label].share_sd for label in labels], marker="o", color=color,
                      capsize=3, label=f"{scenario}: learner")
        left.axhline(100 * by[BEST_FIXED].share, color=color, linestyle="--", linewidth=1,
                     label=f"{scenario}: best fixed price")
        right.fill_between(range(len(labels)), [by[label].spread_p5 for label in labels],
                           [by[label].spread_p95 for label in labels], color=color, alpha=0.25,
                           label=f"{scenario}: p5-p95")
    for axes in (left, right):
        axes.set_xticks(range(len(labels)), ticks)
        axes.set_xlabel("spread limit (every price within ±limit of the reference)")
        axes.grid(alpha=0.3)
        axes.legend(fontsize="small", loc="lower left")
    left.set_ylabel("expected profit, % of the oracle")
    right.set_ylabel("quoted price / reference price")
    figure.suptitle(f"The cost of a spread limit ({rounds:,} rounds, seeds {', '.join(map(str, seeds))})")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fairness", description=__doc__.split("\n")[0])
    parser.add_argument("--scenario", action="append", choices=sorted(SCENARIOS),
                        help=f"repeat; default {', '.join(DEFAULT_SCENARIOS)}")
    parser.add_argument("--seed", type=int, action="append", help="repeat; default 0 1 2")
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS)
    parser.add_argument("--jobs", type=int, default=1, help="runs in parallel processes")
    parser.add_argument("--json", type=Path, help="write the table here")
    parser.add_argument("--png", type=Path, help="write the plot here")
    args = parser.parse_args(argv)
    scenarios, seeds = args.scenario or list(DEFAULT_SCENARIOS), args.seed or list(DEFAULT_SEEDS)
    tasks = [(scenario, seed, args.rounds) for scenario in scenarios for seed in seeds]
    if args.jobs > 1:
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            runs = list(pool.map(run_one, *zip(*tasks, strict=True)))
    else:
        runs = [run_one(*task) for task in tasks]
    table = summarize(runs, PricerConfig().policy)
    print(format_table(table, seeds, args.rounds))
    if args.json:
        args.json.write_text(json.dumps({scenario: [asdict(line) for line in lines]
                                         for scenario, lines in table.items()}, indent=1) + "\n")
    if args.png:
        plot(table, args.png, args.rounds, seeds)
        print(f"wrote {args.png}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
