"""The one table from domain errors to gRPC status codes, and the wrapper that applies it."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from learner import (
    ConflictingReport,
    InvalidInput,
    PricingError,
    StoreCorrupt,
    Unavailable,
    UnknownQuote,
)
from learner.errors import DeadlinePassed, NotNow, RequestNotReceived
from server.logs import REQUEST_ID_KEY, request_id

log = logging.getLogger(__name__)

STATUS_OF_ERROR: dict[type[PricingError], grpc.StatusCode] = {
    InvalidInput: grpc.StatusCode.INVALID_ARGUMENT,
    UnknownQuote: grpc.StatusCode.NOT_FOUND,
    ConflictingReport: grpc.StatusCode.ALREADY_EXISTS,
    Unavailable: grpc.StatusCode.UNAVAILABLE,  # with StoreFailed: disk full, read-only, corrupt, ...
    StoreCorrupt: grpc.StatusCode.DATA_LOSS,  # a stored row that cannot be read: restore a backup
    DeadlinePassed: grpc.StatusCode.DEADLINE_EXCEEDED,
    RequestNotReceived: grpc.StatusCode.RESOURCE_EXHAUSTED,
    NotNow: grpc.StatusCode.FAILED_PRECONDITION,
}

Behavior = TypeVar("Behavior", bound=Callable[..., Any])


def status_of(error: PricingError) -> grpc.StatusCode:
    for error_type, code in STATUS_OF_ERROR.items():
        if isinstance(error, error_type):
            return code
    return grpc.StatusCode.INTERNAL


class _Status(NamedTuple):
    code: grpc.StatusCode
    details: str
    trailing_metadata: tuple[tuple[str, str | bytes], ...]


def field_refusal(error: InvalidInput) -> _Status:
    """INVALID_ARGUMENT with the standard machine-readable detail, a ``google.rpc.BadRequest`` whose
    one field violation names the field as the caller spells it: a client maps a refusal to its
    form field without parsing the message (``grpc_status.rpc_status.from_call``). Aborting with a
    status replaces the trailing metadata, so the RPC's request id goes along again."""
    violation = error_details_pb2.BadRequest.FieldViolation(field=error.field, description=error.problem)
    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.BadRequest(field_violations=[violation]))
    rich = rpc_status.to_status(status_pb2.Status(code=grpc.StatusCode.INVALID_ARGUMENT.value[0],
                                                  message=str(error), details=[detail]))
    return _Status(rich.code, rich.details,
                   (*rich.trailing_metadata, (REQUEST_ID_KEY, request_id.get())))


def maps_errors(behavior: Behavior) -> Behavior:
    """``behavior(request, context)`` that aborts with the mapped status for domain errors, and
    INTERNAL (logged) for bugs; a client stream that breaks is DEADLINE_EXCEEDED if the deadline
    passed, else CANCELLED (the caller went away; no one hears the answer)."""

    @functools.wraps(behavior)
    def wrapper(request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return behavior(request, context)
        except InvalidInput as error:
            context.abort_with_status(field_refusal(error))  # type: ignore[arg-type]
        except PricingError as error:
            context.abort(status_of(error), str(error))
        except grpc.RpcError:
            if context.time_remaining() <= 0:
                context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "the caller's deadline passed")
            else:
                log.info("%s: the caller cancelled the stream", behavior.__name__)
                context.abort(grpc.StatusCode.CANCELLED, "the caller cancelled the stream")
        except Exception:
            log.exception("unexpected error in %s", behavior.__name__)
            context.abort(grpc.StatusCode.INTERNAL, "internal error; the request was not completed")

    return wrapper  # type: ignore[return-value]
