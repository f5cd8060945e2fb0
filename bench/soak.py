"""Soak: sustained loopback load on a real server process, mostly quotes nobody rewards.

Reports requests served, errors by code, the server's peak RSS, and whether pending quotes stay
bounded: a quote unrewarded past its window is learned as no purchase and leaves the pending table,
so neither memory nor the pending count may grow with the length of the run.

    python -m bench.soak --seconds 180            # the full form (a few minutes)
    python -m bench.soak --seconds 5 --clients 2  # the short form CI runs (tests/test_soak.py)
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import grpc

from bench.process import ServerProcess, gauge
from pricing.v1 import pricing_pb2, pricing_pb2_grpc

CATALOG = [pricing_pb2.Product(product_id=f"sku-{i}", category=f"cat-{i % 7}", unit_cost=10.0 + i,
                               list_price=(10.0 + i) * (1.2 + 0.01 * i)) for i in range(100)]
BAD_PRODUCT = pricing_pb2.Product(product_id="sku-bad", unit_cost=-1.0, list_price=5.0)
EXPECTED_ERRORS = {"INVALID_ARGUMENT"}


@dataclass
class SoakReport:
    seconds: float
    clients: int
    reward_window_seconds: float
    calls: dict[str, int] = field(default_factory=dict)
    unexpected_errors: int = 0
    calls_per_second: float = 0.0
    rss_after_warmup_mib: float = 0.0
    rss_end_mib: float = 0.0
    peak_rss_mib: float = 0.0
    peak_pending_quotes: float = 0.0
    pending_after_drain: float = -1.0
    exit_code: int = -1


def rss_mib(pid: int) -> tuple[float, float]:
    """Current and peak resident memory of ``pid`` in MiB (from /proc)."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    return values.get("VmRSS", 0.0), values.get("VmHWM", 0.0)


def pending_quotes(metrics_port: int) -> float:
    return gauge(metrics_port, "pricebandit_pending_quotes")


def client(address: str, seed: int, stop_at: float, calls: Counter[str], lock: threading.Lock) -> None:
    """One checkout: quotes (a third rewarded), a few batches and a few bad requests, until stop_at."""
    rng = random.Random(seed)
    local: Counter[str] = Counter()
    with grpc.insecure_channel(address) as channel:
        stub = pricing_pb2_grpc.PricingServiceStub(channel)
        while time.monotonic() < stop_at:
            roll = rng.random()
            try:
                if roll < 0.02:
                    kind = "Quote(bad)"
                    stub.Quote(pricing_pb2.QuoteRequest(user_id="u", product=BAD_PRODUCT), timeout=5)
                elif roll < 0.07:
                    kind = "QuoteBatch"
                    stub.QuoteBatch(pricing_pb2.QuoteBatchRequest(
                        user_id=f"u-{rng.randrange(10**6)}", products=rng.sample(CATALOG, 10)), timeout=5)
                else:
                    kind = "Quote"
                    quote = stub.Quote(pricing_pb2.QuoteRequest(
                        user_id=f"u-{rng.randrange(10**6)}", product=rng.choice(CATALOG),
                        context={"is_mobile": float(rng.random() < 0.5)}), timeout=5)
                    if rng.random() < 0.33:
                        kind = "Quote+Reward"
                        stub.Reward(pricing_pb2.RewardRequest(quote_id=quote.quote_id,
                                                              purchased=rng.random() < 0.3), timeout=5)
                local[f"{kind} OK"] += 1
            except grpc.RpcError as error:
                local[f"{kind} {error.code().name}"] += 1
    with lock:
        calls.update(local)


def run_soak(seconds: float, clients: int = 4, reward_window_seconds: float = 2.0,
             data_dir: Path | None = None) -> SoakReport:
    report = SoakReport(seconds=seconds, clients=clients, reward_window_seconds=reward_window_seconds)
    with tempfile.TemporaryDirectory() as scratch:
        server = ServerProcess(data_dir or Path(scratch), "--reward-window-seconds",
                               str(reward_window_seconds))
        try:
            address = server.wait_until_serving()
            calls: Counter[str] = Counter()
            lock = threading.Lock()
            started = time.monotonic()
            stop_at = started + seconds
            threads = [threading.Thread(target=client, args=(address, i, stop_at, calls, lock))
                       for i in range(clients)]
            for thread in threads:
                thread.start()
            while time.monotonic() < stop_at:
                time.sleep(min(0.5, max(0.0, stop_at - time.monotonic())))
                rss, _ = rss_mib(server.process.pid)
                if not report.rss_after_warmup_mib and time.monotonic() - started > seconds / 4:
                    report.rss_after_warmup_mib = rss
                report.peak_pending_quotes = max(report.peak_pending_quotes,
                                                 pending_quotes(server.metrics_port))
            for thread in threads:
                thread.join()
            report.rss_end_mib, report.peak_rss_mib = rss_mib(server.process.pid)
            time.sleep(reward_window_seconds + 1.0)  # every pending quote's window closes
            report.pending_after_drain = pending_quotes(server.metrics_port)
            report.calls = dict(sorted(calls.items()))
            report.unexpected_errors = sum(
                count for key, count in calls.items()
                if not key.endswith(" OK") and not (key.startswith("Quote(bad)")
                                                    and key.split()[-1] in EXPECTED_ERRORS))
            report.calls_per_second = sum(calls.values()) / seconds
        finally:
            server.process.send_signal(signal.SIGTERM)
            report.exit_code, _ = server.finish()
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--reward-window-seconds", type=float, default=2.0)
    parser.add_argument("--output", type=Path, help="also write the report as JSON here")
    args = parser.parse_args()
    report = run_soak(args.seconds, args.clients, args.reward_window_seconds)
    for key, value in asdict(report).items():
        print(f"{key:>24}: {value}")
    if args.output:
        args.output.write_text(json.dumps(asdict(report), indent=2))


if __name__ == "__main__":
    main()
