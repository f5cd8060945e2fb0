"""Decision-log lines in Vowpal Wabbit's DSJSON shape, the one ``vw --dsjson`` reads.

One line per closed decision, made from its log entry when the log is exported or evaluated
(``dsjson_lines``), not when the decision closes: the entry holds everything a line says. The
shared context by namespace, one ``_multi`` entry per allowed arm,
the chosen action first in ``a``/``p``, and ``cost = -reward``. Our own bookkeeping lives under
``_``-prefixed keys, which VW ignores; ``_unit_cost``, ``_list_price``, ``_value`` (V) and
``_refused_alphas`` (grid arms the guardrails masked) are what offline evaluation
(``evaluation/``) needs to price another grid and to count profit. The disclosure
(``_reference_price``, ``_spread_limit``) and the protected inputs (``_protected``: logged so that
prices can be audited by them, never priced on) ride along under such keys too. No user id is
written: the log is for evaluating policies, not for identifying shoppers. A shadow quote's line
logs the incumbent's price as the action taken (probability 1) and the policy's choice under
``_mode``/``_proposed``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Protocol

from learner import Decision
from learner.arms import same_price
from server.store import LogEntry


def iso_utc(seconds: float) -> str:
    """ISO 8601 UTC with milliseconds, e.g. 2026-11-28T16:31:29.246Z."""
    moment = datetime.fromtimestamp(seconds, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def shared_context(decision: Decision) -> dict[str, dict[str, float]]:
    """Features grouped into namespaces by their prefix (``context.is_mobile`` -> Context/is_mobile).

    The bias is left out: VW adds its own constant feature.
    """
    namespaces: dict[str, dict[str, float]] = {}
    for name, value in zip(decision.feature_names, decision.features, strict=True):
        if "." not in name or value == 0.0:
            continue
        prefix, feature = name.split(".", 1)
        namespaces.setdefault(prefix.capitalize(), {})[feature] = value
    return namespaces


def logged_actions(decision: Decision) -> tuple[list[float], int, list[float]]:
    """The offered actions' alphas, the chosen one's index among them, and each one's probability.

    Online: the allowed arms and the policy's distribution. Shadow: the incumbent was the logging
    policy, so its price is the action taken with probability 1 (an alpha off the grid where it is
    no arm's price), beside the allowed arms with probability 0.
    """
    offered = [view for view in decision.arms if view.allowed] or [decision.arms[decision.arm]]
    if not decision.shadow:
        chosen = next(i for i, view in enumerate(offered) if view.arm == decision.arm)
        return [view.alpha for view in offered], chosen, [view.probability for view in offered]
    alphas = [view.alpha for view in offered]
    same = [i for i, view in enumerate(offered) if same_price(view.price, decision.price)]
    if same:
        chosen = same[0]
    else:
        alphas.append((decision.price - decision.unit_cost) / decision.user_value if decision.user_value > 0
                      else 0.0)
        chosen = len(alphas) - 1
    return alphas, chosen, [1.0 if i == chosen else 0.0 for i in range(len(alphas))]


def dsjson_line(decision: Decision, reward: float | None, *, learned: bool, late: bool) -> str:
    """The DSJSON line for a closed decision; ``reward`` None means it expired unreported."""
    alphas, chosen_index, offered_probabilities = logged_actions(decision)
    action_ids = list(range(1, len(alphas) + 1))
    order = [chosen_index] + [i for i in range(len(alphas)) if i != chosen_index]
    probabilities = [offered_probabilities[i] for i in order]
    line = {
        "_label_cost": -(reward or 0.0),
        "_label_probability": decision.propensity,
        "_label_Action": chosen_index + 1,
        "_labelIndex": chosen_index,
        "a": [action_ids[i] for i in order],
        "p": probabilities,
        "c": {**shared_context(decision),
              "_multi": [{"Price": {"alpha": alpha}} for alpha in alphas]},
        "EventId": decision.quote_id,
        "Timestamp": iso_utc(decision.created_at),
        "VWState": {"m": decision.model_version},
        "_skipLearn": not learned,
        "_price": decision.price,
        "_alpha": decision.alpha,
        "_arm": decision.arm,
        "_explored": decision.explored,
        "_guardrail_bound": decision.guardrail_bound,
        "_late": late,
        "_reference_price": decision.reference_price,
        "_spread_limit": decision.spread_limit,
        "_unit_cost": decision.unit_cost,
        "_list_price": decision.list_price,
        "_value": decision.user_value,
        "_value_source": decision.value_source,
        "_refused_alphas": [view.alpha for view in decision.arms if not view.allowed],
    }
    if decision.protected_context:
        line["_protected"] = dict(decision.protected_context)
    if decision.shadow:  # what the policy would have done instead
        line["_mode"] = decision.mode
        line["_proposed"] = {"arm": decision.proposed_arm, "price": decision.proposed_price,
                             "p": decision.proposed_propensity,
                             "pmf": [view.probability for view in decision.arms]}
    if reward is not None:
        line["o"] = [{"v": reward, "EventId": decision.quote_id}]
    return json.dumps(line, separators=(",", ":"))


def entry_line(entry: LogEntry) -> str:
    """The DSJSON line of a log entry: a reward's, an expiry's (no report) or a late report's."""
    reported = None if entry.kind == "expired" else entry.reward
    return dsjson_line(entry.decision, reported, learned=entry.learned, late=entry.kind == "late")


class _Log(Protocol):
    def log_after(self, seq: int) -> Iterator[LogEntry]: ...


def dsjson_lines(store: _Log) -> Iterator[str]:
    """The whole decision log of ``store`` (any backend) as DSJSON lines, in log order."""
    return map(entry_line, store.log_after(0))
