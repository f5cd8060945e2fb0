"""Only trusted callers get in: bearer tokens, TLS and mutual TLS; and no personal data leaks out."""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
import trustme
from grpc_health.v1 import health_pb2, health_pb2_grpc

from builders import product, quote_request
from conftest import DEADLINE, ServerHandle, make_config
from pricing.v1 import pricing_pb2_grpc
from server.app import RunningServer, build_server
from server.config import parse_config
from server.decision_log import dsjson_lines
from server.healthcheck import main as healthcheck

TOKEN = "s3cret-token"


def call_quote(channel: grpc.Channel, metadata: tuple[tuple[str, str], ...] = ()) -> grpc.StatusCode:
    try:
        pricing_pb2_grpc.PricingServiceStub(channel).Quote(quote_request(), timeout=DEADLINE,
                                                           metadata=metadata)
    except grpc.RpcError as error:
        return error.code()
    return grpc.StatusCode.OK


def test_bearer_token_is_required_and_checked(start_server: Callable[..., ServerHandle]) -> None:
    handle = start_server(auth_token=TOKEN)
    assert handle.channel is not None
    with pytest.raises(grpc.RpcError) as missing:
        handle.quote()
    assert missing.value.code() is grpc.StatusCode.UNAUTHENTICATED
    assert "Bearer" in missing.value.details()
    assert call_quote(handle.channel, (("authorization", "Bearer wrong"),)) is \
        grpc.StatusCode.PERMISSION_DENIED
    assert call_quote(handle.channel, (("authorization", TOKEN),)) is grpc.StatusCode.PERMISSION_DENIED
    assert call_quote(handle.channel, (("authorization", f"Bearer {TOKEN}"),)) is grpc.StatusCode.OK
    health = health_pb2_grpc.HealthStub(handle.channel).Check(health_pb2.HealthCheckRequest(),
                                                               timeout=DEADLINE)
    assert health.status == health_pb2.HealthCheckResponse.SERVING  # probes need no secret
    requests = handle.server.metrics.rpc_requests
    assert requests.labels("Quote", "UNAUTHENTICATED")._value.get() == 1.0
    assert requests.labels("Quote", "PERMISSION_DENIED")._value.get() == 2.0


def test_token_comes_from_a_file_or_the_environment_never_a_flag(tmp_path: Path) -> None:
    (tmp_path / "token").write_text(f"  {TOKEN}\n")
    config = parse_config(["--auth-token-file", str(tmp_path / "token")], {})
    assert config.auth_token_file == tmp_path / "token"
    assert parse_config([], {"PRICEBANDIT_AUTH_TOKEN": TOKEN}).auth_token == TOKEN
    assert TOKEN not in repr(parse_config([], {"PRICEBANDIT_AUTH_TOKEN": TOKEN}))
    with pytest.raises(SystemExit):
        parse_config(["--auth-token", TOKEN], {})


def test_token_file_protects_the_server(start_server: Callable[..., ServerHandle], tmp_path: Path) -> None:
    (tmp_path / "token").write_text(TOKEN + "\n")
    handle = start_server(auth_token_file=tmp_path / "token")
    assert handle.channel is not None
    assert call_quote(handle.channel) is grpc.StatusCode.UNAUTHENTICATED
    assert call_quote(handle.channel, (("authorization", f"Bearer {TOKEN}"),)) is grpc.StatusCode.OK


@pytest.fixture(scope="module")
def authority() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_files(tmp_path: Path, authority: trustme.CA) -> dict[str, Path]:
    paths = {name: tmp_path / f"{name}.pem" for name in ("ca", "cert", "key", "client_cert", "client_key")}
    authority.cert_pem.write_to_path(str(paths["ca"]))
    server_cert = authority.issue_cert("127.0.0.1", "localhost")
    server_cert.private_key_pem.write_to_path(str(paths["key"]))
    server_cert.cert_chain_pems[0].write_to_path(str(paths["cert"]))
    client_cert = authority.issue_cert("checkout.internal")
    client_cert.private_key_pem.write_to_path(str(paths["client_key"]))
    client_cert.cert_chain_pems[0].write_to_path(str(paths["client_cert"]))
    return paths


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[Callable[..., RunningServer]]:
    servers: list[RunningServer] = []

    def start(**overrides: object) -> RunningServer:
        running = build_server(make_config(tmp_path / f"data{len(servers)}", **overrides))
        running.load()
        servers.append(running)
        return running

    yield start
    for running in servers:
        running.stop()


def test_tls_serves_trusting_clients_only(tls_server: Callable[..., RunningServer],
                                          tls_files: dict[str, Path]) -> None:
    running = tls_server(tls_cert_file=tls_files["cert"], tls_key_file=tls_files["key"])
    trusted = grpc.ssl_channel_credentials(tls_files["ca"].read_bytes())
    with grpc.secure_channel(running.address, trusted) as channel:
        assert call_quote(channel) is grpc.StatusCode.OK
    with grpc.insecure_channel(running.address) as channel:
        assert call_quote(channel) is grpc.StatusCode.UNAVAILABLE
    assert healthcheck(["--address", running.address, "--tls-ca-file", str(tls_files["ca"])]) == 0


def test_mutual_tls_requires_a_client_certificate(tls_server: Callable[..., RunningServer],
                                                  tls_files: dict[str, Path]) -> None:
    running = tls_server(tls_cert_file=tls_files["cert"], tls_key_file=tls_files["key"],
                         tls_client_ca_file=tls_files["ca"])
    ca = tls_files["ca"].read_bytes()
    with grpc.secure_channel(running.address, grpc.ssl_channel_credentials(ca)) as channel:
        assert call_quote(channel) is grpc.StatusCode.UNAVAILABLE
    with_cert = grpc.ssl_channel_credentials(ca, tls_files["client_key"].read_bytes(),
                                             tls_files["client_cert"].read_bytes())
    with grpc.secure_channel(running.address, with_cert) as channel:
        assert call_quote(channel) is grpc.StatusCode.OK


@pytest.mark.parametrize(
    ("flags", "message"),
    [(["--tls-cert-file", "c.pem"], "TLS needs both"),
     (["--tls-client-ca-file", "ca.pem"], "needs --tls-cert-file")],
)
def test_incomplete_tls_settings_are_refused(flags: list[str], message: str, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / flags[1]).write_text("PEM")  # the file exists: what is refused is the missing other one
    with pytest.raises(SystemExit):
        parse_config([flags[0], str(tmp_path / flags[1])], {})
    assert message in capsys.readouterr().err


def test_metrics_can_listen_on_another_interface(tls_server: Callable[..., RunningServer]) -> None:
    running = tls_server(metrics_host="127.0.0.2")
    with urllib.request.urlopen(f"http://127.0.0.2:{running.metrics_port}/metrics", timeout=DEADLINE) as r:
        assert b"pricebandit_build_info" in r.read()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{running.metrics_port}/metrics", timeout=DEADLINE)


def test_no_user_id_reaches_logs_metrics_or_the_decision_log(
    start_server: Callable[..., ServerHandle], caplog: pytest.LogCaptureFixture
) -> None:
    user = "alice.doe@example.com"
    caplog.set_level(logging.DEBUG)
    handle = start_server(reward_window_seconds=0.2)
    quotes = [handle.quote(user_id=user, quote_id=f"q-{i}") for i in range(3)]
    handle.reward(quotes[0].quote_id, purchased=True)
    with pytest.raises(grpc.RpcError):
        handle.quote(user_id=user, product=product(unit_cost=-1.0))
    with pytest.raises(grpc.RpcError):
        handle.quote(user_id=user, quote_id="q-1", product=product(list_price=500.0))
    time.sleep(0.3)  # the other two quotes expire, and are logged, by the restart
    handle.restart()
    with urllib.request.urlopen(f"http://127.0.0.1:{handle.server.metrics_port}/metrics",
                                timeout=DEADLINE) as response:
        metrics = response.read().decode()
    lines = list(dsjson_lines(handle.server.service.store))
    assert len(lines) == 3 and all(json.loads(line)["EventId"].startswith("q-") for line in lines)
    for text in (caplog.text, metrics, *lines):
        assert user not in text and "alice" not in text
