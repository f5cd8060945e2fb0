"""``pricebandit-server`` as a child process, as ops run it: started, read from its log, killed or
stopped; and free loopback ports. Used by the crash tests, the soak run and the benchmarks, which all
need a real process: a harness, so it lives here and not in the product package ``server``."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path

SERVING = re.compile(r"serving pricing\.v1 on (\S+) \(metrics on \S+:(\d+)")


def gauge(metrics_port: int, name: str) -> float:
    """One unlabelled sample of a server's ``/metrics``."""
    url = f"http://127.0.0.1:{metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    raise RuntimeError(f"{name} missing from /metrics")


def free_port() -> int:
    """A loopback TCP port free right now (for programs that cannot be told to take port 0)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class ServerProcess:
    """``pricebandit-server`` in a child process; ``address`` is read from its start-up log line.

    A thread reads the child's log all along, so a chatty server never blocks on a full pipe.
    """

    def __init__(self, data_dir: Path, *extra: str, environ: Mapping[str, str] | None = None) -> None:
        """Start the server on free ports with its state in ``data_dir``; ``extra`` are more flags,
        ``environ`` more variables (``PRICEBANDIT_*``)."""
        command = [sys.executable, "-m", "server.cli", "--port", "0", "--metrics-port", "0",
                   "--data-dir", str(data_dir), "--sweep-interval-seconds", "0.05", *extra]
        self.process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True,
                                        env={**os.environ, **(environ or {}), "PYTHONUNBUFFERED": "1"})
        self.log: list[str] = []
        self.address = ""
        self.metrics_port = 0
        self._serving = threading.Event()
        self._reader = threading.Thread(target=self._read_log, daemon=True)
        self._reader.start()

    def _read_log(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.log.append(line)
            if not self._serving.is_set() and (match := SERVING.search(line)):
                self.address, self.metrics_port = match.group(1), int(match.group(2))
                self._serving.set()
        self.process.stderr.close()

    def wait_until_serving(self, seconds: float = 60.0) -> str:
        deadline = time.monotonic() + seconds
        while not self._serving.wait(0.05):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self._reader.join(timeout=1.0)
                raise RuntimeError("server did not start:\n" + "".join(self.log))
        return self.address

    def finish(self, seconds: float = 60.0) -> tuple[int, str]:
        """Wait for the process to end; its exit code and everything it logged."""
        self.process.wait(timeout=seconds)
        self._reader.join(timeout=seconds)
        return self.process.returncode, "".join(self.log)
