"""Behavior histories: what each returning shopper did before the run, shaped by their hidden traits.

A value model reads these to recover the traits no context shows: shoppers browse the categories they
like (taste), view and dwell longer the more they care about price (sensitivity), put in the cart and
buy what they value above the price seen (value scale), and rate a purchase by the surplus they got.
New shoppers have no history. One event is a JSON object with exactly these fields:

| field | meaning |
|---|---|
| `user_id` | the shopper, as the run's quotes name them |
| `timestamp` | Unix seconds, increasing within a user |
| `event_type` | `view`, `add_to_cart`, `purchase` or `review` (`learner.value.TRACKED_EVENT_TYPES`) |
| `product_id`, `category` | the catalog item |
| `price` | the price the shopper saw (list price less any discount) |
| `unit_cost` | the item's unit cost |
| `list_price` | the item's list price (what `price` is a discount of) |
| `dwell_seconds` | time spent on the event (0 for purchase and review) |
| `rating` | 1-5 stars on a review, 0 on every other event |
| `purchased` | whether this product visit ended in a purchase (on all its events) |
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from simulator.market import CATEGORIES, Market
from simulator.seeds import RandomStream, generator

DAY = 86_400.0
REVIEW_RATE = 0.3


def user_history(market: Market, user: int, *, sessions: float | None = None,
                 days: float | None = None) -> list[dict[str, Any]]:
    """The events of ``user`` in the ``days`` before the market's start (empty for a new shopper), in
    about ``sessions`` sessions; both default to the market's ``history_days`` and ``history_sessions``.

    Seeded by the market seed and the user index alone, so a user's history does not depend on who
    else is asked for.
    """
    sessions = market.config.history_sessions if sessions is None else sessions
    days = market.config.history_days if days is None else days
    traits = market.traits
    if not traits.returning[user]:
        return []
    rng = generator(market.seed, RandomStream.HISTORY, user)
    catalog = market.catalog
    log_value = math.log(traits.value_scale[user])
    sensitivity = float(traits.price_sensitivity[user])
    noise = market.config.base_noise / sensitivity
    taste = traits.taste[user]
    category_cdf = np.cumsum(taste ** 8 / (taste ** 8).sum())
    by_category = [np.flatnonzero(catalog.category_index == c) for c in range(len(CATEGORIES))]
    events: list[dict[str, Any]] = []
    starts = np.sort(market.start_time - days * DAY * rng.random(max(1, rng.poisson(sessions))))
    for clock in starts.tolist():
        for _ in range(1 + rng.poisson(3.0)):
            category = min(int(np.searchsorted(category_cdf, rng.random() * category_cdf[-1])),
                           len(CATEGORIES) - 1)
            pool = by_category[category] if by_category[category].size else np.arange(len(catalog.products))
            item = int(pool[rng.integers(pool.size)])
            product = catalog.products[item]
            discount = 0.0 if rng.random() < 0.7 else rng.uniform(0.05, 0.3)
            price = round(max(product.unit_cost, product.list_price * (1.0 - discount)), 2)
            log_willingness = log_value + math.log(taste[category]) + noise * _logistic(rng)
            surplus = log_willingness - math.log(price / product.list_price)
            interest = surplus > -0.05
            bought = surplus > 0
            visit = {"product_id": product.product_id, "category": product.category, "price": price,
                     "unit_cost": product.unit_cost, "list_price": product.list_price,
                     "purchased": bool(bought and interest)}
            dwell = (25.0 * math.sqrt(sensitivity) * float(taste[category]) ** 4
                     * math.exp(0.4 * rng.standard_normal()))
            clock = _emit(events, market, user, clock, "view", visit, dwell)
            if interest:
                clock = _emit(events, market, user, clock, "add_to_cart", visit, 0.3 * dwell)
                if bought:
                    clock = _emit(events, market, user, clock, "purchase", visit, 0.0)
                    if rng.random() < REVIEW_RATE:
                        rating = int(np.clip(round(3.0 + 20.0 * surplus + rng.normal(0.0, 0.5)), 1, 5))
                        _emit(events, market, user, clock + 3 * DAY, "review", visit, 0.0, rating)
    events.sort(key=lambda e: e["timestamp"])
    return [e for e in events if e["timestamp"] < market.start_time]


def histories(market: Market, users: Iterable[int] | None = None,
              **options: float) -> Iterator[dict[str, Any]]:
    """Every event of ``users`` (default: all), user by user, each user's in time order."""
    for user in range(market.n_users) if users is None else users:
        yield from user_history(market, int(user), **options)


def write_jsonl(events: Iterable[dict[str, Any]], path: Path) -> int:
    """Write one JSON object per line; returns how many."""
    count = 0
    with path.open("w") as handle:
        for event in events:
            handle.write(json.dumps(event, separators=(",", ":")) + "\n")
            count += 1
    return count


def _emit(events: list[dict[str, Any]], market: Market, user: int, clock: float, kind: str,
          visit: dict[str, Any], dwell: float, rating: int = 0) -> float:
    events.append({"user_id": market.user_id(user), "timestamp": round(clock, 3), "event_type": kind,
                   "product_id": visit["product_id"], "category": visit["category"], "price": visit["price"],
                   "unit_cost": visit["unit_cost"], "list_price": visit["list_price"],
                   "dwell_seconds": round(dwell, 2), "rating": rating,
                   "purchased": visit["purchased"]})
    return clock + dwell + 1.0


def _logistic(rng: np.random.Generator) -> float:
    u = rng.random()
    return math.log(u) - math.log1p(-u) if 0.0 < u < 1.0 else 0.0
