"""``python -m bench.replicas``: one and two replicas on one redis-server under the same client load:
calls per second (reported, not a floor: on a 2-core machine the client, Redis and the servers share
the cores), how far a replica's model falls behind the log meanwhile (``pricebandit_log_lag_entries``,
sampled every 50 ms), how long the replicas take to drain it once the load stops, and what a Redis
restart costs: SIGKILL until every replica's health says NOT_SERVING, and from the start (from the
append-only file) until every one says SERVING again.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.load import quote_requests
from bench.process import ServerProcess, gauge
from bench.redis_process import RedisProcess
from learner import cliargs
from pricing.v1 import pricing_pb2, pricing_pb2_grpc
from server.pseudonyms import UserIdKey

SAMPLE_SECONDS = 0.05
LAG = "pricebandit_log_lag_entries"


@dataclass(frozen=True)
class ReplicaRun:
    replicas: int
    calls_per_second: float  # quotes and rewards
    max_lag: float
    drain_seconds: float  # from the end of the load until every replica's lag is 0
    noticed_seconds: float  # Redis SIGKILLed until every replica's health is NOT_SERVING
    back_seconds: float  # Redis started again (from its append-only file) until every replica serves


def checkout(addresses: list[str], seed: int, stop_at: float, done: list[int]) -> None:
    """Quote on one replica, reward on the next, until ``stop_at``."""
    channels = [grpc.insecure_channel(address) for address in addresses]
    stubs = [pricing_pb2_grpc.PricingServiceStub(channel) for channel in channels]
    calls, i = 0, 0
    requests = quote_requests(500, seed=seed)
    while time.monotonic() < stop_at:
        request = requests[i % len(requests)]
        request.quote_id = f"s{seed}-{i}"
        stubs[i % len(stubs)].Quote(request, timeout=10)
        stubs[(i + 1) % len(stubs)].Reward(pricing_pb2.RewardRequest(quote_id=request.quote_id,
                                                                     purchased=i % 3 == 0), timeout=10)
        calls, i = calls + 2, i + 1
    for channel in channels:
        channel.close()
    done.append(calls)


def serving(address: str) -> bool:
    with grpc.insecure_channel(address) as channel:
        try:
            answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1)
        except grpc.RpcError:
            return False
    return bool(answer.status == health_pb2.HealthCheckResponse.SERVING)


def until(condition: Callable[[], bool], what: str, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not within {seconds:g} s")
        time.sleep(0.01)


def run(replicas: int, clients: int, seconds: float, folder: Path) -> ReplicaRun:
    redis = RedisProcess(folder / "redis")
    key_file = folder / "user-id.key"
    UserIdKey.create(key_file)
    group = [ServerProcess(folder / f"replica{i}", "--store", redis.url, "--user-id-key-file",
                           str(key_file)) for i in range(replicas)]
    try:
        addresses = [child.wait_until_serving() for child in group]
        stop_at = time.monotonic() + seconds
        done: list[int] = []
        lags: list[float] = []
        threads = [threading.Thread(target=checkout, args=(addresses, seed, stop_at, done))
                   for seed in range(clients)]
        for thread in threads:
            thread.start()
        while time.monotonic() < stop_at:
            lags += [gauge(child.metrics_port, LAG) for child in group]
            time.sleep(SAMPLE_SECONDS)
        for thread in threads:
            thread.join()
        ended = time.monotonic()
        until(lambda: not any(gauge(child.metrics_port, LAG) for child in group), "the lag drained")
        drained = time.monotonic() - ended
        redis.kill()
        killed = time.monotonic()
        until(lambda: not any(serving(address) for address in addresses), "every replica said NOT_SERVING")
        noticed = time.monotonic() - killed
        redis.start()
        started = time.monotonic()
        until(lambda: all(serving(address) for address in addresses), "every replica served again")
        back = time.monotonic() - started
    finally:
        for child in group:
            child.process.kill()
            child.finish()
        redis.stop()
    return ReplicaRun(replicas, sum(done) / seconds, max(lags, default=0.0), drained, noticed, back)


def main(argv: Sequence[str] | None = None) -> int:
    parser = cliargs.CommandParser(prog="python -m bench.replicas", description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=cliargs.positive_int, default=8, help="client threads (default 8)")
    parser.add_argument("--seconds", type=cliargs.positive, default=5.0, help="load per run (default 5)")
    args = parser.parse_args(argv)
    print("| replicas | calls/s (quote + reward) | max log lag (entries) | drain after load (s) | "
          "Redis killed: all NOT_SERVING after (s) | Redis started: all SERVING after (s) |")
    print("|---|---|---|---|---|---|")
    for replicas in (1, 2):
        with tempfile.TemporaryDirectory() as scratch:
            result = run(replicas, args.clients, args.seconds, Path(scratch))
        print(f"| {result.replicas} | {result.calls_per_second:,.0f} | {result.max_lag:.0f} | "
              f"{result.drain_seconds:.3f} | {result.noticed_seconds:.2f} | {result.back_seconds:.2f} |",
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
