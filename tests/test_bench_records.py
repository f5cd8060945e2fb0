"""``bench.records`` in a small run: both forms at each dimension asked, their numbers printed."""

from __future__ import annotations

import pytest

from bench import records


def test_the_record_benchmark_reports_both_forms(capsys: pytest.CaptureFixture[str]) -> None:
    assert records.main(["--dim", "16", "--count", "20"]) == 0
    rows = [line.split("|")[1:-1] for line in capsys.readouterr().out.splitlines()[2:]]
    assert [(form.strip(), dim.strip()) for form, dim, *_ in rows] == [("JSON", "16"), ("record", "16")]
    json_bytes, record_bytes = (float(row[-1].replace(",", "")) for row in rows)
    assert record_bytes < json_bytes
