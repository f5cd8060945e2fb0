"""Unit tests of the learner: price grid and guardrails, features, snapshots, reward rules."""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from builders import request
from learner import (
    ConflictingReport,
    Decision,
    FeatureBuilder,
    InvalidInput,
    PriceGrid,
    Pricer,
    PricerConfig,
    Product,
    QuoteRequest,
    ReportStatus,
    RewardWindow,
    Settlement,
    SnapshotError,
    fingerprint,
    judge_repeat,
)
from learner.policies import DEMAND_MODELS
from learner.policies.base import masked_argmax, masked_argmax_rows
from learner.policies.demand import PRIOR_RIPPLE, Forgetting, add_outer
from learner.policies.shared import SharedLogit
from learner.pricer import fingerprints
from learner.seeding import decision_rng

# -- price grid and guardrails -----------------------------------------------------------------


def test_price_is_cost_plus_alpha_times_value() -> None:
    decision = Pricer().quote(request(), now=0.0)
    assert decision.user_value == 60.0
    assert decision.price == pytest.approx(40.0 + decision.alpha * 60.0)
    assert [view.price for view in decision.arms] == pytest.approx([40 + 6 * i for i in range(11)])


def test_arms_outside_floor_and_ceiling_are_masked_before_choosing() -> None:
    product = Product("sku", unit_cost=40.0, list_price=100.0, floor_price=55.0, ceiling_price=80.0)
    pricer = Pricer(PricerConfig(policy="egreedy", policy_options={"epsilon": 1.0}))
    for i in range(50):
        decision = pricer.quote(request(f"q{i}", product=product), now=0.0)
        assert 55.0 <= decision.price <= 80.0
        allowed = [view.allowed for view in decision.arms]
        assert allowed == [False, False, False, True, True, True, True, False, False, False, False]
        assert sum(view.probability for view in decision.arms) == pytest.approx(1.0)
        assert all(view.probability == 0 for view in decision.arms if not view.allowed)
        assert decision.propensity == pytest.approx(0.25)


@pytest.mark.parametrize(
    ("floor", "ceiling", "expected"),
    [(200.0, None, 200.0), (10.0, 30.0, 30.0), (41.5, 45.0, 45.0), (42.0, 43.0, 42.0)],
)
def test_no_arm_fits_quotes_the_nearest_bound(floor: float | None, ceiling: float | None,
                                              expected: float) -> None:
    product = Product("sku", unit_cost=40.0, list_price=100.0, floor_price=floor, ceiling_price=ceiling)
    pricer = Pricer()
    decision = pricer.quote(request(product=product), now=0.0)
    assert decision.guardrail_bound
    assert decision.price == expected
    assert decision.propensity == 1.0
    assert not pricer.learnable(decision)


@settings(max_examples=200, deadline=None)
@given(
    cost=st.floats(0, 1e6),
    markup=st.floats(0, 1e6),
    floor=st.one_of(st.none(), st.floats(0, 3e6)),
    width=st.one_of(st.none(), st.floats(0, 3e6)),
    quote_id=st.text(min_size=1, max_size=10),
)
def test_quotes_stay_inside_floor_and_ceiling(cost: float, markup: float, floor: float | None,
                                              width: float | None, quote_id: str) -> None:
    ceiling = None if width is None else (floor if floor is not None else cost) + width
    product = Product("sku", unit_cost=cost, list_price=cost + markup, floor_price=floor,
                      ceiling_price=ceiling)
    decision = Pricer(PricerConfig(policy="thompson")).quote(request(quote_id, product=product), 0.0)
    assert product.floor <= decision.price <= product.ceiling
    assert math.isfinite(decision.price)


@pytest.mark.parametrize(
    ("fields", "field_named"),
    [
        ({"unit_cost": -1.0}, "product.unit_cost"),
        ({"unit_cost": math.nan}, "product.unit_cost"),
        ({"list_price": math.inf}, "product.list_price"),
        ({"list_price": 10.0}, "product.list_price"),
        ({"floor_price": 90.0, "ceiling_price": 80.0}, "product.floor_price"),
        ({"ceiling_price": -5.0}, "product.ceiling_price"),
        ({"ceiling_price": 30.0}, "product.ceiling_price"),
        ({"unit_cost": 1e13, "list_price": 1e13}, "product.unit_cost"),
        ({"product_id": ""}, "product.product_id"),
    ],
)
def test_bad_products_are_refused_naming_the_field(fields: dict, field_named: str) -> None:
    values = {"product_id": "sku", "unit_cost": 40.0, "list_price": 100.0, **fields}
    with pytest.raises(InvalidInput) as error:
        Product(**values)
    assert error.value.field == field_named
    assert str(error.value).startswith(field_named)


@pytest.mark.parametrize("alphas", [(0.5,), (0.0, 0.0), (0.3, 0.1), (-0.1, 0.5), (0.0, math.nan)])
def test_bad_price_grids_are_refused(alphas: tuple[float, ...]) -> None:
    with pytest.raises(InvalidInput):
        PriceGrid(alphas)


# -- features ----------------------------------------------------------------------------------


def test_features_follow_the_schema_and_missing_names_are_zero() -> None:
    builder = FeatureBuilder(("a", "b"), category_buckets=4)
    x = builder.build({"b": 2.0}, Product("sku", 40.0, 100.0, category="shoes"))
    assert builder.names[:3] == ("bias", "context.a", "context.b")
    assert x[:3].tolist() == [1.0, 0.0, 2.0]
    assert x[3] == pytest.approx(math.log1p(100.0) / 10)
    assert x[4] == pytest.approx(0.6)
    assert x[5:].sum() == 1.0
    same = builder.build({"b": 2.0}, Product("other", 40.0, 100.0, category="shoes"))
    np.testing.assert_array_equal(x, same)


@pytest.mark.parametrize(
    ("context", "message"),
    [({"nope": 1.0}, 'context["nope"]: unknown context feature; known names: a, b'),
     ({"a": math.nan}, 'context["a"]: nan must be finite'),
     ({"a": -math.inf}, 'context["a"]: -inf must be finite'),
     ({"a": 1e7}, 'context["a"]: 10000000.0 must be finite with absolute value <= 1e+06'),
     ({f"k{i}": 0.0 for i in range(65)}, "context: 65 entries; at most 64")],
)
def test_bad_context_is_refused_naming_the_entry(context: dict, message: str) -> None:
    with pytest.raises(InvalidInput) as error:
        FeatureBuilder(("a", "b"), unknown="refuse").build(context, Product("sku", 1.0, 2.0))
    assert str(error.value).startswith(message)


# -- decisions, seeding, learning --------------------------------------------------------------


def test_decision_round_trips_through_its_dict() -> None:
    decision = Pricer().quote(request(is_mobile=1.0), now=12.5)
    assert Decision.from_dict(decision.to_dict()) == decision
    assert decision.expires_at == 12.5 + 600.0


def test_the_quote_id_seeds_the_decision() -> None:
    a, b = decision_rng(7, "q-1").random(3), decision_rng(7, "q-1").random(3)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, decision_rng(7, "q-2").random(3))
    assert not np.array_equal(a, decision_rng(8, "q-1").random(3))
    pricer = Pricer(PricerConfig(policy="thompson"))
    assert pricer.quote(request("same"), 0.0) == pricer.quote(request("same"), 0.0)


def test_update_moves_the_chosen_arms_estimate_toward_the_reward() -> None:
    pricer = Pricer(PricerConfig(policy="linucb"))
    decision = pricer.quote(request(), now=0.0)
    for _ in range(20):
        pricer.update(decision, 1.0)
    after = pricer.quote(request("next"), now=0.0)
    assert after.arms[decision.arm].purchase_probability > 0.9
    assert pricer.model_version == "linucb:20"


@pytest.mark.parametrize("demand_model", sorted(DEMAND_MODELS))
def test_decay_forgets_old_evidence(demand_model: str) -> None:
    """Without decay the estimate keeps much of everything seen (77% bought; the shared logistic
    model's online Newton step weighs the latest outcomes more after a confidently predicted run, and
    ends near 30%); with it, the estimate follows the last 30 refusals."""
    kept, decayed = (Pricer(PricerConfig(demand_model=demand_model, decay=decay)) for decay in (1.0, 0.9))
    for pricer in (kept, decayed):
        decision = pricer.quote(request(), now=0.0)
        for reward in [1.0] * 100 + [0.0] * 30:
            pricer.update(decision, reward)
    arm = decision.arm
    remembered = kept.quote(request("x"), 0.0).arms[arm].purchase_probability
    forgotten = decayed.quote(request("x"), 0.0).arms[arm].purchase_probability
    assert remembered > 0.25
    assert forgotten < 0.1
    assert remembered > forgotten + 0.2


def test_forgetting_keeps_the_prior_within_its_ripple_and_the_inverse_exact() -> None:
    """Aging alone, at the default decay: the prior comes back one coordinate at a time, so after a
    few cycles every coordinate's precision lies within ``PRIOR_RIPPLE`` of ``l2`` either way and no
    other entry appears; with outcomes as well, the inverse kept by low-rank steps is the inverse."""
    size, l2 = 8, 2.0
    forgetting = Forgetting.of(size, 0.9995, l2)
    assert forgetting.cycle == size  # one coordinate a step
    A, A_inv = l2 * np.eye(size), np.eye(size) / l2
    for step in range(5 * size):
        A, A_inv = forgetting.age(A, A_inv, step)
    diagonal = A.diagonal()
    assert np.all(diagonal >= PRIOR_RIPPLE * l2) and np.all(diagonal <= l2 / PRIOR_RIPPLE)
    assert np.ptp(diagonal) > 0  # the coordinates really take turns
    np.testing.assert_array_equal(A - np.diag(diagonal), 0.0)
    rng = np.random.default_rng(3)
    for step in range(5 * size, 400):
        A, A_inv = forgetting.age(A, A_inv, step)
        z = rng.normal(size=size)
        A, A_inv = add_outer(A, A_inv, z, 0.3)
    np.testing.assert_allclose(A_inv, np.linalg.inv(A), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("keep", [0.5, 0.9, 0.98])
def test_fast_forgetting_restores_more_coordinates_a_step(keep: float) -> None:
    """The faster the decay, the shorter the cycle (the longest that keeps the prior above its ripple),
    the restored coordinates' inverse still exact; a cycle of one is the whole-diagonal rule
    ``keep·A + (1 − keep)·l2·I``."""
    size, l2 = 12, 1.5
    forgetting = Forgetting.of(size, keep, l2)
    assert keep ** (forgetting.cycle - 1) >= PRIOR_RIPPLE
    assert forgetting.cycle == 1 or keep ** forgetting.cycle < PRIOR_RIPPLE
    rng = np.random.default_rng(4)
    spread = rng.normal(size=(size, size))
    before = l2 * np.eye(size) + spread @ spread.T
    for step in range(3):
        A, A_inv = forgetting.age(before, np.linalg.inv(before), step)
        np.testing.assert_allclose(A_inv, np.linalg.inv(A), rtol=1e-9, atol=1e-12)
        restored = np.zeros(size)
        restored[step % forgetting.cycle::forgetting.cycle] = forgetting.cycle * (1.0 - keep) * l2
        np.testing.assert_allclose(A, keep * before + np.diag(restored), rtol=1e-15, atol=0)
    if keep == 0.5:
        assert forgetting.cycle == 1


# -- snapshots ---------------------------------------------------------------------------------


def trained_pricer(**config: object) -> Pricer:
    pricer = Pricer(PricerConfig(**config))  # type: ignore[arg-type]
    for i in range(30):
        pricer.update(pricer.quote(request(f"q{i}", is_mobile=float(i % 2)), 0.0), float(i % 3 == 0))
    return pricer


def test_snapshot_refuses_another_configuration() -> None:
    blob = trained_pricer(policy="linucb").snapshot()
    with pytest.raises(SnapshotError, match="policy: snapshot 'linucb' vs configured 'thompson'"):
        Pricer(PricerConfig(policy="thompson")).restore(blob)
    with pytest.raises(SnapshotError, match="alphas"):
        Pricer(PricerConfig(alphas=(0.0, 0.5, 1.0))).restore(blob)


@pytest.mark.parametrize(
    ("damage", "message"),
    [(lambda b: b[:-10], "checksum mismatch"),
     (lambda b: b[:5], "bad magic"),
     (lambda b: b"XX" + b[2:], "bad magic"),
     (lambda b: b.replace(b'"schema_version": 1', b'"schema_version": 9'), "schema version 9"),
     (lambda b: b[:-1] + bytes([b[-1] ^ 1]), "checksum mismatch")],
    ids=["truncated", "cut-header", "magic", "schema", "bit-flip"],
)
def test_corrupt_snapshots_are_refused_with_what_to_do(damage, message: str) -> None:  # type: ignore[no-untyped-def]
    blob = trained_pricer().snapshot()
    fresh = Pricer()
    with pytest.raises(SnapshotError, match=message):
        fresh.restore(damage(blob))
    assert fresh.updates == 0


# -- reward rules ------------------------------------------------------------------------------


def test_repeat_reports_are_judged() -> None:
    reported = Settlement(reward=1.0, reported=True)
    assert judge_repeat(reported, 1.0, "q") is ReportStatus.DUPLICATE
    with pytest.raises(ConflictingReport, match="already reported as purchased"):
        judge_repeat(reported, 0.0, "q")
    expired = Settlement(reward=0.0, reported=False)
    assert judge_repeat(expired, 1.0, "q") is ReportStatus.LATE
    late = Settlement(reward=0.0, reported=False, late_reward=1.0)
    assert judge_repeat(late, 1.0, "q") is ReportStatus.DUPLICATE
    with pytest.raises(ConflictingReport, match="late report"):
        judge_repeat(late, 0.0, "q")


@pytest.mark.parametrize("seconds", [0.0, -1.0, math.nan, math.inf])
def test_reward_window_must_be_positive(seconds: float) -> None:
    with pytest.raises(InvalidInput, match="reward_window_seconds"):
        RewardWindow(seconds)


# -- demand models -----------------------------------------------------------------------------


def test_the_shared_model_carries_an_outcome_to_every_price() -> None:
    """Refusals at the top price lower the estimate at every other price too: one logistic model in
    which price is an input. One model per arm learns nothing there."""
    x = np.array([1.0, 0.3, -0.2])
    levels = np.log(np.linspace(0.6, 1.0, 11))
    moved = {}
    for name, model in DEMAND_MODELS.items():
        demand = model(11, 3, np.linspace(0.0, 1.0, 11))
        before = demand.probabilities(x, levels)
        for _ in range(30):
            demand.learn_one(x, 10, levels[10], 0.0)
        moved[name] = before - demand.probabilities(x, levels)
    assert np.all(moved["shared"][:10] > 0.01)
    assert np.all(moved["per_arm"][:10] == 0.0)


@pytest.mark.parametrize("demand_model", sorted(DEMAND_MODELS))
def test_forgetting_ages_the_evidence_of_prices_no_longer_played(demand_model: str) -> None:
    """With decay, what was learned at arm 2 fades while only arm 8 is played: its uncertainty grows
    back (the shared model's less: arm 8's outcomes still inform it) and, with one model per arm, its
    estimate returns to the prior, so a deterministic policy goes back to look."""
    x = np.array([1.0, 0.5])
    levels = np.log(np.linspace(0.6, 1.0, 11))
    widths = {}
    for decay in (1.0, 0.98):
        demand = DEMAND_MODELS[demand_model](11, 2, np.linspace(0.0, 1.0, 11), decay=decay)
        prior = demand.probabilities(x, levels)[2]
        for _ in range(200):
            demand.learn_one(x, 2, levels[2], 0.0)
        learned = demand.score_variance(x, levels)[2]
        for _ in range(500):
            demand.learn_one(x, 8, levels[8], 1.0)
        widths[decay] = demand.score_variance(x, levels)[2] / learned
        if decay < 1.0 and demand_model == "per_arm":
            assert demand.probabilities(x, levels)[2] == pytest.approx(prior, abs=0.05)
    assert widths[0.98] > (1.5 if demand_model == "shared" else 50.0) * widths[1.0]


def _first_best(values: list[float], allowed: list[bool], payoffs: list[float]) -> int:
    """The argmax rule read literally, one arm at a time: the largest allowed value, a tie to the
    larger payoff, then the lower index; all allowed values NaN: the first allowed arm."""
    best, chosen, chosen_payoff = -math.inf, -1, -math.inf
    for arm, (value, ok, payoff) in enumerate(zip(values, allowed, payoffs, strict=True)):
        if ok and (value > best or (value == best and payoff > chosen_payoff)):
            best, chosen, chosen_payoff = value, arm, payoff
    return chosen if chosen >= 0 else allowed.index(True)


@given(st.integers(min_value=0, max_value=2**32 - 1))
@settings(max_examples=200, deadline=None)
def test_masked_argmax_rows_follows_the_rule_with_ties_and_nans(seed: int) -> None:
    rng = np.random.default_rng(seed)
    rows, arms = 6, 5
    values = rng.choice([0.0, 0.5, 1.0, -np.inf, np.nan], size=(rows, arms))  # many ties
    payoffs = rng.choice([0.1, 0.2, 0.3], size=(rows, arms))
    allowed = rng.random((rows, arms)) < 0.7
    allowed[np.arange(rows), rng.integers(0, arms, rows)] = True  # a page's rows have an allowed arm
    lists = zip(values.tolist(), allowed.tolist(), payoffs.tolist(), strict=True)
    expected = [_first_best(*row) for row in lists]
    assert masked_argmax_rows(values, allowed, payoffs).tolist() == expected
    assert [masked_argmax(*row) for row in zip(values, allowed, payoffs, strict=True)] == expected


def test_a_block_of_one_outcome_is_the_online_newton_step() -> None:
    """``SharedLogit.learn_block`` (the offline replay's DR reward model) is ``learn_one`` for many:
    blocks of one outcome follow it to rounding; a block of many moves the same way."""
    rng = np.random.default_rng(3)
    x = np.column_stack([np.ones(200), rng.normal(size=(200, 3))])
    levels = rng.uniform(-0.5, 0.0, 200)
    rewards = (rng.random(200) < 0.5 + 0.3 * np.tanh(x[:, 1] - 4 * levels)).astype(float)
    online, ones, blocks, prior = (SharedLogit(1, 4, np.zeros(1)) for _ in range(4))
    for i in range(200):
        online.learn_one(x[i], 0, float(levels[i]), float(rewards[i]))
        ones.learn_block(x[i:i + 1], levels[i:i + 1], rewards[i:i + 1])
    for start in range(0, 200, 50):
        blocks.learn_block(x[start:start + 50], levels[start:start + 50], rewards[start:start + 50])
    probe = np.linspace(-0.5, 0.0, 6)
    expected = online.probabilities(x[0], probe)
    np.testing.assert_allclose(ones.probabilities(x[0], probe), expected, rtol=1e-9)
    # blocks of 50 land near the online fit (0.03 here), far nearer than the prior they left (0.2)
    assert np.abs(blocks.probabilities(x[0], probe) - expected).max() < 0.05
    assert np.abs(prior.probabilities(x[0], probe) - expected).max() > 0.1
    assert online.total == ones.total == blocks.total == 200
    with pytest.raises(ValueError, match="no order to forget"):
        SharedLogit(1, 4, np.zeros(1), decay=0.99).learn_block(x[:2], levels[:2], rewards[:2])


def _digest_as_defined(r: QuoteRequest) -> str:
    """The digest stored decisions carry (a retry after an upgrade must still match it)."""
    product = r.product
    data: list[object] = [r.user_id, product.product_id, product.category, product.unit_cost,
                          product.list_price, product.floor_price, product.ceiling_price, product.currency,
                          sorted(r.context.items())]
    if r.spread_limit is not None:
        data.append(r.spread_limit)
    if r.incumbent_price is not None:
        data.append(["incumbent_price", r.incumbent_price])
    return hashlib.sha256(json.dumps(data).encode()).hexdigest()


def test_a_pages_fingerprints_are_each_requests_digest_with_its_context_encoded_once() -> None:
    shared = {"is_mobile": 1.0, "hour_sin": -0.25, "zz_unknown": 1e-7}
    page = [QuoteRequest("u-ü", Product(f"sku-{i}", unit_cost=40.0, list_price=100.5, category="shoes\n",
                                        floor_price=41.0 if i % 2 else None, ceiling_price=None),
                         f"q-{i}", shared if i < 3 else {}, spread_limit=0.05 if i % 3 else None,
                         incumbent_price=90.0 if i == 4 else None) for i in range(6)]
    assert fingerprints(page) == [_digest_as_defined(r) for r in page] == [fingerprint(r) for r in page]
    assert len(set(fingerprints(page))) == len(page)
