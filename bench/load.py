"""The load process: drives one server with Quote, then Reward for those quotes, then QuoteBatch (a
listing page of ``BATCH_SIZE`` products, a fifth as many calls as quotes), at a fixed concurrency.

It runs apart from the servers (its own process, ``grpc.aio`` so that one process can keep 32 calls
in flight) and prints one JSON object: per method, calls, seconds, throughput and latency
percentiles in milliseconds, and quotes per call.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, replace

import grpc

from pricing.v1 import pricing_pb2, pricing_pb2_grpc
from server.pseudonyms import UserIdKey
from simulator.market import CATEGORIES

BATCH_SIZE = 50
"""Products per QuoteBatch: a listing page, the server's default batch limit."""
BATCHES_PER_QUOTE = 1 / 5
"""QuoteBatch calls per timed Quote, so that a run prices a bounded number of products."""

BENCH_KEY = UserIdKey(bytes(range(32)))
"""The user-id key of in-process benchmarks: hashing ids is part of every request's cost."""


def quote_requests(count: int, seed: int = 0) -> list[pricing_pb2.QuoteRequest]:
    """Varied but valid requests: users, products, categories and context values all change."""
    rng = random.Random(seed)
    requests = []
    for i in range(count):
        list_price = round(rng.uniform(10.0, 500.0), 2)
        requests.append(pricing_pb2.QuoteRequest(
            user_id=f"user-{rng.randrange(10_000)}",
            product=pricing_pb2.Product(product_id=f"sku-{i % 97}", category=CATEGORIES[i % len(CATEGORIES)],
                                        unit_cost=round(list_price * rng.uniform(0.3, 0.7), 2),
                                        list_price=list_price),
            context={"is_mobile": float(rng.random() < 0.6), "is_returning": float(rng.random() < 0.3),
                     "hour_sin": rng.uniform(-1, 1), "hour_cos": rng.uniform(-1, 1),
                     "session_depth": float(rng.randrange(20))},
        ))
    return requests


def batch_requests(count: int, size: int = BATCH_SIZE, seed: int = 2) -> list[pricing_pb2.QuoteBatchRequest]:
    """``count`` listing pages of ``size`` distinct products, each for one user and context."""
    singles = quote_requests(count * size, seed)
    pages = [singles[i:i + size] for i in range(0, len(singles), size)]
    return [pricing_pb2.QuoteBatchRequest(user_id=page[0].user_id, context=page[0].context,
                                          products=[r.product for r in page]) for page in pages]


@dataclass(frozen=True)
class Run:
    requests: int
    errors: int
    seconds: float
    throughput: float
    p50_ms: float
    p99_ms: float
    server_cpu_us: float | None  # the server process's CPU time per call, user + system
    quotes_per_call: int = 1


def cpu_seconds(pid: int | None) -> float | None:
    """CPU time (user + system) a process has used so far, from /proc; None where unknown."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    index = min(len(sorted_values) - 1, max(0, round(q * len(sorted_values) + 0.5) - 1))
    return sorted_values[index]


async def drive(call: Callable[[int], Awaitable[object]], count: int, concurrency: int,
                server_pid: int | None = None) -> Run:
    """Make ``count`` calls, ``concurrency`` in flight at once; time each one."""
    latencies: list[float] = []
    errors = 0
    next_index = 0

    async def worker() -> None:
        nonlocal next_index, errors
        while next_index < count:
            index = next_index
            next_index += 1
            start = time.perf_counter()
            try:
                await call(index)
            except grpc.aio.AioRpcError:
                errors += 1
                continue
            latencies.append(time.perf_counter() - start)

    cpu_before = cpu_seconds(server_pid)
    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    seconds = time.perf_counter() - start
    cpu_after = cpu_seconds(server_pid)
    latencies.sort()
    done = len(latencies)
    server_cpu = (None if cpu_before is None or cpu_after is None or not done
                  else round(1e6 * (cpu_after - cpu_before) / done, 1))
    return Run(requests=done, errors=errors, seconds=round(seconds, 4), server_cpu_us=server_cpu,
               throughput=round(done / seconds, 1) if seconds > 0 else 0.0,
               p50_ms=round(1e3 * percentile(latencies, 0.50), 3) if done else 0.0,
               p99_ms=round(1e3 * percentile(latencies, 0.99), 3) if done else 0.0)


async def run(address: str, count: int, concurrency: int, warmup: int, timeout: float,
              server_pid: int | None = None) -> dict[str, Run]:
    requests = quote_requests(warmup + count)
    batch_warmup = max(1, warmup // BATCH_SIZE)
    pages = batch_requests(batch_warmup + max(1, round(count * BATCHES_PER_QUOTE)))
    quote_ids: list[str] = [""] * len(requests)
    async with grpc.aio.insecure_channel(address) as channel:
        stub = pricing_pb2_grpc.PricingServiceStub(channel)

        async def quote(index: int) -> None:
            response = await stub.Quote(requests[index], timeout=timeout)
            quote_ids[index] = response.quote_id

        async def reward(index: int) -> None:
            await stub.Reward(pricing_pb2.RewardRequest(quote_id=quote_ids[warmup + index],
                                                        purchased=index % 3 == 0), timeout=timeout)

        async def quote_batch(index: int) -> None:
            await stub.QuoteBatch(pages[index], timeout=timeout)

        await drive(quote, warmup, min(concurrency, max(1, warmup)))
        quotes = await drive(lambda i: quote(warmup + i), count, concurrency, server_pid)
        rewards = await drive(reward, count, concurrency, server_pid)
        await drive(quote_batch, batch_warmup, min(concurrency, batch_warmup))
        batches = await drive(lambda i: quote_batch(batch_warmup + i), len(pages) - batch_warmup,
                              concurrency, server_pid)
    return {"quote": quotes, "reward": rewards, "quote_batch": replace(batches, quotes_per_call=BATCH_SIZE)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Drive a pricing.v1 server: Quote, Reward, QuoteBatch.")
    parser.add_argument("--address", required=True)
    parser.add_argument("--requests", type=int, default=2000, help="timed calls (QuoteBatch: a fifth)")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=200, help="untimed quotes first")
    parser.add_argument("--timeout", type=float, default=10.0, help="deadline of each call, seconds")
    parser.add_argument("--server-pid", type=int, help="report this process's CPU time per call")
    args = parser.parse_args(argv)
    result = asyncio.run(run(args.address, args.requests, args.concurrency, args.warmup, args.timeout,
                             args.server_pid))
    print(json.dumps({method: asdict(r) for method, r in result.items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
