"""Every command refuses a bad flag or environment value the same way: exit 2 and one line on stderr
naming the flag (or variable), the value and what is allowed; never a traceback, never a silent run."""

from __future__ import annotations

import importlib.util
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from simulator.behavior import histories, write_jsonl
from simulator.scenarios import SCENARIOS

TIMEOUT = 120.0
SERVER, HEALTHCHECK, SIM, TRAIN = "server.cli", "server.healthcheck", "simulator.cli", "learner.value.train"


def run(module: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True,
                          timeout=TIMEOUT, stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})})


def refused(module: str, *args: str, env: dict[str, str] | None = None) -> str:
    """The one line a refused command printed (asserting exit 2, one line, no traceback)."""
    result = run(module, *args, env=env)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize(("args", "named"), [
    (["--port", "99999"], ["--port", "99999", "0 to 65535"]),  # was served on 34463
    (["--port", "-1"], ["--port", "-1", "0 to 65535"]),  # was served on 65535
    (["--workers", "0"], ["--workers", "'0'", ">= 1"]),
    (["--user-cache-size", "0"], ["--user-cache-size", "'0'", ">= 1"]),
    (["--alphas", "banana,1"], ["--alphas", "banana", "comma-separated numbers"]),
    (["--decay", "0"], ["--decay", "0.0", "(0, 1]"]),
    (["--policy-options", "nosuch=1"], ["--policy-options", "nosuch", "its options: beta"]),
    (["--policy", "thompson", "--policy-options", "beta=1"], ["--policy-options", "beta", "v, samples"]),
    (["--log-level", "loud"], ["--log-level", "loud", "DEBUG, INFO, WARNING, ERROR"]),
    (["--value-model", "/nonexistent.npz"], ["--value-model", "/nonexistent.npz", "existing file"]),
])
def test_the_server_refuses_a_bad_flag_in_one_line(args: list[str], named: list[str], tmp_path: Path) -> None:
    line = refused(SERVER, "--data-dir", str(tmp_path), "--metrics-port", "0", *args)
    assert all(part in line for part in named), line
    assert not list(tmp_path.iterdir())  # refused before anything was opened


def test_a_bad_environment_variable_is_named_and_help_still_works(tmp_path: Path) -> None:
    line = refused(SERVER, "--data-dir", str(tmp_path), env={"PRICEBANDIT_PORT": "abc"})
    assert "PRICEBANDIT_PORT" in line and "'abc'" in line and "0 to 65535" in line
    line = refused(SERVER, "--data-dir", str(tmp_path), env={"PRICEBANDIT_DECAY": "2"})
    assert "PRICEBANDIT_DECAY" in line and "(0, 1]" in line
    helped = run(SERVER, "--help", env={"PRICEBANDIT_PORT": "abc"})
    assert helped.returncode == 0 and "PRICEBANDIT_PORT" in helped.stdout, helped.stderr


def test_a_busy_grpc_port_is_named_without_a_traceback(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run(SERVER, "--data-dir", str(tmp_path), "--port", str(port), "--metrics-port", "0")
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr and "--port" in result.stderr


def test_healthcheck_takes_a_port_and_refuses_a_bad_one() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # nothing listens: UNAVAILABLE, exit 1
    probed = run(HEALTHCHECK, "--port", str(port), "--timeout", "0.5")
    assert probed.returncode == 1 and f"127.0.0.1:{port}: UNAVAILABLE" in probed.stderr, probed.stderr
    from_env = run(HEALTHCHECK, "--timeout", "0.5", env={"PRICEBANDIT_PORT": str(port)})
    assert from_env.returncode == 1 and f"127.0.0.1:{port}" in from_env.stderr, from_env.stderr
    assert "'70000'" in refused(HEALTHCHECK, "--port", "70000")
    assert "PRICEBANDIT_PORT" in refused(HEALTHCHECK, env={"PRICEBANDIT_PORT": "abc"})
    helped = run(HEALTHCHECK, "--help")
    assert "PRICEBANDIT_PORT" in helped.stdout and "``" not in helped.stdout


@pytest.mark.parametrize(("args", "named"), [
    (["run", "--value-model", "/nonexistent.npz"], ["--value-model", "/nonexistent.npz"]),
    (["behavior", "--out", "/nonexistent/dir/x.jsonl"], ["--out", "/nonexistent/dir"]),
    (["behavior", "--users", "-1"], ["--users", "'-1'", ">= 1"]),  # wrote nothing, exit 0
    (["run", "--option", "linucb.nosuch=1"], ["--option", "nosuch", "its options: beta"]),
    (["run", "--rounds", "10", "--policy", "linucb", "--decay", "0"], ["--decay", "(0, 1]"]),
    (["live", "--delay-scale", "-1"], ["--delay-scale", "'-1'", ">= 0"]),
])
def test_the_simulator_refuses_a_bad_flag_in_one_line(args: list[str], named: list[str]) -> None:
    line = refused(SIM, *args)
    assert all(part in line for part in named), line


def test_simulator_help_shows_the_defaults() -> None:
    helped = run(SIM, "live", "--help")
    assert helped.returncode == 0
    assert "(default: 1000)" in helped.stdout and "(default: 0.01)" in helped.stdout


def test_training_refuses_zero_epochs_before_writing_a_model(tmp_path: Path) -> None:
    log = tmp_path / "h.jsonl"
    log.write_text("")
    out = tmp_path / "m.npz"
    assert "--epochs" in refused(TRAIN, str(log), "--out", str(out), "--epochs", "0")
    assert "no such file" in refused(TRAIN, str(tmp_path / "missing.jsonl"), "--out", str(out))
    assert not out.exists()


def test_a_bench_script_runs_as_a_module_with_help_and_refuses_bad_rounds() -> None:
    helped = run("bench.simulator_speed", "--help")
    assert helped.returncode == 0 and "--rounds" in helped.stdout, helped.stderr
    assert "--rounds" in refused("bench.simulator_speed", "--rounds", "0")


@pytest.mark.skipif(importlib.util.find_spec("keras") is None, reason="the train extra is not installed")
def test_training_hides_tensorflows_start_up_log_unless_asked(tmp_path: Path) -> None:
    log, out = tmp_path / "h.jsonl", tmp_path / "m.npz"
    market = SCENARIOS["stationary"].stream(0, 1).market
    write_jsonl(histories(market, range(30)), log)
    result = run(TRAIN, str(log), "--out", str(out), "--epochs", "1", "--units", "4", "--hidden", "4",
                 "--max-len", "32", "--no-progress")
    assert result.returncode == 0 and out.exists(), result.stderr
    assert not re.search(r"^[IWE]\d{4} |absl::InitializeLog", result.stderr, re.MULTILINE), result.stderr
