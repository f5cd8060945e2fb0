"""Domain errors of the pricing learner.

The server maps each to one gRPC status code in a single table (``server/status.py``)::

    PricingError
     ├── InvalidInput        a field is missing or out of range          -> INVALID_ARGUMENT
     ├── UnknownQuote        a reward for a quote never issued           -> NOT_FOUND
     ├── ConflictingReport   a reward or quote id that contradicts one   -> ALREADY_EXISTS
     │                       seen before
     ├── Unavailable         loading, shutting down, or the store is down -> UNAVAILABLE
     ├── DeadlinePassed      the caller's deadline passed before the work -> DEADLINE_EXCEEDED
     │                       was stored or learned (nothing was)
     ├── RequestNotReceived  the request message never arrived (gRPC     -> RESOURCE_EXHAUSTED
     │                       refused it as too large, or the caller left)
     └── SnapshotError       a snapshot that cannot be loaded (wrong schema, corrupt, other config)
"""

from __future__ import annotations


class PricingError(Exception):
    """Base of every error the pricing domain raises on purpose."""


class InvalidInput(PricingError, ValueError):
    """A caller's field is missing or out of range. ``field`` names it as the caller spelled it."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class UnknownQuote(PricingError, LookupError):
    """A reward names a quote id that this service never issued."""

    def __init__(self, quote_id: str) -> None:
        super().__init__(f"quote_id: no quote {quote_id!r} was issued by this service")
        self.quote_id = quote_id


class ConflictingReport(PricingError):
    """A report contradicts an earlier one for the same id (a different outcome or request)."""


class Unavailable(PricingError):
    """The service cannot answer now (loading, shutting down, store down); retrying may succeed."""


class SnapshotError(PricingError):
    """A learner snapshot cannot be loaded: corrupt, another schema version, or another setup."""


class DeadlinePassed(PricingError):
    """The caller's deadline passed before the call's work was stored: nothing was stored or learned,
    so no work is done for a caller who has left (a retry with the same id starts afresh)."""


class RequestNotReceived(PricingError):
    """The request stream broke before its message arrived, with time left: gRPC refused the
    message as larger than the server's limit (a caller cancelling in that instant looks the same)."""
