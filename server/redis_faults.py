"""Name the cause of a Redis failure, so health and every refused call say "unreachable" or "out of
memory", not the client's exception class, and what to do about it."""

from __future__ import annotations

import redis

from learner import StoreFailed

_HINTS = {
    "unreachable": "check that redis-server runs and listens at {url}",
    "timeout": "redis-server at {url} did not answer in time (overloaded, or the network)",
    "loading": "redis-server at {url} is loading its data after a restart: wait",
    "out of memory": "redis-server at {url} reached its maxmemory: raise it, or free memory",
    "persistence failed": "redis-server at {url} cannot write its append-only file or snapshot "
                          "(disk full or not writable): see its log",
    "read-only": "{url} is a read-only Redis replica: point --store at the primary",
    "auth": "redis-server at {url} refused this client: give its password (requirepass) in the URL, "
            "redis://:password@host:port/db, best as PRICEBANDIT_STORE",
    "store error": "see the server log and the Redis log",
}


def _cause(error: redis.RedisError) -> str:
    text = str(error)
    if isinstance(error, redis.BusyLoadingError) or text.startswith("LOADING"):
        return "loading"  # a ConnectionError subclass: before it
    if isinstance(error, redis.OutOfMemoryError) or "OOM" in text.split(" ", 1)[0]:
        return "out of memory"
    if text.startswith("MISCONF"):
        return "persistence failed"
    if isinstance(error, redis.ReadOnlyError) or text.startswith("READONLY"):
        return "read-only"
    if isinstance(error, redis.AuthenticationError) or text.startswith(("NOAUTH", "NOPERM", "WRONGPASS")):
        return "auth"
    if isinstance(error, redis.TimeoutError):
        return "timeout"
    if isinstance(error, redis.ConnectionError):
        return "unreachable"
    return "store error"


def redis_failure(error: redis.RedisError, url: str) -> StoreFailed:
    """The StoreFailed that says what ``error`` means for the store at ``url``."""
    cause = _cause(error)
    return StoreFailed(cause, f"the state store failed: {cause} ({error}); "
                              + _HINTS[cause].format(url=url))
