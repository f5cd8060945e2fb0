"""What the README and docs/architecture.md say that can be checked: the files they name exist in
the repository, and the grpcurl example works when pasted, against a real server."""

from __future__ import annotations

import itertools
import re
import shlex
from pathlib import Path

import pytest
from google.protobuf import json_format

from conftest import DEADLINE, ServerHandle
from pricing.v1 import pricing_pb2

ROOT = Path(__file__).resolve().parent.parent
DOCS = ("README.md", "docs/architecture.md")
PARTS = ("proto", "learner", "server", "simulator", "bench", "ops", "docs", "tests", ".ci", "shared")
LINK = re.compile(r"\]\(([^)#]+)\)")
NAMED = re.compile(r"`((?:{})/[\w./*-]*)`".format("|".join(map(re.escape, PARTS))))


def named_paths(doc: str) -> list[tuple[Path, str]]:
    """(folder, pattern) of each link (relative to ``doc``) and each backquoted path under a part of
    the repository (relative to its root) in ``doc``."""
    text = (ROOT / doc).read_text()
    links = [((ROOT / doc).parent, link) for link in LINK.findall(text) if "://" not in link]
    return links + [(ROOT, path) for path in NAMED.findall(text)]


@pytest.mark.parametrize("doc", DOCS)
def test_every_file_the_docs_name_is_in_the_repository(doc: str) -> None:
    missing = [pattern for folder, pattern in named_paths(doc) if not any(folder.glob(pattern))]
    assert missing == []


def grpcurl_calls() -> list[tuple[str, str]]:
    """(method, JSON body) of each grpcurl command in the README's shell blocks, in order."""
    blocks = re.findall(r"```sh\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    words = shlex.split(" ".join(block.replace("\\\n", " ") for block in blocks if "grpcurl " in block))
    starts = [i for i, word in enumerate(words) if word == "grpcurl"] + [len(words)]
    commands = [words[start:end] for start, end in itertools.pairwise(starts)]
    return [(command[-1].rsplit("/", 1)[1], command[command.index("-d") + 1]) for command in commands]


def test_the_readme_grpcurl_example_works_when_pasted(pricing: ServerHandle) -> None:
    calls = grpcurl_calls()
    assert [method for method, _ in calls] == ["Quote", "Reward"]
    (_, quote_body), (_, reward_body) = calls
    quote = pricing.stub.Quote(json_format.Parse(quote_body, pricing_pb2.QuoteRequest()), timeout=DEADLINE)
    reward = json_format.Parse(reward_body, pricing_pb2.RewardRequest())
    assert reward.quote_id == quote.quote_id
    assert pricing.stub.Reward(reward, timeout=DEADLINE).status == pricing_pb2.RewardResponse.LEARNED
