"""The composition root: build the store, learner, service, gRPC server and metrics endpoint."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import start_http_server

from learner import Pricer, StoreFailed, build_pricer
from learner.value import load as load_value_model
from pricing.v1 import pricing_pb2
from server.admission import AdmissionInterceptor
from server.adoption import Adoption
from server.auth import BearerTokenInterceptor, operator_interceptor, read_token, server_credentials
from server.config import ServerConfig
from server.edge import add_pricing_service, add_service
from server.gate import RolloutGate
from server.health import ServerHealth
from server.log_lag import LagWatch
from server.logs import RequestIdInterceptor
from server.metrics import Metrics, MetricsInterceptor, create_metrics
from server.operator import OPERATOR_SERVICE, OperatorServicer
from server.pseudonyms import user_id_key
from server.redis_store import RedisStore
from server.service import PricingService
from server.servicer import PricingServicer
from server.store import SQLiteStore
from server.store_watch import StoreWatch
from server.validation import RequestReader

log = logging.getLogger(__name__)

SERVICE_NAME = pricing_pb2.DESCRIPTOR.services_by_name["PricingService"].full_name
FOLLOW_WAIT_SECONDS = 0.5
"""How long the log follower waits for a new entry at a time: its stop takes at most this."""


def package_version() -> str:
    try:
        return metadata.version("pricebandit")
    except metadata.PackageNotFoundError:
        return "0+unknown"


@dataclass
class RunningServer:
    """A started server: its bound ports, and the parts tests and the CLI need to reach."""

    config: ServerConfig
    server: grpc.Server
    port: int
    metrics_port: int
    service: PricingService
    metrics: Metrics
    health: ServerHealth
    _metrics_http: object
    _housekeeper: threading.Thread
    _stopping: threading.Event
    _admission: AdmissionInterceptor
    _follower: threading.Thread | None = None
    """On a shared store: the thread that learns the other replicas' outcomes (``_follow_log``)."""
    _lag_watch: LagWatch | None = None
    """On a shared store: how far this replica trails the log, for health's detail."""
    _watch: StoreWatch = field(init=False)

    def __post_init__(self) -> None:
        self._watch = StoreWatch(self.service.store, self.health.store)

    @property
    def address(self) -> str:
        return f"{self.config.host}:{self.port}"

    @property
    def state(self) -> str:
        """Where the state is, for the log (a Redis URL without its password)."""
        store = self.service.store
        return store.where if isinstance(store, RedisStore) else str(self.config.data_dir)

    def load(self) -> None:
        """Recover state (health NOT_SERVING meanwhile), then serve."""
        self.service.recover()
        self._housekeeper.start()
        for thread in (self._follower, self._lag_watch):
            if thread is not None:
                thread.start()
        self._watch.start()
        self.health.loaded()

    def stop(self) -> None:
        """Health NOT_SERVING, drain in-flight RPCs, stop housekeeping, write a final snapshot.

        Raises StoreFailed, once everything is closed, if the final expiry or snapshot failed.
        """
        self._watch.stop()
        if self._lag_watch is not None:
            self._lag_watch.stop()
        self.health.stopping()
        self.service.stop_serving()
        self.server.stop(self.config.shutdown_grace_seconds).wait()
        self._admission.close()
        self._stopping.set()
        for thread in (self._housekeeper, self._follower):
            if thread is not None and thread.is_alive():
                thread.join()
        try:
            self.service.expire_due()
            saved = self.service.snapshot_if_due(force=True)
        finally:
            self.service.store.close()
            self._metrics_http.shutdown()  # type: ignore[attr-defined]
            self._metrics_http.server_close()  # type: ignore[attr-defined]
        if saved:
            log.info("stopped; model %s saved", self.service.pricer.model_version)
        else:  # already in the newest snapshot, or a refused start that must not overwrite saved state
            log.info("stopped; nothing new to save")


def _housekeeping(service: PricingService, interval: float, stopping: threading.Event) -> None:
    """Expire due quotes and write snapshots until told to stop; a store failure is retried."""
    while not stopping.wait(interval):
        try:
            service.expire_due()
            service.forget_stable_prices()
            service.snapshot_if_due()
        except StoreFailed:
            continue  # the store watch reports it once, and health says NOT_SERVING
        except Exception:
            log.exception("housekeeping failed; retrying in %.1f s", interval)


def _or_nan(read: Callable[[], float]) -> Callable[[], float]:
    """A gauge's reading of the store, NaN while the store fails: the rest of /metrics still answers."""
    def gauge() -> float:
        try:
            return read()
        except StoreFailed:
            return math.nan

    return gauge


def _follow_log(service: PricingService, store: RedisStore, stopping: threading.Event) -> None:
    """A replica learns the outcomes the other replicas log, in log order, soon after each lands
    (``XREAD BLOCK`` wakes it); a store failure is retried (the store watch reports it)."""
    while not stopping.is_set():
        try:
            if store.wait_for_log(service.last_applied, FOLLOW_WAIT_SECONDS):
                service.follow_log()
        except StoreFailed:
            stopping.wait(FOLLOW_WAIT_SECONDS)
        except Exception:
            log.exception("following the outcome log failed; retrying in %.1f s", FOLLOW_WAIT_SECONDS)
            stopping.wait(FOLLOW_WAIT_SECONDS)


def _listen(server: grpc.Server, config: ServerConfig) -> int:
    """Bind the gRPC port; OSError names the flags when it cannot be bound."""
    address = f"{config.host}:{config.port}"
    try:
        if config.tls_cert_file and config.tls_key_file:
            credentials = server_credentials(config.tls_cert_file, config.tls_key_file,
                                             config.tls_client_ca_file)
            port = server.add_secure_port(address, credentials)
        else:
            port = server.add_insecure_port(address)
    except RuntimeError:  # recent grpcio raises where older versions returned 0
        port = 0
    if port == 0:
        raise OSError(f"--host/--port: cannot listen on {address} (in use or not permitted)")
    return port


def _serve_metrics(config: ServerConfig, metrics: Metrics) -> Any:
    """Start the /metrics endpoint; OSError names the flags when its port cannot be bound."""
    try:
        http, _ = start_http_server(config.metrics_port, config.metrics_host, registry=metrics.registry)
    except OSError as error:
        raise OSError(f"--metrics-host/--metrics-port: cannot serve metrics on "
                      f"{config.metrics_host}:{config.metrics_port} ({error.strerror})") from None
    return http


def _tokens(config: ServerConfig) -> tuple[str, str]:
    """The checkout's bearer token and the operator's ("" where none is configured); ValueError when
    they are the same (a checkout could then change what the server does)."""
    checkout = config.auth_token or (read_token(config.auth_token_file) if config.auth_token_file else "")
    operator = config.operator_token or (read_token(config.operator_token_file)
                                         if config.operator_token_file else "")
    if operator and operator == checkout:
        raise ValueError("the operator token must not be the checkout's auth token: a checkout could then "
                         "switch the server's configuration")
    return checkout, operator


def open_store(config: ServerConfig) -> SQLiteStore | RedisStore:
    """The one place the backend is chosen (``--store``)."""
    if config.store == "sqlite":
        return SQLiteStore(config.data_dir)
    return RedisStore(config.store)


def build_server(config: ServerConfig) -> RunningServer:
    """Assemble and start a server (health NOT_SERVING until ``load()`` has recovered the state)."""
    value_model = None if config.value_model == "none" else load_value_model(config.value_model)
    store = open_store(config)
    try:
        key = user_id_key(config.data_dir, config.user_id_key_file, may_create=not store.keyed_users)
        migrated = store.use_user_key(key)
    except BaseException:
        store.close()
        raise
    if migrated:
        log.info("replaced the raw user ids of %d stored rows by their keyed hashes", migrated)
    try:
        adopted = store.adopted()
        if adopted is not None:  # the rollout gate's switch outlives a restart (server/adoption.py)
            config = Adoption.from_json(adopted).over(config)
        # Replicas change shoppers' states too: a cache here would answer with stale ones.
        cache_users = 0 if store.shared_log else config.user_cache_size
        pricer = build_pricer(config.pricer, value_model, store, cache_users=cache_users)
        if isinstance(store, RedisStore):  # replicas apply one log: with one learner configuration
            store.use_learner(pricer.config.decision_config())
        tokens = _tokens(config)
    except BaseException:
        store.close()
        raise
    serving: list[PricingService] = []

    def live() -> Pricer:
        """The Pricer serving now, for the gauges: the rollout gate may replace the service's."""
        return serving[0].pricer if serving else pricer

    def applied() -> int:
        return serving[0].last_applied if serving else 0

    metrics = create_metrics(
        policy=config.pricer.policy, version=package_version(), n_arms=len(pricer.grid),
        pending_count=_or_nan(store.pending_count), model_updates_now=lambda: live().updates,
        protected_features=config.pricer.protected_features,
        stock_summary=lambda: live().stock_summary(time.time()), log_applied=applied,
        log_lag=_or_nan(lambda: store.last_seq() - applied()),
    )
    service = PricingService(
        pricer, store, metrics, snapshot_every_updates=config.snapshot_every_updates,
        snapshot_interval_seconds=config.snapshot_interval_seconds,
        learn_responses=config.learn_responses, mode=config.mode,
    )
    serving.append(service)
    admission = AdmissionInterceptor(f"/{SERVICE_NAME}/", config.max_concurrent_rpcs,
                                     metrics.count_refused)
    interceptors: list[grpc.ServerInterceptor] = [admission, RequestIdInterceptor(),
                                                  MetricsInterceptor(metrics)]
    checkout_token, operator_token = tokens
    if checkout_token:
        interceptors.append(BearerTokenInterceptor(checkout_token))
    interceptors.append(operator_interceptor(operator_token))
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=config.workers, thread_name_prefix="rpc"),
        interceptors=interceptors,
        options=[("grpc.max_receive_message_length", config.max_message_bytes),
                 ("grpc.so_reuseport", int(config.reuse_port))],
    )
    reader = RequestReader(pricer.features, config.currency, config.max_batch, key.pseudonym)
    add_pricing_service(PricingServicer(service, reader), server, metrics.undecodable_requests)
    add_service(OperatorServicer(RolloutGate(service, config.value_model)), server,
                metrics.undecodable_requests, OPERATOR_SERVICE)
    health_servicer = ServerHealth(("", SERVICE_NAME))
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (SERVICE_NAME, OPERATOR_SERVICE.full_name, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    try:
        port = _listen(server, config)
        metrics_http = _serve_metrics(config, metrics)
    except OSError:
        store.close()
        raise
    server.start()
    stopping = threading.Event()
    housekeeper = threading.Thread(
        target=_housekeeping, args=(service, config.sweep_interval_seconds, stopping),
        name="housekeeping", daemon=True,
    )
    follower = lag_watch = None
    if isinstance(store, RedisStore):
        follower = threading.Thread(target=_follow_log, args=(service, store, stopping),
                                    name="log-follower", daemon=True)
        lag_watch = LagWatch(store, lambda: service.last_applied, health_servicer.lag)
    return RunningServer(
        config=config, server=server, port=port, metrics_port=metrics_http.server_address[1],
        service=service, metrics=metrics, health=health_servicer, _metrics_http=metrics_http,
        _housekeeper=housekeeper, _stopping=stopping, _admission=admission, _follower=follower,
        _lag_watch=lag_watch,
    )
