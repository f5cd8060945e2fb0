"""Store faults fail loudly: each names its cause, health follows the store, and nothing written to
a state file that is gone is acknowledged. Disk full and read-only are real (a small tmpfs, where
this test may mount one); I/O errors and corrupt pages are injected into the real connection."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.process import ServerProcess
from builders import quote_request
from conftest import ServerHandle
from learner import StoreFailed
from pricing.v1 import pricing_pb2_grpc
from server.store import SQLiteStore

Status = health_pb2.HealthCheckResponse
DETECTED_WITHIN = 1.0
"""Seconds from a fault to NOT_SERVING that the issue allows."""


def health(channel: grpc.Channel) -> int:
    answer = health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service="pricing.v1.PricingService"), timeout=5)
    return int(answer.status)


def seconds_until(condition: Callable[[], bool], limit: float = 5.0) -> float:
    """How long until ``condition()`` holds; fails after ``limit`` seconds."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > limit:
            raise AssertionError(f"not within {limit} s")
        time.sleep(0.01)
    return time.monotonic() - start


def refused(call: Callable[[], Any]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as error:
        call()
    return error.value


# -- faults injected into the real connection ---------------------------------------------------------
class FaultyConnection:
    """The store's real SQLite connection, whose statements fail with ``error`` while it is set."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self.error: sqlite3.Error | None = None

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if self.error is not None and not sql.startswith("ROLLBACK"):
            raise self.error
        return self._db.execute(sql, *args)

    def executemany(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if self.error is not None:
            raise self.error
        return self._db.executemany(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)


def sqlite_error(kind: type[sqlite3.Error], message: str, code: int) -> sqlite3.Error:
    """An error as SQLite raises it: its message and its (extended) result code."""
    error = kind(message)
    error.sqlite_errorcode = code  # type: ignore[attr-defined]
    return error


INJECTED = {
    "read-only": sqlite_error(sqlite3.OperationalError, "attempt to write a readonly database", 8),
    "I/O error": sqlite_error(sqlite3.OperationalError, "disk I/O error", 778),  # SQLITE_IOERR_WRITE
    "corrupt": sqlite_error(sqlite3.DatabaseError, "database disk image is malformed", 11),
}


@pytest.mark.parametrize("cause", sorted(INJECTED))
def test_a_store_fault_is_named_turns_health_off_and_back_on(
    cause: str, start_server: Callable[..., ServerHandle]
) -> None:
    handle = start_server(value_model="none")
    handle.quote(quote_id="before")
    faulty = FaultyConnection(handle.server.service.store._db)  # type: ignore[attr-defined]
    handle.server.service.store._db = faulty  # type: ignore[attr-defined]
    faulty.error = INJECTED[cause]
    error = refused(lambda: handle.quote(quote_id="during"))
    assert error.code() is grpc.StatusCode.UNAVAILABLE, error.details()  # a corrupt page too
    assert f"the state store failed: {cause} (" in error.details()
    assert seconds_until(lambda: health(handle.channel) == Status.NOT_SERVING) < DETECTED_WITHIN
    faulty.error = None
    if cause == "corrupt":  # it does not heal: every write fails until an operator restores the file
        time.sleep(0.6)
        assert health(handle.channel) == Status.NOT_SERVING
        assert "corrupt" in refused(lambda: handle.quote(quote_id="after")).details()
        with pytest.raises(StoreFailed, match="corrupt"):
            handle.stop()
        return
    seconds_until(lambda: health(handle.channel) == Status.SERVING)  # found by the probe alone
    handle.quote(quote_id="after")


def test_a_full_database_says_so_not_cannot_rollback(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path)
    pages = store._db.execute("PRAGMA page_count").fetchone()[0]  # type: ignore[attr-defined]
    store._db.execute(f"PRAGMA max_page_count={pages + 4}")  # type: ignore[attr-defined]
    with pytest.raises(StoreFailed) as failure:
        store.save_snapshot(os.urandom(100_000), last_seq=1, created_at=1.0)
    assert failure.value.cause == "disk full" and "cannot rollback" not in str(failure.value)
    assert store.check() is not None and store.latest_snapshot() is None
    store.close()


# -- the state file deleted or replaced ---------------------------------------------------------------
def delete(path: Path) -> None:
    path.unlink()


def replace_with_copy(path: Path) -> None:
    copy = path.with_name("copy")
    shutil.copyfile(path, copy)
    os.replace(copy, path)


@pytest.mark.parametrize(("change", "said"), [(delete, "deleted"), (replace_with_copy, "replaced")])
def test_a_state_file_gone_under_the_server_stops_acknowledging_at_once(
    change: Callable[[Path], None], said: str, start_server: Callable[..., ServerHandle]
) -> None:
    handle = start_server(value_model="none")
    kept = handle.quote(quote_id="kept")
    change(handle.server.service.store.path)  # type: ignore[attr-defined]
    error = refused(lambda: handle.quote(quote_id="lost"))  # refused before any timer ran
    assert error.code() is grpc.StatusCode.UNAVAILABLE
    assert f"was {said} while the server ran" in error.details()
    assert "nothing more is acknowledged" in error.details()
    reward = refused(lambda: handle.reward(kept.quote_id, True))
    assert reward.code() is grpc.StatusCode.UNAVAILABLE and said in reward.details()
    assert seconds_until(lambda: health(handle.channel) == Status.NOT_SERVING) < DETECTED_WITHIN
    with pytest.raises(StoreFailed, match=said):
        handle.stop()


def test_the_file_watch_alone_turns_health_off_within_a_second(
    start_server: Callable[..., ServerHandle]
) -> None:
    handle = start_server(value_model="none")
    delete(handle.server.service.store.path)  # type: ignore[attr-defined]
    assert seconds_until(lambda: health(handle.channel) == Status.NOT_SERVING) < DETECTED_WITHIN
    with pytest.raises(StoreFailed):
        handle.stop()


# -- a real small disk --------------------------------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs mounted for this test; skipped where the test may not mount one."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def fill(disk: Path) -> Path:
    """Take every free byte of ``disk`` with a filler file (after the state's log is checkpointed
    away, so the store cannot give space back by itself); returns the filler."""
    with sqlite3.connect(disk / "data" / SQLiteStore.FILENAME) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)
    return filler


def test_disk_full_for_real_is_named_seen_by_health_recovered_and_ends_in_a_clear_exit(
    small_disk: Path, processes: list[ServerProcess]
) -> None:
    child = ServerProcess(small_disk / "data", "--value-model", "none")
    processes.append(child)
    with grpc.insecure_channel(child.wait_until_serving()) as channel:
        stub = pricing_pb2_grpc.PricingServiceStub(channel)
        stub.Quote(quote_request(quote_id="before"), timeout=5)
        filler = fill(small_disk)
        error = refused(lambda: stub.Quote(quote_request(quote_id="full"), timeout=5))
        assert error.code() is grpc.StatusCode.UNAVAILABLE
        assert "the state store failed: disk full (" in error.details(), error.details()
        assert "free space" in error.details() and "cannot rollback" not in error.details()
        assert seconds_until(lambda: health(channel) == Status.NOT_SERVING) < DETECTED_WITHIN
        time.sleep(0.6)
        assert health(channel) == Status.NOT_SERVING  # still full: the probe keeps failing
        filler.unlink()
        seconds_until(lambda: health(channel) == Status.SERVING)
        stub.Quote(quote_request(quote_id="after"), timeout=5)
        fill(small_disk)
    child.process.send_signal(signal.SIGTERM)
    code, log = child.finish()
    assert code == 3, log
    assert "stopped without writing the final snapshot: the state store failed: disk full" in log
    assert "Traceback" not in log


def test_freed_space_is_used_again_on_a_small_disk(small_disk: Path) -> None:
    """Snapshots replace each other (three kept): 8 MB written through a 4 MiB disk."""
    store = SQLiteStore(small_disk / "data")
    for i in range(200):
        store.save_snapshot(os.urandom(40_000), last_seq=i, created_at=float(i))
    assert (small_disk / "data" / f"{SQLiteStore.FILENAME}-wal").stat().st_size <= 2 << 20
    store.close()


def test_a_read_only_state_is_refused_naming_the_cause(
    small_disk: Path, refused_start: Callable[..., str]
) -> None:
    SQLiteStore(small_disk / "data").close()
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    log = refused_start(small_disk / "data", "--value-model", "none")
    assert "read-only" in log.lower() and "restore it from a backup" not in log.lower()
