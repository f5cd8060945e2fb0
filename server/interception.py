"""What the server's observing interceptors share: run code around each RPC that answers once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import grpc

State = TypeVar("State")


def _status_name(context: grpc.ServicerContext, failed: bool) -> str:
    """The call's final status code: the one the handler set, else OK (or UNKNOWN if it raised)."""
    code = context.code()
    if code is None:
        return "UNKNOWN" if failed else "OK"
    return code.name


def observe_single_answer(
    handler: Any, before: Callable[[grpc.ServicerContext], State],
    after: Callable[[grpc.ServicerContext, State, str], None],
) -> Any:
    """``handler`` with ``before(context)`` run ahead of its behavior and ``after(context, state,
    status code name)`` run when it ends, however it ends, if it answers once (unary or
    client-streaming request); streaming answers and unknown methods (None) pass unchanged."""
    if handler is None:
        return None
    if handler.unary_unary is not None:
        make, inner = grpc.unary_unary_rpc_method_handler, handler.unary_unary
    elif handler.stream_unary is not None:
        make, inner = grpc.stream_unary_rpc_method_handler, handler.stream_unary
    else:
        return handler

    def observed(request: Any, context: grpc.ServicerContext) -> Any:
        state = before(context)
        failed = True
        try:
            response = inner(request, context)
            failed = False
            return response
        finally:
            after(context, state, _status_name(context, failed))

    return make(observed, request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer)
