"""The baseline: pricing.v1.PricingService with handlers that do nothing but answer.

Same server model as the real one (sync gRPC, a thread pool of the same size, the same concurrency
limit and GIL switch interval) and the same message shapes (a QuoteResponse carries an 11-arm
explanation), so the ratio of the two servers is the cost of pricebandit's own work, not of gRPC.
"""

from __future__ import annotations

import argparse
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


class EmptyServicer(pricing_pb2_grpc.PricingServiceServicer):
    def __init__(self) -> None:
        self._quote = canned_quote()

    def Quote(self, request: pricing_pb2.QuoteRequest, context: grpc.ServicerContext
              ) -> pricing_pb2.QuoteResponse:
        return self._quote

    def Reward(self, request: pricing_pb2.RewardRequest, context: grpc.ServicerContext
               ) -> pricing_pb2.RewardResponse:
        return pricing_pb2.RewardResponse(quote_id=request.quote_id, learned=True,
                                          status=pricing_pb2.RewardResponse.LEARNED,
                                          model_version="linucb:0")


def serve(address: str) -> tuple[grpc.Server, int]:
    defaults = ServerConfig()
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=defaults.workers, thread_name_prefix="rpc"),
        maximum_concurrent_rpcs=defaults.max_concurrent_rpcs,
        options=[("grpc.so_reuseport", 0)],
    )
    pricing_pb2_grpc.add_PricingServiceServicer_to_server(EmptyServicer(), server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    port = server.add_insecure_port(address)
    server.start()
    return server, port


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="An empty-handler pricing.v1 server (benchmark baseline).")
    parser.add_argument("--address", default="127.0.0.1:0")
    args = parser.parse_args(argv)
    sys.setswitchinterval(GIL_SWITCH_INTERVAL)  # the same process model as the real server
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
