"""A store fault as a careless operator makes one: the state file deleted under a running server.

Measures how long health takes to say ``NOT_SERVING``, checks that the next write is refused
``UNAVAILABLE`` (nothing more acknowledged), and that SIGTERM then ends the server with the
documented exit code 3 (stopped without its final snapshot), in one line and no traceback.
"""

from __future__ import annotations

import signal
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.process import ServerProcess
from pricing.v1 import pricing_pb2, pricing_pb2_grpc
from server.store import SQLiteStore

POLL_SECONDS = 0.005
GIVE_UP_SECONDS = 10.0


@dataclass
class StoreFaultReport:
    seconds_to_not_serving: float = -1.0  # -1: never within GIVE_UP_SECONDS
    write_after_fault: str = ""  # the status code a Quote got after the file was gone
    exit_code: int = -1
    tracebacks_logged: int = 0


def run_store_fault() -> StoreFaultReport:
    report = StoreFaultReport()
    with tempfile.TemporaryDirectory() as scratch:
        server = ServerProcess(Path(scratch))
        try:
            with grpc.insecure_channel(server.wait_until_serving()) as channel:
                health = health_pb2_grpc.HealthStub(channel)
                pricing = pricing_pb2_grpc.PricingServiceStub(channel)
                product = pricing_pb2.Product(product_id="sku", unit_cost=10, list_price=20)
                pricing.Quote(pricing_pb2.QuoteRequest(user_id="u", product=product), timeout=5)
                (Path(scratch) / SQLiteStore.FILENAME).unlink()
                started = time.monotonic()
                while time.monotonic() - started < GIVE_UP_SECONDS:
                    status = health.Check(health_pb2.HealthCheckRequest(), timeout=5).status
                    if status == health_pb2.HealthCheckResponse.NOT_SERVING:
                        report.seconds_to_not_serving = time.monotonic() - started
                        break
                    time.sleep(POLL_SECONDS)
                try:
                    pricing.Quote(pricing_pb2.QuoteRequest(user_id="u", product=product), timeout=5)
                    report.write_after_fault = "OK"
                except grpc.RpcError as error:
                    report.write_after_fault = error.code().name
            server.process.send_signal(signal.SIGTERM)
            report.exit_code, log = server.finish()
            report.tracebacks_logged = log.count("Traceback")
        finally:
            if server.process.poll() is None:
                server.process.kill()
                server.finish()
    return report
