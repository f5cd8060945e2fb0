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

from learner import (
    DEFAULT_ALPHAS,
    DEFAULT_CONTEXT_FEATURES,
    MODES,
    ONLINE,
    POLICIES,
    InvalidInput,
    Pricer,
    PricerConfig,
    cliargs,
)
from learner.arms import check_spread_limit
from learner.features import DEFAULT_UNKNOWN_CONTEXT, UNKNOWN_CONTEXT_MODES
from learner.policies import DEFAULT_DEMAND_MODEL, DEMAND_MODELS, policy_options
from server.logs import parse_log_format
from server.validation import CURRENCY_PATTERN, check_pattern

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


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
    mode: str = ONLINE
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
    learn_responses: bool = True
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_client_ca_file: Path | None = None
    auth_token_file: Path | None = None
    user_id_key_file: Path | None = None
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


def _spread_limit(text: str) -> float | None:
    """``none`` (or empty): no band; else a fraction in [0, 1]."""
    if text.strip().lower() in ("", "none"):
        return None
    try:
        return check_spread_limit("spread_limit", cliargs.finite(text))
    except InvalidInput as error:
        raise argparse.ArgumentTypeError(error.problem) from None


def _log_format(text: str) -> str:
    try:
        return parse_log_format(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _currency(text: str) -> str:
    try:
        return check_pattern("currency", text, CURRENCY_PATTERN, "an ISO 4217 code like 'EUR'")
    except InvalidInput as error:
        raise argparse.ArgumentTypeError(error.problem) from None


PARSERS: dict[str, Callable[[str], Any]] = {
    "host": str, "port": cliargs.port, "metrics_host": str, "metrics_port": cliargs.port,
    "data_dir": Path, "reward_window_seconds": cliargs.positive,
    "policy": cliargs.choice(sorted(POLICIES)), "demand_model": cliargs.choice(sorted(DEMAND_MODELS)),
    "seed": cliargs.any_int, "log_level": cliargs.choice(LOG_LEVELS), "log_format": _log_format,
    "alphas": cliargs.numbers, "context_features": cliargs.names, "decay": cliargs.finite,
    "currency": _currency, "max_batch": cliargs.positive_int, "workers": cliargs.positive_int,
    "max_concurrent_rpcs": cliargs.positive_int, "max_message_bytes": cliargs.positive_int,
    "snapshot_every_updates": cliargs.positive_int, "snapshot_interval_seconds": cliargs.positive,
    "sweep_interval_seconds": cliargs.positive, "shutdown_grace_seconds": cliargs.non_negative,
    "policy_options": cliargs.settings, "value_model": cliargs.file_or("default", "none"),
    "user_cache_size": cliargs.positive_int, "tls_cert_file": cliargs.input_file,
    "tls_key_file": cliargs.input_file, "tls_client_ca_file": cliargs.input_file,
    "auth_token_file": cliargs.input_file, "learn_responses": cliargs.switch,
    "user_id_key_file": cliargs.input_file,
    "protected_features": cliargs.names, "unknown_context": cliargs.choice(UNKNOWN_CONTEXT_MODES),
    "spread_limit": _spread_limit, "stable_price_seconds": cliargs.non_negative,
    "mode": cliargs.choice(MODES),
}
"""How each flag's text (and its environment variable's) becomes a value: one rule for both."""
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
    "mode": "online: answer the policy's prices; shadow: answer each quote's incumbent_price (the shop's "
            "own rule), log the policy's choice beside it and learn from the incumbent's outcomes",
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
    "learn_responses": "true: a closed quote (bought or not) advances the shopper's value-model state, "
                       "committed with the close; false: only Observe and recent_events do",
    "tls_cert_file": "PEM certificate chain: serve gRPC over TLS (with --tls-key-file)",
    "tls_key_file": "PEM private key of --tls-cert-file",
    "tls_client_ca_file": "PEM CA bundle: require client certificates it signed (mutual TLS)",
    "auth_token_file": "file holding the bearer token callers must send "
                       "(or set PRICEBANDIT_AUTH_TOKEN); unset: no token check",
    "user_id_key_file": "file holding the secret that user ids are hashed with before anything is stored "
                        "(hex, 32 bytes); unset: <data-dir>/user-id.key, created on first start",
}


def _render(value: object) -> str:
    if value is None:
        return "none"
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    if isinstance(value, Mapping):
        return ",".join(f"{k}={v}" for k, v in value.items())
    return str(value)


def env_name(name: str) -> str:
    return f"PRICEBANDIT_{name.upper()}"


def flag_name(name: str) -> str:
    return f"--{name.replace('_', '-')}"


def _parser() -> cliargs.CommandParser:
    parser = cliargs.CommandParser(
        prog="pricebandit-server", allow_abbrev=False,
        description="Serve personalized prices over gRPC and learn from purchase outcomes.",
    )
    defaults = ServerConfig()
    for spec in fields(ServerConfig):
        if spec.name not in ENVIRONMENT_ONLY:
            parser.add_argument(flag_name(spec.name), dest=spec.name, type=PARSERS[spec.name],
                                help=f"{HELP[spec.name]} (env {env_name(spec.name)}; "
                                     f"default {_render(getattr(defaults, spec.name))})")
    return parser


def parse_config(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
                 ) -> ServerConfig:
    """The configuration from flags over ``PRICEBANDIT_*`` variables over defaults.

    A bad value, given by flag or variable, ends the program with one line naming where it came from
    (exit 2); ``--help`` works whatever the environment holds.
    """
    environ = os.environ if environ is None else environ
    parser = _parser()
    args = parser.parse_args(argv)
    values: dict[str, Any] = {}
    source: dict[str, str] = {}
    for name, parse in PARSERS.items():
        variable = env_name(name)
        # Read even when a flag overrides it: a bad variable is a mistake waiting for the next start.
        from_environment = cliargs.environment_value(parser, environ, variable, parse)
        if from_environment is not None:
            values[name], source[name] = from_environment, f"environment variable {variable}"
        if getattr(args, name) is not None:
            values[name], source[name] = getattr(args, name), f"argument {flag_name(name)}"
    try:
        config = ServerConfig(**values, auth_token=environ.get("PRICEBANDIT_AUTH_TOKEN", ""))
    except ValueError as error:
        parser.error(str(error))
    try:
        Pricer(config.pricer_config())  # the learner's own rules (grid, decay, policy options), once
    except InvalidInput as error:
        parser.error(_blame(error, config.policy, source))
    return config


def _blame(error: InvalidInput, policy: str, source: Mapping[str, str]) -> str:
    """The learner's complaint about a field, said of the flag or variable that set it."""
    if error.field in policy_options(policy):
        return f"{source['policy_options']}: {error}"
    if error.field in HELP:
        return f"{source.get(error.field, 'argument ' + flag_name(error.field))}: {error.problem}"
    return str(error)
