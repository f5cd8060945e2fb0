"""The pricing service: the Pricer and the Store wired together, independent of gRPC.

Ordering rules that make restarts exact:
- a quote is acknowledged only after its pending row is committed;
- closing a quote (reward or expiry) commits the log entry first, then updates the learner; the
  store runs that update once the entry is durable, in log order, before any later entry commits,
  so the learner always equals "latest snapshot + learned log entries after it" and concurrent
  closes share one fsync (the learn lock is never held across a commit); on a log shared by
  replicas (``store.shared_log``) the store cannot order that update, so every entry, this
  process's and the others', is learned by following the log (``follow_log``);
- snapshots are taken under the learn lock and record the last log entry they include;
- a call whose caller's deadline has passed stores and learns nothing: ``time_left`` is checked
  right before each write. The race: a deadline can pass during the commit that follows the check,
  so the check asks for as much time as writes have lately taken (``WRITE_MARGIN`` times their
  moving average); what still slips through is stored work the caller never hears of (a retry with
  the same id finds it).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import islice
from typing import TypeVar

from learner import (
    ONLINE,
    SHADOW,
    AlreadyClosed,
    ConflictingReport,
    Decision,
    InvalidInput,
    LogMoved,
    Pricer,
    QuoteIdTaken,
    QuoteRequest,
    ReportStatus,
    SnapshotError,
    Unavailable,
    UnknownQuote,
    fingerprint,
    judge_repeat,
    reward_of,
)
from learner.arms import PriceBounds
from learner.errors import DeadlinePassed, NotNow
from learner.stability import StableWindow
from learner.value import BehaviorEvent, Observation
from server.adoption import Adoption
from server.metrics import Metrics
from server.store import AfterCommit, LogEntry, Store, Switch, SwitchEntry

log = logging.getLogger(__name__)

EXPIRY_BATCH = 500
OBSERVE_BATCH = 500
"""Events of an Observe stream applied (and committed in one transaction) at a time."""
FOLLOW_PAGE = 1000
"""Log entries read at a time while following the log (then learned under the learn lock)."""
SWITCH_ATTEMPTS = 50
"""A switch whose successor had to catch up with this many newer entries in a row is refused: the
log grows faster than it can follow (retry when traffic is lower)."""
T = TypeVar("T")
TimeLeft = Callable[[], float]
"""Seconds until the caller's deadline (gRPC's ``context.time_remaining``)."""


WRITE_MARGIN = 1.0
"""A write must have this many times the recent average write time left to be worth starting: less
and it would likely commit after the deadline."""
WRITE_AVERAGING = 0.05
"""Weight of the newest write in the moving average of write times."""


def no_deadline() -> float:
    return math.inf


@dataclass(frozen=True)
class RewardResult:
    quote_id: str
    status: ReportStatus
    model_version: str

    @property
    def learned(self) -> bool:
        return self.status is ReportStatus.LEARNED


class PricingService:
    def __init__(
        self,
        pricer: Pricer,
        store: Store,
        metrics: Metrics,
        *,
        snapshot_every_updates: int = 1000,
        snapshot_interval_seconds: float = 60.0,
        learn_responses: bool = True,
        mode: str = ONLINE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.pricer, self.store, self.metrics, self.clock = pricer, store, metrics, clock
        self.mode = mode
        """``online``: the policy's prices; ``shadow``: the incumbent's (``learner.types.MODES``)."""
        self.learn_responses = learn_responses  # a closed quote advances its shopper's value state
        self.snapshot_every_updates = snapshot_every_updates
        self.snapshot_interval_seconds = snapshot_interval_seconds
        # The learner and _last_seq change together, under this lock, in the store's after-commit
        # steps: so no store write may wait while it is held (recover() reads before serving).
        self._learn_lock = threading.Lock()
        self._snapshot_lock = threading.Lock()  # one snapshot writer at a time
        self._ready = threading.Event()
        self._recovered = False
        self._last_seq = 0
        self._snapshot_seq = 0
        self._snapshot_time = 0.0
        self._has_snapshot = False
        self.stable = StableWindow(pricer.config.stable_price_seconds)
        self._write_seconds = 0.0  # moving average; races between threads only blur it

    # -- life cycle --------------------------------------------------------------------------
    def recover(self) -> int:
        """Load the latest snapshot and replay the decision log after it; returns entries replayed."""
        with self._learn_lock:
            stored = self.store.latest_snapshot()
            self._snapshot_time = self.clock()
            if stored is not None:
                self.pricer.restore(stored.blob)
                self._last_seq = self._snapshot_seq = stored.last_seq
                self._snapshot_time, self._has_snapshot = stored.created_at, True
                self.metrics.snapshot_timestamp.set(stored.created_at)
        replayed = self.follow_log()
        log.info("recovered model %s (%d log entries replayed after the snapshot)",
                 self.pricer.model_version, replayed)
        self._recovered = True
        self._ready.set()
        return replayed

    @property
    def last_applied(self) -> int:
        """The log entry the model includes everything up to."""
        return self._last_seq

    def follow_log(self) -> int:
        """Learn the log entries after the last one applied, in log order; returns how many were learned.

        Recovery's replay, and on a shared log (``store.shared_log``: replicas) how every outcome is
        learned, this replica's own and the others' alike: each entry once, since ``_last_seq`` only
        moves on. Pages are read outside the learn lock; an entry another thread applied meanwhile
        is skipped (the log's seqs are contiguous).
        """
        learned = 0
        while True:
            page = list(islice(self.store.entries_after(self._last_seq), FOLLOW_PAGE))
            if not page:
                return learned
            with self._learn_lock:
                for entry in page:
                    if entry.seq > self._last_seq:
                        learned += self._apply(entry)

    def _apply(self, entry: LogEntry | SwitchEntry) -> bool:
        """The one settlement rule, for live learning, replay and replicas alike: a log entry is
        learned if it was learned when logged and the running Pricer's grid can take it (a quote
        priced on another grid, before the rollout gate switched, may not); a switch entry changes
        the configuration here (``_switch``). The caller holds the learn lock; a log written under
        other settings raises SnapshotError (it stops a start).

        ``_last_seq`` moves on only once the entry is applied: a replica's reward thread that finds
        no entry after it (``follow_log``, outside the lock) must find its own already learned, not
        half-way on the follower thread (its answer said the model before it, once on CI)."""
        try:
            return self._settle(entry)
        finally:
            self._last_seq = entry.seq

    def _settle(self, entry: LogEntry | SwitchEntry) -> bool:
        if isinstance(entry, SwitchEntry):
            self._switch(entry)
            return False
        if not entry.learned:
            return False
        if not self.pricer.learnable(entry.decision):
            return False
        expected = self.pricer.features.names
        if entry.decision.feature_names != expected:
            raise SnapshotError(
                f"decision log entry {entry.seq} was written with {len(entry.decision.feature_names)} "
                f"features, this configuration has {len(expected)} (the value model or the context "
                "features changed): start with the settings that wrote it, or with a new --data-dir"
            )
        self.pricer.update(entry.decision, entry.reward)
        return True

    def _switch(self, entry: SwitchEntry) -> None:
        """Apply a configuration switch at its log position: the adopted mode and, when the learner
        changed, a Pricer of the adopted configuration holding the switch's snapshot (the successor
        that learned every outcome before it). The same on every replica, in replay and on the
        replica that asked, so all hold one model after it. The caller holds the learn lock."""
        adoption = Adoption.from_json(entry.switch.record)
        if entry.switch.snapshot is not None:
            successor = self.pricer.with_config(adoption.pricer)
            successor.restore(entry.switch.snapshot)
            self.pricer = successor
            self._snapshot_seq, self._snapshot_time, self._has_snapshot = entry.seq, entry.switch.at, True
        self.mode = adoption.mode
        log.info("configuration switch at log entry %d (asked by %s): now %s, mode %s, model %s", entry.seq,
                 adoption.requested_by, adoption.flags or "defaults", self.mode, self.pricer.model_version)

    def _learner(self, decision: Decision, kind: str, reward: float, learned: bool) -> AfterCommit | None:
        """The after-commit step of a new outcome entry (``_applier``)."""
        return self._applier(lambda seq: LogEntry(seq, decision, kind, reward, learned))

    def _applier(self, entry: Callable[[int], LogEntry | SwitchEntry]) -> AfterCommit | None:
        """The after-commit step of a new log entry: on a log of this process's own, the store runs
        it in log order and it applies the entry; a shared log has other writers, so it is learned by
        following it (``_follow_own``) instead, never here too."""
        if self.store.shared_log:
            return None

        def apply(seq: int) -> None:
            with self._learn_lock:
                self._apply(entry(seq))

        return apply

    def _follow_own(self) -> None:
        """On a shared log, learn up to the entry just written before answering, so the answer's
        model includes it (and every entry before it); a store failure here leaves that to the
        follower (the entry is durable)."""
        if self.store.shared_log:
            try:
                self.follow_log()
            except Unavailable as error:
                log.warning("the outcome was stored, but learning it waits for the log follower: %s", error)

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def stop_serving(self) -> None:
        self._ready.clear()

    def _require_ready(self) -> None:
        if not self._ready.is_set():
            raise Unavailable("the pricing service is loading its state or shutting down; retry shortly")

    # -- quotes ------------------------------------------------------------------------------
    def quote(self, requests: list[QuoteRequest], *, caller_ids: bool = True,
              time_left: TimeLeft = no_deadline, incumbent_field: str = "incumbent_price") -> list[Decision]:
        """Price each request; an id seen before returns its stored decision (idempotent retry).

        ``caller_ids=False`` says the ids were just generated here, so no lookup is needed; within the
        stable-price window such a request gets the user's open quote for the product back. In shadow
        mode every request must carry its incumbent price (else InvalidInput naming
        ``incumbent_field``, before anything is priced), which each answers; the stable window does
        not apply (the shop's rule sets the price shown).
        """
        self._require_ready()
        shadow = self.mode == SHADOW
        if shadow and any(request.incumbent_price is None for request in requests):
            raise InvalidInput(incumbent_field, "is required in shadow mode (--mode shadow): the shop's own "
                                                "price, which the quote answers")
        self._require_time(time_left, "pricing began")  # pricing may advance user states (recent_events)
        start = time.perf_counter()
        now = self.clock()
        answers: list[Decision | None] = []
        to_price: list[QuoteRequest] = []
        pins: list[Decision | None] = []
        for request in requests:
            existing = self.store.find_decision(request.quote_id) if caller_ids else None
            if existing is not None:
                answers.append(self._same_request(existing, request))
                continue
            open_quote, pin = (None, None) if shadow else self._stable(request, now, caller_ids)
            answers.append(open_quote)
            if open_quote is None:
                to_price.append(request)
                pins.append(pin)
        fresh = self.pricer.quote_many(to_price, now, stable_of=pins, follow=shadow) if to_price else []
        priced = iter(fresh)
        decisions = [answer if answer is not None else next(priced) for answer in answers]
        if fresh:
            self._require_time(time_left, "the quotes were stored")
            try:
                self._write(lambda: self.store.put_pending(fresh, remember_prices=self.stable.enabled),
                            "quote")
            except QuoteIdTaken:  # a concurrent retry with the same caller id won the race
                return [self._same_request(self._stored(r.quote_id), r) for r in requests]
        if fresh:
            self.metrics.record_quotes(fresh, (time.perf_counter() - start) / len(fresh))
        for decision, request in zip(fresh, to_price, strict=True):
            if decision.shadow:
                self.metrics.record_shadow_quote(decision, PriceBounds.of(request.product))
        return decisions

    def _stable(self, request: QuoteRequest, now: float, caller_ids: bool
                ) -> tuple[Decision | None, Decision | None]:
        """Within the stable window: the user's open quote for this product, to answer as it is when
        the caller chose no id (a caller's id names a quote of its own), else the earlier quote whose
        price a new one keeps; (None, None) outside it."""
        if self.stable.enabled:
            recent = self.store.recent_quote(request.user_id, request.product.product_id)
            if recent is not None and self.stable.holds(recent.decision, recent.priced_at, request, now):
                if recent.open and not caller_ids:
                    self.metrics.quotes_stable.labels("same_quote").inc()
                    return recent.decision, None
                return None, recent.decision
        return None, None

    def _stored(self, quote_id: str) -> Decision:
        found = self.store.find_decision(quote_id)
        if found is None:
            raise Unavailable(f"quote {quote_id!r} vanished while being stored; retry")
        return found

    @staticmethod
    def _same_request(existing: Decision, request: QuoteRequest) -> Decision:
        if existing.request_fingerprint != fingerprint(request):
            raise ConflictingReport(
                f"quote_id: {request.quote_id!r} was already used for a different request "
                "(user, product or context differ); use a new quote_id"
            )
        return existing

    # -- rewards -----------------------------------------------------------------------------
    def reward(self, quote_id: str, purchased: bool, time_left: TimeLeft = no_deadline) -> RewardResult:
        """Learn a reported outcome, or say why not (duplicate, late); raise on unknown/conflict."""
        self._require_ready()
        self._require_time(time_left, "the reward was read")
        reward = reward_of(purchased)
        now = self.clock()
        decision = self.store.pending(quote_id)
        status: ReportStatus | None = None
        try:
            if decision is not None and now < decision.expires_at:
                self._close(decision, "reward", reward, now)
                status = ReportStatus.LEARNED
            elif decision is not None:  # its window closed and the sweeper has not run yet
                self._close(decision, "expired", self.pricer.window.default_reward, now)
        except AlreadyClosed:  # closed meanwhile (a retry, the sweeper): settled as that says
            pass
        if status is None:
            status = self._repeat(quote_id, reward, now)
        version = self.pricer.model_version
        self.metrics.rewards.labels("purchased" if purchased else "not_purchased", status.value).inc()
        return RewardResult(quote_id, status, version)

    def _repeat(self, quote_id: str, reward: float, now: float) -> ReportStatus:
        settlement = self.store.settlement(quote_id)
        if settlement is None:
            raise UnknownQuote(quote_id)
        status = judge_repeat(settlement, reward, quote_id)
        if status is ReportStatus.LATE:
            decision = self._stored(quote_id)
            after_commit = self._learner(decision, "late", reward, False)
            self._write(lambda: self.store.append_log(decision, "late", reward, False, now,
                                                      after_commit=after_commit), "reward")
            self._follow_own()
        return status

    def _close(self, decision: Decision, kind: str, reward: float, now: float) -> None:
        """Commit the outcome to the log; the store then learns it (``after_commit``), in log order.

        With ``learn_responses`` the shopper's value-model state takes the outcome as an event in
        the same transaction (a guardrail-bound quote too: it was a real offer the shopper
        answered), so a crash leaves both or neither. Raises AlreadyClosed if the quote was closed by
        another thread first.
        """
        learned = self.pricer.learnable(decision)
        operation = "reward" if kind == "reward" else "expire"

        learn = self._learner(decision, kind, reward, learned)
        states = self.pricer.response_change(decision, reward, now) if self.learn_responses else None
        self._write(lambda: self.store.close_quote(decision, kind, reward, learned, now,
                                                   after_commit=learn, states=states), operation)
        self._follow_own()
        if learned:
            self.metrics.model_updates.inc()
            self.metrics.record_settled(reward > 0)
            if decision.shadow:
                self.metrics.shadow.add(decision, reward)
        if kind == "reward":
            self.metrics.reward_delay.observe(max(0.0, now - decision.created_at))
            if reward > 0:
                self.metrics.revenue.inc(decision.price)
                self.metrics.profit.inc(max(0.0, decision.margin))
        else:
            self.metrics.quotes_expired.inc()

    def _write(self, operation: Callable[[], T], name: str) -> T:
        start = time.perf_counter()
        try:
            return operation()
        except Unavailable:
            self.metrics.store_errors.labels(name).inc()
            raise
        finally:
            self._write_seconds += WRITE_AVERAGING * (time.perf_counter() - start - self._write_seconds)

    def _require_time(self, time_left: TimeLeft, work: str) -> None:
        """Refuse to start ``work`` for a caller whose deadline has passed, or will have by the time a
        write like the recent ones commits: no one would hear the answer."""
        if time_left() <= WRITE_MARGIN * self._write_seconds:
            raise DeadlinePassed(f"deadline: the caller's deadline passed before {work}, so that was not "
                                 "done")

    # -- behavior events ---------------------------------------------------------------------
    def observe(self, stream: Iterable[BehaviorEvent | InvalidInput],
                time_left: TimeLeft = no_deadline) -> Observation:
        """Apply a stream of events (or the reasons they could not be read) in batches.

        Each batch is committed before the next is read, so memory stays bounded however long the
        stream; if the store fails, the batches before stay applied and re-sending them is harmless.
        """
        self._require_ready()
        total = Observation()
        batch: list[tuple[int, BehaviorEvent | InvalidInput]] = []

        def apply() -> None:
            self._require_time(time_left, "the next events were applied")
            valid = [(index, item) for index, item in batch if isinstance(item, BehaviorEvent)]
            result = self._write(lambda: self.pricer.observe([event for _, event in valid], self.clock()),
                                 "observe")
            reasons = [(valid[i][0], reason) for i, reason in result.rejections]
            reasons += [(index, str(item)) for index, item in batch if isinstance(item, InvalidInput)]
            total.accepted += result.accepted
            for index, reason in sorted(reasons):
                total.reject(index, reason)
            total.rejected += result.rejected - len(result.rejections)  # beyond the kept reasons
            self.metrics.behavior_events.labels("accepted").inc(result.accepted)
            self.metrics.behavior_events.labels("rejected").inc(len(batch) - result.accepted)
            batch.clear()

        for index, item in enumerate(stream):
            batch.append((index, item))
            if len(batch) >= OBSERVE_BATCH:
                apply()
        if batch:
            apply()
        return total

    # -- the rollout gate ----------------------------------------------------------------------
    def switch(self, record: Adoption, successor: Pricer | None) -> int:
        """Switch to the configuration of ``record`` (``server/adoption.py``) by appending it to the
        log, where every replica, a replay and this process apply it at one position (``_switch``);
        returns once this process has applied it, with its log position.

        ``successor`` (fresh, of the adopted configuration; None when only the mode changes) learns
        every learned outcome of the log its grid can take, as a restart with that configuration
        would; its snapshot goes into the switch, which must follow the last entry it learned: when
        other entries came first, it learns those too and tries again. A failure, or another switch
        landing meanwhile, leaves everything as it was (nothing is appended).
        """
        begun = self._last_seq
        with self._snapshot_lock:  # no snapshot of the old Pricer may follow the switch's own
            upto = self._teach(successor, 0, begun) if successor is not None else self.store.last_seq()
            for _ in range(SWITCH_ATTEMPTS):
                learner = (successor or self.pricer).config.decision_config()
                switch = Switch(record.to_json(), successor.snapshot() if successor is not None else None,
                                learner, self.clock())
                try:
                    seq = self._append_switch(switch, upto)
                except LogMoved as moved:
                    upto = self._teach(successor, upto, begun) if successor is not None else moved.found
                    continue
                self._follow_own()
                break
            else:
                raise Unavailable(f"the outcome log grew faster than the switch could follow it "
                                  f"({SWITCH_ATTEMPTS} attempts); retry when traffic is lower")
        if switch.snapshot is not None:
            self.metrics.snapshots.inc()
            self.metrics.snapshot_timestamp.set(switch.at)
        return seq

    def _append_switch(self, switch: Switch, after: int) -> int:
        """Append ``switch`` after entry ``after``; on a log of this process's own it is applied in
        the store's after-commit step, as an outcome is."""
        apply = self._applier(lambda seq: SwitchEntry(seq, switch))
        return self._write(lambda: self.store.append_switch(switch, after, after_commit=apply), "snapshot")

    def _teach(self, successor: Pricer, after: int, begun: int) -> int:
        """Teach ``successor`` the learned outcomes after entry ``after`` that its grid can take, in
        log order; returns the last entry read. NotNow when a switch after ``begun`` is among them
        (another switch landed while this one was prepared: evaluate the candidate again)."""
        for entry in self.store.entries_after(after):
            if isinstance(entry, SwitchEntry):
                if entry.seq > begun:
                    raise NotNow(f"another configuration switch landed (log entry {entry.seq}) while this "
                                 "one was prepared; evaluate the candidate again")
            elif entry.learned and successor.learnable(entry.decision):
                successor.update(entry.decision, entry.reward)
            after = entry.seq
        return after

    def go_online(self, record: Adoption) -> int:
        """End shadow mode on every replica: the policy's prices from the switch's log position on."""
        if self.mode != SHADOW:
            raise NotNow(f"mode: the server is already {self.mode}; only a shadow server switches online")
        return self.switch(record, None)

    # -- housekeeping ------------------------------------------------------------------------
    def expire_due(self) -> int:
        """Learn every quote whose window has closed as no purchase; returns how many."""
        if not self._recovered:
            return 0
        expired = 0
        while True:
            now = self.clock()
            due = self.store.due(now, EXPIRY_BATCH)
            for decision in due:
                try:
                    self._close(decision, "expired", self.pricer.window.default_reward, now)
                except AlreadyClosed:  # a reward closed it first
                    continue
                expired += 1
            if len(due) < EXPIRY_BATCH:
                return expired

    def forget_stable_prices(self) -> int:
        """Drop remembered prices whose stable window has passed; returns how many."""
        if not self.stable.enabled:
            return 0
        before = self.clock() - self.stable.seconds
        return self._write(lambda: self.store.forget_recent_quotes(before), "quote")

    def snapshot_if_due(self, force: bool = False) -> bool:
        """Write a snapshot when enough updates or time have passed since the last (or if forced)."""
        if not self._recovered:  # never overwrite saved state with a model that did not load
            return False
        with self._snapshot_lock:
            with self._learn_lock:  # the model and the last entry it includes, as one pair
                now = self.clock()
                new_entries = self._last_seq - self._snapshot_seq
                if not force and not (
                    new_entries >= self.snapshot_every_updates
                    or (new_entries > 0 and now - self._snapshot_time >= self.snapshot_interval_seconds)
                ):
                    return False
                if force and new_entries == 0 and self._has_snapshot:
                    return False
                blob = self.pricer.snapshot()
                last_seq = self._last_seq
            # Written outside the learn lock: the store may run other writes' learning meanwhile.
            if not self._write(lambda: self.store.save_snapshot(blob, last_seq, now), "snapshot"):
                return False  # a replica that has not reached a switch another one logged yet
            self._snapshot_seq, self._snapshot_time, self._has_snapshot = last_seq, now, True
        self.metrics.snapshots.inc()
        self.metrics.snapshot_timestamp.set(now)
        return True
