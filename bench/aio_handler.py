"""``python -m bench.aio_handler``: the real Quote handler behind ``grpc.aio``, against the server.

Issue 12 asks what ``grpc.aio`` does for our real handler, not an empty one. This starts, each as
its own process with its own data dir: ``pricebandit-server`` as it runs (sync grpcio, a thread
pool), and the same ``PricingService`` (built by ``server.app.build_server``) behind a ``grpc.aio``
server whose Quote runs the service on the event loop (``aio inline``) or on the loop's default
executor (``aio thread``). h2load drives each with Quote on one connection at concurrency 1 and 32;
the servers take turns for ``--rounds`` rounds. CPU is the server process's.

The aio variants serve Quote and a health Check only, with none of the server's interceptors
(admission, request ids, metrics, tokens) nor the edge's raw-byte decoding and error mapping: they
measure the server model under our real work, not a server to deploy.

    python -m bench.aio_handler                  # 2 rounds of 2,000 calls per row
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2

from bench.load import BENCH_KEY, quote_requests
from bench.process import free_port
from bench.servers import Row, h2load, process
from pricing.v1 import pricing_pb2
from server.app import build_server
from server.config import parse_config
from server.servicer import quote_response
from server.validation import RequestReader

SYNC, INLINE, THREAD = "sync (pricebandit-server)", "aio inline", "aio thread"
MODES = {INLINE: "inline", THREAD: "thread"}


def quote_handler(data_dir: str) -> Callable[[bytes, Callable[[], float | None]], bytes]:
    """The server's Quote work on raw bytes: decode, validate, ``PricingService.quote``, encode."""
    config = parse_config(["--port", "0", "--metrics-port", "0", "--data-dir", data_dir,
                           "--log-level", "WARNING"], environ={})
    running = build_server(config)  # its own sync server stays idle on a port of its own
    running.load()
    service = running.service
    reader = RequestReader(service.pricer.features, config.currency, config.max_batch, BENCH_KEY.pseudonym)

    def quote(raw: bytes, time_left: Callable[[], float | None]) -> bytes:
        """aio's ``time_remaining`` is None for a call with no deadline (h2load's), the service's
        clock infinity."""
        def left() -> float:
            remaining = time_left()
            return math.inf if remaining is None else remaining

        request = pricing_pb2.QuoteRequest.FromString(raw)
        (decision,) = service.quote([reader.quote(request)], caller_ids=bool(request.quote_id),
                                    time_left=left)
        return quote_response(decision).SerializeToString()

    return quote


async def serve(port: int, data_dir: str, mode: str) -> None:
    quote = quote_handler(data_dir)

    async def on_quote(raw: bytes, context: grpc.aio.ServicerContext) -> bytes:
        if mode == "inline":
            return quote(raw, context.time_remaining)
        return await asyncio.get_running_loop().run_in_executor(None, quote, raw, context.time_remaining)

    serving = health_pb2.HealthCheckResponse(
        status=health_pb2.HealthCheckResponse.SERVING).SerializeToString()

    async def on_check(raw: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return serving

    server = grpc.aio.server()
    server.add_generic_rpc_handlers((
        grpc.method_handlers_generic_handler("pricing.v1.PricingService", {
            "Quote": grpc.unary_unary_rpc_method_handler(on_quote)}),
        grpc.method_handlers_generic_handler("grpc.health.v1.Health", {
            "Check": grpc.unary_unary_rpc_method_handler(on_check)}),
    ))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


def command(name: str, port: int, data_dir: str) -> list[str]:
    if name == SYNC:
        return [sys.executable, "-m", "server.cli", "--port", str(port), "--metrics-port", "0",
                "--data-dir", data_dir, "--log-level", "WARNING"]
    return [sys.executable, "-m", "bench.aio_handler", "serve", "--port", str(port), "--data-dir", data_dir,
            "--mode", MODES[name]]


def answered(address: str) -> None:
    """One Quote through a gRPC client must come back priced: h2load counts a call by its HTTP status,
    which is 200 for a call that failed with a gRPC status too. Sent with no deadline, as h2load's."""
    with grpc.insecure_channel(address) as channel:
        call = channel.unary_unary("/pricing.v1.PricingService/Quote",
                                   request_serializer=pricing_pb2.QuoteRequest.SerializeToString,
                                   response_deserializer=pricing_pb2.QuoteResponse.FromString)
        answer = call.future(quote_requests(1)[0]).result(timeout=10.0)
        if not answer.quote_id or answer.price <= 0:
            raise RuntimeError(f"{address} answered an unpriced Quote: {answer}")


def compare(rounds: int, requests: int, concurrencies: Sequence[int]) -> list[tuple[int, str, Row]]:
    """(round, server, h2load row) for every turn; empty when h2load is not installed."""
    rows = []
    for turn in range(rounds):
        for name in (SYNC, INLINE, THREAD):
            with tempfile.TemporaryDirectory() as folder:
                port = free_port()
                address = f"127.0.0.1:{port}"
                with process(command(name, port, str(Path(folder) / "data")), address) as pid:
                    answered(address)
                    if h2load(address, pid, max(requests // 10, 10), max(concurrencies),
                              Path(folder)) is None:
                        return []
                    for concurrency in concurrencies:
                        row = h2load(address, pid, requests, concurrency, Path(folder))
                        assert row is not None
                        rows.append((turn, name, row))
    return rows


def report(rows: Sequence[tuple[int, str, Row]]) -> str:
    lines = ["| round | server | concurrency | req/s | p50 ms | p99 ms | CPU µs/call | CPU ÷ sync | "
             "req/s ÷ sync | errors |", "|---|---|---|---|---|---|---|---|---|---|"]
    sync = {(turn, row.concurrency): row for turn, name, row in rows if name == SYNC}
    for turn, name, row in rows:
        base = sync[(turn, row.concurrency)]
        cpu = "" if row.server_cpu_us is None or not base.server_cpu_us else \
            f"{row.server_cpu_us / base.server_cpu_us:.2f}"
        lines.append(f"| {turn} | {name} | {row.concurrency} | {row.throughput:.0f} | {row.p50_ms} | "
                     f"{row.p99_ms} | {row.server_cpu_us} | {cpu} | {row.throughput / base.throughput:.2f} | "
                     f"{row.errors} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    top = argparse.ArgumentParser(prog="python -m bench.aio_handler", description=__doc__.split("\n")[0])
    sub = top.add_subparsers(dest="command")
    child = sub.add_parser("serve", help="one aio server (what the comparison starts)")
    child.add_argument("--port", type=int, required=True)
    child.add_argument("--data-dir", required=True)
    child.add_argument("--mode", choices=sorted(MODES.values()), required=True)
    top.add_argument("--rounds", type=int, default=2)
    top.add_argument("--requests", type=int, default=2000)
    top.add_argument("--concurrency", default="1,32", help="comma-separated h2load streams in flight")
    args = top.parse_args(argv)
    if args.command == "serve":
        asyncio.run(serve(args.port, args.data_dir, args.mode))
        return 0
    rows = compare(args.rounds, args.requests, [int(c) for c in args.concurrency.split(",")])
    print(report(rows) if rows else "h2load is not installed: nothing measured")
    return 0


if __name__ == "__main__":
    sys.exit(main())
