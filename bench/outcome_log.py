"""``python -m bench.outcome_log``: how fast one Redis takes the outcome log, the rate that bounds
replicas sharing it (issue 16's "past one Redis" arithmetic starts here).

A fresh ``redis-server`` on a free port for each persistence setting; ``--threads`` writers each
store quotes and close them (``put_pending`` then ``close_quote``: the two writes every rewarded
quote costs, as the server makes them); then one reader reads the whole log (``log_after``, what a
replica starting or catching up does). Wall-clock rates: the writes wait for Redis's fsync.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from bench.redis_process import RedisProcess
from learner import Decision, Pricer, Product, QuoteRequest, cliargs
from server.redis_store import RedisStore

FSYNC_SETTINGS = ("always", "everysec")


@dataclass(frozen=True)
class LogRates:
    fsync: str
    threads: int
    quotes_closed_per_second: float  # put_pending + close_quote pairs
    entries_read_per_second: float


def decisions(count: int, prefix: str) -> list[Decision]:
    pricer = Pricer()
    product = Product("sku-1", unit_cost=40.0, list_price=100.0, category="shoes")
    made = [pricer.quote(QuoteRequest(user_id=f"u{i % 97}", quote_id=f"{prefix}{i}", context={},
                                      product=product), now=0.0) for i in range(count)]
    return [replace(d, expires_at=1e12) for d in made]


def measure(fsync: str, threads: int, per_thread: int, folder: Path) -> LogRates:
    server = RedisProcess(folder / f"redis-{fsync}-{threads}", fsync=fsync)
    try:
        store = RedisStore(server.url)
        batches = [decisions(per_thread, f"t{t}-") for t in range(threads)]

        def write(batch: list[Decision]) -> None:
            for decision in batch:
                store.put_pending([decision])
                store.close_quote(decision, "reward", 1.0, True, 1.0)

        workers = [threading.Thread(target=write, args=(batch,)) for batch in batches]
        start = time.perf_counter()
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        written = time.perf_counter() - start
        start = time.perf_counter()
        read = sum(1 for _ in store.log_after(0))
        reading = time.perf_counter() - start
        store.close()
    finally:
        server.stop()
    return LogRates(fsync, threads, threads * per_thread / written, read / reading)


def main(argv: Sequence[str] | None = None) -> int:
    parser = cliargs.CommandParser(prog="python -m bench.outcome_log", description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=cliargs.positive_int, action="append",
                        help="writer threads; repeat (default 1 and 8)")
    parser.add_argument("--quotes", type=cliargs.positive_int, default=1000,
                        help="quotes each writer stores and closes (default 1000)")
    args = parser.parse_args(argv)
    print("| appendfsync | writers | quotes closed/s (put + close) | log entries read/s |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as scratch:
        for fsync in FSYNC_SETTINGS:
            for threads in args.threads or [1, 8]:
                rates = measure(fsync, threads, args.quotes, Path(scratch))
                print(f"| {rates.fsync} | {rates.threads} | {rates.quotes_closed_per_second:,.0f} | "
                      f"{rates.entries_read_per_second:,.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
