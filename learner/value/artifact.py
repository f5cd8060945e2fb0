"""The value model file: a versioned ``.npz`` of named weights plus a JSON header, no pickle.

The header says which schema wrote it, which event encoding the model reads (a model trained on
another encoding would silently misread every event), and how it was trained. The model version is
``<name>-<first 8 hex digits of the SHA-256 of the weights>``, so two files with the same weights
report the same version and any change of weights changes it.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from learner.errors import ModelFileError
from learner.value.events import INPUT_NAMES
from learner.value.network import WEIGHT_NAMES, ValueNetwork

SCHEMA_VERSION = 2
"""2: the demand head (willingness and slope) replaced the margin head of 1."""
DEFAULT_MODEL = "default_value_model.npz"
RETRAIN_HINT = ("retrain it with `pricebandit-train` (see README), pass --value-model default for the "
                "shipped model, or --value-model none to price on the list margin")


@dataclass(frozen=True)
class ValueModel:
    """A loaded value model: the numpy network, its version, and what training reported."""

    network: ValueNetwork
    version: str
    info: Mapping[str, Any] = field(default_factory=dict)

    @property
    def embedding_dim(self) -> int:
        return self.network.embedding_dim


def weights_digest(weights: Mapping[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    for name in WEIGHT_NAMES:
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(weights[name], dtype="<f4").tobytes())
    return digest.hexdigest()[:8]


def save(path: Path | str, weights: Mapping[str, np.ndarray], *, name: str, info: Mapping[str, Any]) -> str:
    """Write a model file; returns its version."""
    version = f"{name}-{weights_digest(weights)}"
    header = {"schema_version": SCHEMA_VERSION, "version": version, "inputs": list(INPUT_NAMES),
              "info": dict(info)}
    arrays = {name: np.asarray(weights[name], dtype="<f4") for name in WEIGHT_NAMES}
    buffer = io.BytesIO()
    np.savez_compressed(buffer, header=np.frombuffer(json.dumps(header).encode(), dtype=np.uint8),
                        **arrays)  # type: ignore[arg-type]
    Path(path).write_bytes(buffer.getvalue())
    return version


def load(source: Path | str) -> ValueModel:
    """Load ``source`` ("default" for the shipped model); ModelFileError says what is wrong and what to do."""
    if str(source) == "default":
        blob = resources.files("learner.value").joinpath(DEFAULT_MODEL).read_bytes()
        where = f"the shipped default model ({DEFAULT_MODEL})"
    else:
        where = f"the value model file {source}"
        try:
            blob = Path(source).read_bytes()
        except OSError as exc:
            raise ModelFileError(f"cannot read {where} ({exc.strerror}); {RETRAIN_HINT}") from None
    return from_bytes(blob, where)


def from_bytes(blob: bytes, where: str = "the value model") -> ValueModel:
    try:
        with np.load(io.BytesIO(blob), allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
        header = json.loads(arrays.pop("header").tobytes())
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise ModelFileError(f"{where} is corrupt or not a value model ({exc}); {RETRAIN_HINT}") from None
    if not isinstance(header, dict) or header.get("schema_version") != SCHEMA_VERSION:
        found = header.get("schema_version") if isinstance(header, dict) else None
        raise ModelFileError(f"{where} has schema version {found!r}, this build reads version "
                             f"{SCHEMA_VERSION}; {RETRAIN_HINT}")
    if header.get("inputs") != list(INPUT_NAMES):
        raise ModelFileError(f"{where} was trained on another event encoding; {RETRAIN_HINT}")
    try:
        network = ValueNetwork(arrays)
    except ValueError as exc:
        raise ModelFileError(f"{where} has unusable weights ({exc}); {RETRAIN_HINT}") from None
    if header.get("version", "").rsplit("-", 1)[-1] != weights_digest(arrays):
        raise ModelFileError(f"{where} does not match its recorded version (altered?); {RETRAIN_HINT}")
    return ValueModel(network, header["version"], header.get("info") or {})
