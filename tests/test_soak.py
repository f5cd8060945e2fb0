"""The short form of the soak run (the full form: python -m bench.soak --seconds 180)."""

from __future__ import annotations

from bench.soak import run_soak


def test_a_short_soak_serves_without_errors_and_drains_pending_quotes() -> None:
    report = run_soak(seconds=4.0, clients=2, reward_window_seconds=1.0)
    assert report.exit_code == 0
    assert report.unexpected_errors == 0, report.calls
    assert report.calls.get("Quote OK", 0) > 20  # a loaded 2-core CI machine still serves hundreds
    assert report.calls.get("Quote(bad) INVALID_ARGUMENT", 0) > 0
    assert report.peak_pending_quotes > 0
    assert report.pending_after_drain == 0.0
    assert 0 < report.peak_rss_mib < 1024
