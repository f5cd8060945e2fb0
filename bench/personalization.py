"""``python -m bench.personalization``: does personalization pay? Issue 10's table, from the simulator.

For each scenario (default: all) and seed (default 0, 1, 2), one comparison run prices the same
shoppers with the oracle, the best fixed price in hindsight (the best uniform price), Vowpal Wabbit,
the default learner (``PricerConfig()``, whatever it is today) without a value model ("context only")
and with the shipped one ("+ behavior": ``<policy>+lstm``), and, once ``simulator.contenders`` has
one, the learner that also learns from its own closed quotes ("+ own price responses":
``<policy>+responses``; ``n/a`` until then). Contender names come from ``simulator.contenders``,
never spelled here. It prints, per scenario, each contender's mean share of the oracle with the
spread over seeds, its lift over the best uniform price (``share / best_fixed_share - 1``) and, on a
scenario with an abrupt change, the rounds each needed to recover (``simulator.recovery``); then the
Shiller table, one row per scenario; then the issue's floors, judged on the default learner with the
value model (the floors are stated for 200,000 rounds and seeds 0, 1, 2; shorter runs are previews).

    python -m bench.personalization                        # all scenarios, seeds 0 1 2, 200,000 rounds
    python -m bench.personalization --rounds 20000 --seed 0 --jobs 2 --json personalization.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from learner import PricerConfig
from simulator import contenders
from simulator.recovery import TOLERANCE, WINDOW, format_rounds
from simulator.runner import compare
from simulator.scenarios import SCENARIOS

DEFAULT_SEEDS = (0, 1, 2)
DEFAULT_ROUNDS = 200_000
FLOOR_ROUNDS = 20_000
"""The far-below-list floor is judged at this round (above the best fixed price by 20,000 rounds)."""

ORACLE, BEST_FIXED, VW = "oracle", "best_fixed", "vw"
CONTEXT, BEHAVIOR, OWN_RESPONSES = "context", "behavior", "own_responses"
ROLES = (ORACLE, BEST_FIXED, VW, CONTEXT, BEHAVIOR, OWN_RESPONSES)
"""What each contender stands for in the tables; the lineup names who plays each role."""


@dataclass(frozen=True)
class Lineup:
    """Which contender plays each role (None: no such contender exists yet)."""

    names: Mapping[str, str | None]

    def contenders(self) -> list[str]:
        return [name for name in self.names.values() if name is not None]

    def role_of(self, policy: str) -> str | None:
        """The role of a result row's policy (``best_fixed(alpha=0.7)`` is the best fixed price)."""
        base = policy.split("(")[0]
        return next((role for role, name in self.names.items() if name == base), None)


def lineup(config: PricerConfig | None = None) -> Lineup:
    """The contenders of the comparison for the learner ``config`` (default ``PricerConfig()``)."""
    config = config or PricerConfig()
    known = (*contenders.CONTENDERS, *contenders.VALUE_CONTENDERS)
    policy = config.policy
    behavior = f"{policy}{contenders.VALUE_MODEL_SUFFIX}"
    own = f"{policy}{contenders.RESPONSES_SUFFIX}"
    names = {ORACLE: ORACLE, BEST_FIXED: BEST_FIXED, VW: VW, CONTEXT: policy,
             BEHAVIOR: behavior, OWN_RESPONSES: own if own in known else None}
    missing = [name for role, name in names.items() if role != OWN_RESPONSES and name not in known]
    if missing:
        raise ValueError(f"simulator.contenders offers no {', '.join(map(repr, missing))} "
                         f"(it has {', '.join(known)})")
    return Lineup(names)


@dataclass
class Run:
    """One scenario on one seed: each role's share of the oracle and, after a change, its recovery."""

    scenario: str
    seed: int
    rounds: int
    best_fixed_alpha: float | None
    seconds: float
    shares: dict[str, float] = field(default_factory=dict)
    shares_at_floor: dict[str, float] = field(default_factory=dict)
    """Cumulative shares at round ``FLOOR_ROUNDS``, when the run has a checkpoint there."""
    change_round: int | None = None
    recovery_alpha: float | None = None
    recovery: dict[str, int | None] = field(default_factory=dict)
    decisions_per_second: dict[str, float] = field(default_factory=dict)


def checkpoints_for(rounds: int) -> int:
    """Checkpoints every ``FLOOR_ROUNDS`` when that divides the run (so the floor's round is one)."""
    return rounds // FLOOR_ROUNDS if rounds % FLOOR_ROUNDS == 0 else 1


def run_one(scenario: str, seed: int, rounds: int, value_model: str = "default") -> Run:
    """Compare the lineup of ``PricerConfig()`` on ``rounds`` of ``scenario`` with ``seed``."""
    config = PricerConfig()
    team = lineup(config)
    # make_contender replaces a learner's policy options by those given here: keep the defaults'.
    options = {config.policy: dict(config.policy_options)}
    results = compare(SCENARIOS[scenario], rounds=rounds, seed=seed, policies=team.contenders(),
                      checkpoints=checkpoints_for(rounds), pricer=config, options=options,
                      value_model=value_model)
    run = Run(scenario, seed, rounds, results.best_fixed_alpha, results.seconds,
              change_round=results.change_round, recovery_alpha=results.recovery_alpha)
    for row in results.rows:
        role = team.role_of(row.policy)
        if role is None:
            continue
        if row.round == rounds:
            run.shares[role] = row.oracle_share
            if row.decisions_per_second is not None:
                run.decisions_per_second[role] = row.decisions_per_second
        if row.round == FLOOR_ROUNDS:
            run.shares_at_floor[role] = row.oracle_share
    for policy, recovered in results.recovery.items():
        role = team.role_of(policy)
        if role is not None:
            run.recovery[role] = recovered
    return run


def run_all(scenarios: Sequence[str], seeds: Sequence[int], rounds: int, *, jobs: int = 1,
            value_model: str = "default", log: bool = True) -> list[Run]:
    """Every (scenario, seed) run, in a pool of ``jobs`` processes when ``jobs > 1``; ordered."""
    tasks = [(name, seed) for name in scenarios for seed in seeds]
    done: dict[tuple[str, int], Run] = {}
    started = time.perf_counter()

    def note(run: Run) -> None:
        done[(run.scenario, run.seed)] = run
        if log:
            print(f"[{len(done)}/{len(tasks)}] {run.scenario} seed {run.seed}: {run.seconds:.0f} s "
                  f"({time.perf_counter() - started:.0f} s elapsed)", file=sys.stderr, flush=True)

    if jobs <= 1:
        for name, seed in tasks:
            note(run_one(name, seed, rounds, value_model))
    else:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            futures = [pool.submit(run_one, name, seed, rounds, value_model) for name, seed in tasks]
            for future in as_completed(futures):
                note(future.result())
    return [done[task] for task in tasks]


# -- summaries ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Summary:
    """One role on one scenario over the seeds: shares of the oracle and lifts over the best uniform
    price (per seed, then mean, min and max)."""

    shares: tuple[float, ...]
    lifts: tuple[float, ...]
    recovery: tuple[int | None, ...] = ()

    @property
    def share(self) -> float:
        return float(np.mean(self.shares))

    @property
    def lift(self) -> float:
        return float(np.mean(self.lifts))


def summarize(runs: Iterable[Run], role: str) -> Summary | None:
    """``role`` over ``runs`` (one scenario's seeds); None when it did not play."""
    runs = [run for run in runs if role in run.shares]
    if not runs:
        return None
    shares = tuple(run.shares[role] for run in runs)
    lifts = tuple(run.shares[role] / run.shares[BEST_FIXED] - 1.0 for run in runs)
    recovery = tuple(run.recovery.get(role) for run in runs) if runs[0].change_round is not None else ()
    return Summary(shares, lifts, recovery)


def percent(value: float) -> str:
    return f"{100 * value:.1f}%"


def signed(value: float) -> str:
    return f"{100 * value:+.1f}%"


def spread(values: Sequence[float]) -> str:
    return f"{100 * min(values):.1f}–{100 * max(values):.1f}%"


def markdown(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def by_scenario(runs: Sequence[Run]) -> dict[str, list[Run]]:
    grouped: dict[str, list[Run]] = {}
    for run in runs:
        grouped.setdefault(run.scenario, []).append(run)
    return grouped


def scenario_table(runs: Sequence[Run], team: Lineup) -> str:
    """Each contender of one scenario: mean share, spread over seeds, lift and (after a change) recovery."""
    first = runs[0]
    alphas = "/".join(f"{run.best_fixed_alpha:g}" for run in runs)
    title = (f"### {first.scenario}: seeds {', '.join(str(run.seed) for run in runs)}; {first.rounds:,} "
             f"rounds; best fixed alpha {alphas}")
    changed = first.change_round is not None
    header = ["contender", "share of the oracle", "spread over seeds", "lift over best uniform"]
    if changed:
        header.append("rounds to recover")
    rows = []
    for role in (ORACLE, BEST_FIXED, VW, CONTEXT, BEHAVIOR, OWN_RESPONSES):
        summary = summarize(runs, role)
        if summary is None:
            continue
        row: list[object] = [team.names[role], percent(summary.share), spread(summary.shares),
                             signed(summary.lift)]
        if changed:
            row.append(" / ".join(format_rounds(r) for r in summary.recovery))
        rows.append(row)
    lines = [title, "", markdown(header, rows)]
    if changed:
        after = "/".join(f"{run.recovery_alpha:g}" for run in runs)
        lines += ["", f"The market changes at round {first.change_round:,}; recovery is the rounds after it "
                  f"until a trailing {WINDOW:,}-round window earns within {100 * TOLERANCE:g} points of the "
                  f"changed market's best fixed price (alpha {after}) per seed, or never."]
    return "\n".join(lines)


def shiller_table(grouped: Mapping[str, Sequence[Run]], team: Lineup) -> str:
    """One row per scenario: each rung's mean share of the oracle (lift over the best uniform price)."""
    rungs = [("best uniform price", BEST_FIXED), (f"context only ({team.names[CONTEXT]})", CONTEXT),
             (f"+ behavior ({team.names[BEHAVIOR]})", BEHAVIOR),
             ("+ own price responses" + (f" ({team.names[OWN_RESPONSES]})" if team.names[OWN_RESPONSES]
                                         else ""), OWN_RESPONSES),
             ("oracle", ORACLE)]
    rows = []
    for name, runs in grouped.items():
        cells: list[object] = [name]
        for _, role in rungs:
            summary = summarize(runs, role)
            cells.append("n/a" if summary is None else f"{percent(summary.share)} ({signed(summary.lift)})")
        rows.append(cells)
    return ("### Shiller table: share of the oracle (lift over the best uniform price), mean over seeds\n\n"
            + markdown(["scenario", *(label for label, _ in rungs)], rows))


TODAY = {"cold_start": 0.862, "delayed": 0.867}
"""The best learner's share today (README, issue 10): these scenarios must not get worse."""


def floors(grouped: Mapping[str, Sequence[Run]]) -> list[str]:
    """Issue 10's floors that these runs can judge, for the default learner with the value model."""
    lines = []

    def verdict(ok: bool) -> str:
        return "met" if ok else "MISSED"

    def mean(runs: Sequence[Run], role: str, at_floor: bool = False) -> float | None:
        values = [(run.shares_at_floor if at_floor else run.shares).get(role) for run in runs]
        present = [value for value in values if value is not None]
        return float(np.mean(present)) if present and len(present) == len(values) else None

    for name, runs in grouped.items():
        behavior, context = mean(runs, BEHAVIOR), mean(runs, CONTEXT)
        fixed, vw = mean(runs, BEST_FIXED), mean(runs, VW)
        if behavior is None or fixed is None or vw is None:
            continue
        if name == "stationary" and context is not None:
            lines.append(f"stationary: {percent(behavior)} of the oracle (floor 90%): "
                         f"{verdict(behavior >= 0.9)}")
            gain = behavior - context
            lines.append(f"stationary: value model {100 * gain:+.1f} points over the same learner without it "
                         f"(floor +2): {verdict(gain >= 0.02)}")
        if name == "drift":
            lines.append(f"drift: {percent(behavior)} (floor 88%): {verdict(behavior >= 0.88)}")
        if name in TODAY:
            lines.append(f"{name}: {percent(behavior)} (no worse than today's {percent(TODAY[name])}): "
                         f"{verdict(behavior >= TODAY[name])}")
        if runs[0].change_round is not None:
            recovered = [run.recovery.get(BEHAVIOR) for run in runs]
            worst = None if None in recovered else max(r for r in recovered if r is not None)
            took = ("never recovered on some seed" if worst is None
                    else f"recovered in {worst:,} rounds at worst")
            lines.append(f"{name}: {took} (ceiling 5,000): {verdict(worst is not None and worst <= 5000)}")
        if name == "far_below_list":
            early, early_fixed = mean(runs, BEHAVIOR, True), mean(runs, BEST_FIXED, True)
            if early is not None and early_fixed is not None:
                lines.append(f"far_below_list: {percent(early)} at round {FLOOR_ROUNDS:,} against the best "
                             f"fixed price's {percent(early_fixed)}: {verdict(early > early_fixed)}")
            else:
                lines.append(f"far_below_list: at round {FLOOR_ROUNDS:,}: n/a (runs of a multiple of "
                             f"{FLOOR_ROUNDS:,} rounds have that checkpoint)")
        lines.append(f"{name}: {percent(behavior)} against the best fixed price's {percent(fixed)} and VW's "
                     f"{percent(vw)}: {verdict(behavior > fixed and behavior > vw)}")
    return lines


def report(runs: Sequence[Run], team: Lineup) -> str:
    grouped = by_scenario(runs)
    parts = [scenario_table(group, team) for group in grouped.values()]
    parts.append(shiller_table(grouped, team))
    verdicts = floors(grouped)
    if verdicts:
        parts.append(f"### Floors (issue 10; stated for 200,000 rounds, seeds 0 1 2), judged on "
                     f"{team.names[BEHAVIOR]}\n\n" + "\n".join(f"- {line}" for line in verdicts))
    return "\n\n".join(parts)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m bench.personalization", description=__doc__.split("\n")[0])
    top.add_argument("--scenario", action="append", choices=list(SCENARIOS), metavar="NAME",
                     help=f"a scenario (repeat; default all: {', '.join(SCENARIOS)})")
    top.add_argument("--seed", action="append", type=int, help="a seed (repeat; default 0 1 2)")
    top.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS, help="rounds per run (default 200000)")
    top.add_argument("--jobs", type=int, default=1, help="runs at once, each in its own process (default 1)")
    top.add_argument("--value-model", default="default",
                     help="model file of the value-model learner, or the shipped 'default'")
    top.add_argument("--json", type=Path, metavar="PATH", help="also write every run and summary as JSON")
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.rounds < 1 or args.jobs < 1:
        print("--rounds and --jobs must be at least 1", file=sys.stderr)
        return 2
    team = lineup()
    scenarios = list(dict.fromkeys(args.scenario or SCENARIOS))
    seeds = list(dict.fromkeys(args.seed if args.seed is not None else DEFAULT_SEEDS))
    runs = run_all(scenarios, seeds, args.rounds, jobs=args.jobs, value_model=args.value_model)
    print(report(runs, team))
    if args.json is not None:
        grouped = by_scenario(runs)
        summary = {name: {role: asdict(s) | {"share": s.share, "lift": s.lift}
                          for role in ROLES if (s := summarize(group, role)) is not None}
                   for name, group in grouped.items()}
        args.json.write_text(json.dumps({"rounds": args.rounds, "seeds": seeds, "scenarios": scenarios,
                                         "lineup": dict(team.names), "runs": [asdict(run) for run in runs],
                                         "summary": summary, "floors": floors(grouped)}, indent=1) + "\n")
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
