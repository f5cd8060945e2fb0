"""``python -m bench.inventory``: does pricing against stock pay? Issue 15's table, from the simulator.

For each stock scenario (``simulator.inventory.STOCK_SCENARIOS``) and seed (default 0, 1, 2), one
season of ``SEASON_ROUNDS`` shoppers is priced by today's learner (``pricer``, stock ignored), the same
learner told the stock (``stock``), a markdown schedule and the best price path in hindsight. It
prints, per scenario and contender, profit including salvage as a share of the hindsight path's
(mean, with the spread over seeds), units left as a share of the stock, when the stock ran out (share
of the season) and the prices quoted (5th–95th percentile); then the issue's floors; and writes a PNG
of stock and price over the season of the first seed per scenario.

    python -m bench.inventory --jobs 2 --plots inventory-plots
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from bench.personalization import markdown, percent, spread
from learner import cliargs
from simulator.inventory import (
    CONTENDERS,
    SEASON_DAYS,
    SEASON_ROUNDS,
    STOCK_SCENARIOS,
    SeasonResult,
    play_season,
)

HINDSIGHT_FLOOR = 0.95
"""Ours earns at least this share of the hindsight path's profit (issue 15)."""
SELL_OUT_FLOOR = 0.9
"""The scarce bestseller sells out no earlier than this share of its season."""
LEFTOVER_FLOOR = 0.05
"""On the overstocked item, ours leaves at most this share of the stock more than the hindsight path."""

Seasons = dict[str, list[list[SeasonResult]]]
"""Per scenario, per seed, the results in ``CONTENDERS`` order."""


def run_all(scenarios: Sequence[str], seeds: Sequence[int], rounds: int, jobs: int) -> Seasons:
    tasks = [(name, seed) for name in scenarios for seed in seeds]
    with ProcessPoolExecutor(max_workers=max(1, jobs)) as pool:
        played = list(pool.map(_play, tasks, [rounds] * len(tasks)))
    seasons: Seasons = {name: [] for name in scenarios}
    for (name, _), results in zip(tasks, played, strict=True):
        seasons[name].append(results)
    return seasons


def _play(task: tuple[str, int], rounds: int) -> list[SeasonResult]:
    name, seed = task
    return play_season(STOCK_SCENARIOS[name], seed, rounds)


def table(seasons: Seasons) -> str:
    rows = []
    for name, runs in seasons.items():
        for k, contender in enumerate(CONTENDERS):
            results = [run[k] for run in runs]
            shares = [r.profit / run[-1].profit for r, run in zip(results, runs, strict=True)]
            left = [r.units_left / (r.units_left + r.sold) for r in results]
            out = [r.sold_out_at for r in results]
            rows.append((name, contender, f"{percent(float(np.mean(shares)))} ({spread(shares)})",
                         percent(float(np.mean(left))),
                         "never" if None in out else f"{percent(min(o for o in out if o is not None))}",
                         f"{np.mean([r.price_low for r in results]):.0f}–"
                         f"{np.mean([r.price_high for r in results]):.0f}"))
    return markdown(("scenario", "contender", "profit vs hindsight (seeds)", "units left",
                     "sold out at (earliest)", "prices p5–p95"), rows)


def floors(seasons: Seasons) -> list[tuple[str, bool]]:
    """Each of issue 15's floors on these seasons: (what, whether it holds)."""
    index = {name: k for k, name in enumerate(CONTENDERS)}
    ours, today, marked = index["stock"], index["pricer"], index["markdown"]
    checks = []
    for name, runs in seasons.items():
        share = min(run[ours].profit / run[-1].profit for run in runs)
        checks.append((f"{name}: profit >= {percent(HINDSIGHT_FLOOR)} of hindsight on every seed "
                       f"(lowest {percent(share)})", share >= HINDSIGHT_FLOOR))
        beats = all(run[ours].profit > max(run[today].profit, run[marked].profit) for run in runs)
        checks.append((f"{name}: above the markdown schedule and today's pricer on every seed", beats))
    if "scarce" in seasons:
        earliest = min(run[ours].sold_out_at or 1.0 for run in seasons["scarce"])
        checks.append((f"scarce: sells out no earlier than {percent(SELL_OUT_FLOOR)} of the season "
                       f"(earliest {percent(earliest)})", earliest >= SELL_OUT_FLOOR))
    if "overstocked" in seasons:
        runs = seasons["overstocked"]
        gap = max((run[ours].units_left - run[-1].units_left) / (run[ours].units_left + run[ours].sold)
                  for run in runs)
        left = max(run[ours].units_left / (run[ours].units_left + run[ours].sold) for run in runs)
        checks.append((f"overstocked: leaves at most {percent(LEFTOVER_FLOOR)} of the stock more than the "
                       f"hindsight path (largest gap {percent(gap)}; ours leaves up to {percent(left)})",
                       gap <= LEFTOVER_FLOOR))
    return checks


def plot(seasons: Seasons, out: Path) -> list[Path]:
    """Stock left and price quoted over the season (first seed), one PNG per scenario."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, runs in seasons.items():
        figure, (stock_axes, price_axes) = plt.subplots(2, 1, sharex=True, figsize=(9, 6))
        for result in runs[0]:
            days = np.arange(result.prices.size) * SEASON_DAYS / result.prices.size
            stock_axes.plot(days, result.stock_left, label=result.contender)
            window = max(1, result.prices.size // 200)
            quoted = ~np.isnan(result.prices)
            kernel = np.ones(window)
            smooth = np.convolve(np.where(quoted, result.prices, 0.0), kernel, "same") / np.maximum(
                np.convolve(quoted, kernel, "same"), 1.0)  # a mean over the quotes in the window only
            price_axes.plot(days, np.where(quoted, smooth, np.nan), label=result.contender)
        stock_axes.set_ylabel("units left")
        price_axes.set_ylabel(f"price (mean of {window} quotes)")
        price_axes.set_xlabel("day of the season")
        stock_axes.legend(loc="upper right")
        figure.suptitle(f"{name}: {STOCK_SCENARIOS[name].description}")
        path = out / f"inventory-{name}.png"
        figure.savefig(path)
        plt.close(figure)
        paths.append(path)
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    parser = cliargs.CommandParser(prog="python -m bench.inventory", description=__doc__.split("\n\n")[0],
                                   formatter_class=cliargs.DefaultsHelp)
    parser.add_argument("--scenario", action="append", choices=sorted(STOCK_SCENARIOS),
                        help="a stock scenario (repeat for several; default all)")
    parser.add_argument("--seed", action="append", type=int, help="a seed (repeat; default 0, 1, 2)")
    parser.add_argument("--rounds", type=cliargs.integer(minimum=100), default=SEASON_ROUNDS,
                        help="shoppers in a season")
    parser.add_argument("--jobs", type=cliargs.integer(minimum=1), default=1, help="seasons played at once")
    parser.add_argument("--plots", type=Path, help="write a PNG of stock and price per scenario here")
    args = parser.parse_args(argv)
    seasons = run_all(args.scenario or list(STOCK_SCENARIOS), args.seed or [0, 1, 2], args.rounds, args.jobs)
    print(table(seasons))
    print()
    checks = floors(seasons)
    for what, holds in checks:
        print(f"{'holds' if holds else 'FAILS'}  {what}")
    if args.plots is not None:
        for path in plot(seasons, args.plots):
            print(f"wrote {path}", file=sys.stderr)
    return 0 if all(holds for _, holds in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
