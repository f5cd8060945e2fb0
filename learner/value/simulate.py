"""A small seeded market of shoppers, enough to train and test the value model without real data.

Each user has a hidden willingness to pay: the largest markup over cost they accept (lognormal
around 50 %). They browse products of several categories at prices that vary (promotions, list
prices), dwell longer on prices within their reach, put those in the cart, buy some, and review a few.
So the margin a user pays depends on them (learnable from their history) and on the product's cost
(known at quote time), and the user's mean past margin is an honest but beatable baseline.

It is the stand-in for ``simulator/``'s richer market: anything yielding ``BehaviorEvent``s in the
same schema can replace it in ``pricebandit-train``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import numpy as np

from learner.value.events import BehaviorEvent

CATEGORIES: dict[str, float] = {"books": 8.0, "toys": 15.0, "shoes": 40.0, "garden": 60.0,
                                "audio": 120.0, "furniture": 250.0}
START = 1_700_000_000.0  # 2023-11-14, a fixed epoch so that the data are the same on every run


def simulate_events(n_users: int, *, seed: int = 0, sessions: float = 6.0) -> Iterator[BehaviorEvent]:
    """Events of ``n_users`` users, user by user, each user's in time order. Same seed, same events."""
    rng = np.random.default_rng(seed)
    names = list(CATEGORIES)
    for index in range(n_users):
        user = f"sim-{seed}-{index}"
        willingness = float(rng.lognormal(np.log(0.5), 0.5))
        favourite = names[int(rng.integers(len(names)))]
        now = START + float(rng.uniform(0, 30 * 86_400))
        history: list[BehaviorEvent] = []
        for _ in range(1 + int(rng.poisson(sessions))):
            now += float(rng.exponential(2 * 86_400))
            for _ in range(1 + int(rng.integers(5))):
                category = favourite if rng.random() < 0.5 else names[int(rng.integers(len(names)))]
                history.extend(_visit(rng, user, now, category, willingness))
                now += 600.0
        yield from sorted(history, key=lambda event: event.timestamp)  # reviews come days later


def _visit(rng: np.random.Generator, user: str, now: float, category: str,
           willingness: float) -> Iterator[BehaviorEvent]:
    cost = round(CATEGORIES[category] * float(rng.lognormal(0.0, 0.3)), 2)
    markup = float(rng.uniform(0.05, 1.5))
    price = round(cost * (1.0 + markup), 2)
    product = f"{category}-{int(rng.integers(1000))}"
    reach = willingness * float(rng.lognormal(0.0, 0.15)) - markup  # > 0: within what they accept
    dwell = float(rng.exponential(20.0 + 60.0 / (1.0 + np.exp(-4.0 * reach))))
    view = BehaviorEvent(user_id=user, timestamp=now, event_type="view", product_id=product,
                         category=category, price=price, unit_cost=cost, dwell_seconds=round(dwell, 1))
    yield view
    if reach <= 0 or rng.random() > 0.6:
        return
    yield replace(view, timestamp=now + dwell + 1.0, event_type="add_to_cart", dwell_seconds=0.0)
    if rng.random() > 0.7:
        return
    yield replace(view, timestamp=now + dwell + 60.0, event_type="purchase", dwell_seconds=0.0,
                  purchased=True)
    if rng.random() < 0.3:
        rating = float(np.clip(round(3.0 + 4.0 * reach + rng.normal(0.0, 0.7)), 1, 5))
        yield replace(view, timestamp=now + dwell + 86_400.0, event_type="review", dwell_seconds=0.0,
                      rating=rating)
