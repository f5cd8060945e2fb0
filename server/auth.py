"""Who may call: an optional bearer-token check, and the TLS credentials of the listening port.

The token check runs in one server interceptor before any handler: no ``authorization`` metadata is
UNAUTHENTICATED, a wrong token is PERMISSION_DENIED. The health service stays open so that load
balancers and container health checks need no secret. Tokens are compared in constant time.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc

OPEN_METHODS = frozenset({"/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch"})


def _refusal(handler: grpc.RpcMethodHandler, code: grpc.StatusCode, message: str) -> Any:
    """A handler of the same streaming kind as ``handler`` that only aborts the call."""

    def abort(_request: Any, context: grpc.ServicerContext) -> Any:
        context.abort(code, message)

    kinds: dict[str, Callable[..., Any]] = {
        "unary_unary": grpc.unary_unary_rpc_method_handler,
        "unary_stream": grpc.unary_stream_rpc_method_handler,
        "stream_unary": grpc.stream_unary_rpc_method_handler,
        "stream_stream": grpc.stream_stream_rpc_method_handler,
    }
    for kind, make in kinds.items():
        if getattr(handler, kind) is not None:
            return make(abort, request_deserializer=handler.request_deserializer,
                        response_serializer=handler.response_serializer)
    raise ValueError("handler of unknown kind")


class BearerTokenInterceptor(grpc.ServerInterceptor):
    """Lets a call through only with ``authorization: Bearer <token>`` for one configured token."""

    def __init__(self, token: str) -> None:
        if not token:
            raise ValueError("auth token must not be empty")
        self._expected = f"Bearer {token}".encode()

    def intercept_service(self, continuation: Callable[[Any], Any], details: Any) -> Any:
        handler = continuation(details)
        if handler is None or details.method in OPEN_METHODS:
            return handler
        supplied = dict(details.invocation_metadata or ()).get("authorization")
        if supplied is None:
            return _refusal(handler, grpc.StatusCode.UNAUTHENTICATED,
                            "authorization: this server requires 'authorization: Bearer <token>' metadata")
        if not hmac.compare_digest(str(supplied).encode(), self._expected):
            return _refusal(handler, grpc.StatusCode.PERMISSION_DENIED,
                            "authorization: the bearer token is not valid for this server")
        return handler


def read_token(path: Path) -> str:
    """The token in ``path`` (surrounding whitespace removed); refuses an empty file."""
    token = path.read_text().strip()
    if not token:
        raise ValueError(f"auth token file {path} is empty")
    return token


def server_credentials(cert_file: Path, key_file: Path, client_ca_file: Path | None
                       ) -> grpc.ServerCredentials:
    """TLS for the gRPC port; with a client CA, callers must present a certificate it signed."""
    root = client_ca_file.read_bytes() if client_ca_file else None
    return grpc.ssl_server_credentials(
        [(key_file.read_bytes(), cert_file.read_bytes())], root_certificates=root,
        require_client_auth=root is not None,
    )
