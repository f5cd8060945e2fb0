"""Stable prices: within a window, a user asking again for a product keeps the price they were shown.

A shopper who reloads a page and sees another price stops trusting it. The rule is here, in one place,
for the server (whose store remembers each user's last quote per product across restarts) and the
simulator (which remembers in memory); the Pricer then pins the price as a guardrail
(``Pricer.quote(..., stable_of=...)``), so the logged probability stays right.
"""

from __future__ import annotations

from dataclasses import dataclass

from learner.types import Decision, QuoteRequest


@dataclass(frozen=True)
class StableWindow:
    """``seconds`` after a price was set for a user and product (0: off), it holds for them, unless
    the product's cost, list price or currency changed since."""

    seconds: float

    @property
    def enabled(self) -> bool:
        return self.seconds > 0

    def holds(self, earlier: Decision, priced_at: float, request: QuoteRequest, now: float) -> bool:
        """Whether ``request`` must repeat ``earlier``'s price, set at ``priced_at``."""
        product = request.product
        return (self.enabled and now - priced_at < self.seconds
                and earlier.user_id == request.user_id and earlier.product_id == product.product_id
                and earlier.unit_cost == product.unit_cost and earlier.list_price == product.list_price
                and earlier.currency == product.currency)
