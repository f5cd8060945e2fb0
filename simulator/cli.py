"""``pricebandit-sim``: compare policies on a scenario, drive a live server, or write behavior histories.

    pricebandit-sim run --scenario stationary --rounds 200000 --out sim-results
    pricebandit-sim live --address 127.0.0.1:50051 --scenario delayed --rounds 5000
    pricebandit-sim behavior --out histories.jsonl
    pricebandit-sim scenarios
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from learner import POLICIES, InvalidInput, Pricer, PricerConfig, PricingError, cliargs
from learner.policies import DEMAND_MODELS, policy_options
from simulator.behavior import histories, write_jsonl
from simulator.contenders import CONTENDERS, VALUE_CONTENDERS
from simulator.recovery import TOLERANCE, WINDOW, format_rounds
from simulator.scenarios import SCENARIOS, scenario

LIVE_DELAY_SCALE = 0.01
"""Live mode's default: the delayed scenario's 5-minute report delays take 3 s, so a run shows its
rewards within seconds instead of sitting silent for minutes."""


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.command(args))
    except (ValueError, ConnectionError, OSError, PricingError) as error:  # a model file, a folder
        print(f"pricebandit-sim: {error}", file=sys.stderr)
        return 2


def parser() -> argparse.ArgumentParser:
    top = cliargs.CommandParser(prog="pricebandit-sim", description=__doc__.split("\n")[0])
    commands = top.add_subparsers(required=True, metavar="COMMAND")

    def command(name: str, help: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=help, description=help, formatter_class=cliargs.DefaultsHelp)

    run = command("run", "compare policies on a scenario against the oracle")
    _common(run, rounds=200_000)
    run.add_argument("--policy", action="append", metavar="NAME",
                     help=f"a policy to compare (repeat; default: {', '.join(CONTENDERS)}; also "
                          f"{', '.join(VALUE_CONTENDERS)}: a learner with the shipped value model, "
                          "+responses also fed its own settled quotes; a learner with guardrails: "
                          "linucb@spread=0.1, linucb@stable=86400, linucb@protect=is_mobile)")
    run.add_argument("--option", action="append", default=[], metavar="POLICY.NAME=VALUE", type=option,
                     help="a learner policy hyperparameter, e.g. linucb.beta=0.5 (repeat)")
    run.add_argument("--decay", type=cliargs.finite, default=PricerConfig.decay,
                     help="the learners' per-outcome discount of all old evidence (1: keep everything)")
    run.add_argument("--demand-model", choices=sorted(DEMAND_MODELS), default=PricerConfig.demand_model,
                     help="one logistic demand model shared across prices, or one ridge model per arm")
    run.add_argument("--value-model", default="default", type=cliargs.file_or("default"),
                     help="model file of the +lstm learners (pricebandit-train), or the shipped 'default'")
    run.add_argument("--checkpoints", type=cliargs.positive_int, default=20,
                     help="rows per policy in the table and plots")
    run.add_argument("--out", type=Path, default=Path("sim-results"),
                     help="folder for <scenario>.json, .csv, -regret.png and -profit.png")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.set_defaults(command=_run)

    live = command("live", "drive a running server over gRPC as a checkout would")
    _common(live, rounds=1000)
    live.add_argument("--address", default="127.0.0.1:50051", help="the server's HOST:PORT")
    live.add_argument("--deadline-seconds", type=cliargs.positive, default=1.0, help="deadline of each RPC")
    live.add_argument("--connect-timeout-seconds", type=cliargs.positive, default=10.0,
                      help="how long to wait for the server to answer at all")
    live.add_argument("--delay-scale", type=cliargs.non_negative, default=LIVE_DELAY_SCALE,
                      help="wall-clock seconds per simulated second of report delay: 1 replays the "
                           "scenario's delays in real time (minutes for 'delayed'); to keep their share "
                           "of late rewards, scale the server's --reward-window-seconds alike "
                           f"({LIVE_DELAY_SCALE:g} x 600 = {LIVE_DELAY_SCALE * 600:g})")
    live.add_argument("--no-behavior", action="store_true",
                      help="do not send shoppers' behavior histories with Observe before their first quote")
    live.add_argument("--no-progress", action="store_true", help="no progress bar")
    live.set_defaults(command=_live)

    behavior = command("behavior", "write the returning shoppers' behavior histories")
    _scenario(behavior)
    _seed(behavior)
    behavior.add_argument("--users", type=cliargs.positive_int, help="first N shoppers only (default: all)")
    behavior.add_argument("--out", type=cliargs.output_file, default=Path("histories.jsonl"),
                          help="the JSON-lines file to write")
    behavior.set_defaults(command=_behavior)

    listing = command("scenarios", "list the named scenarios")
    listing.set_defaults(command=_scenarios)
    return top


def _common(command: argparse.ArgumentParser, *, rounds: int) -> None:
    _scenario(command)
    command.add_argument("--rounds", type=cliargs.positive_int, default=rounds, help="shoppers to price")
    _seed(command)


def _scenario(command: argparse.ArgumentParser) -> None:
    command.add_argument("--scenario", default="stationary", choices=sorted(SCENARIOS),
                         help="the market (pricebandit-sim scenarios describes each)")


def _seed(command: argparse.ArgumentParser) -> None:
    command.add_argument("--seed", type=cliargs.non_negative_int, default=0,
                         help="seed of the market and of every random choice")


def _run(args: argparse.Namespace) -> int:
    from simulator import report  # matplotlib and tqdm (the sim extra) only when comparing
    from simulator.runner import compare

    pricer = PricerConfig(decay=args.decay, demand_model=args.demand_model)
    options = options_by_policy(args.option)
    check_learners(pricer, options)
    results = compare(scenario(args.scenario), rounds=args.rounds, seed=args.seed,
                      policies=args.policy or CONTENDERS, checkpoints=args.checkpoints,
                      pricer=pricer, options=options,
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
                      send_behavior=not args.no_behavior, connect_timeout=args.connect_timeout_seconds,
                      progress=not args.no_progress)
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


def option(text: str) -> tuple[str, str, float]:
    """``linucb.beta=0.5`` -> ("linucb", "beta", 0.5), for a learner policy and an option it takes."""
    key, _, value = text.partition("=")
    policy, _, name = key.partition(".")
    if not (policy and name and value):
        raise argparse.ArgumentTypeError(f"{text!r} is not POLICY.NAME=VALUE, e.g. linucb.beta=0.5")
    try:
        takes = policy_options(policy)
    except InvalidInput:
        raise argparse.ArgumentTypeError(f"{text!r}: {policy!r} is not a learner policy; options are for "
                                         f"{', '.join(POLICIES)}") from None
    if name not in takes:
        raise argparse.ArgumentTypeError(f"{text!r}: {policy} takes no option {name!r}; its options: "
                                         f"{', '.join(takes) or 'none'}")
    try:
        return policy, name, cliargs.finite(value)
    except argparse.ArgumentTypeError as error:
        raise argparse.ArgumentTypeError(f"{text!r}: {error}") from None


def check_learners(pricer: PricerConfig, options: Mapping[str, Mapping[str, float]]) -> None:
    """Build each configured learner once, so that a value the learner refuses (its own rules, such as
    decay in (0, 1]) stops the run before it starts, said of the flag that set it."""
    for policy in sorted({pricer.policy, *options}):
        try:
            Pricer(replace(pricer, policy=policy, policy_options=dict(options.get(policy, {}))))
        except InvalidInput as error:
            if error.field == "decay":
                raise InvalidInput("argument --decay", error.problem) from None
            raise InvalidInput("argument --option", str(error)) from None


def options_by_policy(options: Sequence[tuple[str, str, float]]) -> dict[str, dict[str, float]]:
    """``[("linucb", "beta", 0.5)]`` -> ``{"linucb": {"beta": 0.5}}``."""
    grouped: dict[str, dict[str, float]] = {}
    for policy, name, value in options:
        grouped.setdefault(policy, {})[name] = value
    return grouped


if __name__ == "__main__":
    raise SystemExit(main())
