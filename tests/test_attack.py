"""The short form of the attack command (the full form: python -m bench.attack)."""

from __future__ import annotations

from bench.attack import SHORT, run_attack, summary


def test_a_short_attack_loses_nothing_answers_no_internal_and_drains() -> None:
    report = run_attack(SHORT)
    assert report.holds, summary(report)
    assert report.sigkill.killed_by_sigkill == SHORT.restarts
    assert report.malformed.undecodable_sent == SHORT.undecodable_calls
    assert report.overload.codes, report.overload
