"""The configuration the rollout gate adopted, as the state file keeps it, and how a start uses it.

The record is the learner settings that differ from the defaults (``pricebandit-server`` flags), the
mode, who asked and when. At start the stored record wins over the command line: the flags an
operator restarts with are usually the ones the server started with before the gate switched it,
and a restart must not quietly undo a switch the numbers justified (nor stop the server, which is
the surprise the other choice makes at every restart). The start logs a warning naming each setting
where the command line differs and the value kept. To leave a configuration the gate adopted, switch
again through the gate, or start on a new ``--data-dir``.
"""

from __future__ import annotations

import json
import logging
import shlex
from dataclasses import dataclass, replace

from learner import MODES, PricerConfig
from server.config import PRICER_SETTINGS, ServerConfig, flag_name, pricer_flags, pricer_over

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Adoption:
    """One adopted configuration: the learner's settings, the mode, who asked and when."""

    pricer: PricerConfig
    mode: str
    requested_by: str
    adopted_at: float

    @property
    def flags(self) -> str:
        """The learner settings that differ from the defaults, as server flags ("" for none)."""
        return shlex.join(pricer_flags(self.pricer))

    def to_json(self) -> str:
        return json.dumps({"flags": self.flags, "mode": self.mode, "requested_by": self.requested_by,
                           "adopted_at": self.adopted_at})

    @staticmethod
    def from_json(text: str) -> Adoption:
        """The stored record; ValueError if it cannot be read (the start stops, naming it)."""
        try:
            record = json.loads(text)
            pricer = pricer_over(PricerConfig(), shlex.split(record["flags"]))
            mode = str(record["mode"])
            if mode not in MODES:
                raise ValueError(f"mode {mode!r} is not one of {', '.join(MODES)}")
            return Adoption(pricer, mode, str(record["requested_by"]), float(record["adopted_at"]))
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f"the state file's adopted configuration cannot be read ({error}): start on a "
                             "new --data-dir, or restore a backup") from None

    def over(self, config: ServerConfig) -> ServerConfig:
        """``config`` (the command line's) with this adoption's learner settings and mode, logging
        every setting where the two differ."""
        pricer = replace(self.pricer, user_embedding_dim=config.pricer.user_embedding_dim)
        adopted = replace(config, pricer=pricer, mode=self.mode)
        differ = [f"{flag_name(name)} {getattr(config.pricer, name)!r} -> {getattr(pricer, name)!r}"
                  for name in PRICER_SETTINGS if getattr(config.pricer, name) != getattr(pricer, name)]
        if config.mode != adopted.mode:
            differ.append(f"--mode {config.mode!r} -> {adopted.mode!r}")
        if differ:
            log.warning("the state file holds the configuration the rollout gate adopted (asked by %s); it "
                        "overrides the command line: %s", self.requested_by, "; ".join(differ))
        return adopted
