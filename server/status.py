"""The one table from domain errors to gRPC status codes, and the decorator that applies it."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import grpc

from learner import (
    ConflictingReport,
    InvalidInput,
    PricingError,
    StoreCorrupt,
    Unavailable,
    UnknownQuote,
)

log = logging.getLogger(__name__)

STATUS_OF_ERROR: dict[type[PricingError], grpc.StatusCode] = {
    InvalidInput: grpc.StatusCode.INVALID_ARGUMENT,
    UnknownQuote: grpc.StatusCode.NOT_FOUND,
    ConflictingReport: grpc.StatusCode.ALREADY_EXISTS,
    Unavailable: grpc.StatusCode.UNAVAILABLE,  # with StoreFailed: disk full, read-only, corrupt, ...
    StoreCorrupt: grpc.StatusCode.DATA_LOSS,  # a stored row that cannot be read: restore a backup
}

Handler = TypeVar("Handler", bound=Callable[..., Any])


def status_of(error: PricingError) -> grpc.StatusCode:
    for error_type, code in STATUS_OF_ERROR.items():
        if isinstance(error, error_type):
            return code
    return grpc.StatusCode.INTERNAL


def maps_errors(handler: Handler) -> Handler:
    """Abort the RPC with the mapped status for domain errors; INTERNAL (logged) for bugs."""

    @functools.wraps(handler)
    def wrapper(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return handler(self, request, context)
        except PricingError as error:
            context.abort(status_of(error), str(error))
        except grpc.RpcError:  # reading a client stream: the caller went away; no one to answer
            log.info("%s: the caller cancelled the stream", handler.__name__)
            context.abort(grpc.StatusCode.CANCELLED, "the caller cancelled the stream")
        except Exception:
            log.exception("unexpected error in %s", handler.__name__)
            context.abort(grpc.StatusCode.INTERNAL, "internal error; the request was not completed")

    return wrapper  # type: ignore[return-value]
