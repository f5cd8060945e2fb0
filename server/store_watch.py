"""Health follows the store: a timer checks it, so a failing, deleted or replaced state file turns
health NOT_SERVING within a second, and a failed store is tried again until it works (SERVING)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from learner import StoreFailed
from server.periodic import Periodic

STORE_CHECK_SECONDS = 0.25


class Watched(Protocol):
    def check(self) -> StoreFailed | None: ...
    def recover(self) -> StoreFailed | None: ...


class StoreWatch(Periodic):
    """Calls ``on_change(fault)`` whenever the store's state changes cause (None: it works)."""

    def __init__(self, store: Watched, on_change: Callable[[StoreFailed | None], None],
                 interval: float = STORE_CHECK_SECONDS) -> None:
        super().__init__("store-watch", interval, self._check)
        self._store, self._on_change = store, on_change
        self.fault: StoreFailed | None = None

    def _check(self) -> None:
        # Reported once as it is before it is tried again: a failure always shows in health.
        fault = self._store.check() if self.fault is None else self._store.recover()
        if _cause(fault) != _cause(self.fault):
            self.fault = fault
            self._on_change(fault)


def _cause(fault: StoreFailed | None) -> str | None:
    return None if fault is None else fault.cause
