"""``pricebandit-sim``: compare policies on a scenario, drive a live server, or write behavior histories.

    pricebandit-sim run --scenario stationary --rounds 200000 --out sim-results
    pricebandit-sim live --address 127.0.0.1:50051 --scenario delayed --rounds 5000
    pricebandit-sim behavior --out histories.jsonl
    pricebandit-sim scenarios
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from learner import PricerConfig
from learner.policies import DEMAND_MODELS
from simulator.behavior import histories, write_jsonl
from simulator.contenders import CONTENDERS, VALUE_CONTENDERS
from simulator.recovery import TOLERANCE, WINDOW, format_rounds
from simulator.scenarios import SCENARIOS, scenario


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.command(args))
    except (ValueError, ConnectionError) as error:
        print(f"pricebandit-sim: {error}", file=sys.stderr)
        return 2


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="pricebandit-sim", description=__doc__.split("\n")[0])
    commands = top.add_subparsers(required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="compare policies on a scenario against the oracle")
    _common(run, rounds=200_000)
    run.add_argument("--policy", action="append", metavar="NAME",
                     help=f"a policy to compare (repeat; default: {', '.join(CONTENDERS)}; also "
                          f"{', '.join(VALUE_CONTENDERS)}: a learner with the shipped value model, "
                          "+responses also fed its own settled quotes; a learner with guardrails: "
                          "linucb@spread=0.1, linucb@stable=86400, linucb@protect=is_mobile)")
    run.add_argument("--option", action="append", default=[], metavar="POLICY.NAME=VALUE",
                     help="a learner policy hyperparameter, e.g. linucb.beta=0.5 (repeat)")
    run.add_argument("--decay", type=float, default=PricerConfig.decay,
                     help="the learners' per-outcome discount of all old evidence (1: keep everything)")
    run.add_argument("--demand-model", choices=sorted(DEMAND_MODELS), default=PricerConfig.demand_model,
                     help="one logistic demand model shared across prices, or one ridge model per arm")
    run.add_argument("--value-model", default="default",
                     help="model file of the +lstm learners (pricebandit-train), or the shipped 'default'")
    run.add_argument("--checkpoints", type=int, default=20, help="rows per policy in the table and plots")
    run.add_argument("--out", type=Path, default=Path("sim-results"),
                     help="folder for <scenario>.json, .csv, -regret.png and -profit.png")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.set_defaults(command=_run)

    live = commands.add_parser("live", help="drive a running server over gRPC as a checkout would")
    _common(live, rounds=1000)
    live.add_argument("--address", default="127.0.0.1:50051")
    live.add_argument("--deadline-seconds", type=float, default=1.0, help="deadline of each RPC")
    live.add_argument("--connect-timeout-seconds", type=float, default=10.0,
                      help="how long to wait for the server to answer at all")
    live.add_argument("--delay-scale", type=float, default=1.0,
                      help="wall-clock seconds per simulated second of report delay (e.g. 0.01)")
    live.add_argument("--no-behavior", action="store_true",
                      help="do not send shoppers' behavior histories with Observe before their first quote")
    live.set_defaults(command=_live)

    behavior = commands.add_parser("behavior", help="write the returning shoppers' behavior histories")
    behavior.add_argument("--scenario", default="stationary", choices=sorted(SCENARIOS))
    behavior.add_argument("--seed", type=int, default=0)
    behavior.add_argument("--users", type=int, help="first N shoppers only (default all)")
    behavior.add_argument("--out", type=Path, default=Path("histories.jsonl"))
    behavior.set_defaults(command=_behavior)

    listing = commands.add_parser("scenarios", help="list the named scenarios")
    listing.set_defaults(command=_scenarios)
    return top


def _common(command: argparse.ArgumentParser, *, rounds: int) -> None:
    command.add_argument("--scenario", default="stationary", choices=sorted(SCENARIOS))
    command.add_argument("--rounds", type=int, default=rounds)
    command.add_argument("--seed", type=int, default=0)


def _run(args: argparse.Namespace) -> int:
    from simulator import report  # matplotlib and tqdm (the sim extra) only when comparing
    from simulator.runner import compare

    results = compare(scenario(args.scenario), rounds=args.rounds, seed=args.seed,
                      policies=args.policy or CONTENDERS, checkpoints=args.checkpoints,
                      pricer=PricerConfig(decay=args.decay, demand_model=args.demand_model),
                      options=parse_options(args.option),
                      progress=not args.no_progress, value_model=args.value_model)
    print(report.table(results.final()))
    if results.best_fixed_alpha is not None:
        print(f"best fixed alpha in hindsight: {results.best_fixed_alpha:g}")
    if results.change_round is not None:
        print(f"the market changed at round {results.change_round:,}; rounds after it until within "
              f"{100 * TOLERANCE:g} points of the changed market's best fixed alpha "
              f"({results.recovery_alpha:g}) over a trailing {WINDOW:,}-round window:")
        for name, rounds in results.recovery.items():
            print(f"  {name:<22} {format_rounds(rounds)}")
    for path in report.write(results, args.out):
        print(f"wrote {path}")
    return 0


def _live(args: argparse.Namespace) -> int:
    from simulator.live import run_live  # imports grpc only for live mode

    result = run_live(args.address, scenario(args.scenario), rounds=args.rounds, seed=args.seed,
                      deadline=args.deadline_seconds, delay_scale=args.delay_scale,
                      send_behavior=not args.no_behavior, connect_timeout=args.connect_timeout_seconds)
    print(result.summary())
    return 0


def _behavior(args: argparse.Namespace) -> int:
    market = scenario(args.scenario).stream(args.seed, 1).market
    users = range(min(args.users, market.n_users)) if args.users is not None else None
    count = write_jsonl(histories(market, users), args.out)
    print(f"wrote {count} events to {args.out}")
    return 0


def _scenarios(args: argparse.Namespace) -> int:
    width = max(map(len, SCENARIOS))
    for name, spec in SCENARIOS.items():
        print(f"{name:<{width}}  {spec.description}")
    return 0


def parse_options(items: Sequence[str]) -> dict[str, dict[str, float]]:
    """``["linucb.beta=0.5"]`` -> ``{"linucb": {"beta": 0.5}}``."""
    options: dict[str, dict[str, float]] = {}
    for item in items:
        key, _, value = item.partition("=")
        policy, _, name = key.partition(".")
        if not (policy and name and value):
            raise ValueError(f"--option {item!r}: expected POLICY.NAME=VALUE, e.g. linucb.beta=0.5")
        try:
            options.setdefault(policy, {})[name] = float(value)
        except ValueError:
            raise ValueError(f"--option {item!r}: {value!r} is not a number") from None
    return options


if __name__ == "__main__":
    raise SystemExit(main())
