"""Results out: a flat table, JSON and CSV files, and PNG plots of cumulative regret and profit."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import matplotlib

from simulator.runner import Results, Row

matplotlib.use("Agg")  # files only, no display: before pyplot is imported
import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter


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
    for path, panels in ((paths[2], regret_panels(results)), (paths[3], profit_panels(results))):
        chart = figure(results, panels)
        chart.savefig(path)
        plt.close(chart)
    return paths


NAIVE = ("random", "greedy")
"""Baselines far below the others: panels after the first leave them out so the learners' lines part."""


@dataclass(frozen=True)
class Panel:
    """One plot: a line per policy of ``value(row)`` against rounds."""

    label: str
    value: Callable[[Row], float]
    left_out: tuple[str, ...] = NAIVE
    """Policies not drawn (those absent from the results aside)."""
    percent: bool = False


def by_policy(results: Results) -> dict[str, list[Row]]:
    series: dict[str, list[Row]] = {}
    for row in results.rows:
        series.setdefault(row.policy, []).append(row)
    return series


def regret_panels(results: Results) -> list[Panel]:
    label = "cumulative regret vs the oracle (currency units)"
    return [Panel(label, lambda r: r.regret, left_out=()), Panel(label, lambda r: r.regret)]


def profit_panels(results: Results) -> list[Panel]:
    """Cumulative profit; where the best fixed price ran, each learner's expected profit over it (the
    learners' cumulative lines lie too close to tell apart); the share of the oracle, in %."""
    panels = [Panel("cumulative profit (currency units)", lambda r: r.profit, left_out=())]
    fixed = next((rows for name, rows in by_policy(results).items() if name.startswith("best_fixed")), None)
    if fixed is not None:
        reference = {row.round: row.expected_profit for row in fixed}
        panels.append(Panel("expected profit over the best fixed price (currency units)",
                            lambda r: r.expected_profit - reference[r.round], (*NAIVE, "oracle")))
    panels.append(Panel("expected profit, % of the oracle's", lambda r: 100 * r.oracle_share, percent=True))
    return panels


def figure(results: Results, panels: list[Panel]) -> Figure:
    """The panels side by side against rounds, with one legend below them all (inside a panel it
    hid lines, the oracle's first). Reference lines (oracle, best fixed price) are dashed."""
    series = by_policy(results)
    chart, axes_row = plt.subplots(1, len(panels), figsize=(7 * len(panels), 6), dpi=100, squeeze=False)
    for axes, panel in zip(axes_row[0], panels, strict=True):
        for index, (policy, rows) in enumerate(series.items()):
            if policy in panel.left_out:
                continue
            style = "--" if policy == "oracle" or policy.startswith("best_fixed") else "-"
            axes.plot([r.round for r in rows], [panel.value(r) for r in rows], style, marker=".",
                      color=f"C{index % 10}", label=policy)
        axes.set_xlabel("rounds")
        axes.set_ylabel(panel.label)
        axes.set_xlim(left=0)
        axes.grid(alpha=0.3)
        if panel.percent:
            axes.yaxis.set_major_formatter(PercentFormatter(100))
        left_out = [name for name in panel.left_out if name in series]
        axes.set_title(panel.label + (f", without {' and '.join(left_out)}" if left_out else ""),
                       fontsize="medium")
    handles, labels = axes_row[0][0].get_legend_handles_labels()
    chart.legend(handles, labels, loc="lower center", ncol=min(len(labels), 6), fontsize="small",
                 frameon=False)
    chart.suptitle(f"{results.scenario} (seed {results.seed}, {results.rounds:,} rounds)")
    rows_of_legend = -(-len(labels) // 6)
    chart.tight_layout(rect=(0, 0.04 + 0.035 * rows_of_legend, 1, 1))
    return chart
