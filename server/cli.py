"""``pricebandit-server``: run the pricing service until SIGTERM or Ctrl-C."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Sequence

from learner import PricingError
from server.app import build_server
from server.config import parse_config
from server.logs import configure_logging
from server.store import StoreCorrupt


def main(argv: Sequence[str] | None = None) -> int:
    config = parse_config(argv)
    configure_logging(config.log_level, config.log_format)
    log = logging.getLogger("pricebandit")
    try:
        running = build_server(config)
    except (StoreCorrupt, PricingError, OSError) as error:
        log.error("cannot start: %s", error)
        return 2
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:
        running.load()
    except (PricingError, StoreCorrupt) as error:
        log.error("cannot load the saved state in %s: %s", config.data_dir, error)
        running.stop()
        return 2
    log.info("serving pricing.v1 on %s (metrics on %s:%d, policy %s, state in %s)",
             running.address, config.metrics_host, running.metrics_port, config.policy,
             config.data_dir)
    stop.wait()
    log.info("shutting down")
    running.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
