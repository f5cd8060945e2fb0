"""The ``pricebandit-server`` command as ops run it: flags and environment, crash, restart, SIGTERM."""

from __future__ import annotations

import dataclasses
import signal
import sqlite3
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from bench.process import ServerProcess
from builders import quote_request
from conftest import DEADLINE, ServerHandle, drive
from learner import Pricer, PricerConfig
from pricing.v1 import pricing_pb2, pricing_pb2_grpc
from server.config import ServerConfig, parse_config
from server.healthcheck import main as healthcheck


def test_flags_win_over_environment_which_wins_over_defaults() -> None:
    env = {"PRICEBANDIT_PORT": "6000", "PRICEBANDIT_POLICY": "squarecb",
           "PRICEBANDIT_ALPHAS": "0.2,0.4,0.6", "PRICEBANDIT_POLICY_OPTIONS": "v=0.3"}
    config = parse_config(["--policy", "thompson", "--reward-window-seconds", "30"], env)
    assert (config.port, config.pricer.policy) == (6000, "thompson")
    assert config.pricer.reward_window_seconds == 30.0
    assert config.pricer.alphas == (0.2, 0.4, 0.6)
    assert config.pricer.policy_options == {"v": 0.3}
    assert config.metrics_port == ServerConfig().metrics_port == 9464
    assert parse_config([], {}) == ServerConfig()


def test_every_learner_setting_is_a_server_flag_and_variable(capsys: pytest.CaptureFixture[str]) -> None:
    """A field added to PricerConfig is a server flag, or no command parses: only the embedding size
    is not (it is the value model's)."""
    with pytest.raises(SystemExit):
        parse_config(["--help"], {})
    help_text = capsys.readouterr().out
    for name in {spec.name for spec in dataclasses.fields(PricerConfig)} - {"user_embedding_dim"}:
        assert f"--{name.replace('_', '-')} " in help_text and f"PRICEBANDIT_{name.upper()};" in help_text


def test_the_prior_strength_and_category_buckets_reach_the_learner() -> None:
    config = parse_config(["--l2", "2.5"], {"PRICEBANDIT_CATEGORY_BUCKETS": "3"})
    pricer = Pricer(config.pricer)
    assert pricer.policy.hyperparameters()["l2"] == 2.5
    assert [name for name in pricer.features.names if name.startswith("category.")] == [
        "category.0", "category.1", "category.2"]


@pytest.mark.parametrize(("argv", "environ", "named"), [
    (["--l2", "0"], {}, "argument --l2: '0' is not a finite number > 0"),
    (["--l2", "inf"], {}, "argument --l2: 'inf' is not a finite number > 0"),
    ([], {"PRICEBANDIT_CATEGORY_BUCKETS": "0"},
     "environment variable PRICEBANDIT_CATEGORY_BUCKETS: '0' is not an integer >= 1"),
])
def test_a_bad_prior_strength_or_bucket_count_is_refused_in_one_line(
        argv: list[str], environ: dict[str, str], named: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        parse_config(argv, environ)
    assert stopped.value.code == 2
    assert named in capsys.readouterr().err


def probe(address: str) -> pricing_pb2.QuoteResponse:
    with grpc.insecure_channel(address) as channel:
        return pricing_pb2_grpc.PricingServiceStub(channel).Quote(
            quote_request(user_id="probe"), timeout=DEADLINE)


def test_sigkill_then_restart_replays_the_log_and_sigterm_saves_a_snapshot(
    tmp_path: Path, processes: list[ServerProcess]
) -> None:
    first = ServerProcess(tmp_path)
    processes.append(first)
    assert drive(first.wait_until_serving(), 25, "a") == "linucb:25"
    before = probe(first.address).explanation
    first.process.send_signal(signal.SIGKILL)
    first.process.wait(timeout=DEADLINE)

    second = ServerProcess(tmp_path)
    processes.append(second)
    second.wait_until_serving()
    after = probe(second.address)
    assert after.model_version == "linucb:25"
    assert [a.purchase_probability for a in after.explanation.arms] == [
        a.purchase_probability for a in before.arms]
    assert any("25 log entries replayed" in line for line in second.log)
    assert drive(second.address, 5, "b") == "linucb:30"
    second.process.send_signal(signal.SIGTERM)
    code, log = second.finish()
    assert code == 0, log
    assert "stopped; model linucb:30 saved" in log
    with sqlite3.connect(tmp_path / "pricebandit.sqlite3") as db:
        (last_seq,) = db.execute("SELECT last_seq FROM snapshots ORDER BY id DESC LIMIT 1").fetchone()
    assert last_seq == 30  # the final snapshot covers every log entry: nothing to replay next time

    third = ServerProcess(tmp_path)
    processes.append(third)
    third.wait_until_serving()
    assert any("0 log entries replayed" in line for line in third.log)
    assert probe(third.address).model_version == "linucb:30"
    third.process.send_signal(signal.SIGINT)
    assert third.finish()[0] == 0


def test_a_corrupt_state_file_stops_the_start_with_what_to_do(
    tmp_path: Path, refused_start: Callable[..., str]
) -> None:
    (tmp_path / "pricebandit.sqlite3").write_bytes(b"this is not a database" * 100)
    log = refused_start(tmp_path)
    assert "is not a usable SQLite database" in log and "move it aside" in log


def test_a_snapshot_of_another_policy_stops_the_start(
    tmp_path: Path, processes: list[ServerProcess], refused_start: Callable[..., str]
) -> None:
    first = ServerProcess(tmp_path)
    processes.append(first)
    drive(first.wait_until_serving(), 3, "a")
    first.process.send_signal(signal.SIGTERM)
    assert first.finish()[0] == 0
    log = refused_start(tmp_path, "--policy", "thompson")
    assert "policy: snapshot 'linucb' vs configured 'thompson'" in log and "--data-dir" in log
    assert "stopped; nothing new to save" in log and "stopped; model" not in log  # claims no save
    with sqlite3.connect(tmp_path / "pricebandit.sqlite3") as db:
        assert db.execute("SELECT COUNT(*) FROM snapshots").fetchone()[0] == 1  # nothing overwritten


def test_healthcheck_command_reports_serving_and_failure(
    pricing: ServerHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    assert healthcheck(["--address", pricing.server.address]) == 0
    assert capsys.readouterr().out.strip().endswith("SERVING")
    pricing.server.health.set("pricing.v1.PricingService", 2)  # NOT_SERVING, as while shutting down
    assert healthcheck(["--address", pricing.server.address]) == 1
    pricing.stop()
    assert healthcheck(["--address", "127.0.0.1:1", "--timeout", "0.5"]) == 1
