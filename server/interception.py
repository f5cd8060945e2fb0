"""What the server's observing interceptors share: wrapping RPCs that answer once, reading the code."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

Behavior = Callable[[Any, grpc.ServicerContext], Any]


def wrap_single_answer(handler: Any, wrap: Callable[[Behavior], Behavior]) -> Any:
    """``handler`` with its behavior passed through ``wrap`` if it answers once (unary or
    client-streaming request); streaming answers and unknown methods (None) pass unchanged."""
    if handler is None:
        return None
    if handler.unary_unary is not None:
        make, inner = grpc.unary_unary_rpc_method_handler, handler.unary_unary
    elif handler.stream_unary is not None:
        make, inner = grpc.stream_unary_rpc_method_handler, handler.stream_unary
    else:
        return handler
    return make(wrap(inner), request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer)


def status_name(context: grpc.ServicerContext, failed: bool) -> str:
    """The call's final status code: the one the handler set, else OK (or UNKNOWN if it raised)."""
    code = context.code()
    if code is None:
        return "UNKNOWN" if failed else "OK"
    return code.name
