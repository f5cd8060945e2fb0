"""Decision-log lines in Vowpal Wabbit's DSJSON shape, the one ``vw --dsjson`` reads.

One line per closed decision: the shared context by namespace, one ``_multi`` entry per allowed arm,
the chosen action first in ``a``/``p``, and ``cost = -reward``. Our own bookkeeping lives under
``_``-prefixed keys, which VW ignores; ``_unit_cost``, ``_list_price``, ``_value`` (V) and
``_refused_alphas`` (grid arms the guardrails masked) are what offline evaluation
(``evaluation/``) needs to price another grid and to count profit. The disclosure
(``_reference_price``, ``_spread_limit``) and the protected inputs (``_protected``: logged so that
prices can be audited by them, never priced on) ride along under such keys too. No user id is
written: the log is for evaluating policies, not for identifying shoppers.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from learner import Decision


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


def dsjson_line(decision: Decision, reward: float | None, *, learned: bool, late: bool) -> str:
    """The DSJSON line for a closed decision; ``reward`` None means it expired unreported."""
    offered = [view for view in decision.arms if view.allowed] or [decision.arms[decision.arm]]
    chosen_index = next(i for i, view in enumerate(offered) if view.arm == decision.arm)
    action_ids = list(range(1, len(offered) + 1))
    order = [chosen_index] + [i for i in range(len(offered)) if i != chosen_index]
    probabilities = [offered[i].probability for i in order]
    line = {
        "_label_cost": -(reward or 0.0),
        "_label_probability": decision.propensity,
        "_label_Action": chosen_index + 1,
        "_labelIndex": chosen_index,
        "a": [action_ids[i] for i in order],
        "p": probabilities,
        "c": {**shared_context(decision),
              "_multi": [{"Price": {"alpha": view.alpha}} for view in offered]},
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
    if reward is not None:
        line["o"] = [{"v": reward, "EventId": decision.quote_id}]
    return json.dumps(line, separators=(",", ":"))
