"""The benchmark's one command, in its smoke version: every part runs and reports. No timings asserted."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from bench.aio_handler import INLINE, THREAD, answered, command
from bench.process import free_port
from bench.servers import process

REPO = Path(__file__).resolve().parents[1]


def test_the_benchmark_runs_end_to_end_and_reports_every_row(tmp_path: Path) -> None:
    report = tmp_path / "bench.md"
    subprocess.run([sys.executable, "-m", "bench", "--smoke", "--concurrency", "1,4",
                    "--markdown", str(report)], cwd=REPO, check=True, capture_output=True,
                   text=True, timeout=300)
    text = report.read_text()
    cells = [[cell.strip() for cell in line.strip("|").split("|")] for line in text.splitlines()
             if line.startswith(("| Quote | ", "| Reward | ", "| QuoteBatch | "))]
    server_rows = [row for row in cells if row[1] in ("python", "h2load")]  # not the stage rows
    servers = ["empty aio", "empty sync", "pricebandit"]
    python_rows = sorted((row[0], int(row[2]), row[3]) for row in server_rows if row[1] == "python")
    assert python_rows == sorted((rpc, c, server) for rpc in ("Quote", "QuoteBatch", "Reward")
                                 for c in (1, 4) for server in servers)
    if shutil.which("h2load"):
        assert sorted((int(row[2]), row[3]) for row in server_rows if row[1] == "h2load") == [
            (c, server) for c in (1, 4) for server in servers]
    assert all(row[-1] == "0" for row in server_rows), "some calls failed"
    batch_rows = [row for row in server_rows if row[0] == "QuoteBatch"]
    assert all(abs(float(row[5]) - 50 * float(row[4])) <= 1 for row in batch_rows), \
        "quotes per second is not 50 quotes a batch"
    assert "Slowest stage: **" in text
    for stage in ("decode + validate request", "policy: score + choose", "store write (fsync)",
                  "store close (fsync)", "learner update"):
        assert f"| {stage} |" in text
    for policy in ("linucb", "thompson", "squarecb", "egreedy"):
        assert f"| {policy} | 16 |" in text
    assert "bytes of database" in text
    assert re.search(r"a user's value-model state is \d+ bytes stored and \d+ bytes as a Python object", text)
    targets = [line for line in text.splitlines() if line.startswith("- ")]
    assert len(targets) == 9, targets  # issue 12's floors: 4 single Quote, Reward, 2 QuoteBatch, 2 Pricer
    assert all(line.endswith((": met", "MISSED")) or "MISSED at concurrency" in line for line in targets)
    client = "h2load" if shutil.which("h2load") else "python client; h2load not installed"
    assert sum(f"({client})" in line for line in targets) == 4
    assert sum("against the empty aio server's" in line for line in targets) == 5


def test_the_aio_handler_comparison_serves_priced_quotes(tmp_path: Path) -> None:
    """``bench.aio_handler``'s aio servers run the real service: a Quote comes back priced, on the loop
    and on its executor (h2load alone could not tell: a failed gRPC call is HTTP 200 too)."""
    for name in (INLINE, THREAD):
        port = free_port()
        address = f"127.0.0.1:{port}"
        with process(command(name, port, str(tmp_path / name.replace(" ", "-"))), address):
            answered(address)
