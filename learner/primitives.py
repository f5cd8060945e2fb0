"""Building blocks that the learner's types, its features and the value model's events all use.

They import nothing of the learner but its errors, so every module above can import them and the
imports form no cycle: ``primitives`` ← ``value.events`` ← ``types`` ← ``arms``, ``features``.
"""

from __future__ import annotations

import math
import zlib

import numpy as np

from learner.errors import InvalidInput

MAX_MONEY = 1e12
"""Largest price or cost accepted; far above any real product, far below float overflow."""

MAX_LOG_RATIO = 3.0
"""log(price / list price) is clipped to +-3 (a twentieth to twenty times the list price)."""


def check_money(field_name: str, value: float, *, allow_zero: bool = True) -> float:
    """Return ``value`` as float if it is a finite amount of money, else raise InvalidInput."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise InvalidInput(field_name, f"expected a number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise InvalidInput(field_name, f"{value} is not a finite amount")
    if value < 0 or (value == 0 and not allow_zero):
        raise InvalidInput(field_name, f"{value} must be {'>=' if allow_zero else '>'} 0")
    if value > MAX_MONEY:
        raise InvalidInput(field_name, f"{value} is above the largest accepted amount {MAX_MONEY:g}")
    return value


def category_bucket(category: str, buckets: int) -> int:
    """CRC-32 of the category (stable across processes, unlike ``hash``) folded into ``buckets``."""
    return zlib.crc32((category or "uncategorized").encode()) % buckets


def log_price_ratio(price: float | np.ndarray, list_price: float | np.ndarray) -> np.ndarray:
    """``log(price / list_price)``, clipped to +-MAX_LOG_RATIO: where a price sits against the list
    price, the scale-free price that demand models read (0 for a free product listed at 0)."""
    ratio = np.log(np.maximum(price, 1e-300)) - np.log(np.maximum(list_price, 1e-300))
    return np.minimum(np.maximum(ratio, -MAX_LOG_RATIO), MAX_LOG_RATIO)
