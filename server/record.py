"""The stored form of a ``Decision``: a compact binary record that reads back an equal Decision.

Both stores keep every pending quote and every log entry in this form (issues 12 and 16): it is
written on every quote and read on every reward, on recovery and replay, by a replica following the
shared log and by the exports. JSON of ``Decision.to_dict()`` cost 35-45 µs to write and 40-50 µs
to read for 2.3 kB a quote at dim 16, with the feature names repeated in every row and every number
spelled out in decimal (``python -m bench.records`` measures both).

Layout, little-endian (version 1):

- ``B`` the version, then ``I`` a CRC-32 of everything after it (a damaged number is refused, not
  read as another number);
- the header: the 16-byte digest of the feature layout, 6 flags (``?``: the 4 booleans, whether each
  of the 2 optional numbers is set), the 3 integers (``q``), and the 5 counts (``I``: features,
  arms, ignored names, input effects, protected inputs);
- one block whose shape the counts give: every float (``d``: the 17 scalars, the features, the input
  effects' and protected inputs' values, the arms' 5 float columns), the arms' numbers (``i``) and
  allowed flags (``?``), and the length in characters of each string (``I``);
- the strings (the 12 text fields, then the ignored names, the effects' and protected inputs'
  names), UTF-8, back to back.

The feature names are not in the record: a layout is stored once per store (``load``/``save``, the
store's own table or hash) under a digest of its names, and the record carries the digest. A
content digest needs no coordination: every process and replica computes the same one for the same
names, so no id is allocated in a transaction or raced for, and a record means the same in any
store that holds its layout. A layout is saved before the first record naming it is written, so no
stored record names a layout its store lacks; each store caches both directions, so a quote pays a
dict lookup for it.

A record is only ever parsed, never evaluated (no pickle, no marshal): garbage raises ValueError,
which the stores turn into ``StoreCorrupt`` naming the row. Rows written before this format hold
the JSON text of ``Decision.to_dict()`` (a first byte of ``{``, never a version); they are read as
they are.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import fields
from functools import lru_cache
from itertools import accumulate
from operator import attrgetter, itemgetter
from struct import Struct
from struct import error as StructError
from typing import TypeVar

from learner import Decision, StoreCorrupt
from learner.types import ArmView, arm_view

VERSION = 1
T = TypeVar("T")
_TEXTS = ("quote_id", "user_id", "product_id", "category", "currency", "policy", "model_version",
          "value_source", "request_fingerprint", "value_model_version", "stable_of", "mode")
_NUMBERS = ("unit_cost", "list_price", "alpha", "price", "user_value", "propensity", "created_at",
            "expires_at", "reference_price", "sell_by", "salvage", "opportunity_cost", "proposed_price",
            "proposed_propensity", "incumbent_estimate")
_OPTIONAL = ("spread_limit", "sell_through_target")
"""Numbers that may be None: 0.0 in the block, and a flag saying whether they are set."""
_FLAGS = ("explored", "deterministic", "guardrail_bound", "spread_bound")
_INTEGERS = ("arm", "proposed_arm", "stock_units")
_COLLECTIONS = ("features", "feature_names", "arms", "input_effects", "protected_context", "ignored_context")
_SOURCES = _TEXTS + _NUMBERS + _OPTIONAL + _FLAGS + _INTEGERS + _COLLECTIONS
_AS_FIELDS = itemgetter(*(_SOURCES.index(spec.name) for spec in fields(Decision)))
"""Decision's fields in its own order, from values in ``_SOURCES`` order (a field missing from
``_SOURCES`` fails here, at import: no field can be left out of the record silently)."""
_texts, _numbers, _optional, _flags, _integers = (
    attrgetter(*names) for names in (_TEXTS, _NUMBERS, _OPTIONAL, _FLAGS, _INTEGERS))
_SCALARS = len(_NUMBERS) + len(_OPTIONAL)
_ARM_FLOATS = 5  # alpha, price, purchase_probability, expected_profit, probability

DIGEST_BYTES = 16
_START = Struct("<BI")  # version, CRC-32 of the rest
_HEAD = Struct(f"<{DIGEST_BYTES}s{len(_FLAGS) + len(_OPTIONAL)}?{len(_INTEGERS)}q5I")  # 5 counts


@lru_cache(maxsize=64)
def _block(floats: int, arms: int, strings: int) -> Struct:
    """The block of a record with these counts (compiled once per shape: a deployment has few)."""
    return Struct(f"<{floats}d{arms}i{arms}?{strings}I")


def _cut(items: Sequence[T], *sizes: int) -> list[Sequence[T]]:
    """Consecutive slices of ``items`` of these sizes, then the rest."""
    parts, at = [], 0
    for size in sizes:
        parts.append(items[at:at + size])
        at += size
    parts.append(items[at:])
    return parts


def layout_digest(names: Sequence[str]) -> bytes:
    """The digest a record names its feature layout by: the same for the same names everywhere."""
    return hashlib.blake2b(_layout_text(names).encode(), digest_size=DIGEST_BYTES).digest()


def _layout_text(names: Sequence[str]) -> str:
    return json.dumps(list(names))


class RecordCodec:
    """Decisions to records and back, for one store: ``load(digest)`` reads a layout's stored text
    (None: not there), ``save({digest: text})`` stores layouts durably before any record naming them
    is written; ``damaged`` is what the store's ``StoreCorrupt`` tells the operator (``stored``)."""

    def __init__(self, load: Callable[[bytes], str | None],
                 save: Callable[[Mapping[bytes, str]], None], *,
                 damaged: str = "the store is damaged") -> None:
        self._load = load
        self._save = save
        self._damaged = damaged
        self._digests: dict[tuple[str, ...], bytes] = {}
        self._names: dict[bytes, tuple[str, ...]] = {}  # layouts this store is known to hold

    def encode(self, decisions: Sequence[Decision]) -> list[bytes]:
        """The records of ``decisions``, once any layout among them the store may lack is saved."""
        digests = [self._digests.get(d.feature_names) or self._digest(d.feature_names) for d in decisions]
        new = {digest: d.feature_names for digest, d in zip(digests, decisions, strict=True)
               if digest not in self._names}
        if new:
            self._save({digest: _layout_text(names) for digest, names in new.items()})
            self._names.update(new)
        return [_record(d, digest) for d, digest in zip(decisions, digests, strict=True)]

    def _digest(self, names: tuple[str, ...]) -> bytes:
        digest = self._digests[names] = layout_digest(names)
        return digest

    def decode(self, data: bytes) -> Decision:
        """The Decision a row holds (a record, or JSON from before records); ValueError if unreadable."""
        try:
            if data[:1] == b"{":
                return Decision.from_dict(json.loads(data))
            return self._from_record(data)
        except (StructError, TypeError, KeyError) as error:
            raise ValueError(f"not a stored decision ({error!r})") from None

    def stored(self, data: bytes, where: str) -> Decision:
        """``decode`` for a store: StoreCorrupt naming the row (``where``) if it is unreadable."""
        try:
            return self.decode(data)
        except ValueError as exc:
            raise StoreCorrupt(f"{where} is unreadable ({exc}): {self._damaged}") from None

    def _from_record(self, data: bytes) -> Decision:
        version, checksum = _START.unpack_from(data)
        if version != VERSION:
            raise ValueError(f"record version {version}: this build reads version {VERSION} (and JSON)")
        if zlib.crc32(memoryview(data)[_START.size:]) != checksum:
            raise ValueError("the record's checksum does not match its bytes")
        digest, *flags, arm, proposed_arm, stock_units, n_features, n_arms, n_ignored, n_effects, \
            n_protected = _HEAD.unpack_from(data, _START.size)
        n_floats = _SCALARS + n_features + n_effects + n_protected + _ARM_FLOATS * n_arms
        block = _block(n_floats, n_arms, len(_TEXTS) + n_ignored + n_effects + n_protected)
        values = block.unpack_from(data, _START.size + _HEAD.size)
        text = data[_START.size + _HEAD.size + block.size:].decode("utf-8", "surrogatepass")
        floats, arm_numbers, allowed, lengths = _cut(values, n_floats, n_arms, n_arms)
        ends = list(accumulate(lengths))
        if ends[-1] != len(text):
            raise ValueError(f"the record's strings are {len(text)} characters, its lengths say {ends[-1]}")
        strings = [text[start:end] for start, end in zip([0, *ends], ends, strict=False)]
        texts, ignored, effect_names, protected_names = _cut(strings, len(_TEXTS), n_ignored, n_effects)
        numbers, optional, features, effects, protected, *columns = _cut(
            floats, len(_NUMBERS), len(_OPTIONAL), n_features, n_effects, n_protected,
            *[n_arms] * (_ARM_FLOATS - 1))
        alpha, price, purchase_probability, expected_profit, probability = columns
        booleans, is_set = flags[:len(_FLAGS)], flags[len(_FLAGS):]
        optional = [value if present else None for value, present in zip(optional, is_set, strict=True)]
        return Decision(*_AS_FIELDS([
            *texts, *numbers, *optional, *booleans, arm, proposed_arm, stock_units,
            features, self._layout(digest),
            tuple(map(arm_view, zip(arm_numbers, alpha, price, allowed, purchase_probability,
                                     expected_profit, probability, strict=True))),
            tuple(zip(effect_names, effects, strict=True)),
            dict(zip(protected_names, protected, strict=True)), tuple(ignored)]))

    def _layout(self, digest: bytes) -> tuple[str, ...]:
        names = self._names.get(digest)
        if names is not None:
            return names
        text = self._load(digest)
        if text is None:
            raise ValueError(f"the record names feature layout {digest.hex()}, which the store does not hold")
        names = tuple(json.loads(text))
        if layout_digest(names) != digest:
            raise ValueError(f"the stored feature layout {digest.hex()} does not match its digest")
        self._names[digest], self._digests[names] = names, digest
        return names


def _record(d: Decision, digest: bytes) -> bytes:
    optional = _optional(d)
    texts = [*_texts(d), *d.ignored_context, *(name for name, _ in d.input_effects), *d.protected_context]
    columns = tuple(zip(*d.arms, strict=True)) or ((),) * len(ArmView._fields)
    floats = [*_numbers(d), *(0.0 if value is None else value for value in optional), *d.features,
              *(effect for _, effect in d.input_effects), *d.protected_context.values(),
              *columns[1], *columns[2], *columns[4], *columns[5], *columns[6]]
    rest = (_HEAD.pack(digest, *_flags(d), *(value is not None for value in optional), *_integers(d),
                       len(d.features), len(d.arms), len(d.ignored_context), len(d.input_effects),
                       len(d.protected_context))
            + _block(len(floats), len(d.arms), len(texts)).pack(*floats, *columns[0], *columns[3],
                                                                 *map(len, texts))
            + "".join(texts).encode("utf-8", "surrogatepass"))
    return _START.pack(VERSION, zlib.crc32(rest)) + rest
