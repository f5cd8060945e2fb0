"""``python -m bench.personalization``: the lineup comes from the simulator, the tables from the runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import personalization
from bench.personalization import BEHAVIOR, BEST_FIXED, CONTEXT, ORACLE, VW, Run, lineup, report, summarize
from learner import PricerConfig
from simulator import contenders


def test_the_lineup_follows_the_default_learner_and_the_simulators_contenders(monkeypatch) -> None:
    default = PricerConfig().policy
    team = lineup()
    assert team.names[CONTEXT] == default and team.names[BEHAVIOR] == default + contenders.VALUE_MODEL_SUFFIX
    assert team.names["own_responses"] == default + contenders.RESPONSES_SUFFIX
    assert len(team.contenders()) == 6
    assert lineup(PricerConfig(policy="thompson")).names[BEHAVIOR] == "thompson+lstm"
    assert team.role_of("best_fixed(alpha=0.4)") == BEST_FIXED and team.role_of("random") is None
    without = tuple(name for name in contenders.VALUE_CONTENDERS
                    if not name.endswith(contenders.RESPONSES_SUFFIX))
    monkeypatch.setattr(contenders, "VALUE_CONTENDERS", without)
    assert lineup().names["own_responses"] is None
    with pytest.raises(ValueError, match="offers no"):
        lineup(PricerConfig(policy="no-such-policy"))


def synthetic(seed: int, shares: dict[str, float], recovery: dict[str, int | None] | None = None) -> Run:
    return Run("price_war", seed, 200_000, 0.6, 1.0, shares=shares, change_round=100_000, recovery_alpha=0.4,
               recovery=recovery or {})


def test_the_tables_give_shares_spreads_lifts_and_recovery() -> None:
    runs = [synthetic(0, {ORACLE: 1.0, BEST_FIXED: 0.8, VW: 0.78, CONTEXT: 0.84, BEHAVIOR: 0.88},
                      {ORACLE: 1000, BEST_FIXED: None, VW: 1900, CONTEXT: None, BEHAVIOR: 4200}),
            synthetic(1, {ORACLE: 1.0, BEST_FIXED: 0.9, VW: 0.8, CONTEXT: 0.9, BEHAVIOR: 0.99},
                      {ORACLE: 1000, BEST_FIXED: None, VW: 2500, CONTEXT: 7000, BEHAVIOR: 3000})]
    behavior = summarize(runs, BEHAVIOR)
    assert behavior is not None
    assert behavior.share == pytest.approx(0.935) and behavior.lift == pytest.approx((0.1 + 0.1) / 2)
    assert summarize(runs, "own_responses") is None
    text = report(runs, lineup())
    assert "| linucb+lstm | 93.5% | 88.0–99.0% | +10.0% | 4,200 / 3,000 |" in text.replace(
        PricerConfig().policy, "linucb")
    assert "| price_war | 85.0% (+0.0%) |" in text and "| n/a | 100.0% (+18.1%) |" in text
    assert "recovered in 4,200 rounds at worst (ceiling 5,000): met" in text
    assert "93.5% against the best fixed price's 85.0% and VW's 79.0%: met" in text


def test_the_command_runs_end_to_end_on_a_tiny_configuration(tmp_path: Path, capsys) -> None:
    out = tmp_path / "p.json"
    assert personalization.main(["--rounds", "400", "--seed", "3", "--scenario", "price_war",
                                 "--scenario", "far_below_list", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    team = lineup()
    for expected in ("### price_war: seeds 3; 400 rounds", "### far_below_list", "### Shiller table",
                     "rounds to recover", f"| {team.names[BEHAVIOR]} |", "+ own price responses"):
        assert expected in printed, expected
    data = json.loads(out.read_text())
    ran = [(run["scenario"], run["seed"]) for run in data["runs"]]
    assert ran == [("price_war", 3), ("far_below_list", 3)]
    war = data["runs"][0]
    assert war["change_round"] == 200
    assert set(war["shares"]) == {ORACLE, BEST_FIXED, VW, CONTEXT, BEHAVIOR, "own_responses"}
    assert war["shares"][ORACLE] == 1.0 and 0.3 < war["shares"][BEST_FIXED] < 1.0
    assert data["summary"]["far_below_list"][CONTEXT]["shares"] == [data["runs"][1]["shares"][CONTEXT]]
    assert personalization.main(["--rounds", "0"]) == 2
