"""``python -m bench.records``: what one stored decision costs as JSON (the format before records)
and as a record (``server/record.py``), in one run.

The decisions are the server's own: varied wire requests validated and priced by a ``Pricer`` of
the default grid (11 arms) at each feature dimension asked. Encode is what a quote pays to store its
decision (JSON: ``json.dumps(Decision.to_dict())``; a record: ``RecordCodec.encode``), decode what
every reward, replay, log follower and export pays to read it back; CPU µs per decision of the
measuring thread, best of 5 repeats of the mean (``bench.stages.per_call``), and bytes per decision.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bench.learner_scaling import pricer_config
from bench.load import BENCH_KEY, quote_requests
from bench.stages import per_call
from learner import Decision, Pricer, cliargs
from server.record import RecordCodec
from server.validation import RequestReader


@dataclass(frozen=True)
class Cost:
    form: str  # "JSON" or "record"
    dim: int
    encode_us: float
    decode_us: float
    bytes: float


def decisions(dim: int, count: int) -> list[Decision]:
    pricer = Pricer(pricer_config("linucb", dim, 11))
    reader = RequestReader(pricer.features, "USD", 50, BENCH_KEY.pseudonym)
    return [pricer.quote(reader.quote(message), 0.0) for message in quote_requests(count, seed=4)]


def measure(dim: int, count: int) -> list[Cost]:
    """Both forms over the same ``count`` decisions of feature dimension ``dim``."""
    made = decisions(dim, count)
    layouts: dict[bytes, str] = {}
    codec = RecordCodec(layouts.get, layouts.update)
    texts = [json.dumps(d.to_dict()).encode() for d in made]
    records = codec.encode(made)
    if [codec.decode(record) for record in records] != made:
        raise RuntimeError("records do not read back the decisions they were made of")

    def cost(form: str, encode: Callable[[Decision], object], decode: Callable[[bytes], Decision],
             rows: list[bytes]) -> Cost:
        return Cost(form, dim, round(per_call(encode, made) * 1e6, 1), round(per_call(decode, rows) * 1e6, 1),
                    sum(map(len, rows)) / len(rows))

    return [cost("JSON", lambda d: json.dumps(d.to_dict()).encode(),
                 lambda text: Decision.from_dict(json.loads(text)), texts),
            cost("record", lambda d: codec.encode([d]), codec.decode, records)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = cliargs.CommandParser(prog="python -m bench.records", description=__doc__.split("\n")[0])
    parser.add_argument("--dim", type=cliargs.positive_int, action="append",
                        help="feature dimension; repeat (default 16 and 64)")
    parser.add_argument("--count", type=cliargs.positive_int, default=2000,
                        help="decisions encoded and decoded per form (default 2000)")
    args = parser.parse_args(argv)
    print("| form | dim | encode µs | decode µs | encode + decode µs | bytes |")
    print("|---|---|---|---|---|---|")
    for dim in args.dim or [16, 64]:
        for cost in measure(dim, args.count):
            print(f"| {cost.form} | {cost.dim} | {cost.encode_us} | {cost.decode_us} | "
                  f"{cost.encode_us + cost.decode_us:.1f} | {cost.bytes:,.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
