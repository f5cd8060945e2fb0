"""Contextual bandit policies over a price grid, all meeting one protocol (``base.Policy``).

A new policy is a class in a file of its own that meets the protocol (the demand-model policies
share ``demand_policy.DemandPolicy``; another kind need not) and one entry in ``POLICIES``.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping

import numpy as np

from learner.errors import InvalidInput
from learner.policies.base import Choice, Policy, PolicyFactory, PolicySettings, default_alphas
from learner.policies.demand_policy import DEFAULT_DEMAND_MODEL, DEMAND_MODELS, DemandPolicy
from learner.policies.egreedy import EpsilonGreedy
from learner.policies.linucb import LinUCB
from learner.policies.squarecb import SquareCB
from learner.policies.thompson import LinearThompson

POLICIES: dict[str, PolicyFactory] = {
    cls.name: cls for cls in (LinUCB, LinearThompson, SquareCB, EpsilonGreedy)
}


def policy_class(name: str) -> PolicyFactory:
    try:
        return POLICIES[name]
    except KeyError:
        raise InvalidInput("policy", f"unknown policy {name!r}; choose one of {sorted(POLICIES)}") from None


def policy_options(name: str) -> tuple[str, ...]:
    """The hyperparameters policy ``name`` takes: the keyword-only parameters of its factory (the
    ``PolicySettings`` it is built with are the Pricer's to set)."""
    parameters = inspect.signature(policy_class(name)).parameters.values()
    return tuple(p.name for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY)


def make_policy(name: str, n_arms: int, dim: int, options: Mapping[str, float] | None = None, *,
                alphas: np.ndarray | None = None, l2: float = 1.0, decay: float = 1.0,
                demand_model: str = DEFAULT_DEMAND_MODEL) -> Policy:
    """Build the policy called ``name``: ``options`` are its own hyperparameters (a user's choice,
    checked against ``policy_options``), the rest the ``PolicySettings`` every policy is given."""
    factory = policy_class(name)
    options = options or {}
    unknown = sorted(set(options) - set(policy_options(name)))
    if unknown:
        takes = ", ".join(policy_options(name)) or "none"
        raise InvalidInput("policy_options", f"{name} takes no option {', '.join(map(repr, unknown))}; "
                                             f"its options: {takes}")
    settings = PolicySettings(n_arms, dim, default_alphas(n_arms) if alphas is None else alphas,
                              l2=l2, decay=decay, demand_model=demand_model)
    return factory(settings, **options)


__all__ = ["DEFAULT_DEMAND_MODEL", "DEMAND_MODELS", "POLICIES", "Choice", "DemandPolicy",
           "EpsilonGreedy", "LinUCB", "LinearThompson", "Policy", "PolicyFactory", "PolicySettings",
           "SquareCB", "make_policy", "policy_options"]
