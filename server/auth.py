"""Who may call: bearer-token checks, and the TLS credentials of the listening port.

Two credentials, each checked by a server interceptor before any handler: the checkout's token
(optional) for the pricing service, and the operator's token for the rollout gate
(``OperatorService``), which changes what the server does. No ``authorization`` metadata is
UNAUTHENTICATED, another token (the checkout's on an operator call too) PERMISSION_DENIED. Without
an operator token configured, operator calls are FAILED_PRECONDITION: the gate is never open by
default. The health service stays open so that load balancers and container health checks need no
secret. Tokens are compared in constant time.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc

OPEN_METHODS = frozenset({"/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch"})
OPERATOR_PREFIX = "/pricing.v1.OperatorService/"
"""The operator's methods: only the operator token opens them."""


def is_operator_method(method: str) -> bool:
    return method.startswith(OPERATOR_PREFIX)


def is_checkout_method(method: str) -> bool:
    return method not in OPEN_METHODS and not is_operator_method(method)


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
    """Lets a call to a method ``guards`` selects through only with ``authorization: Bearer <token>``
    for one configured token; other methods pass untouched (another interceptor's)."""

    def __init__(self, token: str, guards: Callable[[str], bool] = is_checkout_method) -> None:
        if not token:
            raise ValueError("auth token must not be empty")
        self._expected = f"Bearer {token}".encode()
        self._guards = guards

    def intercept_service(self, continuation: Callable[[Any], Any], details: Any) -> Any:
        handler = continuation(details)
        if handler is None or not self._guards(details.method):
            return handler
        supplied = dict(details.invocation_metadata or ()).get("authorization")
        if supplied is None:
            return _refusal(handler, grpc.StatusCode.UNAUTHENTICATED,
                            "authorization: this server requires 'authorization: Bearer <token>' metadata")
        if not hmac.compare_digest(str(supplied).encode(), self._expected):
            return _refusal(handler, grpc.StatusCode.PERMISSION_DENIED,
                            "authorization: the bearer token is not valid for this server")
        return handler


class ClosedMethodsInterceptor(grpc.ServerInterceptor):
    """Refuses every call to a method ``closes`` selects with FAILED_PRECONDITION and ``message``:
    the operator's methods on a server started without an operator token."""

    def __init__(self, closes: Callable[[str], bool], message: str) -> None:
        self._closes, self._message = closes, message

    def intercept_service(self, continuation: Callable[[Any], Any], details: Any) -> Any:
        handler = continuation(details)
        if handler is None or not self._closes(details.method):
            return handler
        return _refusal(handler, grpc.StatusCode.FAILED_PRECONDITION, self._message)


def operator_interceptor(token: str) -> grpc.ServerInterceptor:
    """The operator methods' guard: the operator token, or closed when none is configured."""
    if token:
        return BearerTokenInterceptor(token, is_operator_method)
    return ClosedMethodsInterceptor(is_operator_method, "operator calls need an operator token: start the "
                                    "server with --operator-token-file (or PRICEBANDIT_OPERATOR_TOKEN)")


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
