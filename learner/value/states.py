"""Per-user LSTM states: a bounded in-memory cache in front of a durable backend (the server's store).

A user's state changes only by accepted events, in time order: an event not after the user's last
one is a duplicate or arrives out of order and is refused, which also makes re-sending a batch
harmless. States are written to the backend before the cache changes, so the cache never holds a
state the store does not; a store failure leaves both as they were. States are tagged with the model
version: a state computed by another model means nothing to this one, so that user starts afresh.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from learner.errors import InvalidInput
from learner.value.artifact import ValueModel
from learner.value.events import BehaviorEvent
from learner.value.network import UserState

DEFAULT_CACHE_USERS = 100_000
MAX_FUTURE_SECONDS = 300.0
"""An event stamped further ahead than this is a clock or unit error (ms for s), not behavior."""


class StateBackend(Protocol):
    def load_user_state(self, user_id: str, model_version: str) -> bytes | None: ...
    def save_user_states(self, states: Mapping[str, bytes], model_version: str, now: float) -> None: ...


REJECTIONS_KEPT = 100


@dataclass
class Observation:
    """What became of events: how many were applied, how many refused, and why (the first few)."""

    accepted: int = 0
    rejected: int = 0
    rejections: list[tuple[int, str]] = field(default_factory=list)

    def reject(self, index: int, reason: str) -> None:
        self.rejected += 1
        if len(self.rejections) < REJECTIONS_KEPT:
            self.rejections.append((index, reason))


class UserStates:
    """Thread-safe. ``capacity`` bounds memory; evicted users are read back from the backend."""

    def __init__(self, model: ValueModel, backend: StateBackend | None = None, *,
                 capacity: int = DEFAULT_CACHE_USERS, max_future_seconds: float = MAX_FUTURE_SECONDS) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.model = model
        self.backend = backend
        self.capacity = capacity
        self.max_future_seconds = max_future_seconds
        self._cache: OrderedDict[str, UserState] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._cache)

    def get(self, user_id: str) -> UserState:
        """The user's current state (the zero state for a user never seen)."""
        with self._lock:
            return self._get(user_id)

    def _get(self, user_id: str) -> UserState:
        state = self._cache.get(user_id)
        if state is not None:
            self._cache.move_to_end(user_id)
            return state
        blob = None if self.backend is None else self.backend.load_user_state(user_id, self.model.version)
        state = self.model.network.zero_state if blob is None else \
            UserState.from_bytes(blob, self.model.network.units)
        self._remember(user_id, state)
        return state

    def _remember(self, user_id: str, state: UserState) -> None:
        self._cache[user_id] = state
        self._cache.move_to_end(user_id)
        while len(self._cache) > self.capacity:
            self._cache.popitem(last=False)

    def observe(self, events: Sequence[BehaviorEvent], now: float, *, strict: bool = False) -> Observation:
        """Apply ``events`` in order; refuse those from the future or not after the user's last event.

        ``strict`` (events sent with a quote) raises InvalidInput for a future event instead, and
        skips stale ones silently: the tracker may have delivered them already through Observe.
        """
        result = Observation()
        with self._lock:
            changed: dict[str, UserState] = {}
            for index, event in enumerate(events):
                state = changed.get(event.user_id) or self._get(event.user_id)
                refusal = self._refusal(event, state, now)
                if refusal is None:
                    changed[event.user_id] = self.model.network.step(state, event)
                    result.accepted += 1
                elif strict and refusal.future:
                    raise InvalidInput(f"recent_events[{index}].timestamp", refusal.problem)
                elif not strict:
                    result.reject(index, f"timestamp: {refusal.problem}")
            if changed and self.backend is not None:
                self.backend.save_user_states({user: s.to_bytes() for user, s in changed.items()},
                                              self.model.version, now)
            for user_id, state in changed.items():
                self._remember(user_id, state)
        return result

    def _refusal(self, event: BehaviorEvent, state: UserState, now: float) -> _Refusal | None:
        ahead = event.timestamp - now
        if ahead > self.max_future_seconds:
            return _Refusal(True, f"{event.timestamp:.3f} is {ahead:.0f} s in the future (at most "
                                  f"{self.max_future_seconds:g} s accepted; seconds, not milliseconds?)")
        if state.last_timestamp is not None and event.timestamp <= state.last_timestamp:
            return _Refusal(False, f"{event.timestamp:.3f} is not after this user's last event "
                                   f"({state.last_timestamp:.3f}): a duplicate or out of order")
        return None


class _Refusal(NamedTuple):
    future: bool
    problem: str
