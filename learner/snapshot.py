"""Learner snapshots as bytes: a versioned JSON header plus numpy arrays, checksummed, no pickle.

Layout: ``MAGIC``, a 4-byte big-endian header length, the UTF-8 JSON header, then an ``.npz``
archive of the arrays. The header carries the schema version, whatever the owner needs to check the
snapshot fits its configuration, and the SHA-256 of the archive, so a truncated or altered
snapshot is refused with a message instead of loading garbage.
"""

from __future__ import annotations

import hashlib
import io
import json
import struct
from typing import Any

import numpy as np

from learner.errors import SnapshotError

MAGIC = b"PBSNAP\n"
SCHEMA_VERSION = 1


def encode(header: dict[str, Any], arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]  # numpy's stub misreads **kwds
    payload = buffer.getvalue()
    full_header = {**header, "schema_version": SCHEMA_VERSION,
                   "sha256": hashlib.sha256(payload).hexdigest()}
    head = json.dumps(full_header, sort_keys=True).encode()
    return MAGIC + struct.pack(">I", len(head)) + head + payload


def decode(blob: bytes) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The header and arrays of a snapshot; SnapshotError says what is wrong with a bad one."""
    if not blob.startswith(MAGIC):
        raise SnapshotError("not a pricebandit snapshot (bad magic bytes); the file is corrupt")
    start = len(MAGIC) + 4
    if len(blob) < start:
        raise SnapshotError("snapshot is truncated before its header")
    (head_len,) = struct.unpack(">I", blob[len(MAGIC):start])
    try:
        header = json.loads(blob[start:start + head_len])
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SnapshotError(f"snapshot header is unreadable ({exc}); the file is corrupt") from None
    if not isinstance(header, dict):
        raise SnapshotError("snapshot header is not an object; the file is corrupt")
    version = header.get("schema_version")
    if version != SCHEMA_VERSION:
        raise SnapshotError(
            f"snapshot schema version {version!r}, this build reads version {SCHEMA_VERSION}: "
            "run the pricebandit release that wrote it, or start with a new --data-dir"
        )
    payload = blob[start + head_len:]
    if hashlib.sha256(payload).hexdigest() != header.get("sha256"):
        raise SnapshotError("snapshot checksum mismatch: the file is truncated or corrupt")
    with np.load(io.BytesIO(payload), allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    return header, arrays
