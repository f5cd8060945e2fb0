"""``pricebandit-healthcheck``: exit 0 when the server's gRPC health service says SERVING.

Used by the Docker HEALTHCHECK and by ops (``pricebandit-healthcheck --port 50051``). It prints the
status and, when there is one, the server's detail (``server/health.py``): why it is not serving, or
that a replica is behind the outcome log.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from learner import cliargs
from server.health import DETAIL_KEY

DEFAULT_PORT = 50051


def parse_args(argv: Sequence[str] | None, environ: Mapping[str, str]) -> argparse.Namespace:
    """Flags over the server's own variables (``PRICEBANDIT_PORT``), so a container needs no flags."""
    parser = cliargs.CommandParser(
        prog="pricebandit-healthcheck", allow_abbrev=False,
        description="Exit 0 when the pricebandit server's gRPC health service answers SERVING, else 1 "
                    "(2 for a bad flag).",
        epilog="Environment: PRICEBANDIT_PORT (the server's port) is the default of --port; "
               "PRICEBANDIT_HEALTHCHECK_CA the default of --tls-ca-file.",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--port", type=cliargs.port,
                       help=f"probe 127.0.0.1:PORT (default: $PRICEBANDIT_PORT, else {DEFAULT_PORT})")
    where.add_argument("--address", metavar="HOST:PORT", help="probe this address instead")
    parser.add_argument("--timeout", type=cliargs.positive, default=2.0,
                        help="seconds to wait for the answer (default: 2)")
    parser.add_argument("--tls-ca-file", type=cliargs.input_file,
                        help="PEM CA that signed the server's certificate: connect over TLS "
                             "(default: $PRICEBANDIT_HEALTHCHECK_CA)")
    args = parser.parse_args(argv)
    for name, variable, parse in (("port", "PRICEBANDIT_PORT", cliargs.port),
                                  ("tls_ca_file", "PRICEBANDIT_HEALTHCHECK_CA", cliargs.input_file)):
        from_environment = cliargs.environment_value(parser, environ, variable, parse)
        if getattr(args, name) is None:
            setattr(args, name, from_environment)
    if args.address is None:
        args.address = f"127.0.0.1:{DEFAULT_PORT if args.port is None else args.port}"
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv, os.environ)
    if args.tls_ca_file:
        credentials = grpc.ssl_channel_credentials(Path(args.tls_ca_file).read_bytes())
        channel = grpc.secure_channel(args.address, credentials)
    else:
        channel = grpc.insecure_channel(args.address)
    try:
        with channel:
            answer, call = health_pb2_grpc.HealthStub(channel).Check.with_call(
                health_pb2.HealthCheckRequest(service="pricing.v1.PricingService"), timeout=args.timeout
            )
            detail = dict(call.initial_metadata() or ()).get(DETAIL_KEY, "")
    except grpc.RpcError as error:
        print(f"{args.address}: {error.code().name} {error.details()}", file=sys.stderr)
        return 1
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)
    print(f"{args.address}: {status}" + (f" ({detail})" if detail else ""))
    return 0 if answer.status == health_pb2.HealthCheckResponse.SERVING else 1


if __name__ == "__main__":
    sys.exit(main())
