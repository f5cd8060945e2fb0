"""How far a replica's model trails the shared outcome log, measured on a timer for health.

A replica is *behind* when the entries it has not applied yet number more than ``BEHIND_ENTRIES``
(the ``PricebanditReplicaBehind`` alert's bound) or the oldest of them was logged more than
``BEHIND_SECONDS`` ago: a follower that keeps up applies each entry within milliseconds, so either
means it does not keep up (its cores are busy, or a long catch-up after a start). The age is read
from the entry's ``closed_at``, the clock of the replica that logged it: replicas on several
machines need their clocks in step (NTP) for it to mean seconds.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from learner import StoreFailed
from server.periodic import Periodic

BEHIND_ENTRIES = 1000
BEHIND_SECONDS = 5.0
LAG_CHECK_SECONDS = 0.25


@dataclass(frozen=True)
class Lag:
    """The replica's position against the log's end, and how old its oldest unapplied entry is."""

    applied: int
    end: int
    seconds: float

    @property
    def entries(self) -> int:
        return max(0, self.end - self.applied)

    @property
    def behind(self) -> bool:
        return self.entries > BEHIND_ENTRIES or self.seconds > BEHIND_SECONDS

    @property
    def position(self) -> str:
        return f"applied entry {self.applied} of {self.end}"

    def __str__(self) -> str:
        return (f"behind the outcome log by {self.entries} entries, the oldest logged "
                f"{self.seconds:.1f} s ago ({self.position}; "
                f"bound {BEHIND_ENTRIES} entries or {BEHIND_SECONDS:g} s)")


class SharedLog(Protocol):
    def last_seq(self) -> int: ...
    def logged_at(self, seq: int) -> float | None: ...


def measure(log: SharedLog, applied: int, now: float) -> Lag:
    """The lag of a model that includes the log up to entry ``applied``."""
    end = log.last_seq()
    logged = log.logged_at(applied + 1) if end > applied else None
    return Lag(applied, end, 0.0 if logged is None else max(0.0, now - logged))


class LagWatch(Periodic):
    """Measures the lag every ``interval`` and hands it to ``on_lag``; a store failure is health's
    other cause (the store watch reports it), so it is skipped here."""

    def __init__(self, log: SharedLog, applied: Callable[[], int], on_lag: Callable[[Lag], None],
                 interval: float = LAG_CHECK_SECONDS) -> None:
        super().__init__("lag-watch", interval, self._measure)
        self._log, self._applied, self._on_lag = log, applied, on_lag

    def _measure(self) -> None:
        with contextlib.suppress(StoreFailed):
            self._on_lag(measure(self._log, self._applied(), time.time()))
