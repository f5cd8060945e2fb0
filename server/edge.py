"""The gRPC edge: the pricing methods registered on raw bytes, so that what arrives is ours to judge.

Why not grpcio's own decoding: it runs before any handler, so an unauthenticated caller's bytes get
decoded; an undecodable request answers INTERNAL, logs a traceback and leaks about 19 KB; a few
garbage Observe streams leave the server unable to stop (issue 11; all reproduced on a bare grpcio
server). So each method is registered with no request deserializer, and as a request stream (a
unary method reads its one message itself). That gives three guarantees:

- the token check (an interceptor) refuses before a byte is decoded;
- bytes are decoded here, inside a try: undecodable ones are INVALID_ARGUMENT naming the message
  type and counted in ``pricebandit_undecodable_requests_total``; in an Observe stream only that
  event is refused;
- the handler runs for every admitted call, even one whose caller left while it waited for a worker
  or whose message gRPC refused as too large, so every call ends with a code the metrics count.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.message import DecodeError, Message
from prometheus_client import Counter

from learner import InvalidInput
from learner.errors import RequestNotReceived
from pricing.v1 import pricing_pb2
from server.servicer import PricingServicer
from server.status import maps_errors

SERVICE = pricing_pb2.DESCRIPTOR.services_by_name["PricingService"]
REFUSAL_SECONDS = 0.2
"""How long a unary call whose request stream ended empty waits to see whether gRPC ends the call
(it refused the message as too large) before it is answered as sending no message."""


def decode(message_type: type[Message], raw: bytes, undecodable: Counter) -> Any:
    """``raw`` as a ``message_type``; InvalidInput naming the type (and counted) if it is not one."""
    try:
        return message_type.FromString(raw)
    except DecodeError as error:
        undecodable.inc()
        name = message_type.DESCRIPTOR.name
        reason = str(error).rpartition(": ")[2] or "corrupt"
        raise InvalidInput(name, f"the {len(raw)} bytes sent are not a {message_type.DESCRIPTOR.full_name} "
                                 f"message ({reason})") from None


@dataclass(frozen=True)
class Method:
    """One pricing method as the edge serves it: its wire types and the servicer's behavior."""

    name: str
    behavior: Callable[[Any, grpc.ServicerContext], Any]
    undecodable: Counter
    service: Any = SERVICE
    """The service's descriptor (``PricingService``, or the operator's)."""

    @property
    def _descriptor(self) -> Any:
        return self.service.methods_by_name[self.name]

    def _type(self, descriptor: Any) -> type[Message]:
        return getattr(pricing_pb2, descriptor.name)  # type: ignore[no-any-return]

    def handler(self) -> grpc.RpcMethodHandler:
        request_type = self._type(self._descriptor.input_type)
        response_type = self._type(self._descriptor.output_type)
        undecodable = self.undecodable
        behavior = self.behavior
        if self._descriptor.client_streaming:
            def run(raw: Iterator[bytes], context: grpc.ServicerContext) -> Any:
                return behavior(_each_decoded(request_type, raw, undecodable), context)
        else:
            def run(raw: Iterator[bytes], context: grpc.ServicerContext) -> Any:
                return behavior(decode(request_type, _one(request_type, raw, context), undecodable),
                                context)
        run.__name__ = self.name
        return grpc.stream_unary_rpc_method_handler(
            maps_errors(run), request_deserializer=None,
            response_serializer=response_type.SerializeToString,
        )


def _one(request_type: type[Message], raw: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
    """The one message of a unary call (later ones are not read, as grpcio's unary handlers do)."""
    try:
        return next(raw)
    except StopIteration:
        # grpcio sometimes ends the stream of a message it refused cleanly, just before it ends the
        # call: a stream that ends with no message is refused only if the call stays alive.
        ended = threading.Event()
        if not context.add_callback(ended.set) or ended.wait(REFUSAL_SECONDS):
            raise _not_received(request_type) from None
        raise InvalidInput(request_type.DESCRIPTOR.name, "no request message was sent") from None
    except grpc.RpcError:
        if context.time_remaining() <= 0:
            raise  # the caller's deadline passed while the call waited for a worker
        raise _not_received(request_type) from None


def _not_received(request_type: type[Message]) -> RequestNotReceived:
    return RequestNotReceived(f"{request_type.DESCRIPTOR.name}: the request did not arrive (larger than "
                              "the server's --max-message-bytes, or the caller left)")


def _each_decoded(request_type: type[Message], raw: Iterator[bytes], undecodable: Counter
                  ) -> Iterator[Any]:
    """Each message of a client stream decoded, or the InvalidInput that says why it is not."""
    for message in raw:
        try:
            yield decode(request_type, message, undecodable)
        except InvalidInput as error:
            yield error


def add_pricing_service(servicer: PricingServicer, server: grpc.Server, undecodable: Counter) -> None:
    """Register every PricingService method of ``servicer`` on ``server``, on raw bytes."""
    add_service(servicer, server, undecodable, SERVICE)


def add_service(servicer: object, server: grpc.Server, undecodable: Counter, service: Any) -> None:
    """Register every method of the service ``service`` describes, as ``servicer`` implements them."""
    handlers = {
        method.name: Method(method.name, getattr(servicer, method.name),
                            undecodable.labels(method.name), service).handler()
        for method in service.methods
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service.full_name, handlers),))
    server.add_registered_method_handlers(service.full_name, handlers)
