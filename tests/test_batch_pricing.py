"""A listing page priced at once (``Pricer.quote_many``, ``Policy.select_many``) decides each product as
a quote of its own would: same arm, price, reference and disclosure, probabilities equal to rounding
(a matrix product over many rows may round in another order than over one)."""

from __future__ import annotations

import numpy as np
import pytest

from builders import request
from learner import POLICIES, Decision, Pricer, PricerConfig, Product, QuoteRequest
from learner.policies import DEMAND_MODELS


def trained(config: PricerConfig) -> Pricer:
    """A Pricer that has learned 150 outcomes, so the arms' estimates differ."""
    pricer = Pricer(config)
    for i in range(150):
        decision = pricer.quote(request(f"train-{i}", is_mobile=float(i % 2), session_depth=i % 7), 0.0)
        if pricer.learnable(decision):
            pricer.update(decision, float(i % 3 == 0))
    return pricer


def page() -> list[QuoteRequest]:
    """Products of several costs and guardrails: a tight ceiling (some arms masked), a floor above
    every arm (guardrail-bound), a band on some quotes, varied context."""
    requests = []
    for i in range(24):
        cost = 20.0 + 7.0 * i
        product = Product(f"sku-{i}", unit_cost=cost, list_price=cost * (1.3 + 0.05 * (i % 5)),
                          category=("shoes", "audio", "books")[i % 3],
                          ceiling_price=cost * 1.2 if i % 4 == 1 else None,
                          floor_price=cost * 3.0 if i % 6 == 5 and i % 4 == 3 else None)
        quote = request(f"page-{i}", product=product, is_mobile=float(i % 2), hour_sin=0.1 * (i % 9))
        requests.append(quote if i % 3 else QuoteRequest(quote.user_id, quote.product, quote.quote_id,
                                                         quote.context, spread_limit=0.05))
    return requests


def same(batched: Decision, alone: Decision) -> None:
    assert (batched.arm, batched.price, batched.explored, batched.guardrail_bound) == (
        alone.arm, alone.price, alone.explored, alone.guardrail_bound)
    assert batched.propensity == pytest.approx(alone.propensity, rel=1e-12)  # matrix products may round
    assert batched.reference_price == alone.reference_price
    assert batched.spread_bound == alone.spread_bound
    assert np.allclose([a.probability for a in batched.arms], [a.probability for a in alone.arms], atol=1e-12)
    assert np.allclose([a.purchase_probability for a in batched.arms],
                       [a.purchase_probability for a in alone.arms], atol=1e-12)
    assert [name for name, _ in batched.input_effects] == [name for name, _ in alone.input_effects]


@pytest.mark.parametrize("demand_model", sorted(DEMAND_MODELS))
@pytest.mark.parametrize("policy", sorted(POLICIES))
def test_a_page_priced_at_once_decides_each_product_as_alone(policy: str, demand_model: str) -> None:
    pricer = trained(PricerConfig(policy=policy, demand_model=demand_model))
    requests = page()
    batched = pricer.quote_many(requests, now=1.0)
    alone = [pricer.quote(r, now=1.0) for r in requests]
    assert any(d.guardrail_bound for d in alone) and any(d.spread_bound for d in alone)
    assert len({d.arm for d in alone}) > 1  # the page is not one price for all
    for b, a in zip(batched, alone, strict=True):
        same(b, a)


def test_a_page_without_a_band_prices_its_references_and_choices_in_one_policy_call() -> None:
    pricer = trained(PricerConfig())
    calls = []
    select_many = pricer.policy.select_many

    def counted(x, *rest):  # type: ignore[no-untyped-def]
        calls.append(len(x))
        return select_many(x, *rest)

    pricer.policy.select_many = counted  # type: ignore[method-assign]
    requests = [r for r in page() if r.spread_limit is None]
    pricer.quote_many(requests, now=1.0)
    priced = sum(1 for r in requests if r.product.floor_price is None)  # a floor over every arm fits none
    assert priced < len(requests)
    assert calls == [2 * priced]  # each product's reference and its choice, all in one call


def test_stable_pins_apply_per_row() -> None:
    pricer = trained(PricerConfig())
    requests = [r for r in page() if r.spread_limit is None and r.product.floor_price is None][:6]
    first = pricer.quote_many(requests, now=1.0)
    again = [QuoteRequest(r.user_id, r.product, f"{r.quote_id}-again", r.context) for r in requests]
    pins = [d if i % 2 else None for i, d in enumerate(first)]
    repeated = pricer.quote_many(again, now=2.0, stable_of=pins)
    for i, (pin, decision) in enumerate(zip(pins, repeated, strict=True)):
        alone = pricer.quote(again[i], now=2.0, stable_of=pin)
        same(decision, alone)
        if pin is not None:
            assert decision.price == pin.price and decision.stable_of == pin.quote_id
