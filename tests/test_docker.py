"""The Docker image, read from its Dockerfile (no Docker daemon needed): it copies every package it
installs, installs the simulator's extra so ``pricebandit-sim`` runs inside it, and pins every
dependency it installs with ``constraints.txt``."""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def build_steps() -> list[list[str]]:
    """The words of each COPY and RUN instruction of the build stage."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    build = text.split("\nFROM ")[1]
    return [shlex.split(line) for line in build.splitlines() if line.startswith(("COPY ", "RUN "))]


def test_the_image_copies_every_package_and_installs_the_sim_extra_under_the_constraints() -> None:
    steps = build_steps()
    copied = {word for step in steps if step[0] == "COPY" for word in step[1:-1]}
    tops = {name.split(".")[0] for name in PROJECT["tool"]["setuptools"]["packages"]}
    package_dirs = {PROJECT["tool"]["setuptools"]["package-dir"].get(top, top).split("/")[0] for top in tops}
    assert package_dirs | {"pyproject.toml", "README.md", "constraints.txt"} <= copied
    install = next(step for step in steps if step[0] == "RUN" and "install" in step)
    assert ".[sim]" in install and install[install.index("-c") + 1] == "constraints.txt"


def test_every_dependency_the_image_installs_is_pinned() -> None:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            match = re.fullmatch(r"([A-Za-z0-9._-]+)==(\S+)", line)
            assert match, f"not an exact pin: {line}"
            pins[canonicalize_name(match[1])] = match[2]
    wanted = [Requirement(text) for text in PROJECT["project"]["dependencies"]
              + PROJECT["project"]["optional-dependencies"]["sim"]]
    for requirement in wanted:
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} is not pinned in constraints.txt"
        assert requirement.specifier.contains(pins[name]), f"{name}=={pins[name]} does not meet {requirement}"
