"""Command-line values for every command: the parser that reports in one line, and one parse function
per kind of value.

Each parse function turns a flag's text (or an environment variable's) into a value or raises
``argparse.ArgumentTypeError`` saying what the text is not and what is allowed, so the same rule
serves a flag and its environment variable. argparse prefixes the flag's name; ``CommandParser``
prints the whole message as one line and exits 2. It lives in ``learner`` because every command
(server, simulator, training, benchmarks) may import it.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, NoReturn


class CommandParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr (no usage block) and exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class DefaultsHelp(argparse.ArgumentDefaultsHelpFormatter):
    """Adds ``(default: …)`` to every option whose default says something (not None, False or [])."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False or action.default in ([], argparse.SUPPRESS):
            return action.help
        return super()._get_help_string(action)


def environment_value(parser: argparse.ArgumentParser, environ: Mapping[str, str], variable: str,
                      parse: Callable[[str], Any]) -> Any:
    """``variable`` parsed by the rule of its flag; None when unset. A bad value ends the command as a
    bad flag would, naming the variable."""
    if variable not in environ:
        return None
    try:
        return parse(environ[variable])
    except argparse.ArgumentTypeError as error:
        parser.error(f"environment variable {variable}: {error}")


def _refuse(text: str, allowed: str) -> NoReturn:
    raise argparse.ArgumentTypeError(f"{text!r} is not {allowed}")


def integer(minimum: int | None = None, maximum: int | None = None) -> Callable[[str], int]:
    """An integer in [minimum, maximum] (either bound may be absent)."""
    if minimum is not None and maximum is not None:
        allowed = f"an integer from {minimum} to {maximum}"
    elif minimum is not None:
        allowed = f"an integer >= {minimum}"
    else:
        allowed = "an integer"

    def parse(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            _refuse(text, allowed)
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            _refuse(text, allowed)
        return value

    return parse


def number(*, above: float | None = None, at_least: float | None = None,
           below: float | None = None) -> Callable[[str], float]:
    """A finite number, optionally ``> above`` or ``>= at_least``, and ``< below``."""
    bounds = [f"{sign} {bound:g}" for sign, bound in ((">", above), (">=", at_least), ("<", below))
              if bound is not None]
    allowed = " ".join(["a finite number", " and ".join(bounds)]).strip()

    def parse(text: str) -> float:
        try:
            value = float(text.strip())
        except ValueError:
            _refuse(text, allowed)
        if not math.isfinite(value) or (above is not None and value <= above) or (
                at_least is not None and value < at_least) or (below is not None and value >= below):
            _refuse(text, allowed)
        return value

    return parse


port = integer(0, 65535)
positive_int = integer(1)
non_negative_int = integer(0)
any_int = integer()
finite = number()
positive = number(above=0)
non_negative = number(at_least=0)
share = number(above=0, below=1)


def numbers(text: str) -> tuple[float, ...]:
    """``0,0.5,1`` -> (0.0, 0.5, 1.0): comma-separated finite numbers."""
    parts = [part.strip() for part in text.split(",") if part.strip()]
    values = []
    for part in parts:
        try:
            values.append(finite(part))
        except argparse.ArgumentTypeError:
            raise argparse.ArgumentTypeError(
                f"{text!r}: {part!r} is not a finite number (expected comma-separated numbers, e.g. 0,0.5,1)"
            ) from None
    if not values:
        _refuse(text, "a list of comma-separated numbers, e.g. 0,0.5,1")
    return tuple(values)


def names(text: str) -> tuple[str, ...]:
    """``a, b`` -> ("a", "b"): comma-separated names, at least one."""
    values = tuple(part.strip() for part in text.split(",") if part.strip())
    if not values:
        _refuse(text, "a list of comma-separated names")
    return values


def settings(text: str) -> dict[str, float]:
    """``beta=0.5,epsilon=0.1`` -> {"beta": 0.5, "epsilon": 0.1}."""
    result: dict[str, float] = {}
    for part in filter(str.strip, text.split(",")):
        key, sep, value = part.partition("=")
        if not (sep and key.strip()):
            _refuse(part, "NAME=VALUE (e.g. beta=0.5; several separated by commas)")
        try:
            result[key.strip()] = finite(value)
        except argparse.ArgumentTypeError:
            raise argparse.ArgumentTypeError(f"{part!r}: {value.strip()!r} is not a finite number") from None
    return result


SWITCH_WORDS = {"true": True, "yes": True, "on": True, "1": True,
                "false": False, "no": False, "off": False, "0": False}


def switch(text: str) -> bool:
    """On or off: true/false, yes/no, on/off or 1/0, in any case."""
    word = text.strip().lower()
    if word not in SWITCH_WORDS:
        _refuse(text, "true or false (or yes/no, on/off, 1/0)")
    return SWITCH_WORDS[word]


def choice(allowed: Iterable[str]) -> Callable[[str], str]:
    """One of ``allowed`` (unlike argparse's ``choices``, also applies to environment variables)."""
    options = tuple(allowed)

    def parse(text: str) -> str:
        if text not in options:
            _refuse(text, f"one of {', '.join(options)}")
        return text

    return parse


def input_file(text: str) -> Path:
    """A file that exists."""
    path = Path(text)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{text!r}: no such file" if not path.exists()
                                         else f"{text!r} is not a file")
    return path


def file_or(*keywords: str) -> Callable[[str], str]:
    """One of ``keywords`` (such as ``default``), or a file that exists."""

    def parse(text: str) -> str:
        if text in keywords:
            return text
        try:
            return str(input_file(text))
        except argparse.ArgumentTypeError:
            _refuse(text, f"{' or '.join(repr(k) for k in keywords)} or an existing file")

    return parse


def output_file(text: str) -> Path:
    """A file to write, in a folder that exists."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is a folder, not a file to write")
    folder = path.parent
    if not folder.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r}: there is no folder {str(folder)!r} to write it in")
    return path
