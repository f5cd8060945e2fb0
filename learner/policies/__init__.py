"""Contextual bandit policies over a price grid, all with one protocol (see ``base.Policy``)."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
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


def policy_class(name: str) -> type[Policy]:
    try:
        return POLICIES[name]
    except KeyError:
        raise InvalidInput("policy", f"unknown policy {name!r}; choose one of {sorted(POLICIES)}") from None


def policy_options(name: str) -> tuple[str, ...]:
    """The hyperparameters policy ``name`` takes: the keyword-only parameters of its own constructor
    (what it passes on to ``Policy``, such as ``decay``, is the Pricer's to set)."""
    init = policy_class(name).__init__
    if init is Policy.__init__:
        return ()
    parameters = inspect.signature(init).parameters.values()
    return tuple(p.name for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY)


def make_policy(name: str, n_arms: int, dim: int, options: Mapping[str, float] | None = None,
                **settings: Any) -> Policy:
    """Build the policy called ``name``: ``options`` are its own hyperparameters (a user's choice,
    checked against ``policy_options``), ``settings`` what every policy takes (``Policy``'s)."""
    cls = policy_class(name)
    options = options or {}
    unknown = sorted(set(options) - set(policy_options(name)))
    if unknown:
        takes = ", ".join(policy_options(name)) or "none"
        raise InvalidInput("policy_options", f"{name} takes no option {', '.join(map(repr, unknown))}; "
                                             f"its options: {takes}")
    return cls(n_arms, dim, **settings, **dict[str, Any](options))


__all__ = ["DEFAULT_DEMAND_MODEL", "DEMAND_MODELS", "POLICIES", "Choice",
           "EpsilonGreedy", "LinUCB", "LinearThompson", "Policy", "SquareCB",
           "make_policy", "policy_options"]
