"""The response's per-arm explanation written as protobuf wire bytes, not as messages.

Every quote explains all its arms (11 ``ArmEstimate`` messages with the default grid): built as
Python messages they cost more than the rest of the response together, a listing page 550 of them.
An ``ArmEstimate`` has only fixed-size fields, so each is one ``struct`` pack, and the quote's are
merged into its ``Explanation`` with one ``MergeFromString`` (a repeated field's entries append, in
order). What the message then holds, and serializes to, is what the field-by-field constructor makes:
upb re-encodes it canonically (a 0 or False is left out again).

The layout is read from ``pricing.proto``'s descriptor at import and checked against what this
module encodes, so a change of ``ArmEstimate`` fails here, not on the wire.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from struct import Struct

from google.protobuf.descriptor import FieldDescriptor

from learner.types import ArmView
from pricing.v1 import pricing_pb2

_VARINT, _FIXED64, _LENGTH_DELIMITED = 0, 1, 2
_WIRE_TYPES = {FieldDescriptor.TYPE_UINT32: _VARINT, FieldDescriptor.TYPE_BOOL: _VARINT,
               FieldDescriptor.TYPE_DOUBLE: _FIXED64}
_ARM_TYPES = (FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_DOUBLE,
              FieldDescriptor.TYPE_BOOL, FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_DOUBLE,
              FieldDescriptor.TYPE_DOUBLE)
"""The types this module encodes, for ``ArmView``'s fields in its order: the arm (a varint, its own
prefix), then the rest (``_PACKED``)."""


def varint(value: int) -> bytes:
    """``value`` (>= 0) as a protobuf varint: 7 bits a byte, low first, the high bit saying more follow."""
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _tag(field: FieldDescriptor) -> int:
    return field.number << 3 | _WIRE_TYPES[field.type]


def _arm_fields() -> list[FieldDescriptor]:
    fields = pricing_pb2.ArmEstimate.DESCRIPTOR.fields_by_name
    found = [fields.get(name) for name in ArmView._fields]
    if ([f.type if f else None for f in found] != list(_ARM_TYPES) or len(fields) != len(_ARM_TYPES)
            or any(f.number >= 16 for f in found if f)):  # a tag of one byte
        raise ImportError("pricing.v1.ArmEstimate no longer has ArmView's fields with the types "
                          "server/wire.py encodes: update it with the .proto")
    return [f for f in found if f is not None]


_ARM, *_REST = _arm_fields()
_ARMS_TAG = bytes(varint(pricing_pb2.Explanation.DESCRIPTOR.fields_by_name["arms"].number << 3
                         | _LENGTH_DELIMITED))
_PACKED = Struct("<BdBdB?BdBdBd")
"""Each field after the arm number: its tag (one byte: field numbers below 16), then its value."""
_ALPHA, _PRICE, _ALLOWED, _PURCHASE, _PROFIT, _PROBABILITY = (_tag(f) for f in _REST)


@lru_cache(maxsize=1024)
def _prefix(arm: int) -> bytes:
    """What precedes an arm's packed fields: the ``arms`` entry's tag and length, the arm number's field."""
    number = bytes([_tag(_ARM)]) + varint(arm)
    return _ARMS_TAG + varint(len(number) + _PACKED.size) + number


def arm_estimates(arms: Sequence[ArmView]) -> bytes:
    """``Explanation.arms`` for these views, as the bytes to merge into an ``Explanation``."""
    pack, prefix = _PACKED.pack, _prefix
    return b"".join([prefix(arm) + pack(_ALPHA, alpha, _PRICE, price, _ALLOWED, allowed, _PURCHASE, purchase,
                                        _PROFIT, profit, _PROBABILITY, probability)
                     for arm, alpha, price, allowed, purchase, profit, probability in arms])
