"""Start the two empty servers (sync and ``grpc.aio``) and the real one as processes, and drive each
from a separate load process."""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.load import cpu_seconds, percentile, quote_requests
from bench.process import free_port

START_SECONDS = 60.0
EMPTY_SYNC, EMPTY_AIO, PRICEBANDIT = "empty sync", "empty aio", "pricebandit"
"""The servers, in the order they take turns; the empty aio one is the floor the ratios are against."""
REPO = Path(__file__).resolve().parents[1]  # every process runs from here, wherever bench was started


@dataclass(frozen=True)
class Row:
    server: str
    client: str  # "python" (grpc.aio: Quote, Reward, QuoteBatch) or "h2load" (C, Quote only)
    method: str  # "quote", "reward" or "quote_batch"
    concurrency: int
    requests: int
    errors: int
    throughput: float  # calls per second
    p50_ms: float
    p99_ms: float
    server_cpu_us: float | None  # per call
    quotes_per_call: int = 1

    @property
    def quotes_per_second(self) -> float:
        return self.throughput * self.quotes_per_call

    @property
    def server_cpu_us_per_quote(self) -> float | None:
        return None if self.server_cpu_us is None else round(self.server_cpu_us / self.quotes_per_call, 1)


def wait_serving(address: str, process: subprocess.Popen[bytes]) -> None:
    """Poll the standard health service until SERVING; fail fast if the process died."""
    deadline = time.monotonic() + START_SECONDS
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"{process.args!r} exited with {process.returncode} before serving")
            try:
                status = stub.Check(health_pb2.HealthCheckRequest(), timeout=1.0).status
                if status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.1)
    raise RuntimeError(f"{process.args!r} did not serve within {START_SECONDS:.0f} s")


@contextmanager
def process(command: list[str], address: str) -> Iterator[int]:
    """Run a server until the block ends; yields its process id."""
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, cwd=REPO)
    try:
        wait_serving(address, child)
        yield child.pid
    finally:
        child.terminate()
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def server_commands(data_dir: str) -> dict[str, tuple[list[str], str]]:
    """name -> (command, address) of the three servers, each on a free loopback port."""
    sync, aio, real = free_port(), free_port(), free_port()
    empty = [sys.executable, "-m", "bench.empty_server", "--address"]
    return {
        EMPTY_SYNC: ([*empty, f"127.0.0.1:{sync}"], f"127.0.0.1:{sync}"),
        EMPTY_AIO: ([*empty, f"127.0.0.1:{aio}", "--aio"], f"127.0.0.1:{aio}"),
        PRICEBANDIT: ([sys.executable, "-m", "server.cli", "--port", str(real), "--metrics-port", "0",
                       "--data-dir", data_dir, "--log-level", "WARNING"], f"127.0.0.1:{real}"),
    }


def drive(address: str, pid: int, requests: int, concurrency: int, warmup: int
          ) -> dict[str, dict[str, float]]:
    """One load process against ``address``: returns its JSON result."""
    output = subprocess.run(
        [sys.executable, "-m", "bench.load", "--address", address, "--requests", str(requests),
         "--concurrency", str(concurrency), "--warmup", str(warmup), "--server-pid", str(pid)],
        check=True, capture_output=True, text=True, timeout=600, cwd=REPO,
    ).stdout
    return json.loads(output)  # type: ignore[no-any-return]


def h2load(address: str, pid: int, requests: int, concurrency: int, folder: Path) -> Row | None:
    """Quote with h2load (nghttp2's C load generator) on one HTTP/2 connection, ``concurrency``
    streams in flight, so the client costs little of the machine's CPU. None if it is not installed.

    Every call sends the same request (gRPC frame: flag byte, big-endian length, message); each
    gets a fresh server-made quote id. h2load's log has each request's HTTP status and microseconds.
    """
    binary = shutil.which("h2load")
    if binary is None:
        return None
    message = quote_requests(1)[0].SerializeToString()
    body, log = folder / "quote.grpc", folder / "h2load.log"
    body.write_bytes(b"\x00" + struct.pack(">I", len(message)) + message)
    log.unlink(missing_ok=True)  # h2load appends
    before = cpu_seconds(pid)
    output = subprocess.run(
        [binary, "-n", str(requests), "-c", "1", "-m", str(concurrency), "-d", str(body),
         "-H", "content-type: application/grpc", "-H", "te: trailers", f"--log-file={log}",
         f"http://{address}/pricing.v1.PricingService/Quote"],
        check=True, capture_output=True, text=True, timeout=600,
    ).stdout
    after = cpu_seconds(pid)
    rate = re.search(r"finished in .*?, ([0-9.]+) req/s", output)
    lines = [line.split("\t") for line in log.read_text().splitlines() if line.strip()]
    latencies = sorted(int(fields[2]) / 1e3 for fields in lines if fields[1] == "200")
    done = len(latencies)
    return Row(server="", client="h2load", method="quote", concurrency=concurrency, requests=done,
               errors=requests - done, throughput=float(rate.group(1)) if rate else 0.0,
               p50_ms=round(percentile(latencies, 0.5), 3) if done else 0.0,
               p99_ms=round(percentile(latencies, 0.99), 3) if done else 0.0,
               server_cpu_us=(None if before is None or after is None or not done
                              else round(1e6 * (after - before) / done, 1)))


def compare(requests: int, concurrencies: tuple[int, ...], warmup: int) -> list[Row]:
    """Every server at every concurrency, taking turns so that drift in the machine's load hits all
    alike."""
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="pricebandit-bench-") as data_dir, ExitStack() as stack:
        servers = {name: (address, stack.enter_context(process(command, address)))
                   for name, (command, address) in server_commands(data_dir).items()}
        for concurrency in concurrencies:
            for name, (address, pid) in servers.items():
                for method, run in drive(address, pid, requests, concurrency, warmup).items():
                    rows.append(Row(server=name, client="python", method=method, concurrency=concurrency,
                                    requests=int(run["requests"]), errors=int(run["errors"]),
                                    throughput=run["throughput"], p50_ms=run["p50_ms"],
                                    p99_ms=run["p99_ms"], server_cpu_us=run["server_cpu_us"],
                                    quotes_per_call=int(run["quotes_per_call"])))
                c_row = h2load(address, pid, requests, concurrency, Path(data_dir))
                if c_row is not None:
                    rows.append(replace(c_row, server=name))
    return rows
