"""``pricebandit-export-log``: the decision log as DSJSON lines, for ``vw --dsjson`` and
``pricebandit-evaluate``.

The lines are made from the log's entries here, not stored with them (``server.decision_log``). The
state file is opened read-only, so the server may be running; ``--store redis://…`` reads a Redis
store shared by replicas instead.

    pricebandit-export-log --data-dir pricebandit-data --out decisions.dsjson
    pricebandit-export-log --store redis://127.0.0.1:6379/0 --out decisions.dsjson
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from learner import PricingError, cliargs
from server.config import PARSERS
from server.decision_log import dsjson_lines
from server.export import write_lines
from server.redis_store import RedisStore
from server.store import SQLiteStore


def main(argv: Sequence[str] | None = None) -> int:
    parser = cliargs.CommandParser(prog="pricebandit-export-log", description=__doc__.split("\n")[0],
                                   formatter_class=cliargs.DefaultsHelp)
    parser.add_argument("--data-dir", type=Path, default=Path("pricebandit-data"),
                        help="the server's data dir (read only; the server may be running)")
    parser.add_argument("--store", type=PARSERS["store"], default="sqlite",
                        help="sqlite (the state file in --data-dir) or the replicas' redis://host:port/db")
    parser.add_argument("--out", type=cliargs.output_file, required=True, help="DSJSON file to write")
    args = parser.parse_args(argv)
    if args.store == "sqlite" and not (args.data_dir / SQLiteStore.FILENAME).is_file():
        parser.error(f"argument --data-dir: {args.data_dir} holds no {SQLiteStore.FILENAME}")
    try:
        store = SQLiteStore(args.data_dir, reader=True) if args.store == "sqlite" else RedisStore(args.store)
        try:
            written = write_lines(args.out, dsjson_lines(store))
        finally:
            store.close()
    except PricingError as error:
        print(f"pricebandit-export-log: error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {written} decision-log lines to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
