"""``pricebandit-export-behavior``: the server's own price experiments as a behavior log to train on.

Every settled quote in the state file is a shopper's answer to a price: a view at the quoted price,
bought or not, which is what ``pricebandit-train`` learns from. The users are the state file's
pseudonyms, so a tracker's log (with raw ids) is keyed with the same data dir's key before the two
are joined, and each shopper's tracked events and answered quotes form one history
(``pricebandit-train`` orders each user's events by time itself).

    pricebandit-export-behavior --data-dir pricebandit-data --out quotes.jsonl [--merge tracker.jsonl]
    pricebandit-train quotes.jsonl --out model.npz
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from learner import PricingError, cliargs
from learner.value import BehaviorEvent
from learner.value.train import read_log
from server.pseudonyms import KEY_FILENAME, UserIdKey
from server.store import SQLiteStore


def settled_quotes(store: SQLiteStore) -> Iterator[BehaviorEvent]:
    """Each quote closed by a reward or its window, as the view its shopper answered (log order)."""
    for entry in store.log_after(0):
        if entry.kind == "late":  # a report after the window: the quote was already settled
            continue
        decision = entry.decision
        yield BehaviorEvent(user_id=decision.user_id, timestamp=decision.created_at, event_type="view",
                            product_id=decision.product_id, category=decision.category,
                            price=decision.price, unit_cost=decision.unit_cost,
                            list_price=decision.list_price, purchased=entry.reward > 0)


def keyed(events: Iterator[BehaviorEvent], key: UserIdKey) -> Iterator[BehaviorEvent]:
    """A tracker's events with their user ids replaced by the server's pseudonyms."""
    for event in events:
        yield dataclasses.replace(event, user_id=key.pseudonym(event.user_id))


def event_row(event: BehaviorEvent) -> str:
    return json.dumps(dataclasses.asdict(event), separators=(",", ":"))


def write_lines(out: Path, lines: Iterable[str]) -> int:
    """Write one line each to ``out``; returns how many (an export's report)."""
    written = 0
    with out.open("w") as handle:
        for line in lines:
            handle.write(line + "\n")
            written += 1
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = cliargs.CommandParser(prog="pricebandit-export-behavior", description=__doc__.split("\n")[0],
                                   formatter_class=cliargs.DefaultsHelp)
    parser.add_argument("--data-dir", type=Path, default=Path("pricebandit-data"),
                        help="the server's data dir (read only; the server may be running)")
    parser.add_argument("--out", type=cliargs.output_file, required=True, help="JSON-lines file to write")
    parser.add_argument("--merge", type=cliargs.input_file, action="append", default=[],
                        help="a tracker's behavior log (JSON lines or CSV) to key and add (repeat)")
    parser.add_argument("--user-id-key-file", type=cliargs.input_file, default=None,
                        help="the server's user-id key, if not <data-dir>/user-id.key")
    args = parser.parse_args(argv)
    if not (args.data_dir / SQLiteStore.FILENAME).is_file():
        parser.error(f"argument --data-dir: {args.data_dir} holds no {SQLiteStore.FILENAME}")
    try:
        key = UserIdKey.read(args.user_id_key_file or args.data_dir / KEY_FILENAME)
        store = SQLiteStore(args.data_dir, reader=True)
        try:
            sources = [settled_quotes(store)] + [keyed(read_log(path), key) for path in args.merge]
            written = write_lines(args.out, map(event_row, itertools.chain(*sources)))
        finally:
            store.close()
    except PricingError as error:
        print(f"pricebandit-export-behavior: error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {written} events to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
