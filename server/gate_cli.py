"""``pricebandit-gate``: the operator's command for the rollout gate (``OperatorService``).

    pricebandit-gate evaluate --candidate="--policy thompson --decay 0.999"
    pricebandit-gate switch --candidate="--alphas 0.3,0.4,0.5,0.6" --last-n 20000
    pricebandit-gate online                     # shadow -> online

The operator token comes from ``--token-file`` or ``PRICEBANDIT_OPERATOR_TOKEN``; who asks from
``--requested-by`` (default: the login name). Exit status: 0 evaluated or switched, 1 the switch was
refused (nothing changed), 2 the call failed (bad candidate, no credential, server unreachable).
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import grpc

from learner import cliargs
from pricing.v1 import pricing_pb2, pricing_pb2_grpc
from server.auth import read_token

EXIT_REFUSED = 1
EXIT_FAILED = 2
TOKEN_VARIABLE = "PRICEBANDIT_OPERATOR_TOKEN"


def parser() -> argparse.ArgumentParser:
    top = cliargs.CommandParser(prog="pricebandit-gate", description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    top.add_argument("action", choices=("evaluate", "switch", "online"),
                     help="evaluate: report only; switch: adopt the candidate if its lower 95%% bound beats "
                          "the running estimate; online: end shadow mode")
    top.add_argument("--candidate", default="", metavar="FLAGS",
                     help="learner settings to change, as pricebandit-server flags over the running ones; "
                          "write --candidate=\"--decay 0.999\"")
    top.add_argument("--address", default="127.0.0.1:50051", help="the server's gRPC address")
    top.add_argument("--last-n", type=cliargs.positive_int, default=0,
                     help="latest decision log entries to evaluate on (default: the server's, 10,000)")
    top.add_argument("--requested-by", default="", help="who asks, for the log (default: the login name)")
    top.add_argument("--token-file", type=cliargs.input_file,
                     help=f"file holding the operator token (or set {TOKEN_VARIABLE})")
    top.add_argument("--tls-ca-file", type=cliargs.input_file,
                     help="PEM CA bundle: connect over TLS, trusting the server certificates it signed")
    top.add_argument("--timeout", type=cliargs.positive, default=120.0,
                     help="seconds to wait for the answer (an evaluation replays the log)")
    return top


def _token(args: argparse.Namespace, environ: Mapping[str, str]) -> str:
    if args.token_file is not None:
        return read_token(args.token_file)
    return environ.get(TOKEN_VARIABLE, "").strip()


def _channel(address: str, ca_file: Path | None) -> grpc.Channel:
    if ca_file is None:
        return grpc.insecure_channel(address)
    return grpc.secure_channel(address, grpc.ssl_channel_credentials(ca_file.read_bytes()))


def _print(response: pricing_pb2.GateResponse) -> None:
    result = pricing_pb2.GateResponse.Result.Name(response.result).lower()
    print(f"{result}: {response.reason}")
    if response.decisions:
        for name in ("running", "candidate", "logged"):
            estimate = getattr(response, name)
            print(f"  {name:<9} profit per quote {estimate.value:.4f} "
                  f"[{estimate.low:.4f}, {estimate.high:.4f}]")
        print(f"  decisions {response.decisions:,}, candidate ESS {response.effective_sample_size:,.0f}, "
              f"could not take {response.could_not_take:.1%}")
    print(f"serving: mode {response.mode}, model {response.model_version}, configuration "
          f"{response.configuration}")


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    args = parser().parse_args(argv)
    environ = os.environ if environ is None else environ
    try:
        token = _token(args, environ)
    except (OSError, ValueError) as error:
        print(f"pricebandit-gate: {error}", file=sys.stderr)
        return EXIT_FAILED
    request = pricing_pb2.GateRequest(candidate=args.candidate, online=args.action == "online",
                                      last_n=args.last_n, requested_by=args.requested_by or getpass.getuser())
    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    with _channel(args.address, args.tls_ca_file) as channel:
        stub = pricing_pb2_grpc.OperatorServiceStub(channel)
        call = stub.Evaluate if args.action == "evaluate" else stub.Switch
        try:
            response = call(request, timeout=args.timeout, metadata=metadata)
        except grpc.RpcError as error:
            print(f"pricebandit-gate: {error.code().name}: {error.details()}", file=sys.stderr)
            return EXIT_FAILED
    _print(response)
    return EXIT_REFUSED if response.result == pricing_pb2.GateResponse.REFUSED else 0


if __name__ == "__main__":
    raise SystemExit(main())
