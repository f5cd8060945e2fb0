"""Shadow mode through a real server: the incumbent's price answered, the policy's logged beside it,
the incumbent's outcomes learned, agreement and lift exported, and what was learned kept online."""

from __future__ import annotations

import json
from collections.abc import Callable

import grpc
import pytest

from builders import product
from conftest import ServerHandle, series
from evaluation.logs import read_dsjson, read_state
from pricing.v1 import pricing_pb2
from server.decision_log import dsjson_lines
from server.store import SQLiteStore

ON_GRID = 70.0
"""With the builders' product (cost 50, list 100) and no value model, V = 50: alpha 0.4's price."""
OFF_GRID = 83.0


def test_a_shadow_quote_answers_the_incumbent_and_logs_the_policys_choice(
        start_server: Callable[..., ServerHandle]) -> None:
    online = start_server(value_model="none")
    shadow = start_server(value_model="none", mode="shadow")
    ours = online.quote(quote_id="q-1")
    answer = shadow.quote(quote_id="q-1", incumbent_price=OFF_GRID)
    assert answer.price == OFF_GRID and answer.propensity == 1.0
    stored = shadow.server.service.store.find_decision("q-1")
    assert stored is not None and stored.shadow
    assert (stored.proposed_price, stored.proposed_propensity) == (ours.price, ours.propensity)
    assert [view.probability for view in stored.arms] == [arm.probability for arm in ours.explanation.arms]
    # The incumbent's price outside the product's ceiling is answered all the same, and counted.
    capped = shadow.quote(incumbent_price=95.0, product=product(ceiling_price=90.0))
    assert capped.price == 95.0
    assert series(shadow)["pricebandit_shadow_incumbent_outside_bounds_total"] == 1.0


def test_shadow_mode_refuses_a_quote_without_the_incumbents_price(
        start_server: Callable[..., ServerHandle]) -> None:
    shadow = start_server(value_model="none", mode="shadow")
    with pytest.raises(grpc.RpcError) as refused:
        shadow.quote()
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert refused.value.details().startswith("incumbent_price: is required in shadow mode")
    batch = pricing_pb2.QuoteBatchRequest(user_id="u", products=[product(), product(product_id="p-2")])
    for prices, field in (([], "incumbent_prices: is required"), ([80.0], "incumbent_prices: 1 prices for 2"),
                          ([80.0, 0.0], "incumbent_prices[1]: 0.0 must be")):
        del batch.incumbent_prices[:]
        batch.incumbent_prices.extend(prices)
        with pytest.raises(grpc.RpcError) as refused:
            shadow.stub.QuoteBatch(batch, timeout=10)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert refused.value.details().startswith(field)
    batch.incumbent_prices[:] = [80.0, 90.0]
    assert [quote.price for quote in shadow.stub.QuoteBatch(batch, timeout=10).quotes] == [80.0, 90.0]
    assert shadow.server.service.store.pending_count() == 2  # the refused calls stored nothing


def test_the_incumbents_outcomes_are_learned_logged_and_kept_when_switched_online(
        start_server: Callable[..., ServerHandle]) -> None:
    shadow = start_server(value_model="none", mode="shadow")
    for i in range(12):
        answer = shadow.quote(quote_id=f"s-{i}", incumbent_price=ON_GRID if i % 2 else OFF_GRID,
                              context={"is_mobile": float(i % 3 == 0)})
        assert shadow.reward(answer.quote_id, purchased=i % 4 != 0).learned
    pricer = shadow.server.service.pricer
    assert pricer.updates == 12
    store: SQLiteStore = shadow.server.service.store  # type: ignore[assignment]
    lines = [json.loads(line) for line in dsjson_lines(store)]
    assert {line["_mode"] for line in lines} == {"shadow"}
    assert all(line["_label_probability"] == 1.0 and line["p"][0] == 1.0 for line in lines)
    assert {line["_price"] for line in lines} == {ON_GRID, OFF_GRID}
    # The evaluation reads the incumbent as the logger: its price with probability 1.
    for decision in read_state(shadow.config.data_dir).decisions:
        logged = decision.pmf[abs(decision.prices - decision.price) < 1e-9]
        assert logged.tolist() == [1.0] and decision.propensity == 1.0
    metrics = series(shadow)
    assert sum(metrics[f'pricebandit_shadow_quotes_total{{agreement="{kind}"}}']
               for kind in ("exact", "one_step", "apart")) == 12
    low, high = (metrics[f'pricebandit_shadow_lift{{bound="{bound}"}}'] for bound in ("low", "high"))
    assert low <= metrics['pricebandit_shadow_lift{bound="estimate"}'] <= high
    assert metrics['pricebandit_shadow_incumbent_profit{bound="estimate"}'] > 0
    version = pricer.model_version
    shadow.restart(mode="online")
    assert shadow.server.service.pricer.model_version == version
    answer = shadow.quote(incumbent_price=OFF_GRID)  # ignored online: the policy's own price
    assert answer.price != OFF_GRID and answer.price in {arm.price for arm in answer.explanation.arms}


def test_dsjson_shadow_lines_read_back_as_the_state_file_does(
        start_server: Callable[..., ServerHandle]) -> None:
    shadow = start_server(value_model="none", mode="shadow")
    for i, price in enumerate((ON_GRID, OFF_GRID)):
        shadow.reward(shadow.quote(quote_id=f"d-{i}", incumbent_price=price).quote_id, purchased=True)
    store: SQLiteStore = shadow.server.service.store  # type: ignore[assignment]
    path = shadow.config.data_dir.parent / "shadow.dsjson"
    path.write_text("".join(line + "\n" for line in dsjson_lines(store)))
    from_state = read_state(shadow.config.data_dir).decisions
    for from_line, stored in zip(read_dsjson(path).decisions, from_state, strict=True):
        assert from_line.price == stored.price
        assert from_line.pmf[from_line.allowed].max() == 1.0
        assert abs(from_line.prices[from_line.pmf == 1.0][0] - from_line.price) < 1e-9
