"""Reward bookkeeping: the wait window, the default reward, and how repeated reports are judged.

A quote waits ``seconds`` for its outcome. When the window closes unreported it is learned with
``default_reward`` (no purchase). Reports for a quote that is no longer pending are judged here:
an identical retry is a DUPLICATE (never learned twice), a contradiction is a ConflictingReport, and
the first report after expiry is LATE (recorded, not learned).
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

from learner.errors import ConflictingReport, InvalidInput

PURCHASE = 1.0
NO_PURCHASE = 0.0


class ReportStatus(enum.Enum):
    LEARNED = "learned"
    DUPLICATE = "duplicate"
    LATE = "late"


def reward_of(purchased: bool) -> float:
    return PURCHASE if purchased else NO_PURCHASE


@dataclass(frozen=True)
class RewardWindow:
    seconds: float = 600.0
    default_reward: float = NO_PURCHASE

    def __post_init__(self) -> None:
        if not (math.isfinite(self.seconds) and self.seconds > 0):
            raise InvalidInput("reward_window_seconds", f"must be finite and > 0, got {self.seconds}")

    def expires_at(self, created_at: float) -> float:
        return created_at + self.seconds


@dataclass(frozen=True)
class Settlement:
    """How a closed quote was settled: by a report, or by expiry (plus any late report after it)."""

    reward: float
    reported: bool
    late_reward: float | None = None


def judge_repeat(settlement: Settlement, reward: float, quote_id: str) -> ReportStatus:
    """The status of a report for an already settled quote; raises on a contradiction."""
    if settlement.reported:
        if reward == settlement.reward:
            return ReportStatus.DUPLICATE
        raise ConflictingReport(
            f"quote_id: quote {quote_id!r} was already reported as "
            f"{'purchased' if settlement.reward else 'not purchased'}; a contradicting report is refused"
        )
    if settlement.late_reward is None:
        return ReportStatus.LATE
    if reward == settlement.late_reward:
        return ReportStatus.DUPLICATE
    raise ConflictingReport(
        f"quote_id: quote {quote_id!r} already has a late report of "
        f"{'purchased' if settlement.late_reward else 'not purchased'}; a contradicting report is refused"
    )
