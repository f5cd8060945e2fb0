"""The benchmark's one command, in its smoke version: every part runs and reports. No timings asserted."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_the_benchmark_runs_end_to_end_and_reports_every_row(tmp_path: Path) -> None:
    report = tmp_path / "bench.md"
    subprocess.run([sys.executable, "-m", "bench", "--smoke", "--concurrency", "1,4",
                    "--markdown", str(report)], cwd=REPO, check=True, capture_output=True,
                   text=True, timeout=300)
    text = report.read_text()
    server_rows = [line.split(" | ") for line in text.splitlines()
                   if line.startswith(("| Quote | ", "| Reward | ")) and line.count("|") == 15]
    python_rows = sorted((row[0].strip("| "), int(row[2])) for row in server_rows if row[1] == "python")
    assert python_rows == [("Quote", 1), ("Quote", 4), ("Reward", 1), ("Reward", 4)]
    if shutil.which("h2load"):
        assert sorted(int(row[2]) for row in server_rows if row[1] == "h2load") == [1, 4]
    assert all(row[-1].strip(" |") == "0" for row in server_rows), "some calls failed"
    assert "Slowest stage: **" in text
    for stage in ("decode + validate request", "policy: score + choose", "store write (fsync)",
                  "store close (fsync)", "learner update"):
        assert f"| {stage} |" in text
    for policy in ("linucb", "thompson", "squarecb", "egreedy"):
        assert f"| {policy} | 16 |" in text
    assert "bytes of database" in text
    assert re.search(r"a user's value-model state is \d+ bytes stored and \d+ bytes as a Python object", text)
    assert text.count("\n- ") == (7 if shutil.which("h2load") else 5)  # one line per target
