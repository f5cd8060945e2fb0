"""A server on Redis (``--store redis://…``): chosen by one flag, restarts with its model, and health
follows Redis. The replicas' shared log is tests/test_replicas.py."""

from __future__ import annotations

import logging
import math
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.process import ServerProcess
from bench.redis_process import RedisProcess
from builders import quote_request
from conftest import DEADLINE, ServerHandle, drive, make_config, series, wait_for
from learner import StoreCorrupt
from pricing.v1 import pricing_pb2
from server.app import build_server
from server.config import parse_config
from server.health import DETAIL_KEY
from server.healthcheck import main as healthcheck
from server.log_lag import BEHIND_ENTRIES
from server.pseudonyms import KEY_FILENAME, UserIdKey
from server.redis_store import RedisStore

SERVING, NOT_SERVING = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING


def health(handle: ServerHandle) -> tuple[int, str]:
    """The server's health status and its detail (``server/health.py``)."""
    stub = health_pb2_grpc.HealthStub(handle.channel)
    answer, call = stub.Check.with_call(health_pb2.HealthCheckRequest(), timeout=DEADLINE)
    return answer.status, dict(call.initial_metadata())[DETAIL_KEY]


def says(handle: ServerHandle, status: int) -> Callable[[], bool]:
    return lambda: health(handle)[0] == status


@pytest.mark.parametrize("value", ["mysql://db:3306/0", "redis://", "redis://host:port/0",
                                   "redis://host:6379/shop"])
def test_a_store_that_is_neither_sqlite_nor_a_redis_url_is_refused_in_one_line(
        value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        parse_config(["--store", value], {})
    assert stopped.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert "argument --store:" in error and "redis://host:port/db" in error


def test_sharing_a_port_needs_a_shared_store(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        parse_config(["--reuse-port", "true"], {})
    assert stopped.value.code == 2 and "--reuse-port needs --store redis://" in capsys.readouterr().err
    assert parse_config(["--reuse-port", "yes", "--store", "redis://127.0.0.1:6379/0"], {}).reuse_port


def test_the_store_is_sqlite_unless_told() -> None:
    assert parse_config([], {}).store == "sqlite"
    assert parse_config([], {"PRICEBANDIT_STORE": "redis://10.0.0.5:6380/2"}).store == "redis://10.0.0.5:6380/2"


def test_a_replica_with_another_learner_configuration_is_refused(start_server: Callable[..., ServerHandle],
                                                                 redis_url: str, tmp_path: Path) -> None:
    first = start_server(store=redis_url)
    with pytest.raises(StoreCorrupt, match=r"other settings \(policy: policy='linucb'\)"):
        build_server(make_config(tmp_path / "other", store=redis_url, policy="thompson",
                                 user_id_key_file=first.config.data_dir / KEY_FILENAME))


def test_a_server_on_redis_restarts_with_its_model(start_server: Callable[..., ServerHandle], redis_url: str,
                                                  tmp_path: Path) -> None:
    server = start_server(store=redis_url)
    users = server.server.service.pricer.users
    assert users is not None and users.capacity == 0  # other replicas change shoppers' states too
    version = drive(server.server.address, 12, "r")
    assert version.endswith(":12")
    snapshot = server.server.service.pricer.snapshot()
    assert not (tmp_path / "data0" / "pricebandit.sqlite3").exists()  # the state is in Redis
    server.restart()
    assert server.server.service.pricer.model_version == version
    assert server.server.service.pricer.snapshot() == snapshot


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    """A redis-server of this test's own (to kill), stopped after the servers on it."""
    server = RedisProcess(tmp_path / "redis")
    yield server
    server.stop()


def test_health_follows_redis_down_and_back(own_redis: RedisProcess,
                                            start_server: Callable[..., ServerHandle]) -> None:
    server = start_server(store=own_redis.url)
    assert health(server) == (SERVING, "")
    own_redis.kill()
    wait_for(lambda: health(server)[0] == NOT_SERVING, 1.0, "NOT_SERVING")
    assert "the state store failed: unreachable" in health(server)[1]  # the calls' cause, in health too
    with pytest.raises(grpc.RpcError) as refused:
        server.stub.Quote(quote_request(quote_id="q-down"), timeout=DEADLINE)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE and "unreachable" in refused.value.details()
    readings = series(server)  # /metrics still answers; what it cannot read is NaN
    assert math.isnan(readings["pricebandit_pending_quotes"])
    assert math.isnan(readings["pricebandit_log_lag_entries"])
    own_redis.start()
    wait_for(lambda: health(server) == (SERVING, ""), 2.0, "SERVING again")
    assert server.stub.Quote(quote_request(quote_id="q-up"), timeout=DEADLINE).quote_id == "q-up"


def test_health_says_when_a_replica_falls_behind_the_log_and_when_it_caught_up(
        start_server: Callable[..., ServerHandle], redis_url: str, caplog: pytest.LogCaptureFixture,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Other replicas log faster than this one applies (its learner held busy here): health stays
    SERVING, its detail gives the numbers, and clears once the follower has caught up."""
    server = start_server(store=redis_url)
    server.quote(quote_id="q-0")
    service = server.server.service
    decision = service.store.find_decision("q-0")
    assert decision is not None and health(server) == (SERVING, "")
    others = RedisStore(redis_url)
    try:
        with caplog.at_level(logging.INFO, logger="server.health"):
            with service._learn_lock:
                for _ in range(BEHIND_ENTRIES + 1):  # late reports another replica logged
                    others.append_log(decision, "late", 1.0, False, time.time())
                wait_for(lambda: "behind" in health(server)[1], 2.0, "the detail says it is behind")
                status, detail = health(server)
                assert status == SERVING
                assert f"behind the outcome log by {BEHIND_ENTRIES + 1} entries" in detail
                bound = f"bound {BEHIND_ENTRIES} entries or 5 s"
                assert f"applied entry 0 of {BEHIND_ENTRIES + 1}; {bound}" in detail
                assert healthcheck(["--address", server.server.address]) == 0
                assert capsys.readouterr().out.strip().endswith(f"SERVING ({detail})")
            wait_for(lambda: health(server) == (SERVING, ""), 1.0, "caught up")
    finally:
        others.close()
    said = [record.getMessage() for record in caplog.records]
    assert any(line.startswith("this replica is behind the outcome log") for line in said), said
    # caught up once within the bound again: at the first entry applied already, or any later one
    assert any(line.startswith("this replica caught up with the outcome log (applied entry ")
               and line.endswith(f" of {BEHIND_ENTRIES + 1})") for line in said), said
    assert service.last_applied == BEHIND_ENTRIES + 1


def test_a_redis_password_in_the_environment_stays_out_of_the_configs_repr() -> None:
    config = parse_config([], environ={"PRICEBANDIT_STORE": "redis://:s3cret@127.0.0.1:6379/0"})
    assert config.store == "redis://:s3cret@127.0.0.1:6379/0"
    assert "s3cret" not in repr(config)


PASSWORD = "pw-7f3a9c"


def test_a_redis_with_a_password_serves_with_it_and_a_wrong_one_stops_the_start_without_saying_it(
        tmp_path: Path, processes: list[ServerProcess]) -> None:
    locked = RedisProcess(tmp_path / "redis", password=PASSWORD)
    try:
        key_file = tmp_path / "user-id.key"
        UserIdKey.create(key_file)

        def start(url: str, name: str) -> ServerProcess:
            child = ServerProcess(tmp_path / name, "--user-id-key-file", str(key_file),
                                  environ={"PRICEBANDIT_STORE": url})
            processes.append(child)
            return child

        right = start(locked.url, "right")
        assert drive(right.wait_until_serving(), 2, "pw") == "linucb:2"
        right.process.send_signal(signal.SIGTERM)
        code, log = right.finish()
        assert code == 0 and PASSWORD not in log
        assert f"state in redis://127.0.0.1:{locked.port}/0)" in log
        for url in (locked.url.replace(PASSWORD, "wrong-pw"), locked.url.replace(f":{PASSWORD}@", "")):
            code, log = start(url, "wrong").finish()
            assert code == 2, log
            (line,) = [line for line in log.splitlines() if "cannot start" in line]
            assert "the state store failed: auth (" in line and "give its password (requirepass)" in line
            assert PASSWORD not in log and "wrong-pw" not in log
        store = RedisStore(locked.url)
        try:
            assert PASSWORD not in repr(store) + repr(store.__dict__) + store.where
        finally:
            store.close()
    finally:
        locked.stop()


def test_redis_out_of_memory_is_said_by_an_idle_replica_too_and_it_serves_again_by_itself(
        own_redis: RedisProcess, start_server: Callable[..., ServerHandle]) -> None:
    """``maxmemory`` reached with ``noeviction``: Redis answers PING but refuses every write."""
    first = start_server(store=own_redis.url)
    idle = start_server(store=own_redis.url, user_id_key_file=first.config.data_dir / KEY_FILENAME)
    first.quote(quote_id="q-before")
    admin = own_redis.client()
    try:
        admin.config_set("maxmemory-policy", "noeviction")
        admin.config_set("maxmemory", "1")  # far below what it holds: full
        full = time.monotonic()
        for replica in (idle, first):  # neither is asked anything
            wait_for(says(replica, NOT_SERVING), 1.0, "NOT_SERVING")
            assert "the state store failed: out of memory" in health(replica)[1]
        waited = time.monotonic() - full
        with pytest.raises(grpc.RpcError) as refused:
            first.quote(quote_id="q-full")
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "out of memory" in refused.value.details() and "maxmemory" in refused.value.details()
        assert first.server.service.store.find_decision("q-full") is None  # nothing half-written
        admin.config_set("maxmemory", "0")
        for replica in (first, idle):
            wait_for(says(replica, SERVING), 2.0, "SERVING again")
            assert health(replica) == (SERVING, "")
    finally:
        admin.close()
    assert waited < 1.0
    assert idle.reward("q-before", True).status == pricing_pb2.RewardResponse.LEARNED
    wait_for(lambda: first.server.service.last_applied == 1, 2.0, "the other replica learned it")
