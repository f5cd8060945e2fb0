"""What ``pricebandit-evaluate`` prints and writes: a table, a JSON document, a PNG of the intervals."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from evaluation.estimators import Estimate
from evaluation.logs import LogReading
from evaluation.replay import Evaluation, Result

ESTIMATORS = ("ips", "snips", "dr")


def _interval(estimate: Estimate, digits: int) -> str:
    return f"{estimate.value:.{digits}f} [{estimate.low:.{digits}f}, {estimate.high:.{digits}f}]"


def notes(evaluation: Evaluation) -> list[str]:
    """The limits of these numbers, in words."""
    lines = [f"95% intervals: normal approximation (IPS, DR), delta method (SNIPS), widened by the spread "
             f"of {evaluation.bootstrap} bootstrap streams of the learning (Student t). Learning candidates "
             f"are scored before each decision and learn an explore_eval rejection sample of it "
             f"(multiplier {evaluation.multiplier:.4g}: about {evaluation.multiplier:.1%} of the log)."]
    if evaluation.deterministic_share > 0:
        lines.append(f"{evaluation.deterministic_share:.1%} of logged decisions had propensity 1 (chosen "
                     "deterministically): there every other price had no chance, so IPS and SNIPS count only "
                     "the candidate's probability of the logged price; what it puts elsewhere "
                     "(unsupported) only DR's reward model estimates.")
    return lines


def table(evaluation: Evaluation, reading: LogReading) -> str:
    logged_profit, logged_conversion = evaluation.logged_profit, evaluation.logged_conversion
    rows = [f"log: {reading.summary()}",
            f"logged policy (on-policy): profit per quote {_interval(logged_profit, 4)}, conversion "
            f"{_interval(logged_conversion, 4)}", "",
            "| candidate | profit/quote IPS | SNIPS | DR | conversion DR | ESS | could not take | "
            "unsupported | learned |",
            "|---|---|---|---|---|---|---|---|---|"]
    for result in evaluation.results:
        rows.append(
            f"| {result.label} | {_interval(result.profit['ips'], 4)} "
            f"| {_interval(result.profit['snips'], 4)} | {_interval(result.profit['dr'], 4)} "
            f"| {_interval(result.conversion['dr'], 4)} "
            f"| {result.effective_sample_size:,.0f} | {result.could_not_take:.1%} "
            f"| {result.unsupported_mass:.1%} | {result.learned:,} |")
    return "\n".join([*rows, "", *notes(evaluation)])


def _result_dict(result: Result) -> dict[str, Any]:
    data = asdict(result)
    for reward in ("profit", "conversion"):
        data[reward] = {name: estimate.to_dict() for name, estimate in getattr(result, reward).items()}
    return data


def to_json(evaluation: Evaluation, reading: LogReading) -> str:
    return json.dumps({
        "log": {"decisions": evaluation.decisions, "late_reports": reading.late_reports,
                "guardrail_bound": reading.guardrail_bound, "skipped": dict(reading.skipped)},
        "logged": {"profit": evaluation.logged_profit.to_dict(),
                   "conversion": evaluation.logged_conversion.to_dict()},
        "deterministic_share": evaluation.deterministic_share, "multiplier": evaluation.multiplier,
        "bootstrap": evaluation.bootstrap,
        "candidates": [_result_dict(result) for result in evaluation.results],
        "notes": notes(evaluation),
    }, indent=2)


def plot(evaluation: Evaluation, path: Path) -> None:
    """Per candidate, each estimator's profit per quote and its interval; the logged policy as a line."""
    import matplotlib  # the sim extra: only this figure needs it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = evaluation.results
    figure, axes = plt.subplots(figsize=(max(6.0, 1.2 * len(results) + 2), 4.5))
    for offset, name in zip((-0.2, 0.0, 0.2), ESTIMATORS, strict=True):
        values = [result.profit[name].value for result in results]
        low = [result.profit[name].value - result.profit[name].low for result in results]
        high = [result.profit[name].high - result.profit[name].value for result in results]
        axes.errorbar([i + offset for i in range(len(results))], values, yerr=[low, high], fmt="o",
                      capsize=3, label=name.upper())
    axes.axhline(evaluation.logged_profit.value, color="grey", linestyle="--", label="logged policy")
    axes.set_xticks(range(len(results)), [result.label for result in results], rotation=30, ha="right")
    axes.set_ylabel("profit per quote (95% interval)")
    axes.set_title(f"offline evaluation on {evaluation.decisions:,} logged decisions")
    axes.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
