"""The stored decision record (``server/record.py``): exact both ways, every field, its layouts
stored once, and bytes that are not a record refused as ValueError (never a crash, never run)."""

from __future__ import annotations

import json
import math
import random
import struct
import zlib
from dataclasses import fields, replace

import pytest

from builders import request
from learner import Decision, Pricer, Product
from learner.inventory import Stock
from learner.types import ArmView
from server.record import VERSION, RecordCodec, layout_digest


def codec(layouts: dict[bytes, str]) -> RecordCodec:
    """A codec whose store is ``layouts`` (another codec on the same dict: another process)."""
    return RecordCodec(layouts.get, layouts.update)


def quoted(**fields: object) -> Decision:
    return Pricer().quote(request("q-1", **fields), now=1_700_000_000.25)  # type: ignore[arg-type]


def decisions() -> list[Decision]:
    """Decisions that between them set every field to something other than its default."""
    stocked = Product("sku-2", unit_cost=40.0, list_price=100.0, category="shoes",
                      stock=Stock(units=12, sell_by=1_700_086_400.0, salvage=5.5))
    shadow = Pricer().quote(replace(request("q-shadow"), incumbent_price=87.5), now=3.0, follow=True)
    plain = quoted(is_mobile=1.0, hour_sin=-0.0, session_depth=1e-300)
    return [
        plain,
        shadow,
        Pricer().quote(request("q-stock", product=stocked), now=5.0),
        Pricer().quote(replace(request("q-spread"), spread_limit=0.05), now=7.0),
        replace(plain, quote_id="q-odd\x00\u00e9\U0001f600\ud800", user_id="", category="",
                stable_of="q-0", protected_context={"context.age": 41.0, "context.\u00e9": -0.0},
                ignored_context=("context.colour", ""), input_effects=(("context.x", math.inf), ("", -1.5)),
                sell_through_target=0.75, spread_limit=0.1, spread_bound=True, guardrail_bound=True,
                explored=True, deterministic=True, stock_units=2**40, proposed_arm=-1,
                value_model_version="v7", incumbent_estimate=0.1 + 0.2, alpha=5e-324,
                opportunity_cost=-12.25),
        replace(plain, features=(), feature_names=(), arms=(), input_effects=()),
    ]


def bits(value: object) -> object:
    """``value`` with every float as its 8 bytes (so -0.0, NaN and rounding all count) and its type."""
    if isinstance(value, float):
        return struct.pack("<d", value)
    if isinstance(value, (tuple, list)):
        return type(value), [bits(item) for item in value]
    if isinstance(value, dict):
        return {key: bits(item) for key, item in value.items()}
    return type(value), value


def test_a_record_reads_back_the_same_decision_bit_for_bit() -> None:
    originals = decisions()
    unset = {spec.name for spec in fields(Decision) if all(getattr(d, spec.name) == spec.default
                                                           for d in originals)}
    assert not unset, f"{unset} keep their defaults in every test decision"
    layouts: dict[bytes, str] = {}
    records = codec(layouts).encode(originals)
    for original, record in zip(originals, records, strict=True):
        back = codec(layouts).decode(record)
        assert back == original
        for spec in fields(Decision):
            assert bits(getattr(back, spec.name)) == bits(getattr(original, spec.name)), spec.name
        assert all(type(view) is ArmView for view in back.arms)


def test_a_nan_survives_with_its_bits() -> None:
    nan = struct.unpack("<d", b"\x01\x00\x00\x00\x00\x00\xf8\x7f")[0]  # a NaN with a payload
    original = replace(quoted(), features=(nan, *quoted().features[1:]), sell_through_target=-nan)
    layouts: dict[bytes, str] = {}
    back = codec(layouts).decode(codec(layouts).encode([original])[0])
    assert bits(back.features) == bits(original.features)
    assert bits(back.sell_through_target) == bits(original.sell_through_target)


def test_the_feature_names_are_stored_once_per_layout_not_in_records() -> None:
    base = quoted()
    other = replace(base, feature_names=tuple(name.upper() for name in base.feature_names))
    saved: list[dict[bytes, str]] = []
    layouts: dict[bytes, str] = {}
    writer = RecordCodec(layouts.get, lambda new: (saved.append(dict(new)), layouts.update(new)))
    records = writer.encode([base, other, base]) + writer.encode([other, base])
    assert saved == [{layout_digest(base.feature_names): json.dumps(list(base.feature_names)),
                      layout_digest(other.feature_names): json.dumps(list(other.feature_names))}]
    assert all(name.encode() not in record for record in records for name in base.feature_names[1:])
    loads: list[bytes] = []

    def load(digest: bytes) -> str | None:
        loads.append(digest)
        return layouts.get(digest)

    reader = RecordCodec(load, layouts.update)  # another process: its cache starts empty
    assert [reader.decode(record) for record in records] == [base, other, base, other, base]
    assert sorted(loads) == sorted(layouts)  # each layout read once
    assert len(records[0]) < len(json.dumps(base.to_dict())) / 1.8


def test_rows_written_as_json_before_records_still_read() -> None:
    original = decisions()[4]
    assert codec({}).decode(json.dumps(original.to_dict()).encode()) == original


def test_a_layout_whose_names_do_not_match_its_digest_is_refused() -> None:
    layouts: dict[bytes, str] = {}
    record = codec(layouts).encode([quoted()])[0]
    layouts[next(iter(layouts))] = json.dumps(["bias", "context.forged"])
    with pytest.raises(ValueError, match="does not match its digest"):
        codec(layouts).decode(record)
    with pytest.raises(ValueError, match="which the store does not hold"):
        codec({}).decode(record)


def damaged(record: bytes) -> list[bytes]:
    """Every prefix, every byte flipped, a newer version, and random bytes."""
    rng = random.Random(7)
    flipped = [record[:i] + bytes([record[i] ^ (1 << rng.randrange(8))]) + record[i + 1:]
               for i in range(len(record))]
    return ([record[:n] for n in range(len(record))] + flipped + [bytes([VERSION + 1]) + record[1:]]
            + [rng.randbytes(rng.randrange(1, 3000)) for _ in range(200)]
            + [b"{not json", b'{"quote_id": "q"}', b"[1, 2]", b'{"\xff": 1}'])


def test_bytes_that_are_not_a_record_are_a_value_error() -> None:
    layouts: dict[bytes, str] = {}
    records = codec(layouts).encode(decisions())
    for record in records:
        for garbage in damaged(record):
            with pytest.raises(ValueError):
                codec(layouts).decode(garbage)


def test_counts_that_lie_are_refused_even_under_a_good_checksum() -> None:
    """A record written wrongly (not damaged after): its counts disagree with its bytes."""
    layouts: dict[bytes, str] = {}
    record = codec(layouts).encode([quoted()])[0]
    counts_at = 5 + 16 + 6 + 3 * 8  # version and checksum, digest, flags, integers
    for count in range(5):
        at = counts_at + 4 * count
        for value in (0, 1 + struct.unpack_from("<I", record, at)[0], 2**32 - 1):
            rest = record[5:at] + struct.pack("<I", value) + record[at + 4:]
            forged = struct.pack("<BI", VERSION, zlib.crc32(rest)) + rest
            if forged != record:
                with pytest.raises(ValueError):
                    codec(layouts).decode(forged)
