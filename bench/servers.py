"""Start the empty server and the real one as processes, and drive each from a separate load process."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

START_SECONDS = 60.0
REPO = Path(__file__).resolve().parents[1]  # every process runs from here, wherever bench was started


@dataclass(frozen=True)
class Row:
    server: str
    method: str
    concurrency: int
    requests: int
    errors: int
    throughput: float
    p50_ms: float
    p99_ms: float
    server_cpu_us: float | None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


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
    """name -> (command, address) of both servers, each on a free loopback port."""
    empty, real = free_port(), free_port()
    return {
        "empty": ([sys.executable, "-m", "bench.empty_server", "--address", f"127.0.0.1:{empty}"],
                  f"127.0.0.1:{empty}"),
        "pricebandit": ([sys.executable, "-m", "server.cli", "--port", str(real), "--metrics-port", "0",
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


def compare(requests: int, concurrencies: tuple[int, ...], warmup: int) -> list[Row]:
    """Both servers at every concurrency, alternating between them so that drift in the machine's
    load hits both alike."""
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="pricebandit-bench-") as data_dir, ExitStack() as stack:
        servers = {name: (address, stack.enter_context(process(command, address)))
                   for name, (command, address) in server_commands(data_dir).items()}
        for concurrency in concurrencies:
            for name, (address, pid) in servers.items():
                for method, run in drive(address, pid, requests, concurrency, warmup).items():
                    rows.append(Row(server=name, method=method, concurrency=concurrency,
                                    requests=int(run["requests"]), errors=int(run["errors"]),
                                    throughput=run["throughput"], p50_ms=run["p50_ms"],
                                    p99_ms=run["p99_ms"], server_cpu_us=run["server_cpu_us"]))
    return rows
