"""Fixtures and helpers every test file shares: real servers on free loopback ports, each with its own
SQLite state in a temp folder, a real store, waiting for a condition, and reading ``/metrics``.

(Free ports for programs that cannot take port 0 come from ``bench.process.free_port``, which the
benchmarks use too.)"""

from __future__ import annotations

import io
import json
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import grpc
import numpy as np
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from bench.process import ServerProcess
from bench.redis_process import RedisProcess
from builders import quote_request
from pricing.v1 import pricing_pb2, pricing_pb2_grpc
from server.app import RunningServer, build_server
from server.config import ServerConfig, config_of
from server.pseudonyms import KEY_FILENAME, UserIdKey
from server.store import SQLiteStore

DEADLINE = 10.0


def make_config(data_dir: Path, **overrides: object) -> ServerConfig:
    """A test server's configuration; ``overrides`` are named as the flags are (``policy=``, ``port=``)."""
    return config_of({"host": "127.0.0.1", "port": 0, "metrics_port": 0, "data_dir": data_dir,
                      "sweep_interval_seconds": 0.05, "shutdown_grace_seconds": 1.0, **overrides})


class ServerHandle:
    """A running server plus a client stub; ``restart()`` stops it and starts a new one on the same
    data directory, as ops would."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.running: RunningServer | None = None
        self.channel: grpc.Channel | None = None
        self.stub: pricing_pb2_grpc.PricingServiceStub
        self.start()

    def start(self) -> None:
        self.running = build_server(self.config)
        self.running.load()
        self.channel = grpc.insecure_channel(self.running.address)
        self.stub = pricing_pb2_grpc.PricingServiceStub(self.channel)

    def stop(self) -> None:
        if self.channel is not None:
            self.channel.close()
            self.channel = None
        running, self.running = self.running, None
        if running is not None:  # cleared first: a stop that raises is not tried again at teardown
            running.stop()

    def restart(self, **overrides: object) -> None:
        self.stop()
        self.config = replace(self.config, **overrides)  # type: ignore[arg-type]
        self.start()

    @property
    def server(self) -> RunningServer:
        assert self.running is not None
        return self.running

    def pseudonym(self, user_id: str) -> str:
        """The key this server stores ``user_id`` under (user ids are never stored in clear)."""
        return UserIdKey.read(self.config.data_dir / KEY_FILENAME).pseudonym(user_id)

    def quote(self, **fields: object) -> pricing_pb2.QuoteResponse:
        return self.stub.Quote(quote_request(**fields), timeout=DEADLINE)

    def reward(self, quote_id: str, purchased: bool) -> pricing_pb2.RewardResponse:
        return self.stub.Reward(pricing_pb2.RewardRequest(quote_id=quote_id, purchased=purchased),
                                timeout=DEADLINE)


def wait_for(condition: Callable[[], bool], seconds: float = 10.0, what: str = "the condition") -> None:
    """Poll ``condition`` until it holds; fail the test if it does not within ``seconds``."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {seconds:g} s")
        time.sleep(0.02)


def scrape(handle: ServerHandle) -> list[Sample]:
    """Every sample on the server's ``/metrics``, read by Prometheus's own text parser."""
    url = f"http://127.0.0.1:{handle.server.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=DEADLINE) as response:
        text = response.read().decode()
    return [sample for family in text_string_to_metric_families(text) for sample in family.samples]


def series(handle: ServerHandle) -> dict[str, float]:
    """The server's ``/metrics`` as ``{'name{label="value",...}': value}``, labels in name order."""
    def key(sample: Sample) -> str:
        labels = ",".join(f'{name}="{value}"' for name, value in sorted(sample.labels.items()))
        return f"{sample.name}{{{labels}}}" if labels else sample.name

    return {key(sample): sample.value for sample in scrape(handle)}


def drive(address: str, count: int, prefix: str) -> str:
    """Quote and reward ``count`` times; returns the model version after the last reward."""
    with grpc.insecure_channel(address) as channel:
        stub = pricing_pb2_grpc.PricingServiceStub(channel)
        version = ""
        for i in range(count):
            quote = stub.Quote(quote_request(quote_id=f"{prefix}-{i}", user_id=f"u{i}"), timeout=DEADLINE)
            version = stub.Reward(pricing_pb2.RewardRequest(quote_id=quote.quote_id, purchased=i % 2 == 0),
                                  timeout=DEADLINE).model_version
        return version


def rewrite_header(path: Path, change: dict[str, object]) -> None:
    """Change fields of a value-model file's header, leaving its weights as they are."""
    with np.load(path) as archive:
        arrays = {name: archive[name] for name in archive.files}
    header = {**json.loads(arrays.pop("header").tobytes()), **change}
    buffer = io.BytesIO()
    np.savez(buffer, header=np.frombuffer(json.dumps(header).encode(), np.uint8), **arrays)
    path.write_bytes(buffer.getvalue())


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    """A real SQLite store in a temp folder, closed after the test."""
    opened = SQLiteStore(tmp_path)
    yield opened
    opened.close()


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., ServerHandle]]:
    handles: list[ServerHandle] = []

    def start(**overrides: object) -> ServerHandle:
        handle = ServerHandle(make_config(tmp_path / f"data{len(handles)}", **overrides))
        handles.append(handle)
        return handle

    yield start
    for handle in handles:
        handle.stop()


@pytest.fixture
def pricing(start_server: Callable[..., ServerHandle]) -> ServerHandle:
    return start_server()


@pytest.fixture
def processes() -> Iterator[list[ServerProcess]]:
    """Server child processes started by a test; any still running at the end are killed."""
    started: list[ServerProcess] = []
    yield started
    for child in started:
        if child.process.poll() is None:
            child.process.kill()
        child.finish()


@pytest.fixture
def refused_start(processes: list[ServerProcess]) -> Callable[..., str]:
    """Start a server child that must refuse to start: exit code 2, never serving. Returns its log."""

    def start(data_dir: Path, *flags: str) -> str:
        child = ServerProcess(data_dir, *flags)
        processes.append(child)
        code, log = child.finish()
        assert code == 2, log
        assert "serving pricing.v1" not in log
        return log

    return start


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess]:
    """One real redis-server for the session (persistence on: appendfsync always), stopped at the end;
    tests that use it empty it first (``redis_url``)."""
    server = RedisProcess(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisProcess) -> str:
    """The session's redis-server, emptied for this test."""
    if redis_server.process is None or redis_server.process.poll() is not None:
        redis_server.start()  # a test killed it
    client = redis.Redis(port=redis_server.port, socket_timeout=DEADLINE)
    try:
        client.flushall()
    finally:
        client.close()
    return redis_server.url
