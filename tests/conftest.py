"""Fixtures: real servers on free loopback ports, each with its own SQLite state in a temp folder."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import grpc
import pytest

from builders import quote_request
from pricing.v1 import pricing_pb2, pricing_pb2_grpc
from server.app import RunningServer, build_server
from server.config import ServerConfig
from server.process import ServerProcess

DEADLINE = 10.0


def make_config(data_dir: Path, **overrides: object) -> ServerConfig:
    base = ServerConfig(host="127.0.0.1", port=0, metrics_port=0, data_dir=data_dir,
                        sweep_interval_seconds=0.05, shutdown_grace_seconds=1.0)
    return replace(base, **overrides)  # type: ignore[arg-type]


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

    def quote(self, **fields: object) -> pricing_pb2.QuoteResponse:
        return self.stub.Quote(quote_request(**fields), timeout=DEADLINE)

    def reward(self, quote_id: str, purchased: bool) -> pricing_pb2.RewardResponse:
        return self.stub.Reward(pricing_pb2.RewardRequest(quote_id=quote_id, purchased=purchased),
                                timeout=DEADLINE)


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
