"""Contextual bandit policies over a price grid, all with one protocol (see ``base.Policy``)."""

from __future__ import annotations

from typing import Any

from learner.errors import InvalidInput
from learner.policies.base import DEFAULT_DEMAND_MODEL, DEMAND_MODELS, Choice, Policy
from learner.policies.egreedy import EpsilonGreedy
from learner.policies.linucb import LinUCB
from learner.policies.squarecb import SquareCB
from learner.policies.thompson import LinearThompson

POLICIES: dict[str, type[Policy]] = {
    cls.name: cls for cls in (LinUCB, LinearThompson, SquareCB, EpsilonGreedy)
}


def make_policy(name: str, n_arms: int, dim: int, **options: Any) -> Policy:
    """Build the policy called ``name``; ``options`` are its keyword hyperparameters."""
    try:
        cls = POLICIES[name]
    except KeyError:
        raise InvalidInput("policy", f"unknown policy {name!r}; choose one of {sorted(POLICIES)}") from None
    try:
        return cls(n_arms, dim, **options)
    except TypeError as exc:
        raise InvalidInput("policy_options", f"{name}: {exc}") from None


__all__ = ["DEFAULT_DEMAND_MODEL", "DEMAND_MODELS", "POLICIES", "Choice",
           "EpsilonGreedy", "LinUCB", "LinearThompson", "Policy", "SquareCB",
           "make_policy"]
