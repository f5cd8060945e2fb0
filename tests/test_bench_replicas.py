"""The replicas' benchmarks in their smallest runs: each part runs and reports. No timings asserted."""

from __future__ import annotations

import pytest

from bench import outcome_log, replicas


def test_the_outcome_log_benchmark_reports_each_setting(capsys: pytest.CaptureFixture[str]) -> None:
    assert outcome_log.main(["--threads", "2", "--quotes", "20"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = [line for line in lines if line.startswith(("| always", "| everysec"))]
    assert [row.split("|")[1:3] for row in rows] == [[" always ", " 2 "], [" everysec ", " 2 "]]


def test_the_replicas_benchmark_reports_one_and_two_replicas(capsys: pytest.CaptureFixture[str]) -> None:
    assert replicas.main(["--clients", "1", "--seconds", "0.5"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = [line.split("|") for line in lines if line.startswith(("| 1 |", "| 2 |"))]
    assert [row[1].strip() for row in rows] == ["1", "2"]
    assert all(float(row[2].replace(",", "")) > 0 for row in rows)
