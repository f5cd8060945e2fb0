"""Every random stream of the simulator, in one table: a run's seed and a stream give its generator.

A stream draws from ``SeedSequence(seed, spawn_key=(stream, *key))``. Numpy pads a seed's 32-bit
words to four and appends the spawn key, so with seeds below 2**128 and a fixed number of key words
per stream, two different (seed, stream, key) never feed numpy the same words: no two streams can
share numbers, whatever the seeds. (Hand-picked ``SeedSequence([seed, k])`` ids could: ``[5, 1]`` is
seed ``5 + 2**32``, and a seed of ``5 + 7 * 2**128`` spelled seed 5's history key.)
"""

from __future__ import annotations

from enum import IntEnum, unique

import numpy as np

MAX_SEED = 2**128 - 1
MAX_KEY = 2**32 - 1


@unique
class RandomStream(IntEnum):
    """Which draws a generator is for. The market's three keep the ids ``SeedSequence(seed).spawn``
    gave them, and ``HISTORY`` its 7, so markets and histories draw what they drew before."""

    CATALOG = 0
    """The market's products."""
    TRAITS = 1
    """The shoppers' hidden traits."""
    ROUNDS = 2
    """Who shops when, in what context, and the uniforms that decide their purchases."""
    WAVE = 3
    """A scenario's wave of new shoppers, and which of them shop."""
    FEEDBACK = 4
    """When a learner's outcomes are reported (the scenario's delays and misses)."""
    RANDOM = 5
    """The uniformly random contender's arms."""
    VW = 6
    """Vowpal Wabbit's draws from the distribution it explores with."""
    HISTORY = 7
    """One shopper's behavior before the run; keyed by the user index."""
    LIVE = 8
    """Live mode's report delays and purchases."""


KEY_WORDS = {RandomStream.HISTORY: 1}
"""Streams keyed by more than the seed, and by how many numbers; the others take none."""


def generator(seed: int, stream: RandomStream, *key: int) -> np.random.Generator:
    """The generator of ``stream`` for the run seeded ``seed`` (and ``key``, where the stream has one)."""
    if not 0 <= seed <= MAX_SEED:
        raise ValueError(f"seed {seed} must be between 0 and 2**128 - 1")
    if len(key) != KEY_WORDS.get(stream, 0) or not all(0 <= k <= MAX_KEY for k in key):
        raise ValueError(f"{stream.name} takes {KEY_WORDS.get(stream, 0)} key numbers in "
                         f"[0, 2**32), got {key}")
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(int(stream), *key)))
