"""Server configuration: one dataclass, read from command-line flags or PRICEBANDIT_* variables.

A flag wins over its environment variable, which wins over the default.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from learner import DEFAULT_ALPHAS, DEFAULT_CONTEXT_FEATURES, POLICIES, PricerConfig
from learner.features import DEFAULT_UNKNOWN_CONTEXT, UNKNOWN_CONTEXT_MODES
from learner.policies import DEFAULT_DEMAND_MODEL, DEMAND_MODELS
from server.logs import parse_log_format


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 50051
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 9464
    data_dir: Path = Path("pricebandit-data")
    reward_window_seconds: float = 600.0
    policy: str = "linucb"
    demand_model: str = DEFAULT_DEMAND_MODEL
    seed: int = 0
    log_level: str = "INFO"
    log_format: str = "text"
    alphas: tuple[float, ...] = DEFAULT_ALPHAS
    context_features: tuple[str, ...] = DEFAULT_CONTEXT_FEATURES
    protected_features: tuple[str, ...] = ()
    unknown_context: str = DEFAULT_UNKNOWN_CONTEXT
    spread_limit: float | None = None
    stable_price_seconds: float = 0.0
    decay: float = PricerConfig.decay
    currency: str = "USD"
    max_batch: int = 50
    workers: int = 16
    max_concurrent_rpcs: int = 256
    max_message_bytes: int = 1 << 20
    snapshot_every_updates: int = 1000
    snapshot_interval_seconds: float = 60.0
    sweep_interval_seconds: float = 1.0
    shutdown_grace_seconds: float = 5.0
    policy_options: Mapping[str, float] = field(default_factory=dict)
    value_model: str = "default"
    user_cache_size: int = 100_000
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_client_ca_file: Path | None = None
    auth_token_file: Path | None = None
    auth_token: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("TLS needs both --tls-cert-file and --tls-key-file")
        if self.tls_client_ca_file is not None and self.tls_cert_file is None:
            raise ValueError("--tls-client-ca-file needs --tls-cert-file and --tls-key-file")
        if self.auth_token and self.auth_token_file is not None:
            raise ValueError("give the auth token by PRICEBANDIT_AUTH_TOKEN or --auth-token-file, not both")
        self.pricer_config()  # its guardrail settings check themselves (a spread limit in [0, 1], ...)

    def pricer_config(self) -> PricerConfig:
        return PricerConfig(
            policy=self.policy, demand_model=self.demand_model, alphas=self.alphas,
            context_features=self.context_features,
            decay=self.decay, seed=self.seed, reward_window_seconds=self.reward_window_seconds,
            policy_options=dict(self.policy_options), spread_limit=self.spread_limit,
            stable_price_seconds=self.stable_price_seconds, protected_features=self.protected_features,
            unknown_context=self.unknown_context,
        )


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(part) for part in text.split(",") if part.strip())


def _names(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _options(text: str) -> dict[str, float]:
    """``beta=0.5,epsilon=0.1`` -> {"beta": 0.5, "epsilon": 0.1}."""
    pairs = [part.split("=", 1) for part in text.split(",") if part.strip()]
    return {key.strip(): float(value) for key, value in pairs}


def _spread_limit(text: str) -> float | None:
    """``none`` (or empty): no band; else a fraction in [0, 1]."""
    return None if text.strip().lower() in ("", "none") else float(text)


def _unknown_context(text: str) -> str:
    if text not in UNKNOWN_CONTEXT_MODES:
        raise argparse.ArgumentTypeError(f"choose one of {', '.join(UNKNOWN_CONTEXT_MODES)}")
    return text


def _log_format(text: str) -> str:
    try:
        return parse_log_format(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


PARSERS: dict[str, Callable[[str], Any]] = {
    "log_format": _log_format,
    "alphas": _floats, "context_features": _names, "policy_options": _options, "data_dir": Path,
    "protected_features": _names, "unknown_context": _unknown_context, "spread_limit": _spread_limit,
    "tls_cert_file": Path, "tls_key_file": Path, "tls_client_ca_file": Path, "auth_token_file": Path,
}
ENVIRONMENT_ONLY = {"auth_token"}
"""Secrets never become flags: a flag's value shows in ``ps`` to every user of the machine."""
HELP = {
    "host": "address to serve gRPC on",
    "port": "gRPC port (0 picks a free one)",
    "metrics_host": "address of the Prometheus /metrics endpoint (may differ from --host)",
    "metrics_port": "Prometheus port (0 picks a free one)",
    "data_dir": "folder holding the SQLite state file",
    "reward_window_seconds": "how long a quote waits for its reward before counting as no purchase",
    "policy": f"bandit policy: one of {', '.join(sorted(POLICIES))}",
    "demand_model": f"how demand is learned: {' or '.join(sorted(DEMAND_MODELS))} (shared: one logistic "
                    "model across prices; per_arm: one ridge model per price)",
    "seed": "seed of every random choice (decisions are seeded by it and the quote id)",
    "log_level": "DEBUG, INFO, WARNING or ERROR (DEBUG adds one access line per RPC)",
    "log_format": "text for people, or json: one object per line with the RPC's request id",
    "alphas": "comma-separated price grid; arm a quotes cost + alpha[a] * V",
    "context_features": "comma-separated names of the numeric context features that price",
    "protected_features": "comma-separated context names accepted and logged that may never price "
                          "(e.g. a protected characteristic)",
    "unknown_context": "what a context name that is neither does: ignore (counted in a metric) or refuse "
                       "(INVALID_ARGUMENT, the strict mode)",
    "spread_limit": "every quote within this fraction of the product's reference price (the neutral "
                    "shopper's), e.g. 0.1; none: no band",
    "stable_price_seconds": "a user asking again for a product within this many seconds keeps the price "
                            "(0: off)",
    "decay": "per-outcome discount of all old evidence, in (0, 1]; 1 keeps everything",
    "currency": "currency assumed when a product names none",
    "max_batch": "most products in one QuoteBatch",
    "workers": "gRPC worker threads",
    "max_concurrent_rpcs": "RPCs in flight before new ones get RESOURCE_EXHAUSTED",
    "max_message_bytes": "largest request accepted",
    "snapshot_every_updates": "write a learner snapshot after this many learned outcomes",
    "snapshot_interval_seconds": "or after this many seconds with anything new",
    "sweep_interval_seconds": "how often expired quotes are learned as no purchase",
    "shutdown_grace_seconds": "how long in-flight RPCs may finish at shutdown",
    "policy_options": "policy hyperparameters, e.g. beta=1.0 or epsilon=0.05",
    "value_model": "user value model file (pricebandit-train), 'default' for the shipped one, or 'none' "
                   "to price on the list margin",
    "user_cache_size": "users whose value-model state is kept in memory (the rest are read from the store)",
    "tls_cert_file": "PEM certificate chain: serve gRPC over TLS (with --tls-key-file)",
    "tls_key_file": "PEM private key of --tls-cert-file",
    "tls_client_ca_file": "PEM CA bundle: require client certificates it signed (mutual TLS)",
    "auth_token_file": "file holding the bearer token callers must send "
                       "(or set PRICEBANDIT_AUTH_TOKEN); unset: no token check",
}


def _render(value: object) -> str:
    if value is None:
        return "none"
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    if isinstance(value, Mapping):
        return ",".join(f"{k}={v}" for k, v in value.items())
    return str(value)


def parse_config(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
                 ) -> ServerConfig:
    environ = os.environ if environ is None else environ
    parser = argparse.ArgumentParser(
        prog="pricebandit-server", allow_abbrev=False,
        description="Serve personalized prices over gRPC and learn from purchase outcomes.",
    )
    defaults = ServerConfig()
    for spec in fields(ServerConfig):
        if spec.name in ENVIRONMENT_ONLY:
            continue
        env_name = f"PRICEBANDIT_{spec.name.upper()}"
        default = getattr(defaults, spec.name)
        convert: Callable[[str], Any] = PARSERS.get(spec.name) or type(default)
        parser.add_argument(
            f"--{spec.name.replace('_', '-')}", dest=spec.name, type=convert,
            default=convert(environ[env_name]) if env_name in environ else default,
            help=f"{HELP[spec.name]} (env {env_name}; default {_render(default)})",
        )
    args = parser.parse_args(argv)
    try:
        return ServerConfig(**vars(args), auth_token=environ.get("PRICEBANDIT_AUTH_TOKEN", ""))
    except ValueError as error:
        parser.error(str(error))
