"""Reading the decision log as the server writes it: DSJSON lines, or the SQLite state file.

Both give the same ``LoggedDecision`` per closed quote, in log order. A record that cannot be used
raises ``BadRecord`` naming its line (the log sequence number for the state file), the field and
what was expected; with ``skip_bad`` the reader counts it by reason instead and goes on. Nothing is
dropped silently: late reports (a second line for a quote the window already closed, counted as no
purchase when it closed, as the server learned it) and guardrail-bound quotes (no grid arm fitted,
so no policy chose the price) are counted too.

User ids are not read: the log does not hold them and evaluation does not need them.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from learner import Decision
from learner.arms import same_price
from server.store import SQLiteStore, Store, StoreCorrupt


class BadRecord(ValueError):
    """One unusable log record: where, which field, what was expected."""

    def __init__(self, line: int, field_name: str, expected: str) -> None:
        super().__init__(f"line {line}: {field_name}: expected {expected}")
        self.line, self.field_name, self.expected = line, field_name, expected

    @property
    def reason(self) -> str:
        return f"{self.field_name}: expected {self.expected}"


@dataclass(frozen=True)
class LoggedDecision:
    """One closed quote as evaluation needs it. Arrays are over the logger's grid, offered and
    refused arms alike; ``features`` maps the logger's feature names (bias left out) to values, and
    ``feature_names`` is the logger's full list where the log says it (the state file; DSJSON keeps
    non-zero values only)."""

    line: int
    quote_id: str
    features: Mapping[str, float]
    feature_names: tuple[str, ...] | None
    unit_cost: float
    list_price: float
    value: float
    value_source: str
    prices: np.ndarray
    allowed: np.ndarray
    pmf: np.ndarray
    price: float
    propensity: float
    purchased: bool

    @property
    def profit(self) -> float:
        """What the quote earned: its margin if bought, else 0."""
        return (self.price - self.unit_cost) if self.purchased else 0.0


@dataclass
class LogReading:
    """The usable decisions, and the count of every record left out, by reason."""

    decisions: list[LoggedDecision] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    late_reports: int = 0
    guardrail_bound: int = 0
    first_problem: str = ""

    def summary(self) -> str:
        parts = [f"{len(self.decisions)} decisions"]
        if self.late_reports:
            parts.append(f"{self.late_reports} late reports (counted as no purchase, as learned)")
        if self.guardrail_bound:
            parts.append(f"{self.guardrail_bound} guardrail-bound quotes (no arm chosen; not evaluated)")
        for reason, count in sorted(self.skipped.items()):
            parts.append(f"{count} bad records skipped ({reason})")
        return "; ".join(parts)


class _Bound(Exception):
    """A guardrail-bound quote: counted, not evaluated."""


class _Late(Exception):
    """A late report's line: counted, not evaluated."""


def _probability(line: int, field_name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < value <= 1.0:
        raise BadRecord(line, field_name, f"a probability in (0, 1], got {value!r}")
    return float(value)


def _number(line: int, field_name: str, value: Any, *, minimum: float = -math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value < minimum:
        bound = "" if minimum == -math.inf else f" >= {minimum:g}"
        raise BadRecord(line, field_name, f"a finite number{bound}, got {value!r}")
    return float(value)


_NUMBER_TYPES = frozenset((int, float))


def _numbers(line: int, field_name: str, values: list[Any], *, minimum: float = -math.inf,
             keys: Iterable[Any] | None = None) -> list[Any]:
    """``values`` when every one is a finite number >= ``minimum``, else BadRecord naming the first that
    is not (``field_name`` holds ``{}`` for its index, or its key in ``keys``). The whole list is
    checked by C loops first; only a list that fails them is read one by one (a sum can overflow
    where no value does)."""
    if not values or (set(map(type, values)) <= _NUMBER_TYPES and math.isfinite(sum(values))
                      and min(values) >= minimum):
        return values
    for key, value in zip(range(len(values)) if keys is None else keys, values, strict=True):
        _number(line, field_name.format(key), value, minimum=minimum)
    return values


def _get(line: int, record: Mapping[str, Any], key: str, kind: type | tuple[type, ...], what: str) -> Any:
    if key not in record:
        raise BadRecord(line, key, f"{what} (missing)")
    value = record[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise BadRecord(line, key, f"{what}, got {value!r}")
    return value


def _alpha(action: Any) -> Any:
    price = action.get("Price") if isinstance(action, dict) else None
    return price.get("alpha") if isinstance(price, dict) else None


def _features(line: int, context: Mapping[str, Any]) -> dict[str, float]:
    """The context's namespaces as ``namespace.name`` (lower-case namespace) -> value."""
    features: dict[str, float] = {}
    for namespace, values in context.items():
        if namespace == "_multi" or not isinstance(values, dict):
            continue
        _numbers(line, f"c.{namespace}.{{}}", list(values.values()), keys=values)
        prefix = f"{namespace.lower()}."
        features.update(zip([prefix + name for name in values], values.values(), strict=True))
    return features


def from_dsjson_line(line: int, text: str) -> LoggedDecision:
    """Parse one line ``server.decision_log.dsjson_line`` wrote (``line`` counts from 1)."""
    try:
        record = json.loads(text)
    except ValueError:
        raise BadRecord(line, "line", "one JSON object (DSJSON)") from None
    if not isinstance(record, dict):
        raise BadRecord(line, "line", "one JSON object (DSJSON)")
    if record.get("_late") is True:
        raise _Late
    if record.get("_guardrail_bound") is True:
        raise _Bound
    context = _get(line, record, "c", dict, "the shared context object")
    multi = _get(line, context, "_multi", list, "a list of the offered arms")
    if not multi:
        raise BadRecord(line, "c._multi", "at least one offered arm (a quote with none is guardrail-bound)")
    try:
        offered = [action["Price"]["alpha"] for action in multi]
    except (KeyError, TypeError):  # an arm not shaped as the server writes it: name which
        offered = [_alpha(action) for action in multi]
    _numbers(line, "c._multi[{}].Price.alpha", offered, minimum=0.0)
    actions = _get(line, record, "a", list, "the list of action ids")
    probabilities = _get(line, record, "p", list, "the list of action probabilities")
    if len(actions) != len(offered) or len(probabilities) != len(offered) or \
            sorted(actions) != list(range(1, len(offered) + 1)):
        raise BadRecord(line, "a", f"a permutation of the action ids 1..{len(offered)} with one "
                                   f"probability each in p, got a={actions!r}, p={probabilities!r}")
    _probability(line, "p[0]", probabilities[0])
    _numbers(line, "p[{}]", probabilities, minimum=0.0)
    propensity = _probability(line, "_label_probability", record.get("_label_probability"))
    refused = _numbers(line, "_refused_alphas[{}]",
                       _get(line, record, "_refused_alphas", list, "the list of refused alphas"), minimum=0.0)
    unit_cost = _number(line, "_unit_cost", record.get("_unit_cost"), minimum=0.0)
    list_price = _number(line, "_list_price", record.get("_list_price"), minimum=0.0)
    value = _number(line, "_value", record.get("_value"), minimum=0.0)
    reward = -_number(line, "_label_cost", record.get("_label_cost"))
    if reward not in (0.0, 1.0):
        raise BadRecord(line, "_label_cost", f"0 (no purchase) or -1 (a purchase), got {-reward!r}")
    pmf = np.zeros(len(offered) + len(refused))
    pmf[np.array(actions) - 1] = probabilities
    alphas = np.array(offered + refused, dtype=float)
    allowed = np.arange(alphas.size) < len(offered)
    if refused:  # offered arms come in grid order: only refused ones need sorting in
        order = np.argsort(alphas, kind="stable")
        alphas, allowed, pmf = alphas[order], allowed[order], pmf[order]
    return LoggedDecision(
        line=line, quote_id=str(_get(line, record, "EventId", str, "the quote id")),
        features=_features(line, context), feature_names=None, unit_cost=unit_cost, list_price=list_price,
        value=value, value_source=str(record.get("_value_source", "")),
        prices=unit_cost + alphas * value, allowed=allowed, pmf=pmf,
        price=_number(line, "_price", record.get("_price"), minimum=0.0), propensity=propensity,
        purchased=reward == 1.0,
    )


def from_decision(line: int, decision: Decision, reward: float) -> LoggedDecision:
    """A state-file entry: the Decision as the server stored it, and how it was settled."""
    if decision.guardrail_bound:
        raise _Bound
    propensity = _probability(line, "propensity", decision.propensity)
    if reward not in (0.0, 1.0):
        raise BadRecord(line, "reward", f"0 or 1, got {reward!r}")
    names = decision.feature_names[1:]  # the bias is implicit, as in DSJSON
    prices = [view.price for view in decision.arms]
    allowed = [view.allowed for view in decision.arms]
    pmf = [view.probability for view in decision.arms]
    if decision.shadow:  # the incumbent logged: its price with probability 1, on the grid or beside it
        pmf = [0.0] * len(prices)
        at = [view.arm for view in decision.arms if view.allowed and same_price(view.price, decision.price)]
        if at:
            pmf[at[0]] = 1.0
        else:
            prices.append(decision.price)
            allowed.append(True)
            pmf.append(1.0)
    return LoggedDecision(
        line=line, quote_id=decision.quote_id,
        features=dict(zip(names, decision.features[1:], strict=True)), feature_names=names,
        unit_cost=decision.unit_cost, list_price=decision.list_price, value=decision.user_value,
        value_source=decision.value_source,
        prices=np.array(prices), allowed=np.array(allowed), pmf=np.array(pmf),
        price=decision.price, propensity=propensity, purchased=reward == 1.0,
    )


def _collect(records: Iterable[tuple[int, Any]], parse: Any, skip_bad: bool) -> LogReading:
    reading = LogReading()
    for line, raw in records:
        try:
            reading.decisions.append(parse(line, raw))
        except _Late:
            reading.late_reports += 1
        except _Bound:
            reading.guardrail_bound += 1
        except BadRecord as bad:
            if not skip_bad:
                raise
            reading.skipped[bad.reason] += 1
            reading.first_problem = reading.first_problem or str(bad)
    return reading


def read_dsjson(path: Path, *, skip_bad: bool = False) -> LogReading:
    """Every line of a DSJSON file (blank lines are bad lines too)."""
    with path.open(encoding="utf-8") as lines:
        return _collect(enumerate(lines, start=1), from_dsjson_line, skip_bad)


def _state_entries(store: Store, after: int, late: list[int]
                   ) -> Iterator[tuple[int, tuple[Decision, float]]]:
    for entry in store.log_after(after):
        if entry.kind == "late":
            late.append(entry.seq)
            continue
        yield entry.seq, (entry.decision, entry.reward)


def read_store(store: Store, *, after: int = 0, skip_bad: bool = False) -> LogReading:
    """The decision log entries of an open store after log entry ``after`` (the rollout gate reads
    its server's own log this way)."""
    late: list[int] = []
    reading = _collect(_state_entries(store, after, late),
                       lambda line, entry: from_decision(line, *entry), skip_bad)
    reading.late_reports = len(late)
    return reading


def read_state(path: Path, *, skip_bad: bool = False) -> LogReading:
    """The decision log table of a server's state file (the file, or its --data-dir)."""
    path = path / SQLiteStore.FILENAME if path.is_dir() else path
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such state file")
    if path.name != SQLiteStore.FILENAME:
        raise ValueError(f"{path}: a state file is named {SQLiteStore.FILENAME} (pass it or its folder)")
    store = SQLiteStore(path.parent, reader=True)  # a running server's file too
    try:
        return read_store(store, skip_bad=skip_bad)
    except StoreCorrupt as error:
        raise ValueError(str(error)) from None
    finally:
        store.close()


def read_log(path: Path, *, skip_bad: bool = False) -> LogReading:
    """A state file (or data dir) if it is one, else DSJSON lines."""
    if path.is_dir() or path.name == SQLiteStore.FILENAME:
        return read_state(path, skip_bad=skip_bad)
    return read_dsjson(path, skip_bad=skip_bad)
