"""Malformed request bytes against a real server process, as a hostile client sends them.

Each payload is random bytes, a valid request truncated or with bits flipped, a valid request whose
strings are invalid UTF-8, or a request with a huge repeated field (one just past the message size
limit too), sent to every pricing method, Observe as garbage streams. Then a run of requests that
certainly do not decode (some bit flips and truncations still make a valid request, which is
priced and stored, and storing is not a leak), with the server's RSS after a warm-up and at the end.
Reports the codes by kind (INTERNAL and UNKNOWN must be 0), tracebacks in the server's log, the RSS
and how long SIGTERM takes to drain after all that (issue 11, item 4).
"""

from __future__ import annotations

import math
import random
import signal
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from google.protobuf.message import DecodeError, Message
from google.protobuf.timestamp_pb2 import Timestamp

from bench.process import ServerProcess
from bench.soak import rss_mib
from pricing.v1 import pricing_pb2

SERVICE = "/pricing.v1.PricingService/"
REQUEST_TYPES: dict[str, type[Message]] = {
    "Quote": pricing_pb2.QuoteRequest, "QuoteBatch": pricing_pb2.QuoteBatchRequest,
    "Reward": pricing_pb2.RewardRequest, "Observe": pricing_pb2.BehaviorEvent,
}
MARK = "MARKMARK"
KINDS = ("random", "truncated", "bit_flipped", "invalid_utf8", "huge_repeated")
FAILURES = frozenset({"INTERNAL", "UNKNOWN"})
WARMUP_CALLS = 500
OVER_LIMIT = (1 << 20) + 1024  # past the server's default --max-message-bytes


def _event(user_id: str = "u-1") -> pricing_pb2.BehaviorEvent:
    return pricing_pb2.BehaviorEvent(user_id=user_id, timestamp=Timestamp(seconds=1767225600),
                                     event_type=pricing_pb2.BehaviorEvent.VIEW, product_id="sku-1",
                                     category="shoes", price=95.0, unit_cost=40.0, list_price=100.0)


def _product(product_id: str = "sku-1") -> pricing_pb2.Product:
    return pricing_pb2.Product(product_id=product_id, category="shoes", unit_cost=40.0, list_price=100.0)


TEMPLATES: dict[str, bytes] = {
    "Quote": pricing_pb2.QuoteRequest(user_id=MARK, product=_product(), context={"is_mobile": 1.0},
                                      recent_events=[_event()]).SerializeToString(),
    "QuoteBatch": pricing_pb2.QuoteBatchRequest(user_id=MARK, products=[_product(), _product("sku-2")]
                                                ).SerializeToString(),
    "Reward": pricing_pb2.RewardRequest(quote_id=MARK, purchased=True).SerializeToString(),
    "Observe": _event(MARK).SerializeToString(),
}


def _huge(method: str, rng: random.Random) -> bytes:
    """A request with a huge repeated field: under the size limit (decoded, then refused), or just over."""
    over = rng.random() < 0.2
    count = 30_000 if over else rng.choice((500, 5_000))
    if method == "QuoteBatch":
        message = pricing_pb2.QuoteBatchRequest(user_id="u-1", products=[_product()] * count)
    elif method == "Quote":
        message = pricing_pb2.QuoteRequest(user_id="u-1", product=_product(),
                                           recent_events=[_event()] * (count // 2))
    elif method == "Observe":
        message = _event()  # a stream's message is one event: huge means a huge string field
        message.category = "x" * (OVER_LIMIT if over else 100_000)
        return message.SerializeToString()
    else:
        message = pricing_pb2.RewardRequest(quote_id="q" * (OVER_LIMIT if over else 100_000))
    raw = message.SerializeToString()
    return raw + raw[: max(0, OVER_LIMIT - len(raw))] if over else raw


def payload(method: str, kind: str, rng: random.Random) -> bytes:
    """One malformed request of ``kind`` for ``method``."""
    template = TEMPLATES[method]
    if kind == "random":
        return rng.randbytes(rng.randint(1, 64))
    if kind == "truncated":
        return template[: rng.randrange(1, len(template))]
    if kind == "bit_flipped":
        flipped = bytearray(template)
        for _ in range(rng.randint(1, 3)):
            flipped[rng.randrange(len(flipped))] ^= 1 << rng.randrange(8)
        return bytes(flipped)
    if kind == "invalid_utf8":
        return template.replace(MARK.encode(), b"\xff\xfe\xc3(" + rng.randbytes(4))
    return _huge(method, rng)


def undecodable(method: str, rng: random.Random) -> bytes:
    """A malformed request for ``method`` that does not decode as its message type."""
    message_type = REQUEST_TYPES[method]
    while True:
        raw = payload(method, rng.choice(KINDS[:-1]), rng)
        try:
            message_type.FromString(raw)
        except DecodeError:
            return raw


@dataclass
class MalformedReport:
    sent: int = 0
    undecodable_sent: int = 0
    codes: dict[str, int] = field(default_factory=dict)  # "<kind> <code>" -> calls
    failures: int = 0  # INTERNAL or UNKNOWN answers
    tracebacks_logged: int = 0
    rss_before_mib: float = 0.0
    rss_after_mib: float = 0.0
    sigterm_exit_code: int = -1
    sigterm_seconds: float = 0.0

    @property
    def rss_growth_mib(self) -> float:
        return self.rss_after_mib - self.rss_before_mib


def terminate(server: ServerProcess, patience: float) -> tuple[int, float, str]:
    """SIGTERM ``server``: its exit code, seconds to exit and log; SIGKILL (code -9, seconds inf) if
    it has not exited after ``patience`` seconds, as before issue 11 it hung for good."""
    started = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    try:
        code, log = server.finish(seconds=patience)
    except subprocess.TimeoutExpired:
        server.process.kill()
        _, log = server.finish()
        return -signal.SIGKILL, math.inf, log
    return code, time.monotonic() - started, log


def _send(channel: grpc.Channel, method: str, raw: bytes) -> str:
    try:
        if method == "Observe":  # a garbage event between two valid ones
            valid = TEMPLATES["Observe"].replace(MARK.encode(), b"u-1")
            channel.stream_unary(SERVICE + method)(iter([valid, raw, valid]), timeout=10)
        else:
            channel.unary_unary(SERVICE + method)(raw, timeout=10)
    except grpc.RpcError as error:
        return str(error.code().name)
    return "OK"


def _mixed(method: str, rng: random.Random) -> tuple[str, bytes]:
    kind = rng.choice(KINDS)
    if kind == "huge_repeated" and rng.random() < 0.95:  # costly to build: keep them few
        kind = "random"
    return kind, payload(method, kind, rng)


def _undecodable(method: str, rng: random.Random) -> tuple[str, bytes]:
    return "undecodable", undecodable(method, rng)


def _drive(address: str, seed: int, calls: int, make: Callable[[str, random.Random], tuple[str, bytes]],
           tally: Callable[[str, str], None]) -> None:
    rng = random.Random(seed)
    methods = list(TEMPLATES)
    with grpc.insecure_channel(address) as channel:
        for _ in range(calls):
            method = rng.choice(methods)
            kind, raw = make(method, rng)
            tally(kind, _send(channel, method, raw))


def _in_threads(clients: int, target: Callable[[int], None]) -> None:
    threads = [threading.Thread(target=target, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def run_malformed(calls: int, undecodable_calls: int, clients: int = 4, seed: int = 0,
                  grace_seconds: float = 5.0) -> MalformedReport:
    """Send ``calls`` malformed requests of every kind, then (after a warm-up) ``undecodable_calls``
    requests that do not decode, with the RSS around those, from ``clients`` threads; then SIGTERM."""
    report = MalformedReport()
    counts: Counter[str] = Counter()
    lock = threading.Lock()

    def tally(kind: str, code: str) -> None:
        with lock:
            counts[f"{kind} {code}"] += 1

    with tempfile.TemporaryDirectory() as scratch:
        server = ServerProcess(Path(scratch), "--shutdown-grace-seconds", str(grace_seconds))
        try:
            address = server.wait_until_serving()
            _in_threads(clients, lambda i: _drive(address, seed + i, calls // clients, _mixed, tally))
            _drive(address, seed - 1, WARMUP_CALLS, _undecodable, lambda _kind, _code: None)
            report.rss_before_mib, _ = rss_mib(server.process.pid)
            _in_threads(clients, lambda i: _drive(address, seed + clients + i, undecodable_calls // clients,
                                                  _undecodable, tally))
            report.rss_after_mib, _ = rss_mib(server.process.pid)
        finally:
            report.sigterm_exit_code, report.sigterm_seconds, log = terminate(server, grace_seconds + 30)
    report.codes = dict(sorted(counts.items()))
    report.sent = sum(counts.values())
    report.undecodable_sent = sum(n for key, n in counts.items() if key.startswith("undecodable "))
    report.failures = sum(n for key, n in counts.items() if key.split()[-1] in FAILURES)
    report.tracebacks_logged = log.count("Traceback")
    return report
