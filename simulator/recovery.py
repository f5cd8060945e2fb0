"""Recovery from an abrupt change: how many rounds a contender needs to earn again what a fixed price would.

After a change at round ``R`` (``Scenario.change_round``), the reference is the best fixed price of the
changed market: the grid arm with the most expected profit over rounds ``R`` to the end, chosen in
hindsight. A contender has recovered at the end of the first trailing window of ``WINDOW`` rounds,
lying wholly after the change, in which its expected profit as a share of the oracle's is within
``TOLERANCE`` (2 points) of the reference's in the same window, or above it. Both sides are exact
per-round expected profits (each quote's purchase probability times its margin), summed over the same
shoppers, so the comparison carries no sales noise. The count includes the window itself: a contender
that never fell behind recovers in ``WINDOW`` rounds, the fewest there can be.
"""

from __future__ import annotations

import numpy as np

WINDOW = 1000
"""Rounds in the trailing window."""
TOLERANCE = 0.02
"""How far below the reference's share of the oracle still counts as recovered (2 points)."""


def trailing_sums(values: np.ndarray, window: int) -> np.ndarray:
    """Sums of every ``window`` consecutive values: element ``i`` covers ``values[i : i + window]``."""
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    cumulative = np.concatenate([[0.0], np.cumsum(np.asarray(values, dtype=float))])
    return cumulative[window:] - cumulative[:-window]


def recovery_rounds(profit: np.ndarray, reference: np.ndarray, oracle: np.ndarray, *,
                    window: int = WINDOW, tolerance: float = TOLERANCE) -> int | None:
    """Rounds from the change until ``profit`` is back within ``tolerance`` of ``reference``.

    The three arrays hold expected profits per round from the change on (round 0 is the first round of
    the changed market): the contender's, the reference's and the oracle's. Returns the number of
    rounds from the change to the end of the first window that qualifies (at least ``window``), or
    None if none does before the arrays end.
    """
    profit, reference, oracle = (np.asarray(a, dtype=float) for a in (profit, reference, oracle))
    if not profit.shape == reference.shape == oracle.shape:
        raise ValueError(f"arrays differ in shape: {profit.shape}, {reference.shape}, {oracle.shape}")
    if profit.size < window:
        return None
    gap = trailing_sums(profit, window) - trailing_sums(reference, window)
    # share - reference share >= -tolerance, multiplied through by the window's oracle profit (> 0)
    recovered = np.flatnonzero(gap >= -tolerance * trailing_sums(oracle, window))
    return int(recovered[0]) + window if recovered.size else None


def format_rounds(rounds: int | None) -> str:
    """``1,250`` or ``never``."""
    return "never" if rounds is None else f"{rounds:,}"
