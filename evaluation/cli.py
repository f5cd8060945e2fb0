"""``pricebandit-evaluate``: estimate, from the decision log, what other configurations would earn.

    pricebandit-evaluate pricebandit-data --candidate "ts: --policy thompson" \\
        --candidate "coarse: --alphas 0,0.25,0.5,0.75,1" --plot evaluation.png --json evaluation.json

The log is a state file (or the --data-dir holding it) or DSJSON lines as the server writes them.
Exit status: 0 evaluated, 2 a bad log line, a candidate that does not fit, or bad arguments.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from evaluation.candidates import parse_candidate
from evaluation.logs import BadRecord, read_log
from evaluation.replay import DEFAULT_BOOTSTRAP, evaluate
from evaluation.report import plot, table, to_json


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="pricebandit-evaluate", description=__doc__.split("\n")[0],
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    top.add_argument("log", type=Path, help="state file, its --data-dir, or a DSJSON file")
    top.add_argument("--candidate", action="append", default=[], metavar="[LABEL:] FLAGS",
                     help="a configuration as pricebandit-server flags, e.g. 'ts: --policy thompson "
                          "--decay 0.999' (repeat; default: the server's defaults)")
    top.add_argument("--bootstrap", type=int, default=DEFAULT_BOOTSTRAP, metavar="K",
                     help="bootstrap streams of each candidate's learning, whose spread widens its "
                          f"intervals (default {DEFAULT_BOOTSTRAP}; 0: the plain replay alone, K + 1 times "
                          "faster, its intervals counting the log's noise only)")
    top.add_argument("--skip-bad", action="store_true",
                     help="skip and count bad log lines instead of stopping at the first")
    top.add_argument("--json", type=Path, help="also write the results as JSON here")
    top.add_argument("--plot", type=Path, help="also draw each candidate's estimates as a PNG here")
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    started = time.perf_counter()
    try:
        candidates = [parse_candidate(spec) for spec in args.candidate or [""]]
        reading = read_log(args.log, skip_bad=args.skip_bad)
        evaluation = evaluate(reading, candidates, args.bootstrap)
    except BadRecord as bad:
        print(f"pricebandit-evaluate: {args.log}: {bad} (--skip-bad skips and counts such lines)",
              file=sys.stderr)
        return 2
    except (ValueError, OSError) as error:
        print(f"pricebandit-evaluate: {error}", file=sys.stderr)
        return 2
    print(table(evaluation, reading))
    if reading.first_problem:
        print(f"first bad record: {reading.first_problem}")
    print(f"evaluated {evaluation.decisions:,} decisions x {len(candidates)} candidates in "
          f"{time.perf_counter() - started:.1f} s")
    if args.json:
        args.json.write_text(to_json(evaluation, reading) + "\n")
        print(f"wrote {args.json}")
    if args.plot:
        plot(evaluation, args.plot)
        print(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
