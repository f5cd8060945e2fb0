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
    plot(results, "regret", "cumulative regret (expected profit below the oracle)", paths[2])
    plot(results, "profit", "cumulative profit", paths[3])
    return paths


def plot(results: Results, column: str, label: str, path: Path) -> None:
    """One line per policy of ``column`` against rounds."""
    figure, axes = plt.subplots(figsize=(9, 5.5), dpi=110)
    series: dict[str, list[Row]] = {}
    for row in results.rows:
        series.setdefault(row.policy, []).append(row)
    for policy, rows in series.items():
        style = "--" if policy == "oracle" or policy.startswith("best_fixed") else "-"
        axes.plot([0, *(r.round for r in rows)], [0.0, *(getattr(r, column) for r in rows)], style,
                  marker=".", label=policy)
    axes.set_title(f"{results.scenario}: {label} (seed {results.seed}, {results.rounds:,} rounds)")
    axes.set_xlabel("rounds")
    axes.set_ylabel(f"{label.split(' (')[0]} (currency units)")
    axes.grid(alpha=0.3)
    axes.legend(loc="upper left", fontsize="small")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
