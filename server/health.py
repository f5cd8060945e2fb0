"""Health's one rule: the status ``grpc.health.v1`` answers, and a one-line detail that says why.

The status is SERVING once the saved state is loaded, while the store works and until shutdown
begins; NOT_SERVING otherwise. The detail names every cause there is (loading, shutting down, the
store's failure, a replica behind the outcome log with its numbers), "" when there is none; each
``Check`` answer carries it in its initial metadata (``DETAIL_KEY``, which ``pricebandit-healthcheck``
prints), and each change of cause is logged once.

A replica behind the log stays SERVING: it prices correctly, with the model the log held a moment
ago (an exact prefix of the others'), and its own rewards still wait for the log up to their entry;
taking it out of the load balancer would move its load onto the other replicas, which then fall
behind too, and a replica that catches up after a start would flap. The detail and the
``PricebanditReplicaBehind`` alert say it; an operator decides.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from grpc_health.v1 import health, health_pb2

from learner import StoreFailed
from server.log_lag import Lag

log = logging.getLogger(__name__)

DETAIL_KEY = "pricebandit-health-detail"
SERVING, NOT_SERVING = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING


def _metadata_text(text: str) -> str:
    """``text`` as a metadata value may carry it: printable ASCII on one line."""
    return "".join(c if " " <= c <= "~" else "?" for c in " ".join(text.split()))


class ServerHealth(health.HealthServicer):
    """The health service of one server, for the services ``names``; NOT_SERVING until ``loaded()``."""

    def __init__(self, names: tuple[str, ...]) -> None:
        super().__init__()
        self._names = names
        self._state_lock = threading.Lock()
        self._loaded = self._stopping = False
        self._fault: StoreFailed | None = None
        self._lag: Lag | None = None
        self.detail = "loading the saved state"
        self._publish()

    def Check(self, request: health_pb2.HealthCheckRequest, context: Any) -> health_pb2.HealthCheckResponse:
        context.send_initial_metadata(((DETAIL_KEY, _metadata_text(self.detail)),))
        return super().Check(request, context)

    def loaded(self) -> None:
        with self._state_lock:
            self._loaded = True
            self._publish()

    def stopping(self) -> None:
        with self._state_lock:
            self._stopping = True
            self._publish()

    def store(self, fault: StoreFailed | None) -> None:
        """The store's state changed: ``fault`` is why it fails, None once it works again."""
        with self._state_lock:
            if fault is not None:
                log.error("%s; health NOT_SERVING until it works again", fault)
            elif self._loaded and not self._stopping:
                log.info("the state store works again; health SERVING")
            self._fault = fault
            self._publish()

    def lag(self, lag: Lag) -> None:
        """The replica's distance to the end of the outcome log, as last measured."""
        with self._state_lock:
            was_behind = self._lag is not None and self._lag.behind
            if lag.behind and not was_behind:
                log.warning("this replica is %s; it stays SERVING while it catches up", lag)
            elif was_behind and not lag.behind:
                log.info("this replica caught up with the outcome log (%s)", lag.position)
            self._lag = lag
            self._publish()

    def _publish(self) -> None:
        """Set the status and the detail from the causes; the caller holds the state lock."""
        causes = []
        if not self._loaded:
            causes.append("loading the saved state")
        if self._stopping:
            causes.append("shutting down")
        if self._fault is not None:
            causes.append(str(self._fault))
        serving = not causes
        if self._lag is not None and self._lag.behind:
            causes.append(str(self._lag))
        self.detail = "; ".join(causes)
        for name in self._names:
            self.set(name, SERVING if serving else NOT_SERVING)
