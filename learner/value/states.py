"""Per-user LSTM states: a bounded in-memory cache in front of a durable backend (the server's store).

A user's state changes only by accepted events, in time order: an event not after the user's last
one is a duplicate or arrives out of order and is refused, which also makes re-sending a batch
harmless. Every change is a ``StateChange`` that the backend runs inside its write transaction,
reading each state as that transaction sees it: so changes apply in commit order even when an
Observe batch and a closed quote for the same user commit together, and a change can commit in one
transaction with other writes (the server closes a quote and advances its shopper's state at once).
The cache changes only after the commit, so it never holds a state the store does not; a store
failure leaves both as they were. States are tagged with the model version: a state computed by
another model means nothing to this one, so that user starts afresh.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from learner.errors import InvalidInput
from learner.value.artifact import ValueModel
from learner.value.events import BehaviorEvent
from learner.value.network import UserState

DEFAULT_CACHE_USERS = 100_000
MAX_FUTURE_SECONDS = 300.0
"""An event stamped further ahead than this is a clock or unit error (ms for s), not behavior."""
RESPONSE_SPACING_SECONDS = 0.001
"""A restamped event (a closed quote's) comes this long after the user's previous event."""


StateLoader = Callable[[str], "bytes | None"]
"""Reads one user's stored state (None for a user new to the model) as the writing transaction sees it."""


class StateBackend(Protocol):
    def load_user_state(self, user_id: str, model_version: str) -> bytes | None: ...
    def save_user_states(self, change: StateChange) -> None: ...


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
    """Thread-safe. ``capacity`` bounds memory; evicted users are read back from the backend.
    ``capacity=0`` caches nothing, for a backend that other processes write too (replicas): every
    read is the backend's."""

    def __init__(self, model: ValueModel, backend: StateBackend | None = None, *,
                 capacity: int = DEFAULT_CACHE_USERS, max_future_seconds: float = MAX_FUTURE_SECONDS) -> None:
        if capacity < 0 or (capacity == 0 and backend is None):
            raise ValueError(f"capacity must be >= 1 (0 only in front of a backend), got {capacity}")
        self.model = model
        self.backend = backend
        self.capacity = capacity
        self.max_future_seconds = max_future_seconds
        self._cache: OrderedDict[str, UserState] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._cache)

    def get(self, user_id: str) -> UserState:
        """The user's current state (the zero state for a user never seen).

        The backend is read without holding the cache's lock: the store's committing writer may be
        waiting to put a state in the cache (``remember``) while this read waits for the store.
        A state remembered meanwhile is newer than the one read, and wins.
        """
        with self._lock:
            state = self._cache.get(user_id)
            if state is not None:
                self._cache.move_to_end(user_id)
                return state
        blob = None if self.backend is None else self.backend.load_user_state(user_id, self.model.version)
        state = self.decode(blob)
        with self._lock:
            current = self._cache.get(user_id)
            if current is not None:
                return current
            self._remember(user_id, state)
        return state

    def decode(self, blob: bytes | None) -> UserState:
        return self.model.network.zero_state if blob is None else \
            UserState.from_bytes(blob, self.model.network.units)

    def _remember(self, user_id: str, state: UserState) -> None:
        self._cache[user_id] = state
        self._cache.move_to_end(user_id)
        while len(self._cache) > self.capacity:
            self._cache.popitem(last=False)

    def remember(self, states: dict[str, UserState]) -> None:
        """Put committed states in the cache (called in commit order, after each commit)."""
        with self._lock:
            for user_id, state in states.items():
                self._remember(user_id, state)

    def observe(self, events: Sequence[BehaviorEvent], now: float, *, strict: bool = False) -> Observation:
        """Apply ``events`` in order; refuse those from the future or not after the user's last event.

        ``strict`` (events sent with a quote) raises InvalidInput for a future event instead, and
        skips stale ones silently: the tracker may have delivered them already through Observe.
        """
        return self.apply(StateChange(self, events, now, strict=strict))

    def apply(self, change: StateChange) -> Observation:
        """Make ``change`` durable (in the backend's transaction) and then visible in the cache."""
        if self.backend is not None:
            self.backend.save_user_states(change)
        else:
            with self._lock:  # the cache is the whole truth: no other copy can change meanwhile
                change.compute(lambda user_id: self._cache.get(user_id) or self.model.network.zero_state)
                for user_id, state in change.states.items():
                    self._remember(user_id, state)
        return change.observation

    def refusal(self, event: BehaviorEvent, state: UserState, now: float) -> _Refusal | None:
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


class StateChange:
    """Events to apply to users' states, computed when the backend runs it (inside its transaction,
    from the states that transaction reads) and put in the cache by ``remember`` after the commit.

    ``restamp`` is for events the server makes itself (a closed quote): one not after the user's
    last event is moved to just after it instead of refused, so it always applies exactly once.
    """

    def __init__(self, users: UserStates, events: Sequence[BehaviorEvent], now: float, *,
                 strict: bool = False, restamp: bool = False) -> None:
        self.users, self.events, self.now = users, events, now
        self.strict, self.restamp = strict, restamp
        self.observation = Observation()
        self.states: dict[str, UserState] = {}

    @property
    def model_version(self) -> str:
        return self.users.model.version

    def __call__(self, load: StateLoader) -> dict[str, bytes]:
        """Compute from stored states; returns the new state of every user it changed, as bytes."""
        self.compute(lambda user_id: self.users.decode(load(user_id)))
        return {user_id: state.to_bytes() for user_id, state in self.states.items()}

    def compute(self, current: Callable[[str], UserState]) -> None:
        self.observation, self.states = Observation(), {}
        step = self.users.model.network.step
        for index, event in enumerate(self.events):
            state = self.states.get(event.user_id) or current(event.user_id)
            last = state.last_timestamp
            if self.restamp and last is not None and event.timestamp <= last:
                event = dataclasses.replace(event, timestamp=last + RESPONSE_SPACING_SECONDS)
            refusal = self.users.refusal(event, state, self.now)
            if refusal is None:
                self.states[event.user_id] = step(state, event)
                self.observation.accepted += 1
            elif self.strict and refusal.future:
                raise InvalidInput(f"recent_events[{index}].timestamp", refusal.problem)
            elif not self.strict:
                self.observation.reject(index, f"timestamp: {refusal.problem}")

    def remember(self) -> None:
        self.users.remember(self.states)
