"""What ops see besides metrics: health through the life cycle, request ids, structured logs."""

from __future__ import annotations

import json
import logging
import re
import signal
import sys
import threading
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.process import ServerProcess
from builders import product, quote_request
from conftest import DEADLINE, ServerHandle, make_config
from pricing.v1 import pricing_pb2_grpc
from server.app import SERVICE_NAME, build_server
from server.config import parse_config
from server.logs import JsonFormatter

Status = health_pb2.HealthCheckResponse
SECRET_USER = "user-alice@example.com"


def health_of(channel: grpc.Channel) -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    return stub.Check(health_pb2.HealthCheckRequest(service=SERVICE_NAME), timeout=DEADLINE).status


def test_health_is_not_serving_while_loading_serving_after_and_not_serving_at_shutdown(
    tmp_path: Path,
) -> None:
    running = build_server(make_config(tmp_path))
    channel = grpc.insecure_channel(running.address)
    try:
        assert health_of(channel) == Status.NOT_SERVING
        with pytest.raises(grpc.RpcError) as raised:
            pricing_pb2_grpc.PricingServiceStub(channel).Quote(quote_request(), timeout=DEADLINE)
        assert raised.value.code() == grpc.StatusCode.UNAVAILABLE

        running.load()
        assert health_of(channel) == Status.SERVING
        watch = health_pb2_grpc.HealthStub(channel).Watch(
            health_pb2.HealthCheckRequest(service=SERVICE_NAME), timeout=DEADLINE)
        assert next(watch).status == Status.SERVING
        stopper = threading.Thread(target=running.stop)
        stopper.start()
        assert next(watch).status == Status.NOT_SERVING  # said before the port closes
        stopper.join(timeout=DEADLINE)
        assert not stopper.is_alive()
    finally:
        channel.close()


def trailing_request_id(call: grpc.Call) -> str:
    return dict(call.trailing_metadata() or ())["x-request-id"]  # type: ignore[arg-type]


def test_every_answer_carries_the_request_id(pricing: ServerHandle) -> None:
    _, call = pricing.stub.Quote.with_call(quote_request(), metadata=(("x-request-id", "checkout-7:a"),),
                                           timeout=DEADLINE)
    assert trailing_request_id(call) == "checkout-7:a"
    _, call = pricing.stub.Quote.with_call(quote_request(), timeout=DEADLINE)
    generated = trailing_request_id(call)
    assert re.fullmatch(r"[0-9a-f]{16}", generated)
    _, call = pricing.stub.Quote.with_call(quote_request(), timeout=DEADLINE)
    assert trailing_request_id(call) != generated
    for unsafe in ('a" b', "x" * 65):  # replaced, so a log line never carries what a caller injects
        _, call = pricing.stub.Quote.with_call(quote_request(), metadata=(("x-request-id", unsafe),),
                                               timeout=DEADLINE)
        assert re.fullmatch(r"[0-9a-f]{16}", trailing_request_id(call))
    with pytest.raises(grpc.RpcError) as raised:
        pricing.stub.Quote(quote_request(user_id=""), metadata=(("x-request-id", "bad-1"),),
                           timeout=DEADLINE)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert trailing_request_id(raised.value) == "bad-1"  # type: ignore[arg-type]


def test_json_logs_are_one_object_per_line_with_request_ids_and_no_user_ids(
    tmp_path: Path, processes: list[ServerProcess]
) -> None:
    json_server = ServerProcess(tmp_path, "--log-format", "json", "--log-level", "DEBUG")
    processes.append(json_server)
    address = json_server.wait_until_serving()
    with grpc.insecure_channel(address) as channel:
        stub = pricing_pb2_grpc.PricingServiceStub(channel)
        stub.Quote(quote_request(user_id=SECRET_USER), metadata=(("x-request-id", "req-42"),),
                   timeout=DEADLINE)
        with pytest.raises(grpc.RpcError):
            stub.Quote(quote_request(user_id=SECRET_USER, product=product(unit_cost=-1.0)),
                       timeout=DEADLINE)
    json_server.process.send_signal(signal.SIGTERM)
    code, log = json_server.finish()
    assert code == 0, log
    entries = [json.loads(line) for line in log.splitlines()]  # every line is one JSON object
    assert all({"time", "level", "logger", "message"} <= entry.keys() for entry in entries)
    access = [entry for entry in entries if entry["logger"] == "pricebandit.access"]
    assert [(e["rpc_method"], e["code"]) for e in access] == [
        ("/pricing.v1.PricingService/Quote", "OK"), ("/pricing.v1.PricingService/Quote", "INVALID_ARGUMENT")]
    assert access[0]["request_id"] == "req-42"
    assert re.fullmatch(r"[0-9a-f]{16}", access[1]["request_id"])
    assert all(entry["duration_ms"] > 0 for entry in access)
    assert any(entry["message"].startswith("serving pricing.v1 on") for entry in entries)
    assert SECRET_USER not in log


def test_json_formatter_keeps_extras_and_exceptions() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("pricebandit.test", logging.ERROR, __file__, 1, "failed %s", ("x",),
                                   sys.exc_info())
    record.rows = 3
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "failed x" and entry["level"] == "ERROR" and entry["rows"] == 3
    assert entry["time"].endswith("+00:00")
    assert "ValueError: boom" in entry["exception"]
    assert "request_id" not in entry  # outside an RPC there is none


@pytest.mark.parametrize(("argv", "expected"), [([], "text"), (["--log-format", "json"], "json")])
def test_log_format_flag(argv: list[str], expected: str) -> None:
    assert parse_config(argv, {}).log_format == expected


def test_an_unknown_log_format_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_config(["--log-format", "xml"], {})
    assert "log format 'xml' is not one of text, json" in capsys.readouterr().err

