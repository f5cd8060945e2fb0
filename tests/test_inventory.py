"""Inventory-aware pricing (issue 15): stock on a product prices against the value of a unit kept."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from learner import InvalidInput, Pricer, PricerConfig, Product, QuoteRequest
from learner.inventory import MAX_SHARE, MIN_QUOTES, Stock, StockBook
from simulator.inventory import CONTENDERS, STOCK_SCENARIOS, play_season

NOW = 1_800_000_000.0
DAY = 86_400.0


@pytest.mark.parametrize(("stock", "field"), [
    (dict(units=0, sell_by=NOW), "product.stock.units"),
    (dict(units=-3, sell_by=NOW), "product.stock.units"),
    (dict(units=True, sell_by=NOW), "product.stock.units"),
    (dict(units=2.5, sell_by=NOW), "product.stock.units"),
    (dict(units=5, sell_by=math.nan), "product.stock.sell_by"),
    (dict(units=5, sell_by=-1.0), "product.stock.sell_by"),
    (dict(units=5, sell_by=NOW, salvage=-1.0), "product.stock.salvage"),
    (dict(units=5, sell_by=NOW, salvage=math.inf), "product.stock.salvage"),
])
def test_bad_stock_is_refused_naming_its_field(stock: dict, field: str) -> None:
    with pytest.raises(InvalidInput) as error:
        Stock(**stock)
    assert error.value.field == field


def settle(book: StockBook, quotes: int, sold_share: float, *, units: int, sell_by: float,
           salvage: float = 0.0, start: float = NOW, every: float = 60.0, product_id: str = "p",
           unit_cost: float = 10.0, list_price: float = 20.0) -> None:
    """``quotes`` settled quotes of ``product_id`` one a minute, a ``sold_share`` of them sales."""
    sold = 0
    for i in range(quotes):
        buys = (i + 1) * sold_share >= sold + 1
        sold += buys
        book.learn(product_id, unit_cost, list_price, units, sell_by, salvage, start + i * every, buys)


def test_sales_ahead_of_pace_raise_the_opportunity_cost_and_behind_lower_it_to_salvage() -> None:
    stock = Stock(units=100, sell_by=NOW + 1000 * 60.0, salvage=4.0)  # pace: 0.1 of the quotes to come
    ahead, behind = StockBook(), StockBook()
    settle(ahead, 300, 0.5, units=100, sell_by=stock.sell_by, salvage=4.0)
    settle(behind, 300, 0.0, units=500, sell_by=stock.sell_by, salvage=4.0)  # pace 0.5, none sold
    assert ahead.opportunity_cost("p", 10.0, 20.0, stock) > 5.0
    assert behind.opportunity_cost("p", 10.0, 20.0, stock) == pytest.approx(4.0 - 10.0)  # the salvage bound
    untold = StockBook()
    settle(untold, MIN_QUOTES - 1, 1.0, units=100, sell_by=stock.sell_by)
    assert untold.opportunity_cost("p", 10.0, 20.0, stock) == 0.0  # no pace before MIN_QUOTES


def test_the_opportunity_cost_never_passes_the_list_margin() -> None:
    book = StockBook()
    settle(book, 2000, 1.0, units=1, sell_by=NOW + 1e6)
    assert book.mu("p") == MAX_SHARE
    assert book.opportunity_cost("p", 10.0, 20.0, Stock(1, NOW + 1e6)) == pytest.approx(10.0)


COAT = dict(product_id="coat", unit_cost=80.0, list_price=120.0)


def product(stock: Stock | None = None, floor_price: float | None = None,
            ceiling_price: float | None = None) -> Product:
    return Product("coat", unit_cost=80.0, list_price=120.0, category="apparel", floor_price=floor_price,
                   ceiling_price=ceiling_price, stock=stock)


def test_a_scarce_product_is_priced_higher_and_the_quote_says_why() -> None:
    pricer = Pricer(PricerConfig(policy="egreedy", policy_options={"epsilon": 0.0}))
    for i in range(300):  # shoppers buy below 104: the demand model learns that price matters
        decision = pricer.quote(QuoteRequest(f"u{i}", product(), f"train-{i}"), NOW)
        pricer.update(decision, float(decision.price < 104.0))
    settle(pricer.stock, 300, 0.9, units=10, sell_by=NOW + 3 * DAY, **COAT)  # too fast for 10 units
    scarce = Stock(units=10, sell_by=NOW + 3 * DAY)
    told = pricer.quote(QuoteRequest("u", product(scarce), "q-told"), NOW)
    untold = pricer.quote(QuoteRequest("u", product(), "q-untold"), NOW)
    assert told.opportunity_cost > 0 and untold.opportunity_cost == 0.0
    assert (told.stock_units, told.sell_by) == (10, scarce.sell_by)
    assert told.price > untold.price


@settings(max_examples=60, deadline=None)
@given(floor=st.floats(60.0, 100.0), width=st.floats(0.0, 60.0), mu_quotes=st.integers(0, 400),
       share=st.floats(0.0, 1.0), units=st.integers(1, 1000), salvage=st.floats(0.0, 200.0))
def test_stock_never_moves_a_price_outside_floor_and_ceiling(floor: float, width: float, mu_quotes: int,
                                                            share: float, units: int, salvage: float) -> None:
    pricer = Pricer()
    settle(pricer.stock, mu_quotes, share, units=units, sell_by=NOW + DAY, salvage=salvage, **COAT)
    stocked = product(Stock(units, NOW + DAY, salvage), floor_price=floor, ceiling_price=floor + width)
    decision = pricer.quote(QuoteRequest("u", stocked, "q"), NOW)
    assert floor - 1e-9 <= decision.price <= floor + width + 1e-9


def test_a_restart_mid_season_restores_the_opportunity_cost_exactly() -> None:
    """Snapshot, then learn the rest: the same as learning it all in one process."""
    stock = Stock(units=50, sell_by=NOW + DAY, salvage=2.0)
    whole, before = Pricer(), Pricer()
    outcomes = [float(i % 3 == 0) for i in range(120)]
    decisions = []
    for i, bought in enumerate(outcomes):
        decision = whole.quote(QuoteRequest("u", product(stock), f"q-{i}"), NOW + 60 * i)
        whole.update(decision, bought)
        decisions.append(decision)
    for decision, bought in zip(decisions[:70], outcomes[:70], strict=True):
        before.update(decision, bought)
    restarted = Pricer()
    restarted.restore(before.snapshot())
    for decision, bought in zip(decisions[70:], outcomes[70:], strict=True):
        restarted.update(decision, bought)
    assert restarted.stock.state() == whole.stock.state()
    assert restarted.stock.mu("coat") != 0.0


def test_a_snapshot_without_stock_keeps_its_old_header() -> None:
    pricer = Pricer()
    decision = pricer.quote(QuoteRequest("u", product(), "q"), NOW)
    pricer.update(decision, 1.0)
    restored = Pricer()
    restored.restore(pricer.snapshot())
    assert len(restored.stock) == 0
    assert dataclasses.replace(decision, stock_units=0) == decision


SHORT_SEASON = 3000


@pytest.fixture(scope="module")
def seasons() -> dict[str, dict[str, object]]:
    return {name: dict(zip(CONTENDERS, play_season(STOCK_SCENARIOS[name], 0, SHORT_SEASON), strict=True))
            for name in ("scarce", "overstocked")}


def test_a_scarce_bestseller_lasts_the_season_and_earns_more(seasons: dict) -> None:
    ours, today = seasons["scarce"]["stock"], seasons["scarce"]["pricer"]
    assert today.sold_out_at is not None and today.sold_out_at < 0.7  # margin alone sells out early
    assert ours.sold_out_at is None or ours.sold_out_at > 0.85
    assert ours.profit > 1.1 * today.profit
    assert ours.profit > seasons["scarce"]["markdown"].profit


def test_an_overstocked_item_is_priced_down_to_clear_and_earns_more(seasons: dict) -> None:
    ours, today = seasons["overstocked"]["stock"], seasons["overstocked"]["pricer"]
    assert ours.units_left < 0.8 * today.units_left
    assert ours.profit > today.profit
    assert np.nanmedian(ours.prices) < np.nanmedian(today.prices)


def test_the_summary_flags_stock_that_will_not_clear_and_leaves_out_ended_seasons() -> None:
    book = StockBook()
    sell_by = NOW + 1000 * 60.0
    settle(book, 400, 0.0, units=500, sell_by=sell_by, salvage=4.0)  # nothing sells: to the salvage bound
    settle(book, 400, 0.5, units=100, sell_by=sell_by, product_id="hot")  # far ahead of pace
    now = NOW + 400 * 60.0
    summary = book.summary(now)
    assert (summary.products, summary.at_salvage, summary.at_margin, summary.will_not_clear) == (2, 1, 1, 1)
    assert summary.leftover == {"none": 1, "under_5pct": 0, "5_to_25pct": 0, "over_25pct": 1}
    assert book.summary(sell_by).products == 0


def test_the_benchmark_prints_the_table_and_judges_the_floors(capsys: pytest.CaptureFixture[str]) -> None:
    from bench import inventory

    code = inventory.main(["--scenario", "scarce", "--seed", "0", "--rounds", "1500"])
    out = capsys.readouterr().out
    rows = [line.split(" | ") for line in out.splitlines() if line.startswith("| scarce")]
    assert [row[1] for row in rows] == list(CONTENDERS)
    verdicts = [line for line in out.splitlines() if line.startswith(("holds", "FAILS"))]
    assert len(verdicts) == 3  # profit, above the others, the sell-out date
    assert code == (0 if all(line.startswith("holds") for line in verdicts) else 1)
