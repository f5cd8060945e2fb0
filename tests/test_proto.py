"""The committed Python code for the wire contract matches the .proto (regenerate: make proto)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from learner.value import TRACKED_EVENT_TYPES
from pricing.v1 import pricing_pb2

ROOT = Path(__file__).resolve().parent.parent
GENERATED = ("pricing_pb2.py", "pricing_pb2.pyi", "pricing_pb2_grpc.py")


def test_generated_code_is_up_to_date(tmp_path: Path) -> None:
    pytest.importorskip("grpc_tools")
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", f"-I{ROOT / 'proto'}", f"--python_out={tmp_path}",
         f"--pyi_out={tmp_path}", f"--grpc_python_out={tmp_path}", "pricing/v1/pricing.proto"],
        check=True, cwd=ROOT,
    )
    for name in GENERATED:
        fresh = (tmp_path / "pricing" / "v1" / name).read_text()
        committed = (ROOT / "proto" / "pricing" / "v1" / name).read_text()
        assert fresh == committed, f"{name} is stale: run `make proto` and commit the result"


def test_every_field_is_documented() -> None:
    lines = (ROOT / "proto" / "pricing" / "v1" / "pricing.proto").read_text().splitlines()
    fields = [n for n, line in enumerate(lines)
              if re.fullmatch(r"\s*(optional |repeated )?[\w.<>, ]+ = \d+;", line)]
    assert len(fields) > 40
    for number in fields:
        assert lines[number - 1].strip().startswith("//"), f"line {number + 1} lacks a comment above it"


def test_the_wire_event_types_are_the_learners_tracked_ones() -> None:
    """The server and the simulator map wire events to the learner's by name, upper-cased."""
    wire = [value.name for value in pricing_pb2.BehaviorEvent.EventType.DESCRIPTOR.values if value.number]
    assert wire == [name.upper() for name in TRACKED_EVENT_TYPES]
