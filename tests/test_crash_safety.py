"""Kill the server with SIGKILL at random moments while a client drives it; nothing acknowledged is
lost or doubled, and the model equals a clean replay of the decision log (the run itself is
``bench/ledger.py``, which ``python -m bench.attack`` repeats many more times). On Redis, Redis itself
is SIGKILLed and restarted from its append-only file in every other cycle too."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.ledger import run_sigkill
from bench.redis_process import RedisProcess

CYCLES = 5


@pytest.mark.parametrize(("backend", "replicas"), [("sqlite", 1), ("redis", 1), ("redis", 2)])
def test_sigkill_at_random_points_loses_nothing_acknowledged(tmp_path: Path, backend: str,
                                                             replicas: int) -> None:
    """With two replicas, rewards go to the replica that did not quote, a random one is SIGKILLed each
    cycle, and both final models must equal the replay."""
    redis = RedisProcess(tmp_path / "redis") if backend == "redis" else None
    try:
        report = run_sigkill(tmp_path / "data", restarts=CYCLES, redis=redis, replicas=replicas)
    finally:
        if redis is not None:
            redis.stop()
    assert report.killed_by_sigkill == CYCLES
    assert report.final_exit_code == 0
    assert (report.lost, report.doubled, report.wrong_rewards) == (0, 0, 0), report
    assert report.model_equals_replay
    assert report.acknowledged_rewards > 50 and report.acknowledged_quotes > 80
