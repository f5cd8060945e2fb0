"""How many pricing calls may be in flight: past the limit a call is refused at once, and counted.

Why not grpcio's ``maximum_concurrent_rpcs``: it refuses before any interceptor can see the refusal,
so overload never reached ``pricebandit_rpc_requests_total`` and the error-ratio alert could not fire
when it matters most. This interceptor runs first, counts the calls it let in until their handler
ends (``server/edge.py`` makes that handler run for every admitted call), and answers the rest
RESOURCE_EXHAUSTED from a thread of its own, so a refusal never waits behind the queued work. Health
checks and reflection are not limited: a load balancer must see a busy server as alive.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc

from server.interception import observe_single_answer


class _Refusal:
    """The behavior of a refused call; ``experimental_thread_pool`` is grpcio's per-handler pool."""

    def __init__(self, message: str, pool: ThreadPoolExecutor) -> None:
        self.message = message
        self.experimental_thread_pool = pool

    def __call__(self, _requests: Any, context: grpc.ServicerContext) -> Any:
        context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, self.message)


class AdmissionInterceptor(grpc.ServerInterceptor):
    """At most ``limit`` calls to methods under ``prefix`` in flight (queued or running)."""

    def __init__(self, prefix: str, limit: int, refused: Callable[[str], None]) -> None:
        if limit < 1:
            raise ValueError("the limit of calls in flight must be at least 1")
        self._prefix, self._limit, self._refused = prefix, limit, refused
        self._in_flight = 0
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="refuse")
        self._refusal = _Refusal(f"more than {limit} calls in flight (--max-concurrent-rpcs); retry with "
                                 "backoff", self._pool)

    def _release(self, *_: object) -> None:
        with self._lock:
            self._in_flight -= 1

    def intercept_service(self, continuation: Callable[[Any], Any], details: Any) -> Any:
        if not details.method.startswith(self._prefix):
            return continuation(details)
        with self._lock:
            admitted = self._in_flight < self._limit
            self._in_flight += admitted
        if not admitted:
            self._refused(details.method[len(self._prefix):])
            return grpc.stream_unary_rpc_method_handler(self._refusal)
        try:
            handler = continuation(details)
        except BaseException:
            self._release()
            raise
        if handler is None:  # an unknown method: nothing will run
            self._release()
            return handler
        return observe_single_answer(handler, lambda _context: None, self._release)

    def close(self) -> None:
        self._pool.shutdown(wait=False)
