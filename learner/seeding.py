"""Per-decision random generators, seeded from the service seed and the quote id.

A logged decision can then be recomputed exactly from the snapshot that made it: the same quote id
draws the same numbers in any process, on any machine.
"""

from __future__ import annotations

import hashlib

import numpy as np


def decision_rng(seed: int, quote_id: str) -> np.random.Generator:
    digest = hashlib.blake2b(f"{seed}\x00{quote_id}".encode(), digest_size=16).digest()
    return np.random.default_rng(int.from_bytes(digest, "big"))
