"""The baselines: pricing.v1.PricingService with handlers that do nothing but answer.

Two servers share the canned messages: the sync one has the real server's model (a thread pool of the
same size, the same concurrency limit and GIL switch interval), so against it the ratio is the cost of
pricebandit's own work; the ``--aio`` one is ``grpc.aio`` with async handlers on one event loop, what
Python gRPC itself can do on this machine, the floor issue 12 measures against. Both answer Quote with
an 11-arm explanation, QuoteBatch with one such quote per product, and Reward.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import threading
from collections.abc import Sequence
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from learner import DEFAULT_ALPHAS
from pricing.v1 import pricing_pb2, pricing_pb2_grpc
from server.cli import GIL_SWITCH_INTERVAL
from server.config import ServerConfig

SERVER_OPTIONS = [("grpc.so_reuseport", 0)]


def canned_quote() -> pricing_pb2.QuoteResponse:
    """A response of the real shape: one ArmEstimate per arm of the default grid."""
    return pricing_pb2.QuoteResponse(
        quote_id="q-00000000000000000000000000000000", price=70.0, alpha=0.5, arm=5, user_value=60.0,
        propensity=1.0, currency="USD", product_id="sku-1", model_version="linucb:0",
        explanation=pricing_pb2.Explanation(
            arms=[pricing_pb2.ArmEstimate(arm=i, alpha=a, price=40.0 + 60.0 * a, allowed=True,
                                          purchase_probability=0.5, expected_profit=30.0 * a,
                                          probability=float(i == 5))
                  for i, a in enumerate(DEFAULT_ALPHAS)],
            policy="linucb", deterministic=True, value_source="list_margin",
        ),
    )


class Canned:
    """The answers both empty servers give; a batch of n quotes is built once per n, not per call."""

    def __init__(self) -> None:
        self.quote = canned_quote()
        self._batches: dict[int, pricing_pb2.QuoteBatchResponse] = {}

    def batch(self, request: pricing_pb2.QuoteBatchRequest) -> pricing_pb2.QuoteBatchResponse:
        count = len(request.products)
        if count not in self._batches:  # a race only builds the same message twice
            self._batches[count] = pricing_pb2.QuoteBatchResponse(quotes=[self.quote] * count)
        return self._batches[count]

    @staticmethod
    def reward(request: pricing_pb2.RewardRequest) -> pricing_pb2.RewardResponse:
        return pricing_pb2.RewardResponse(quote_id=request.quote_id, learned=True,
                                          status=pricing_pb2.RewardResponse.LEARNED,
                                          model_version="linucb:0")


class EmptyServicer(pricing_pb2_grpc.PricingServiceServicer):
    def __init__(self) -> None:
        self._canned = Canned()

    def Quote(self, request: pricing_pb2.QuoteRequest, context: grpc.ServicerContext
              ) -> pricing_pb2.QuoteResponse:
        return self._canned.quote

    def QuoteBatch(self, request: pricing_pb2.QuoteBatchRequest, context: grpc.ServicerContext
                   ) -> pricing_pb2.QuoteBatchResponse:
        return self._canned.batch(request)

    def Reward(self, request: pricing_pb2.RewardRequest, context: grpc.ServicerContext
               ) -> pricing_pb2.RewardResponse:
        return self._canned.reward(request)


class AioEmptyServicer(pricing_pb2_grpc.PricingServiceServicer):
    """The same answers from coroutines, so ``grpc.aio`` serves them on its event loop, no threads."""

    def __init__(self) -> None:
        self._canned = Canned()

    async def Quote(self, request: pricing_pb2.QuoteRequest,
                    context: grpc.aio.ServicerContext) -> pricing_pb2.QuoteResponse:
        return self._canned.quote

    async def QuoteBatch(self, request: pricing_pb2.QuoteBatchRequest,
                         context: grpc.aio.ServicerContext) -> pricing_pb2.QuoteBatchResponse:
        return self._canned.batch(request)

    async def Reward(self, request: pricing_pb2.RewardRequest,
                     context: grpc.aio.ServicerContext) -> pricing_pb2.RewardResponse:
        return self._canned.reward(request)


def serve(address: str) -> tuple[grpc.Server, int]:
    defaults = ServerConfig()
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=defaults.workers, thread_name_prefix="rpc"),
        maximum_concurrent_rpcs=defaults.max_concurrent_rpcs, options=SERVER_OPTIONS,
    )
    pricing_pb2_grpc.add_PricingServiceServicer_to_server(EmptyServicer(), server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    port = server.add_insecure_port(address)
    server.start()
    return server, port


async def serve_aio(address: str) -> None:
    """Serve with ``grpc.aio`` until SIGTERM or SIGINT."""
    server = grpc.aio.server(maximum_concurrent_rpcs=ServerConfig().max_concurrent_rpcs,
                             options=SERVER_OPTIONS)
    pricing_pb2_grpc.add_PricingServiceServicer_to_server(AioEmptyServicer(), server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    port = server.add_insecure_port(address)
    await server.start()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    print(f"serving on port {port}", flush=True)
    await stop.wait()
    await server.stop(1)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="An empty-handler pricing.v1 server (benchmark baseline).")
    parser.add_argument("--address", default="127.0.0.1:0")
    parser.add_argument("--aio", action="store_true", help="grpc.aio with async handlers, not sync gRPC")
    args = parser.parse_args(argv)
    sys.setswitchinterval(GIL_SWITCH_INTERVAL)  # the same process model as the real server
    if args.aio:
        asyncio.run(serve_aio(args.address))
        return 0
    server, port = serve(args.address)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    print(f"serving on port {port}", flush=True)
    stop.wait()
    server.stop(1).wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
