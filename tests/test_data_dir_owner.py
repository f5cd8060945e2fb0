"""One server per data dir: a second one refuses to start and names the owner; the lock dies with
its holder, so a server killed with SIGKILL restarts at once."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from bench.process import ServerProcess
from learner import DataDirInUse
from server.store import SQLiteStore

FLAGS = ("--value-model", "none")


def test_a_second_server_on_a_data_dir_in_use_refuses_and_a_killed_one_restarts_at_once(
    tmp_path: Path, processes: list[ServerProcess], refused_start: Callable[..., str]
) -> None:
    first = ServerProcess(tmp_path, *FLAGS)
    processes.append(first)
    first.wait_until_serving()
    log = refused_start(tmp_path, *FLAGS)
    errors = [line for line in log.splitlines() if "ERROR" in line]
    assert len(errors) == 1, log
    assert f"the data dir {tmp_path} is in use by process {first.process.pid}" in errors[0]
    first.process.send_signal(signal.SIGKILL)
    first.process.wait(timeout=10)
    again = ServerProcess(tmp_path, *FLAGS)
    processes.append(again)
    again.wait_until_serving(seconds=20)
    again.process.send_signal(signal.SIGTERM)
    code, log = again.finish()
    assert code == 0, log


def test_one_store_per_data_dir_in_one_process_too(tmp_path: Path) -> None:
    first = SQLiteStore(tmp_path)
    with pytest.raises(DataDirInUse, match="is in use by process"):
        SQLiteStore(tmp_path)
    first.close()
    SQLiteStore(tmp_path).close()  # released by close
