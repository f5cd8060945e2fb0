"""Fairness guardrails in the learner: the spread band, protected inputs, the disclosure, stable prices."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench import fairness
from builders import request
from learner import InvalidInput, Pricer, PricerConfig, Product, QuoteRequest
from learner.policies import POLICIES
from learner.stability import StableWindow
from learner.value import BehaviorEvent, UserStates, load
from simulator.contenders import PricerContender, make_contender
from simulator.runner import compare
from simulator.scenarios import SCENARIOS, Feedback

NOW = 1_800_000_000.0
VALUE_MODEL = load("default")


def trained(config: PricerConfig, outcomes: int = 60, seed: int = 0) -> Pricer:
    """A Pricer that has learned ``outcomes`` random outcomes from shoppers in random contexts, so
    that different shoppers get different prices."""
    pricer = Pricer(config)
    rng = np.random.default_rng(seed)
    for i in range(outcomes):
        context = {"is_mobile": float(rng.integers(2)), "session_depth": float(rng.random())}
        decision = pricer.quote(request(f"train-{i}", **context), NOW)
        if pricer.learnable(decision):
            pricer.update(decision, float(rng.random() < 0.5 + 0.4 * context["is_mobile"]))
    return pricer


def history(user: str, share: float) -> list[BehaviorEvent]:
    """Views and purchases at ``share`` of the list price: the value model reads who pays how much."""
    events = []
    for i in range(6):
        events.append(BehaviorEvent(user_id=user, timestamp=NOW - 10_000 + 60 * i, event_type="view",
                                    category="shoes", price=100.0 * share, unit_cost=40.0, list_price=100.0,
                                    dwell_seconds=60.0, purchased=i % 2 == 1))
    return events


def in_band(price: float, reference: float, limit: float) -> bool:
    slack = 1e-9 * max(1.0, reference)
    return reference * (1 - limit) - slack <= price <= reference * (1 + limit) + slack


products = st.builds(
    lambda cost, markup, floor, ceiling: Product(
        "sku-p", unit_cost=cost, list_price=cost * (1 + markup), category="shoes",
        floor_price=cost * floor if floor is not None else None,
        ceiling_price=cost * (1 + markup) * ceiling if ceiling is not None else None),
    st.floats(1.0, 500.0), st.floats(0.01, 1.5),
    st.none() | st.floats(0.5, 1.0), st.none() | st.floats(1.05, 2.0),
)


@settings(max_examples=60, deadline=None)
@given(product=products, limit=st.sampled_from([0.0, 0.01, 0.05, 0.1, 0.2, 1.0]),
       policy=st.sampled_from(sorted(POLICIES)), mobile=st.sampled_from([0.0, 1.0]),
       depth=st.floats(0.0, 1.0), tighter=st.none() | st.floats(0.0, 0.3))
def test_no_quote_ever_leaves_the_band(product: Product, limit: float, policy: str, mobile: float,
                                       depth: float, tighter: float | None) -> None:
    pricer = PRICERS[policy, limit]
    quote = pricer.quote(QuoteRequest("shopper", product, "q-prop", {"is_mobile": mobile,
                                                                     "session_depth": depth},
                                      spread_limit=tighter), NOW)
    applied = limit if tighter is None else min(limit, tighter)
    assert quote.spread_limit == applied
    assert in_band(quote.price, quote.reference_price, applied)
    assert product.floor - 1e-9 * max(1, product.floor) <= quote.price
    assert quote.price <= product.ceiling + 1e-9 * max(1, product.ceiling)
    pmf = np.array([view.probability for view in quote.arms])
    assert pmf.sum() == pytest.approx(1.0)
    for view in quote.arms:  # the logged probabilities are over allowed arms only
        if view.allowed:
            assert in_band(view.price, quote.reference_price, applied)
        else:
            assert view.probability == 0.0
    if not quote.guardrail_bound:
        assert quote.arms[quote.arm].allowed and quote.propensity == pmf[quote.arm] > 0


PRICERS = {(policy, limit): trained(PricerConfig(policy=policy, spread_limit=limit))
           for policy in POLICIES for limit in (0.0, 0.01, 0.05, 0.1, 0.2, 1.0)}


def test_the_reference_is_the_neutral_shoppers_price_and_follows_the_model() -> None:
    pricer = trained(PricerConfig(), outcomes=0)
    before = pricer.quote(request("n-1"), NOW)
    assert before.reference_price == before.price and not before.personalized
    assert before.input_effects == () and before.value_factor == 1.0
    for i in range(40):  # nobody buys at the price: the model moves it, and the reference with it
        decision = pricer.quote(request(f"cheap-{i}"), NOW)
        pricer.update(decision, 0.0)
    after = pricer.quote(request("n-2"), NOW)
    assert after.reference_price == after.price != before.reference_price


def test_a_zero_limit_gives_every_shopper_the_reference_price() -> None:
    pricer = trained(PricerConfig(spread_limit=0.0))
    open_pricer = trained(PricerConfig())
    shoppers = [{"is_mobile": m, "session_depth": d} for m in (0.0, 1.0) for d in (0.0, 0.5, 1.0)]
    assert len({open_pricer.quote(request(f"o-{i}", **c), NOW).price for i, c in enumerate(shoppers)}) > 1
    quotes = [pricer.quote(request(f"z-{i}", **c), NOW) for i, c in enumerate(shoppers)]
    assert {q.price for q in quotes} == {quotes[0].reference_price}
    assert all(q.propensity == 1.0 and not q.guardrail_bound for q in quotes)
    assert any(q.spread_bound for q in quotes)


def test_with_a_value_model_the_band_bound_fallback_stays_in_the_band() -> None:
    """A shopper whose value differs has no arm at the reference: the price is the band's bound."""
    config = PricerConfig(user_embedding_dim=VALUE_MODEL.embedding_dim, spread_limit=0.0)
    pricer = Pricer(config, UserStates(VALUE_MODEL))
    pricer.observe(history("rich", 1.0), NOW)
    quote = pricer.quote(request("v-1", user_id="rich"), NOW)
    assert quote.value_factor != 1.0
    assert quote.guardrail_bound and quote.price == pytest.approx(quote.reference_price, rel=1e-9)
    assert not pricer.learnable(quote)
    wide = Pricer(dataclasses.replace(config, spread_limit=None), UserStates(VALUE_MODEL))
    wide.observe(history("rich", 1.0), NOW)
    free = wide.quote(request("v-2", user_id="rich"), NOW)
    assert free.personalized and "behavior" in dict(free.input_effects)


def test_the_input_effects_add_up_to_the_shift_of_the_purchase_logit() -> None:
    pricer = trained(PricerConfig(), outcomes=80)
    quote = pricer.quote(request("e-1", is_mobile=1.0, session_depth=0.7), NOW)
    neutral = pricer.features.build({}, request("e-0").product)
    x = np.asarray(quote.features)
    levels = np.log([view.price / quote.list_price for view in quote.arms])
    logit = lambda p: math.log(p / (1 - p))  # noqa: E731
    shift = logit(pricer.policy.estimates(x, levels)[quote.arm]) - \
        logit(pricer.policy.estimates(neutral, levels)[quote.arm])
    names = [name for name, _ in quote.input_effects]
    assert set(names) == {"context.is_mobile", "context.session_depth"}
    assert sum(effect for _, effect in quote.input_effects) == pytest.approx(shift, abs=1e-9)
    magnitudes = [abs(effect) for _, effect in quote.input_effects]
    assert magnitudes == sorted(magnitudes, reverse=True)


def test_a_protected_input_changes_no_price_and_is_logged() -> None:
    config = PricerConfig(protected_features=("age", "gender"))
    pricer = trained(config)
    young = pricer.quote(request("p-1", is_mobile=1.0, age=20.0, gender=1.0), NOW)
    old = pricer.quote(request("p-1", is_mobile=1.0, age=70.0, gender=0.0), NOW)
    ignore = ("protected_context", "request_fingerprint")
    assert {k: v for k, v in young.to_dict().items() if k not in ignore} == \
        {k: v for k, v in old.to_dict().items() if k not in ignore}
    assert young.protected_context == {"age": 20.0, "gender": 1.0}
    assert not any(name.startswith("context.age") for name in young.feature_names)
    with pytest.raises(InvalidInput, match="protected input may never price"):
        Pricer(PricerConfig(protected_features=("is_mobile",)))


def test_unknown_context_is_ignored_by_default_and_refused_in_strict_mode() -> None:
    lenient = Pricer(PricerConfig())
    plain = lenient.quote(request("u-1", is_mobile=1.0), NOW)
    extra = lenient.quote(request("u-1", is_mobile=1.0, shoe_size=42.0, basket=3.0), NOW)
    assert extra.ignored_context == ("basket", "shoe_size")
    assert (extra.price, extra.features) == (plain.price, plain.features)
    strict = Pricer(PricerConfig(unknown_context="refuse"))
    with pytest.raises(InvalidInput, match='context\\["shoe_size"\\]: unknown context feature'):
        strict.quote(request("u-2", shoe_size=42.0), NOW)


def test_a_snapshot_loads_whatever_the_guardrails() -> None:
    plain = trained(PricerConfig(), outcomes=10)
    guarded = Pricer(PricerConfig(spread_limit=0.1, stable_price_seconds=60.0, protected_features=("age",),
                                  unknown_context="refuse"))
    guarded.restore(plain.snapshot())
    assert guarded.model_version == plain.model_version


@pytest.mark.parametrize("limit", [-0.1, 1.5, math.nan, math.inf])
def test_a_bad_spread_limit_is_refused(limit: float) -> None:
    with pytest.raises(InvalidInput, match="spread_limit"):
        PricerConfig(spread_limit=limit)


def test_a_pinned_price_repeats_the_earlier_one_and_is_dropped_when_it_no_longer_fits() -> None:
    pricer = trained(PricerConfig(policy="thompson"))
    first = pricer.quote(request("s-1", is_mobile=1.0), NOW)
    repeats = [pricer.quote(request(f"s-{i}", is_mobile=float(i % 2)), NOW, stable_of=first)
               for i in range(2, 12)]
    assert {q.price for q in repeats} == {first.price}
    assert {q.stable_of for q in repeats} == {"s-1"} and all(q.propensity == 1.0 for q in repeats)
    product = request().product
    capped = dataclasses.replace(product, ceiling_price=first.price - 1.0)
    moved = pricer.quote(QuoteRequest("user-1", capped, "s-99"), NOW, stable_of=first)
    assert moved.stable_of == "" and moved.price <= capped.ceiling


def test_the_stable_window_holds_only_for_the_same_user_product_and_economics() -> None:
    window = StableWindow(600.0)
    first = Pricer(PricerConfig()).quote(request("w-1"), NOW)
    assert window.holds(first, NOW, request("w-2"), NOW + 599)
    assert not window.holds(first, NOW, request("w-2"), NOW + 600)
    assert not window.holds(first, NOW, request("w-2", user_id="someone-else"), NOW)
    product = request().product
    for change in ({"unit_cost": 41.0}, {"list_price": 99.0}, {"currency": "EUR"}, {"product_id": "x"}):
        changed = dataclasses.replace(product, **change)  # type: ignore[arg-type]
        assert not window.holds(first, NOW, request("w-3", product=changed), NOW)
    assert not StableWindow(0.0).holds(first, NOW, request("w-2"), NOW)


# -- the simulator: what each promise costs --------------------------------------------------------
def test_the_simulator_keeps_each_promise_and_measures_its_spread() -> None:
    names = ["oracle", "best_fixed", "linucb", "linucb@spread=0.05", "linucb@spread=0",
             "linucb@protect=is_mobile", "linucb@stable=86400"]
    results = compare(SCENARIOS["stationary"], rounds=600, seed=0, checkpoints=1, policies=names)
    assert [row.policy for row in results.final()][:-1] == [n for n in names if n != "best_fixed"]
    assert results.spread["linucb@spread=0"] == (1.0, 1.0)
    low, high = results.spread["linucb@spread=0.05"]
    assert 0.95 - 1e-9 <= low <= high <= 1.05 + 1e-9
    low, high = results.spread["linucb"]
    assert low < 0.95 - 1e-9 or high > 1.05 + 1e-9  # without a band, context spreads the prices wider
    with pytest.raises(ValueError, match="unknown guard 'nope'"):
        compare(SCENARIOS["stationary"], rounds=10, policies=["linucb@nope=1"])
    with pytest.raises(ValueError, match="unknown policies"):
        compare(SCENARIOS["stationary"], rounds=10, policies=["oracle@spread=0.1"])


def test_a_simulated_shopper_keeps_a_products_price_within_the_window() -> None:
    contender = make_contender("thompson@stable=600", feedback=Feedback(), seed=0, pricer=PricerConfig())
    assert isinstance(contender, PricerContender)
    first = contender._quote(request("sim-1", is_mobile=1.0), NOW)
    again = [contender._quote(request(f"sim-{i}", is_mobile=float(i % 2)), NOW + i) for i in range(2, 10)]
    assert {q.price for q in again} == {first.price} and {q.stable_of for q in again[:1]} == {"sim-1"}
    later = contender._quote(request("sim-late"), NOW + 600)
    assert later.stable_of == ""


def test_the_fairness_bench_tabulates_every_promise() -> None:
    run = fairness.run_one("stationary", 0, 300)
    table = fairness.summarize([run], PricerConfig().policy)
    text = fairness.format_table(table, [0], 300)
    for label in ("oracle", "best_fixed", *fairness.promises("linucb")):
        assert label in text
    zero = next(line for line in table["stationary"] if line.promise == "spread 0%")
    assert (zero.spread_p5, zero.spread_p95) == (1.0, 1.0)
