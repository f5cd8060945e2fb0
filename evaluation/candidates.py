"""Candidate configurations, written as ``pricebandit-server`` flags, parsed by the server's own
``parse_config`` and built by ``learner.build_pricer`` as the server builds its Pricer, so a candidate
evaluated offline is the Pricer the server would run.

A spec is ``[LABEL:] FLAGS``, e.g. ``"ts: --policy thompson --policy-options v=0.5 --decay 0.999"``;
no flags is the server's defaults. Flags that do not shape decisions (ports, folders) are accepted and
ignored. ``--value-model none`` prices on the list margin with no user embedding; any other value
means *the value model that made the log*: its ``V`` and embedding are read from each logged
decision, since the behavior events that produced them are not in the log.
"""

from __future__ import annotations

import contextlib
import io
import shlex
from dataclasses import dataclass

from learner import Pricer, PricerConfig, build_pricer
from learner.value import load as load_value_model
from server.config import parse_config


class CandidateError(ValueError):
    """A candidate that cannot be built, or that does not fit the log; the message says which."""


@dataclass(frozen=True)
class Candidate:
    label: str
    config: PricerConfig
    value_model: str
    """The ``--value-model`` flag: ``none`` prices on the list margin with no embedding; otherwise the
    model whose embedding size the features take (their values, and V, come from the log)."""

    @property
    def uses_value_model(self) -> bool:
        return self.value_model != "none"

    def pricer(self) -> Pricer:
        """A fresh Pricer of this configuration, built as the server builds its own. With a value
        model its user states stay empty: the replay reads V and the embedding from the log."""
        model = load_value_model(self.value_model) if self.uses_value_model else None
        return build_pricer(self.config, model)


def parse_candidate(spec: str) -> Candidate:
    """``[LABEL:] FLAGS`` -> Candidate, or CandidateError quoting the spec and what is wrong."""
    label, colon, flags = spec.partition(":")
    if not colon or label.strip().startswith("-"):
        label, flags = "", spec
    label = label.strip() or flags.strip() or "server defaults"
    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors):
            config = parse_config(shlex.split(flags), environ={})
        candidate = Candidate(label=label, config=config.pricer, value_model=config.value_model)
        candidate.pricer()  # refuses an unknown policy, bad options, a bad grid or model, naming them
    except SystemExit:
        message = errors.getvalue().strip().splitlines()[-1:] or ["bad flags"]
        raise CandidateError(f"candidate {label!r}: {message[0]}") from None
    except (ValueError, OSError) as error:
        raise CandidateError(f"candidate {label!r}: {error}") from None
    return candidate
