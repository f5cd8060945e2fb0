"""A real ``redis-server`` as a child process on a free loopback port, persistence on
(``appendonly yes``, ``appendfsync always``: every acknowledged write is fsynced), in a folder of its
own. Shared by the store's contract tests, the replica tests and the benchmarks."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import redis

from bench.process import free_port

START_SECONDS = 10.0


class RedisProcess:
    """``redis-server`` with its data in ``folder``; ``kill()`` and ``start()`` again keep the data
    (the append-only file), as a crash and restart of Redis would."""

    def __init__(self, folder: Path, *, fsync: str = "always", password: str = "") -> None:
        """``password``: started with ``requirepass`` (then ``url`` carries it)."""
        if shutil.which("redis-server") is None:
            raise RuntimeError("redis-server is not installed (Debian: apt-get install redis-server)")
        self.folder, self.fsync, self.password = folder, fsync, password
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://{f':{self.password}@' if self.password else ''}127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start (again) on the same port and folder; returns once it answers PING."""
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder),
                   "--appendonly", "yes", "--appendfsync", self.fsync, "--save", "",
                   "--daemonize", "no", "--logfile", str(self.folder / "redis.log")]
        if self.password:
            command += ["--requirepass", self.password]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = self.client()
        deadline = time.monotonic() + START_SECONDS
        try:
            while True:
                try:
                    if client.ping():
                        return
                except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
                    pass
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start:\n" + self.log())
                time.sleep(0.02)
        finally:
            client.close()

    def client(self) -> redis.Redis:
        """A plain client of this Redis (for a test to change its settings, as an operator would)."""
        return redis.Redis(port=self.port, password=self.password or None, socket_timeout=1.0,
                           socket_connect_timeout=1.0)

    def log(self) -> str:
        path = self.folder / "redis.log"
        return path.read_text() if path.exists() else ""

    def kill(self) -> None:
        """SIGKILL: what was fsynced stays in the append-only file, nothing else."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=START_SECONDS)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=START_SECONDS)
            except subprocess.TimeoutExpired:
                self.kill()
