"""The rollout gate: evaluate a candidate configuration on the server's own log, and adopt it only
when the numbers say it wins (issue 17).

The candidate is the running learner configuration with the flags given changed. Both are replayed
through the last N entries of the decision log by ``evaluation.replay`` (progressive: each scored
before it learns a decision, as VW's ``--explore_eval``), doubly robust, with 95% intervals. A switch
is accepted only when the candidate's lower bound is above the running configuration's estimate;
then a fresh Pricer of the candidate learns the whole log (what a restart would rebuild), and the
switch (the adopted configuration, ``server/adoption.py``, with that Pricer's snapshot) is appended
to the outcome log (``PricingService.switch``): every replica applies it at that position, so all
switch at one point and keep one model; the answer comes once this replica has. A refused switch
changes nothing and appends nothing.

What cannot change live: the feature layout (``--context-features``, ``--category-buckets``,
``--protected-features``, ``--unknown-context``: the log's decisions and the request reader are
built on it) and ``--stable-price-seconds`` (the service's window); nor anything but the learner's
settings. Shadow to online takes the same credential and no evaluation: shadow mode's own lift
interval (``pricebandit_shadow_lift``) is what an operator reads first.

Every call is one log line (``gate_*`` fields in the JSON format) and counted in
``pricebandit_gate_decisions_total{result}``; the last evaluation's numbers are the
``pricebandit_gate_estimate`` gauges.
"""

from __future__ import annotations

import logging
import shlex
import threading
import time
from dataclasses import dataclass, replace

from evaluation.candidates import Candidate, CandidateError
from evaluation.estimators import Estimate
from evaluation.logs import BadRecord, read_store
from evaluation.replay import evaluate
from learner import ONLINE, InvalidInput, Pricer, PricerConfig
from learner.errors import NotNow
from server.adoption import Adoption
from server.config import flag_name, pricer_flags, pricer_over
from server.metrics import GATE_POLICIES, by_bound
from server.service import PricingService

log = logging.getLogger(__name__)

DEFAULT_LAST_N = 10_000
FIXED_SETTINGS = ("context_features", "category_buckets", "protected_features", "unknown_context",
                  "stable_price_seconds")
"""Learner settings the gate does not switch live (see the module docstring)."""
CANDIDATE_FIELD = "candidate"


@dataclass(frozen=True)
class GateReport:
    """What one gate call found and did."""

    result: str
    """``evaluated``, ``accepted`` or ``refused`` (``server.metrics.GATE_RESULTS``)."""
    reason: str
    running: Estimate | None
    candidate: Estimate | None
    logged: Estimate | None
    decisions: int
    effective_sample_size: float
    could_not_take: float
    model_version: str
    mode: str
    configuration: str


@dataclass(frozen=True)
class _Numbers:
    candidate_config: PricerConfig
    running: Estimate
    candidate: Estimate
    logged: Estimate
    decisions: int
    effective_sample_size: float
    could_not_take: float

    @property
    def wins(self) -> bool:
        return self.candidate.low > self.running.value

    def comparison(self) -> str:
        verb = "beats" if self.wins else "does not beat"
        return (f"the candidate's lower 95% bound {self.candidate.low:.4f} {verb} the running "
                f"configuration's estimate {self.running.value:.4f} per quote on {self.decisions} decisions")


def describe(config: PricerConfig) -> str:
    """A learner configuration as the flags that differ from the defaults ("defaults" if none)."""
    return shlex.join(pricer_flags(config)) or "defaults"


class RolloutGate:
    """The operator's calls on one service; one at a time."""

    def __init__(self, service: PricingService, value_model: str) -> None:
        self._service = service
        self._value_model = value_model
        """The server's ``--value-model``: the replay reads V and the embedding from the log."""
        self._lock = threading.Lock()

    def evaluate(self, flags: str, last_n: int, requested_by: str) -> GateReport:
        with self._lock:
            numbers = self._numbers(flags, last_n)
            return self._finish("evaluated", numbers, requested_by, flags, numbers.comparison())

    def switch(self, flags: str, last_n: int, requested_by: str) -> GateReport:
        with self._lock:
            numbers = self._numbers(flags, last_n)
            if not numbers.wins:
                return self._finish("refused", numbers, requested_by, flags,
                                    f"{numbers.comparison()}; nothing changed")
            service = self._service
            successor = service.pricer.with_config(numbers.candidate_config)
            record = Adoption(numbers.candidate_config, service.mode, requested_by, time.time())
            seq = service.switch(record, successor)
            return self._finish("accepted", numbers, requested_by, flags,
                                f"{numbers.comparison()}; it now serves, from log entry {seq} on every "
                                "replica")

    def go_online(self, requested_by: str) -> GateReport:
        with self._lock:
            service = self._service
            seq = service.go_online(Adoption(service.pricer.config, ONLINE, requested_by, time.time()))
            return self._finish("accepted", None, requested_by, "",
                                f"shadow mode ended at log entry {seq}: the policy's prices are answered "
                                "from now on, on every replica")

    def _candidate(self, flags: str) -> PricerConfig:
        running = self._service.pricer.config
        try:
            config = pricer_over(running, shlex.split(flags))
        except ValueError as error:  # InvalidInput too: a setting PricerConfig refuses
            raise InvalidInput(CANDIDATE_FIELD, str(error)) from None
        try:  # the learner's own rules (grid, decay, the policy's options), named; no value model here
            Pricer(replace(config, user_embedding_dim=0))
        except ValueError as error:
            raise InvalidInput(CANDIDATE_FIELD, str(error)) from None
        for name in FIXED_SETTINGS:
            if getattr(config, name) != getattr(running, name):
                raise InvalidInput(CANDIDATE_FIELD, f"{flag_name(name)}: the gate cannot change it on a "
                                                    "running server (the log and the request reader are "
                                                    "built on it); start a new --data-dir with it instead")
        return config

    def _numbers(self, flags: str, last_n: int) -> _Numbers:
        config = self._candidate(flags)
        store = self._service.store
        try:
            reading = read_store(store, after=max(0, store.last_seq() - (last_n or DEFAULT_LAST_N)))
            found = evaluate(reading, [Candidate("running", self._service.pricer.config, self._value_model),
                                       Candidate("candidate", config, self._value_model)])
        except CandidateError as error:
            raise InvalidInput(CANDIDATE_FIELD, str(error)) from None
        except BadRecord as error:
            raise NotNow(f"the decision log cannot be evaluated: {error}") from None
        except ValueError as error:  # no decision to evaluate on yet; a Pricer the config cannot make
            raise NotNow(f"{error}") from None
        running, candidate = found.results
        return _Numbers(config, running.profit["dr"], candidate.profit["dr"], found.logged_profit,
                        found.decisions, candidate.effective_sample_size, candidate.could_not_take)

    def _finish(self, result: str, numbers: _Numbers | None, requested_by: str, flags: str,
                reason: str) -> GateReport:
        """Log, count and answer one call."""
        service, metrics = self._service, self._service.metrics
        metrics.gate_decisions.labels(result).inc()
        extra: dict[str, object] = {"gate_result": result, "gate_requested_by": requested_by,
                                    "gate_flags": flags, "gate_mode": service.mode}
        if numbers is not None:
            for name in GATE_POLICIES:
                estimate: Estimate = getattr(numbers, name)
                for bound, value in by_bound(estimate).items():
                    metrics.gate_estimate.labels(name, bound).set(value)
                extra[f"gate_{name}"] = estimate.to_dict()
            extra["gate_decisions"] = numbers.decisions
        log.info("rollout gate: %s (asked by %s, candidate %r): %s", result, requested_by or "nobody named",
                 flags, reason, extra=extra)
        return GateReport(
            result=result, reason=reason, running=numbers.running if numbers else None,
            candidate=numbers.candidate if numbers else None, logged=numbers.logged if numbers else None,
            decisions=numbers.decisions if numbers else 0,
            effective_sample_size=numbers.effective_sample_size if numbers else 0.0,
            could_not_take=numbers.could_not_take if numbers else 0.0,
            model_version=service.pricer.model_version, mode=service.mode,
            configuration=describe(service.pricer.config))
