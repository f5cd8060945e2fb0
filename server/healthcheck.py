"""``pricebandit-healthcheck``: exit 0 when the server's gRPC health service says SERVING.

Used by the Docker HEALTHCHECK and handy for ops: ``pricebandit-healthcheck --address host:port``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pricebandit-healthcheck", description=__doc__)
    default = f"127.0.0.1:{os.environ.get('PRICEBANDIT_PORT', '50051')}"
    parser.add_argument("--address", default=default, help=f"server address (default {default})")
    parser.add_argument("--timeout", type=float, default=2.0, help="seconds to wait for the answer")
    parser.add_argument("--tls-ca-file", type=Path, default=os.environ.get("PRICEBANDIT_HEALTHCHECK_CA"),
                        help="PEM CA that signed the server's certificate: connect over TLS")
    args = parser.parse_args(argv)
    if args.tls_ca_file:
        credentials = grpc.ssl_channel_credentials(Path(args.tls_ca_file).read_bytes())
        channel = grpc.secure_channel(args.address, credentials)
    else:
        channel = grpc.insecure_channel(args.address)
    try:
        with channel:
            answer = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service="pricing.v1.PricingService"), timeout=args.timeout
            )
    except grpc.RpcError as error:
        print(f"{args.address}: {error.code().name} {error.details()}", file=sys.stderr)
        return 1
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)
    print(f"{args.address}: {status}")
    return 0 if answer.status == health_pb2.HealthCheckResponse.SERVING else 1


if __name__ == "__main__":
    sys.exit(main())
