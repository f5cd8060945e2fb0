"""pricebandit-evaluate end to end: real servers' logs, bad lines, misfit candidates, the simulator."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from builders import product
from conftest import ServerHandle
from evaluation.candidates import CandidateError, parse_candidate
from evaluation.cli import main
from evaluation.logs import BadRecord, read_dsjson, read_state
from evaluation.replay import evaluate
from pricing.v1 import pricing_pb2
from server.decision_log import dsjson_lines
from server.store import SQLiteStore

CONTEXTS: tuple[dict[str, float], ...] = (
    {"is_mobile": 1.0}, {"is_returning": 1.0, "hour_sin": 0.5}, {"session_depth": 0.3}, {})


def serve_quotes(server: ServerHandle, count: int) -> None:
    """``count`` quotes, each rewarded before the next (so the log's order is the learning order),
    over varied contexts and products, one with guardrails that refuse arms at both ends."""
    for i in range(count):
        fields = {"floor_price": 55.0, "ceiling_price": 90.0} if i % 5 == 0 else {}
        quote = server.quote(context=CONTEXTS[i % len(CONTEXTS)],
                             product=product(product_id=f"sku-{i % 3}", list_price=100.0 + 10 * (i % 3),
                                             **fields))
        server.reward(quote.quote_id, purchased=i % 3 != 1)


def write_dsjson(server: ServerHandle, path: Path) -> Path:
    store: SQLiteStore = server.server.service.store  # type: ignore[assignment]
    path.write_text("".join(line + "\n" for line in dsjson_lines(store)))
    return path


def test_the_dsjson_lines_and_the_state_file_give_the_same_decisions(
        start_server: Callable[..., ServerHandle], tmp_path: Path) -> None:
    server = start_server(policy="egreedy", policy_options={"epsilon": 0.3})
    serve_quotes(server, 12)
    from_lines = read_dsjson(write_dsjson(server, tmp_path / "log.dsjson")).decisions
    from_state = read_state(server.config.data_dir).decisions
    assert len(from_lines) == len(from_state) == 12
    for a, b in zip(from_lines, from_state, strict=True):
        assert (a.quote_id, a.unit_cost, a.list_price, a.value, a.price, a.propensity, a.purchased) == \
               (b.quote_id, b.unit_cost, b.list_price, b.value, b.price, b.propensity, b.purchased)
        np.testing.assert_allclose(a.prices, b.prices, rtol=1e-12)
        assert a.allowed.tolist() == b.allowed.tolist() and a.pmf.tolist() == b.pmf.tolist()
        assert a.features == {name: value for name, value in b.features.items() if value != 0.0}
    assert not from_state[0].allowed.all()  # the guardrailed product refused arms


def test_a_candidate_equal_to_a_deterministic_logger_replays_it_exactly(
        pricing: ServerHandle) -> None:
    """The server's defaults (LinUCB, propensity 1, the value model): the same configuration, built by
    the same factory, takes every logged price, so IPS is the logged mean to the last bit; a coarser
    grid could not take the prices between its arms."""
    serve_quotes(pricing, 30)
    reading = read_state(pricing.config.data_dir)
    same, coarse = evaluate(reading, [parse_candidate(""),
                                      parse_candidate("coarse: --alphas 0,0.5,1")]).results
    evaluation = evaluate(reading, [parse_candidate("")])
    assert evaluation.deterministic_share == 1.0
    assert same.could_not_take == 0.0 and same.unsupported_mass == 0.0 and same.learned == 30
    assert same.profit["ips"].value == pytest.approx(evaluation.logged_profit.value, abs=1e-12)
    assert same.conversion["snips"].value == pytest.approx(evaluation.logged_conversion.value, abs=1e-12)
    assert 0.0 < coarse.could_not_take < 1.0 and coarse.unsupported_mass > 0.0


def test_the_command_reports_every_candidate_as_text_json_and_a_plot(
        pricing: ServerHandle, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    serve_quotes(pricing, 20)
    out_json, out_png = tmp_path / "evaluation.json", tmp_path / "evaluation.png"
    code = main([str(pricing.config.data_dir), "--candidate", "ts: --policy thompson",
                 "--candidate", "--decay 1", "--json", str(out_json), "--plot", str(out_png)])
    printed = capsys.readouterr().out
    assert code == 0
    assert "| ts |" in printed and "| --decay 1 |" in printed and "propensity 1" in printed
    document = json.loads(out_json.read_text())
    assert [c["label"] for c in document["candidates"]] == ["ts", "--decay 1"]
    assert set(document["candidates"][0]["profit"]) == {"ips", "snips", "dr"}
    assert document["log"]["decisions"] == 20
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_lines_are_named_and_stop_the_run_unless_skipped(
        pricing: ServerHandle, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    serve_quotes(pricing, 4)
    good = write_dsjson(pricing, tmp_path / "good.dsjson").read_text().splitlines()
    zero = json.loads(good[2])
    zero["_label_probability"] = 0.0
    old = json.loads(good[3])
    del old["_unit_cost"]
    path = tmp_path / "bad.dsjson"
    path.write_text("\n".join([good[0], "{not json", json.dumps(zero), json.dumps(old)]) + "\n")
    with pytest.raises(BadRecord) as caught:
        read_dsjson(path)
    assert (caught.value.line, caught.value.field_name) == (2, "line")
    assert main([str(path)]) == 2
    assert "line 2: line: expected one JSON object" in capsys.readouterr().err
    reading = read_dsjson(path, skip_bad=True)
    assert len(reading.decisions) == 1
    assert reading.skipped == {"line: expected one JSON object (DSJSON)": 1,
                               "_label_probability: expected a probability in (0, 1], got 0.0": 1,
                               "_unit_cost: expected a finite number >= 0, got None": 1}
    assert main([str(path), "--skip-bad"]) == 0
    printed = capsys.readouterr().out
    assert "1 decisions; 1 bad records skipped" in printed and "first bad record: line 2: line" in printed

def _spoiled(record: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """``record`` with the field at ``path`` (keys and list indexes, dot-separated) set to ``value``."""
    spoiled = json.loads(json.dumps(record))
    *parents, last = [int(key) if key.isdigit() else key for key in path.split(".")]
    target = spoiled
    for key in parents:
        target = target[key]
    target[last] = value
    return spoiled


@pytest.mark.parametrize(("path", "value", "named"), [
    ("p.3", True, "p[3]: expected a finite number >= 0, got True"),
    ("p.5", -0.01, "p[5]: expected a finite number >= 0, got -0.01"),
    ("c._multi.4.Price.alpha", "0.4", "c._multi[4].Price.alpha: expected a finite number >= 0, got '0.4'"),
    ("c._multi.2.Price", None, "c._multi[2].Price.alpha: expected a finite number >= 0, got None"),
    ("c.Context.is_mobile", float("nan"), "c.Context.is_mobile: expected a finite number, got nan"),
    ("_refused_alphas", [0.9, None], "_refused_alphas[1]: expected a finite number >= 0, got None"),
    ("c._multi", [], "c._multi: expected at least one offered arm (a quote with none is guardrail-bound)"),
])
def test_a_bad_number_in_a_list_is_named_by_its_index(
        pricing: ServerHandle, tmp_path: Path, path: str, value: Any, named: str) -> None:
    serve_quotes(pricing, 1)  # context {"is_mobile": 1.0}
    record = json.loads(write_dsjson(pricing, tmp_path / "good.dsjson").read_text().splitlines()[0])
    bad = tmp_path / "bad.dsjson"
    bad.write_text(json.dumps(_spoiled(record, path, value)) + "\n")
    with pytest.raises(BadRecord) as caught:
        read_dsjson(bad)
    assert str(caught.value) == f"line 1: {named}"


def test_numbers_whose_sum_overflows_are_still_each_accepted(pricing: ServerHandle, tmp_path: Path) -> None:
    serve_quotes(pricing, 1)
    record = json.loads(write_dsjson(pricing, tmp_path / "good.dsjson").read_text().splitlines()[0])
    record["c"]["Context"] = {"a": 1e308, "b": 1e308}
    path = tmp_path / "huge.dsjson"
    path.write_text(json.dumps(record) + "\n")
    features = read_dsjson(path).decisions[0].features
    assert (features["context.a"], features["context.b"]) == (1e308, 1e308)


def test_a_late_report_is_counted_and_its_quote_evaluated_once_as_no_purchase(
        start_server: Callable[..., ServerHandle], tmp_path: Path) -> None:
    server = start_server(reward_window_seconds=0.2)
    quote = server.quote()
    deadline = time.monotonic() + 10.0
    while server.server.service.store.pending_count() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.reward(quote.quote_id, purchased=True).status == pricing_pb2.RewardResponse.LATE
    for reading in (read_state(server.config.data_dir), read_dsjson(write_dsjson(server, tmp_path / "l"))):
        assert reading.late_reports == 1
        assert [(d.quote_id, d.purchased) for d in reading.decisions] == [(quote.quote_id, False)]


def test_a_candidate_that_does_not_fit_the_log_is_named(start_server: Callable[..., ServerHandle]) -> None:
    server = start_server(value_model="none")
    serve_quotes(server, 6)
    reading = read_state(server.config.data_dir)
    with pytest.raises(CandidateError, match=r"'default'.*line 1: _value_source: expected 'lstm'"):
        evaluate(reading, [parse_candidate("default: --policy linucb")])
    with pytest.raises(CandidateError, match=r"'between' .*could take none of the 6 logged prices"):
        evaluate(reading, [parse_candidate("between: --alphas 0.05,0.15 --value-model none")])
    with pytest.raises(CandidateError, match=r"'bad'.*--policy: 'nope' is not one of egreedy"):
        parse_candidate("bad: --policy nope")


def test_a_candidates_spread_band_masks_the_prices_outside_it(
        start_server: Callable[..., ServerHandle]) -> None:
    """The replay prices through ``Pricer.choose_rows``, as the server does: a candidate with
    ``--spread-limit 0`` may quote its reference price only, so of a uniform logger's prices it
    could have taken about one in eleven, where the same candidate without a band takes them all."""
    server = start_server(value_model="none", policy="egreedy", policy_options={"epsilon": 1.0})
    for i in range(33):  # the quote ids seed the logger's draws: fixed, so are the logged prices
        quote = server.quote(quote_id=f"band-{i}", context=CONTEXTS[i % len(CONTEXTS)])
        server.reward(quote.quote_id, purchased=i % 3 != 1)
    reading = read_state(server.config.data_dir)
    free, banded = evaluate(reading, [parse_candidate("--value-model none"),
                                      parse_candidate("band: --spread-limit 0 --value-model none")]).results
    assert free.could_not_take == 0.0
    assert 0.5 < banded.could_not_take < 1.0


@pytest.mark.slow
def test_on_the_simulator_the_estimates_rank_and_cover_the_truth(tmp_path: Path) -> None:
    """A uniform logger's log; the truth of each candidate is its exact expected profit online."""
    from bench.offline_eval import log_run, truth
    from simulator.scenarios import scenario

    spec = scenario("stationary")
    lines = log_run(spec, 1, 5000)
    path = tmp_path / "decisions.dsjson"
    path.write_text("\n".join(lines) + "\n")
    reading = read_dsjson(path)
    flags = ["low: --alphas 0,0.1,0.2 --value-model none",
             "uniform: --policy egreedy --policy-options epsilon=1 --value-model none",
             "linucb: --value-model none"]
    candidates = [parse_candidate(text) for text in flags]
    results = evaluate(reading, candidates).results
    truths = [truth(spec, 1, result.learned, c).profit for c, result in zip(candidates, results, strict=True)]
    estimates = [result.profit["dr"] for result in results]
    assert truths == sorted(truths) and [e.value for e in estimates] == sorted(e.value for e in estimates)
    for estimate, true in zip(estimates, truths, strict=True):
        assert estimate.low <= true <= estimate.high


def test_bootstrap_streams_widen_a_learners_interval_by_its_paths_spread(tmp_path: Path) -> None:
    """LinUCB decides deterministically, so every acceptance draw of the plain replay gives it the same
    path; its bootstrap streams learn other paths, and its interval is wider by their spread, around
    the same estimate. The uniform candidate prices alike whatever it learned: one path, the plain
    replay's interval."""
    from bench.offline_eval import log_run
    from simulator.scenarios import scenario

    path = tmp_path / "decisions.dsjson"
    path.write_text("\n".join(log_run(scenario("stationary"), 2, 3000)) + "\n")
    reading = read_dsjson(path)
    candidates = [parse_candidate("linucb: --value-model none"),
                  parse_candidate("uniform: --policy egreedy --policy-options epsilon=1 --value-model none")]
    plain, widened = evaluate(reading, candidates, bootstrap=0), evaluate(reading, candidates, bootstrap=4)
    assert (plain.bootstrap, widened.bootstrap) == (0, 4)
    (linucb, uniform), (linucb_widened, uniform_widened) = (
        [result.profit["dr"] for result in run.results] for run in (plain, widened))
    assert linucb_widened.value == linucb.value
    assert linucb_widened.high - linucb_widened.low > 1.2 * (linucb.high - linucb.low)
    assert uniform_widened == pytest.approx(uniform)
    for streams in (1, -1):
        with pytest.raises(ValueError, match="bootstrap"):
            evaluate(reading, candidates, bootstrap=streams)
