"""The server as a child process, as ops run it: started, read from its log, killed or stopped."""

from __future__ import annotations

import os
import re
import selectors
import subprocess
import sys
import time
from pathlib import Path

SERVING = re.compile(r"serving pricing\.v1 on (\S+) \(metrics on \S+:(\d+)")


class ServerProcess:
    """``pricebandit-server`` in a child process; ``address`` is read from its start-up log line."""

    def __init__(self, data_dir: Path, *extra: str) -> None:
        command = [sys.executable, "-m", "server.cli", "--port", "0", "--metrics-port", "0",
                   "--data-dir", str(data_dir), "--sweep-interval-seconds", "0.05", *extra]
        self.process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True,
                                        env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.log: list[str] = []
        self.address = ""

    def wait_until_serving(self, seconds: float = 20.0) -> str:
        assert self.process.stderr is not None
        selector = selectors.DefaultSelector()
        selector.register(self.process.stderr, selectors.EVENT_READ)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if not selector.select(timeout=0.1):
                continue
            line = self.process.stderr.readline()
            if not line:
                break
            self.log.append(line)
            if match := SERVING.search(line):
                self.address = match.group(1)
                return self.address
        raise AssertionError("server did not start:\n" + "".join(self.log))

    def finish(self, seconds: float = 20.0) -> tuple[int, str]:
        _, rest = self.process.communicate(timeout=seconds)
        return self.process.returncode, "".join(self.log) + rest
