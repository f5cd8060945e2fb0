"""Overload: many callers with short deadlines against a real server process; how much of the work
the server completed was for callers who had already left (issue 11, item 7).

Each caller quotes in a loop with its own quote ids and a deadline; one who got DEADLINE_EXCEEDED
has left. After SIGTERM, the state file says which quotes the server stored (pending or closed): the
share of those whose caller had left is work done for no one. Before the fix, with 200 callers and
100 ms deadlines, it was 78%.
"""

from __future__ import annotations

import signal
import sqlite3
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from bench.load import cpu_seconds
from bench.process import ServerProcess
from pricing.v1 import pricing_pb2, pricing_pb2_grpc

PRODUCT = pricing_pb2.Product(product_id="sku-1", category="shoes", unit_cost=40.0, list_price=100.0)


@dataclass
class OverloadReport:
    callers: int
    deadline_seconds: float
    seconds: float
    codes: dict[str, int] = field(default_factory=dict)  # what the callers were told
    stored: int = 0  # quotes the server completed (in the state file)
    stored_for_departed: int = 0  # of those, quotes whose caller had got DEADLINE_EXCEEDED
    server_cpu_seconds: float = 0.0  # user + system, over the load
    exit_code: int = -1

    @property
    def departed_share(self) -> float:
        return self.stored_for_departed / self.stored if self.stored else 0.0


def _caller(address: str, index: int, deadline: float, stop_at: float, codes: Counter[str],
            departed: set[str], lock: threading.Lock) -> None:
    local: Counter[str] = Counter()
    gone: set[str] = set()
    with grpc.insecure_channel(address) as channel:
        stub = pricing_pb2_grpc.PricingServiceStub(channel)
        calls = 0
        while time.monotonic() < stop_at:
            quote_id = f"o{index}-{calls}"
            calls += 1
            try:
                stub.Quote(pricing_pb2.QuoteRequest(user_id=f"u-{index}", product=PRODUCT,
                                                    quote_id=quote_id), timeout=deadline)
                local["OK"] += 1
            except grpc.RpcError as error:
                local[error.code().name] += 1
                if error.code() is grpc.StatusCode.DEADLINE_EXCEEDED:
                    gone.add(quote_id)
    with lock:
        codes.update(local)
        departed.update(gone)


def stored_quote_ids(state_file: Path) -> set[str]:
    """Every quote id the server stored: still pending, or closed in the decision log."""
    with sqlite3.connect(state_file) as db:
        rows = db.execute("SELECT quote_id FROM pending UNION SELECT quote_id FROM decision_log")
        return {quote_id for (quote_id,) in rows}


def run_overload(callers: int = 200, deadline_seconds: float = 0.1, seconds: float = 20.0
                 ) -> OverloadReport:
    report = OverloadReport(callers=callers, deadline_seconds=deadline_seconds, seconds=seconds)
    codes: Counter[str] = Counter()
    departed: set[str] = set()
    lock = threading.Lock()
    with tempfile.TemporaryDirectory() as scratch:
        server = ServerProcess(Path(scratch))
        try:
            address = server.wait_until_serving()
            stop_at = time.monotonic() + seconds
            threads = [threading.Thread(target=_caller, args=(address, i, deadline_seconds, stop_at, codes,
                                                              departed, lock)) for i in range(callers)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            report.server_cpu_seconds = cpu_seconds(server.process.pid) or 0.0
        finally:
            server.process.send_signal(signal.SIGTERM)
            report.exit_code, _ = server.finish()
        stored = stored_quote_ids(Path(scratch) / "pricebandit.sqlite3")
    report.codes = dict(sorted(codes.items()))
    report.stored = len(stored)
    report.stored_for_departed = len(stored & departed)
    return report
