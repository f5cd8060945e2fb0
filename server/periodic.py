"""A timer thread: the health watches' one loop (``store_watch``, ``log_lag``)."""

from __future__ import annotations

import threading
from collections.abc import Callable


class Periodic:
    """Calls ``tick`` every ``interval`` seconds on a daemon thread named ``name``, from ``start``
    until ``stop`` (which waits for the tick under way)."""

    def __init__(self, name: str, interval: float, tick: Callable[[], None]) -> None:
        self._interval, self._tick = interval, tick
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        while not self._stopping.wait(self._interval):
            self._tick()
