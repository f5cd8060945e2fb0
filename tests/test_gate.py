"""The rollout gate through a real server: the operator's credential, a candidate refused when the
truth says it is worse (nothing changes), one accepted on a poor running configuration's log (it
serves at once, learned what a restart would rebuild, and survives the restart), shadow -> online."""

from __future__ import annotations

import logging
import shutil
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import grpc
import numpy as np
import pytest

from conftest import ServerHandle, make_config, series, wait_for
from learner import Pricer
from pricing.v1 import pricing_pb2, pricing_pb2_grpc
from server.adoption import Adoption
from server.config import parse_config
from server.gate_cli import main as gate_main
from server.pseudonyms import KEY_FILENAME
from server.store import SQLiteStore, SwitchEntry

CHECKOUT = "checkout-token"
OPERATOR = "operator-token"
AS_OPERATOR = (("authorization", f"Bearer {OPERATOR}"),)
POOR = {"value_model": "none", "policy": "egreedy", "policy_options": {"epsilon": 1.0},
        "operator_token": OPERATOR}
"""A deliberately poor running configuration: every price of the grid at random."""
WORSE = ("--alphas 0,0.05", "--alphas 0.9,1")
"""Candidates the truth says are worse: only the cheapest prices, or only far too high ones."""
BETTER = "--policy linucb --policy-options beta=0.5"
LOGGED = 1000
UNIT_COST, LIST_PRICE = 40.0, 100.0
"""The builders' product; with no value model V is the list margin, so arm alpha quotes 40 + 60 alpha."""


def purchase_probability(price: float) -> float:
    """The market's truth: demand falls with the price, best profit near alpha 0.4."""
    alpha = (price - UNIT_COST) / (LIST_PRICE - UNIT_COST)
    return float(1.0 / (1.0 + np.exp(-(3.0 - 6.0 * alpha))))


def true_profit(alpha: float) -> float:
    price = UNIT_COST + alpha * (LIST_PRICE - UNIT_COST)
    return purchase_probability(price) * (price - UNIT_COST)


def serve(handle: ServerHandle, count: int, prefix: str, rng: np.random.Generator) -> float:
    """``count`` quotes answered by the market's truth; returns their mean true expected profit."""
    expected = 0.0
    for i in range(count):
        quote = handle.quote(quote_id=f"{prefix}-{i}", user_id=f"u{i % 40}",
                             context={"is_mobile": float(i % 2)})
        chance = purchase_probability(quote.price)
        expected += chance * (quote.price - UNIT_COST)
        handle.reward(quote.quote_id, purchased=bool(rng.random() < chance))
    return expected / count


def operator(handle: ServerHandle) -> pricing_pb2_grpc.OperatorServiceStub:
    assert handle.channel is not None
    return pricing_pb2_grpc.OperatorServiceStub(handle.channel)


def gate_call(handle: ServerHandle, method: str, metadata: tuple[tuple[str, str], ...] = AS_OPERATOR,
              **fields: object) -> pricing_pb2.GateResponse:
    request = pricing_pb2.GateRequest(**{"requested_by": "ops@example", **fields})  # type: ignore[arg-type]
    return getattr(operator(handle), method)(request, metadata=metadata, timeout=60)  # type: ignore[no-any-return]


def refusal(call: Callable[[], object]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as refused:
        call()
    return refused.value


def adopted(handle: ServerHandle) -> str | None:
    store: SQLiteStore = handle.server.service.store  # type: ignore[assignment]
    return store.adopted()


def rebuilt(handle: ServerHandle) -> bytes:
    """The snapshot of a fresh Pricer of the serving configuration that learned the whole log: what a
    restart without any snapshot would serve."""
    service = handle.server.service
    pricer = Pricer(service.pricer.config)
    for entry in service.store.log_after(0):
        if entry.learned and pricer.learnable(entry.decision):
            pricer.update(entry.decision, entry.reward)
    return pricer.snapshot()


def crash_image(handle: ServerHandle) -> Path:
    """What a crash of the running server would leave: its committed state, in a folder of its own."""
    source = handle.config.data_dir
    image = source.parent / f"{source.name}-crashed"
    image.mkdir()
    shutil.copy(source / KEY_FILENAME, image / KEY_FILENAME)
    with sqlite3.connect(source / SQLiteStore.FILENAME) as live, \
            sqlite3.connect(image / SQLiteStore.FILENAME) as copy:
        live.backup(copy)
    return image


def test_operator_calls_need_the_operator_token(start_server: Callable[..., ServerHandle]) -> None:
    handle = start_server(value_model="none", auth_token=CHECKOUT, operator_token=OPERATOR)
    as_checkout = (("authorization", f"Bearer {CHECKOUT}"),)
    for method in ("Evaluate", "Switch"):
        assert refusal(lambda m=method: gate_call(handle, m, as_checkout)).code() == \
            grpc.StatusCode.PERMISSION_DENIED
        assert refusal(lambda m=method: gate_call(handle, m, ())).code() == grpc.StatusCode.UNAUTHENTICATED
    # The operator token passes (the empty log is then the refusal), and opens no checkout call.
    empty = refusal(lambda: gate_call(handle, "Evaluate", candidate="--decay 0.999"))
    assert empty.code() == grpc.StatusCode.FAILED_PRECONDITION and "no decision" in empty.details()
    quote = refusal(lambda: handle.stub.Quote(pricing_pb2.QuoteRequest(), metadata=AS_OPERATOR, timeout=10))
    assert quote.code() == grpc.StatusCode.PERMISSION_DENIED


def test_without_an_operator_token_the_gate_is_closed(start_server: Callable[..., ServerHandle]) -> None:
    handle = start_server(value_model="none")  # no checkout token either: pricing is open, the gate not
    closed = refusal(lambda: gate_call(handle, "Switch", (), online=True))
    assert closed.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "--operator-token-file" in closed.details()
    assert handle.quote().price > 0


def test_the_command_says_why_a_call_failed(start_server: Callable[..., ServerHandle],
                                            capsys: pytest.CaptureFixture[str]) -> None:
    handle = start_server(value_model="none")
    assert gate_main(["online", "--address", handle.server.address], {}) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("pricebandit-gate: FAILED_PRECONDITION: operator calls need an operator token")


def test_the_operator_token_is_a_secret_of_its_own(tmp_path: Path, refused_start: Callable[..., str]) -> None:
    config = parse_config([], {"PRICEBANDIT_OPERATOR_TOKEN": OPERATOR})
    assert config.operator_token == OPERATOR and OPERATOR not in repr(config)
    token = tmp_path / "token"
    token.write_text(OPERATOR + "\n")
    assert parse_config(["--operator-token-file", str(token)], {}).operator_token_file == token
    log = refused_start(tmp_path / "data", "--auth-token-file", str(token),
                        "--operator-token-file", str(token))
    assert "cannot start: the operator token must not be the checkout's auth token" in log


def test_a_bad_candidate_is_named_and_changes_nothing(start_server: Callable[..., ServerHandle]) -> None:
    handle = start_server(**POOR)
    serve(handle, 20, "b", np.random.default_rng(1))
    for candidate, field in (("--port 5", "--port: not a learner setting"),
                             ("--context-features is_mobile", "--context-features: the gate cannot"),
                             ("--decay 7", "decay"), ("--policy nope", "--policy")):
        refused = refusal(lambda c=candidate: gate_call(handle, "Switch", candidate=c))
        assert refused.code() == grpc.StatusCode.INVALID_ARGUMENT, candidate
        assert refused.details().startswith("candidate: ") and field in refused.details(), refused.details()
    nobody = refusal(lambda: gate_call(handle, "Evaluate", requested_by=" "))
    assert nobody.code() == grpc.StatusCode.INVALID_ARGUMENT and nobody.details().startswith("requested_by")
    assert adopted(handle) is None and handle.server.service.pricer.model_version == "egreedy:20"


def test_the_gate_refuses_worse_candidates_and_adopts_a_better_one_live(
        start_server: Callable[..., ServerHandle], capsys: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture) -> None:
    grid = np.linspace(0.0, 1.0, 11)
    uniform = float(np.mean([true_profit(alpha) for alpha in grid]))
    for spec in WORSE:  # the truth: even the best arm of such a grid earns less than random prices
        alphas = [float(a) for a in spec.split()[1].split(",")]
        assert max(true_profit(alpha) for alpha in alphas) < uniform
    handle = start_server(**POOR)
    rng = np.random.default_rng(7)
    serve(handle, LOGGED, "poor", rng)
    address = handle.server.address
    environ = {"PRICEBANDIT_OPERATOR_TOKEN": OPERATOR}

    # Refused, through the command: exit 1, the numbers printed, nothing changed (now and after a restart).
    for spec in WORSE:
        assert gate_main(["switch", f"--candidate={spec}", "--address", address, "--requested-by", "ops"],
                         environ) == 1
        printed = capsys.readouterr().out
        assert printed.startswith("refused: the candidate's lower 95% bound") and "nothing changed" in printed
    assert adopted(handle) is None
    assert series(handle)['pricebandit_gate_decisions_total{result="refused"}'] == len(WORSE)
    version = handle.server.service.pricer.model_version
    handle.restart()
    assert handle.server.service.pricer.model_version == version == f"egreedy:{LOGGED}"
    assert handle.server.config.pricer.policy == "egreedy"

    report = gate_call(handle, "Evaluate", candidate=BETTER)
    assert report.result == pricing_pb2.GateResponse.EVALUATED and adopted(handle) is None
    assert report.candidate.low > report.running.value and report.decisions == LOGGED

    # Accepted, with traffic going on while the successor trains: it serves at once, and holds what a
    # restart would rebuild from the log.
    traffic = threading.Thread(target=serve, args=(handle, 150, "during", np.random.default_rng(8)))
    with caplog.at_level(logging.INFO, logger="server.gate"):
        traffic.start()
        switched = gate_call(handle, "Switch", candidate=BETTER, requested_by="alice")
        traffic.join()
    assert switched.result == pricing_pb2.GateResponse.ACCEPTED
    assert switched.configuration == "--policy-options beta=0.5"  # linucb: the default, not named
    assert switched.model_version.startswith("linucb:")
    (line,) = [record for record in caplog.records if getattr(record, "gate_result", "") == "accepted"]
    assert (line.gate_requested_by, line.gate_flags) == ("alice", BETTER)  # type: ignore[attr-defined]
    assert line.gate_candidate["low"] == switched.candidate.low  # type: ignore[attr-defined]
    assert handle.server.service.pricer.snapshot() == rebuilt(handle)
    metrics = series(handle)
    assert metrics['pricebandit_gate_decisions_total{result="accepted"}'] == 1
    assert metrics['pricebandit_gate_estimate{bound="low",policy="candidate"}'] == switched.candidate.low
    after = serve(handle, 200, "after", rng)
    assert after > uniform  # the switch pays: the market's truth of the prices it now quotes

    # The restart keeps the adopted configuration over the command line's (egreedy), and its model.
    version = handle.server.service.pricer.model_version
    with caplog.at_level(logging.WARNING, logger="server.adoption"):
        handle.restart()
    assert handle.server.config.pricer.policy == "linucb"
    assert handle.server.service.pricer.model_version == version
    assert any("overrides the command line" in record.getMessage() and "asked by alice" in record.getMessage()
               for record in caplog.records)


def test_a_server_with_the_value_model_evaluates_candidates_on_its_logged_values(
        start_server: Callable[..., ServerHandle]) -> None:
    handle = start_server(operator_token=OPERATOR)  # the shipped value model: V and embedding logged
    serve(handle, 20, "vm", np.random.default_rng(3))
    report = gate_call(handle, "Evaluate", candidate="--decay 0.999 --alphas 0,0.25,0.5,0.75,1")
    assert report.result == pricing_pb2.GateResponse.EVALUATED and report.decisions == 20
    assert report.candidate.low <= report.candidate.value <= report.candidate.high


def test_after_a_grid_switch_old_quotes_are_learned_where_their_alpha_is_on_the_new_grid(
        start_server: Callable[..., ServerHandle]) -> None:
    handle = start_server(**POOR)
    quotes = [handle.quote(quote_id=f"g-{i}", user_id=f"u{i}") for i in range(40)]
    for quote in quotes[:20]:
        handle.reward(quote.quote_id, purchased=quote.arm % 2 == 0)
    service = handle.server.service
    coarse = replace(service.pricer.config, alphas=(0.0, 0.2, 0.4, 0.6, 0.8, 1.0))
    service.switch(Adoption(coarse, "online", "test", 0.0), service.pricer.with_config(coarse))
    # Arm k quoted alpha k/10: the odd arms are off the new grid.
    assert service.pricer.updates == 20 - sum(quote.arm % 2 for quote in quotes[:20])
    for quote in quotes[20:]:  # priced on the old grid, settled on the new one
        handle.reward(quote.quote_id, purchased=True)
    on_grid = sum(quote.arm % 2 == 0 for quote in quotes)
    assert service.pricer.updates == on_grid and service.pricer.snapshot() == rebuilt(handle)
    # A crash now: the start restores the switch's snapshot and replays the settlements after it.
    crashed = ServerHandle(make_config(crash_image(handle), **POOR))
    try:
        assert crashed.server.config.pricer.alphas == coarse.alphas
        assert crashed.server.service.pricer.snapshot() == service.pricer.snapshot()
        assert len(crashed.quote().explanation.arms) == 6
    finally:
        crashed.stop()


def test_shadow_switches_online_through_the_gate_and_stays_online(
        start_server: Callable[..., ServerHandle]) -> None:
    handle = start_server(value_model="none", mode="shadow", operator_token=OPERATOR)
    assert handle.quote(incumbent_price=80.0).price == 80.0
    assert refusal(lambda: gate_call(handle, "Switch", online=True, candidate="--decay 1")).code() == \
        grpc.StatusCode.INVALID_ARGUMENT
    switched = gate_call(handle, "Switch", online=True)
    assert switched.result == pricing_pb2.GateResponse.ACCEPTED and switched.mode == "online"
    assert handle.quote(incumbent_price=80.0).price != 80.0  # the policy's own price now
    handle.restart()  # the command line still says --mode shadow: the stored switch wins
    assert handle.server.service.mode == "online"
    again = refusal(lambda: gate_call(handle, "Switch", online=True))
    assert again.code() == grpc.StatusCode.FAILED_PRECONDITION and "already online" in again.details()


INCUMBENT_ALPHAS = (1.0, 0.85, 0.7)
"""The shop's own rule before pricebandit: list price, 9% and 18% off in turn (a promotion calendar)."""


def test_a_model_learned_in_shadow_beats_the_incumbent_once_switched_online(
        start_server: Callable[..., ServerHandle]) -> None:
    """Issue 17's "done when": shadow learns from the incumbent's own prices and outcomes only, then
    earns more than the incumbent from the first quotes it prices itself."""
    handle = start_server(value_model="none", mode="shadow", operator_token=OPERATOR)
    rng = np.random.default_rng(17)
    incumbent = 0.0
    for i in range(600):
        alpha = INCUMBENT_ALPHAS[i % len(INCUMBENT_ALPHAS)]
        price = UNIT_COST + alpha * (LIST_PRICE - UNIT_COST)
        quote = handle.quote(quote_id=f"shadow-{i}", user_id=f"u{i % 40}", incumbent_price=price)
        assert quote.price == price
        incumbent += true_profit(alpha) / 600
        handle.reward(quote.quote_id, purchased=bool(rng.random() < purchase_probability(price)))
    assert gate_call(handle, "Switch", online=True).result == pricing_pb2.GateResponse.ACCEPTED
    online = serve(handle, 200, "online", rng)
    assert online > 1.5 * incumbent, (online, incumbent)  # best alpha 0.4 earns 2.6 times the incumbent


def switches(handle: ServerHandle) -> list[SwitchEntry]:
    return [entry for entry in handle.server.service.store.entries_after(0) if isinstance(entry, SwitchEntry)]


def test_a_switch_through_one_replica_is_applied_by_every_replica_at_one_log_position(
        start_server: Callable[..., ServerHandle], redis_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """Two replicas on one Redis: the switch is an entry of the shared log, so the replica that was
    not asked switches at the same position and both keep one model, also through a restart."""
    first = start_server(store=redis_url, **POOR)
    second = start_server(store=redis_url, user_id_key_file=first.config.data_dir / KEY_FILENAME, **POOR)
    rng = np.random.default_rng(7)
    serve(first, LOGGED, "poor", rng)  # the log on which the single server adopts BETTER, above
    store = first.server.service.store
    logged = store.last_seq()
    refused = gate_call(first, "Switch", candidate=WORSE[0])
    assert refused.result == pricing_pb2.GateResponse.REFUSED
    assert store.last_seq() == logged and switches(first) == [] and store.adopted() is None

    traffic = threading.Thread(target=serve, args=(second, 100, "during", np.random.default_rng(8)))
    with caplog.at_level(logging.INFO, logger="server.service"):
        traffic.start()
        switched = gate_call(first, "Switch", candidate=BETTER)
        traffic.join()
        assert switched.result == pricing_pb2.GateResponse.ACCEPTED
        (entry,) = switches(first)
        assert f"from log entry {entry.seq} on every replica" in switched.reason
        assert first.server.service.pricer.config.policy == "linucb"  # applied before the answer
        wait_for(lambda: second.server.service.pricer.config.policy == "linucb", 5.0, "the other switched")
    applied = [record.getMessage() for record in caplog.records
               if record.getMessage().startswith(f"configuration switch at log entry {entry.seq} ")]
    assert len(applied) == 2, applied  # once on each replica, at that entry

    serve(first, 50, "after-first", rng)
    serve(second, 50, "after-second", rng)
    end = store.last_seq()
    for replica in (first, second):
        wait_for(lambda replica=replica: replica.server.service.last_applied == end, 5.0, "all applied")
    assert first.server.service.pricer.snapshot() == second.server.service.pricer.snapshot() == rebuilt(first)
    second.restart()  # from the latest snapshot (the switch's or later) and the log after it
    assert second.server.config.pricer.policy == "linucb"
    assert second.server.service.pricer.snapshot() == first.server.service.pricer.snapshot()


def test_shadow_goes_online_on_every_replica(start_server: Callable[..., ServerHandle],
                                            redis_url: str) -> None:
    flags = {"store": redis_url, "value_model": "none", "mode": "shadow", "operator_token": OPERATOR}
    first = start_server(**flags)
    second = start_server(**flags, user_id_key_file=first.config.data_dir / KEY_FILENAME)
    assert second.quote(incumbent_price=80.0).price == 80.0
    assert gate_call(first, "Switch", online=True).result == pricing_pb2.GateResponse.ACCEPTED
    assert first.server.service.mode == "online"
    wait_for(lambda: second.server.service.mode == "online", 5.0, "the other replica online")
    assert second.quote(incumbent_price=80.0).price != 80.0
    (entry,) = switches(second)
    assert entry.switch.snapshot is None  # the mode alone
