"""Server configuration: one dataclass, read from command-line flags or PRICEBANDIT_* variables.

A flag wins over its environment variable, which wins over the default. The learner's settings are
a ``PricerConfig`` held whole (``ServerConfig.pricer``): every one of its fields is a flag of the same
name, so a field added to ``PricerConfig`` is a server flag (it needs a parse rule and a help line
here, or no command parses), except ``SET_BY_SERVER``.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, NoReturn

from learner import MODES, ONLINE, POLICIES, InvalidInput, Pricer, PricerConfig, cliargs
from learner.arms import check_spread_limit
from learner.features import UNKNOWN_CONTEXT_MODES
from learner.policies import DEMAND_MODELS, policy_options
from learner.value.states import DEFAULT_CACHE_USERS
from server.logs import parse_log_format
from server.redis_store import redis_url
from server.validation import CURRENCY_PATTERN, check_pattern

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 50051
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 9464
    data_dir: Path = Path("pricebandit-data")
    store: str = field(default="sqlite", repr=False)
    """``sqlite`` (the file in ``data_dir``) or ``redis://host:port/db`` (shared by replicas); out of
    the repr, as the tokens are: the URL may hold Redis's password."""
    reuse_port: bool = False
    """Let replicas on one machine listen on one port (``SO_REUSEPORT``: the kernel spreads
    connections over them); only with a shared store."""
    pricer: PricerConfig = field(default_factory=PricerConfig)
    """The learner's settings; each field is a flag of its own (``--policy``, ``--decay``, ...)."""
    log_level: str = "INFO"
    log_format: str = "text"
    mode: str = ONLINE
    currency: str = "USD"
    max_batch: int = 50
    workers: int = 16
    max_concurrent_rpcs: int = 256
    max_message_bytes: int = 1 << 20
    snapshot_every_updates: int = 1000
    snapshot_interval_seconds: float = 60.0
    sweep_interval_seconds: float = 1.0
    shutdown_grace_seconds: float = 5.0
    value_model: str = "default"
    user_cache_size: int = DEFAULT_CACHE_USERS
    learn_responses: bool = True
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_client_ca_file: Path | None = None
    auth_token_file: Path | None = None
    operator_token_file: Path | None = None
    user_id_key_file: Path | None = None
    auth_token: str = field(default="", repr=False)
    operator_token: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        if self.reuse_port and self.store == "sqlite":
            raise ValueError("--reuse-port needs --store redis://…: servers sharing a port must share one "
                             "state, or each would learn only the outcomes it happens to receive")
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("TLS needs both --tls-cert-file and --tls-key-file")
        if self.tls_client_ca_file is not None and self.tls_cert_file is None:
            raise ValueError("--tls-client-ca-file needs --tls-cert-file and --tls-key-file")
        if self.auth_token and self.auth_token_file is not None:
            raise ValueError("give the auth token by PRICEBANDIT_AUTH_TOKEN or --auth-token-file, not both")
        if self.operator_token and self.operator_token_file is not None:
            raise ValueError("give the operator token by PRICEBANDIT_OPERATOR_TOKEN or "
                             "--operator-token-file, not both")


SET_BY_SERVER = {"user_embedding_dim"}
"""``PricerConfig`` fields that are no flag: the embedding size is the value model's (``--value-model``)."""
PRICER_SETTINGS = tuple(spec.name for spec in fields(PricerConfig) if spec.name not in SET_BY_SERVER)
"""The flags that set ``ServerConfig.pricer``, named as its fields."""


def config_of(settings: Mapping[str, Any]) -> ServerConfig:
    """A ServerConfig from settings named as the flags are: those of ``PRICER_SETTINGS`` go into its
    ``PricerConfig``, which checks its own guardrail settings (a spread limit in [0, 1], ...)."""
    pricer = {name: value for name, value in settings.items() if name in PRICER_SETTINGS}
    server = {name: value for name, value in settings.items() if name not in PRICER_SETTINGS}
    return ServerConfig(**server, pricer=PricerConfig(**pricer))


def setting(config: ServerConfig, name: str) -> Any:
    """The value of the setting ``name`` (a flag's), wherever ``config`` holds it."""
    return getattr(config.pricer if name in PRICER_SETTINGS else config, name)


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


def _store(text: str) -> str:
    """``sqlite``, or a ``redis://host:port/db`` URL (``server.redis_store.redis_url`` checks it)."""
    if text == "sqlite":
        return text
    try:
        return redis_url(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _currency(text: str) -> str:
    try:
        return check_pattern("currency", text, CURRENCY_PATTERN, "an ISO 4217 code like 'EUR'")
    except InvalidInput as error:
        raise argparse.ArgumentTypeError(error.problem) from None


PARSERS: dict[str, Callable[[str], Any]] = {
    "host": str, "port": cliargs.port, "metrics_host": str, "metrics_port": cliargs.port,
    "data_dir": Path, "store": _store, "reuse_port": cliargs.switch,
    "reward_window_seconds": cliargs.positive,
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
    "auth_token_file": cliargs.input_file, "operator_token_file": cliargs.input_file,
    "learn_responses": cliargs.switch,
    "user_id_key_file": cliargs.input_file,
    "protected_features": cliargs.names, "unknown_context": cliargs.choice(UNKNOWN_CONTEXT_MODES),
    "spread_limit": _spread_limit, "stable_price_seconds": cliargs.non_negative,
    "mode": cliargs.choice(MODES),
    "l2": cliargs.positive, "category_buckets": cliargs.positive_int,
}
"""How each flag's text (and its environment variable's) becomes a value: one rule for both."""
ENVIRONMENT_ONLY = {"auth_token", "operator_token"}
"""Secrets never become flags: a flag's value shows in ``ps`` to every user of the machine."""
FLAGS = tuple(name for spec in fields(ServerConfig) if spec.name not in ENVIRONMENT_ONLY
              for name in (PRICER_SETTINGS if spec.name == "pricer" else (spec.name,)))
"""Every setting that is a flag, in ``--help`` order: the learner's stand where ``pricer`` does."""
HELP = {
    "host": "address to serve gRPC on",
    "port": "gRPC port (0 picks a free one)",
    "metrics_host": "address of the Prometheus /metrics endpoint (may differ from --host)",
    "metrics_port": "Prometheus port (0 picks a free one)",
    "data_dir": "folder holding the SQLite state file (and the user-id key file unless given)",
    "store": "sqlite: the state file in --data-dir, one server; redis://host:port/db: a Redis that any "
             "number of replicas share (one outcome log, one model)",
    "reuse_port": "true: replicas on this machine may listen on the same --port (SO_REUSEPORT, the "
                  "kernel spreads connections over them); needs --store redis://…",
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
    "l2": "strength of the demand model's prior (its precision per coefficient); larger: slower to move "
          "away from the prior demand curve",
    "category_buckets": "one-hot slots the product categories are hashed into (a feature each)",
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
    "operator_token_file": "file holding the bearer token of operator calls (the rollout gate, "
                           "pricebandit-gate; or set PRICEBANDIT_OPERATOR_TOKEN), another than the "
                           "checkout's; unset: operator calls are refused",
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


def _parser(kind: type[cliargs.CommandParser] = cliargs.CommandParser) -> cliargs.CommandParser:
    parser = kind(
        prog="pricebandit-server", allow_abbrev=False,
        description="Serve personalized prices over gRPC and learn from purchase outcomes.",
    )
    defaults = ServerConfig()
    for name in FLAGS:
        parser.add_argument(flag_name(name), dest=name, type=PARSERS[name],
                            help=f"{HELP[name]} (env {env_name(name)}; "
                                 f"default {_render(setting(defaults, name))})")
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
    values: dict[str, Any] = {name: environ.get(env_name(name), "") for name in ENVIRONMENT_ONLY}
    source: dict[str, str] = {}
    for name in FLAGS:
        variable = env_name(name)
        # Read even when a flag overrides it: a bad variable is a mistake waiting for the next start.
        from_environment = cliargs.environment_value(parser, environ, variable, PARSERS[name])
        if from_environment is not None:
            values[name], source[name] = from_environment, f"environment variable {variable}"
        if getattr(args, name) is not None:
            values[name], source[name] = getattr(args, name), f"argument {flag_name(name)}"
    policy = values.get("policy", PricerConfig.policy)
    try:
        config = config_of(values)
        Pricer(config.pricer)  # the learner's own rules (grid, decay, policy options), once
    except InvalidInput as error:
        parser.error(_blame(error, policy, source))
    except ValueError as error:
        parser.error(str(error))
    return config


def _blame(error: InvalidInput, policy: str, source: Mapping[str, str]) -> str:
    """The learner's complaint about a field, said of the flag or variable that set it."""
    if error.field in policy_options(policy):
        return f"{source['policy_options']}: {error}"
    if error.field in FLAGS:
        return f"{source.get(error.field, 'argument ' + flag_name(error.field))}: {error.problem}"
    return str(error)


class _RaisingParser(cliargs.CommandParser):
    """A parser for flags that come over the wire: a bad one is a ValueError, not an exit."""

    def error(self, message: str) -> NoReturn:
        raise ValueError(message)


def pricer_flags(pricer: PricerConfig) -> list[str]:
    """The learner settings of ``pricer`` that differ from the defaults, as flags: ``pricer_over`` of
    ``PricerConfig()`` reads them back exactly."""
    defaults = PricerConfig()
    return [text for name in PRICER_SETTINGS if getattr(pricer, name) != getattr(defaults, name)
            for text in (flag_name(name), _render(getattr(pricer, name)))]


def pricer_over(base: PricerConfig, argv: Sequence[str]) -> PricerConfig:
    """``base`` with the learner settings that ``argv`` (``pricebandit-server`` flags) names changed.

    Another ``--policy`` without ``--policy-options`` takes its own defaults (options are per policy).
    ValueError naming the flag for a bad value, or for a flag that is no learner setting (a port, a
    folder, ``--value-model``: not what the rollout gate changes)."""
    args = _parser(_RaisingParser).parse_args(list(argv))
    given = {name: getattr(args, name) for name in FLAGS if getattr(args, name) is not None}
    if given.get("policy", base.policy) != base.policy:
        given.setdefault("policy_options", {})
    others = [flag_name(name) for name in given if name not in PRICER_SETTINGS]
    if others:
        raise ValueError(f"{', '.join(others)}: not a learner setting (the rollout gate changes only "
                         f"those: {', '.join(flag_name(name) for name in PRICER_SETTINGS)})")
    return replace(base, **given)
