"""Results out: a flat table, JSON and CSV files, and PNG plots of cumulative regret and profit."""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, fields
from pathlib import Path

import matplotlib

from simulator.runner import Results, Row

matplotlib.use("Agg")  # files only, no display: before pyplot is imported
import matplotlib.pyplot as plt


def table(rows: list[Row]) -> str:
    """A fixed-width text table of ``rows`` (one line per row)."""
    header = f"{'policy':<22} {'round':>8} {'profit':>12} {'revenue':>12} {'conv':>6} {'% oracle':>9} " \
             f"{'regret':>11} {'decisions/s':>11}"
    lines = [header, "-" * len(header)]
    for row in rows:
        speed = f"{row.decisions_per_second:11.0f}" if row.decisions_per_second is not None else f"{'':>11}"
        lines.append(f"{row.policy:<22} {row.round:>8} {row.profit:>12.0f} {row.revenue:>12.0f} "
                     f"{row.conversion:>6.3f} {100 * row.oracle_share:>8.1f}% {row.regret:>11.0f} {speed}")
    return "\n".join(lines)


def write(results: Results, out: Path) -> list[Path]:
    """Write ``results.json``, ``results.csv``, ``regret.png`` and ``profit.png`` under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    prefix = out / results.scenario
    paths = [prefix.with_suffix(".json"), prefix.with_suffix(".csv"),
             out / f"{results.scenario}-regret.png", out / f"{results.scenario}-profit.png"]
    paths[0].write_text(json.dumps(results.to_dict(), indent=1) + "\n")
    with paths[1].open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[f.name for f in fields(Row)])
        writer.writeheader()
        writer.writerows(asdict(row) for row in results.rows)
    regret = ("regret", "cumulative regret vs the oracle (currency units)")
    plot(results, paths[2], regret, regret)
    plot(results, paths[3], ("profit", "cumulative profit (currency units)"),
         ("oracle_share", "expected profit as a share of the oracle's"))
    return paths


NAIVE = ("random", "greedy")
"""Baselines far below the others: the right-hand panel leaves them out so the learners' lines part."""


def plot(results: Results, path: Path, left: tuple[str, str], right: tuple[str, str]) -> None:
    """Two panels of (column, label) against rounds: every policy on the left; on the right,
    without the naive baselines."""
    series: dict[str, list[Row]] = {}
    for row in results.rows:
        series.setdefault(row.policy, []).append(row)
    figure, panels = plt.subplots(1, 2, figsize=(14, 5.5), dpi=100)
    for axes, (column, label), names in ((panels[0], left, list(series)),
                                          (panels[1], right, [n for n in series if n not in NAIVE])):
        for index, policy in enumerate(series):
            if policy not in names:
                continue
            rows = series[policy]
            style = "--" if policy == "oracle" or policy.startswith("best_fixed") else "-"
            axes.plot([r.round for r in rows], [getattr(r, column) for r in rows], style,
                      marker=".", color=f"C{index % 10}", label=policy)
        axes.set_xlabel("rounds")
        axes.set_ylabel(label)
        axes.set_xlim(left=0)
        axes.grid(alpha=0.3)
        axes.legend(loc="best", fontsize="small")
        axes.set_title(label if names == list(series) else f"{label}, without {' and '.join(NAIVE)}",
                       fontsize="medium")
    figure.suptitle(f"{results.scenario} (seed {results.seed}, {results.rounds:,} rounds)")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
