"""Every error the project raises on purpose, in one hierarchy.

A caller's request fails with one gRPC status code per class, from a single table
(``server/status.py``); the other classes stop a start or a command with a message that says what
to do (exit 2), or are answers between the store and the service that never reach a caller::

    PricingError
     ├── InvalidInput (ValueError)   a field is missing or out of range        -> INVALID_ARGUMENT
     ├── UnknownQuote (LookupError)  a reward for a quote never issued         -> NOT_FOUND
     ├── ConflictingReport           a reward or quote id that contradicts     -> ALREADY_EXISTS
     │                               one seen before
     ├── Unavailable                 loading, shutting down                    -> UNAVAILABLE
     │    └── StoreFailed            the store cannot read or write now: disk full, read-only,
     │                               I/O error, corrupt, busy, or the state file was deleted or
     │                               replaced (``cause``); also a StoreError
     ├── StoreError                  the state store (``server/store.py``)
     │    ├── StoreFailed            (above)
     │    ├── StoreCorrupt           the state file is damaged: restore it     -> DATA_LOSS
     │    ├── DataDirInUse           another server owns the data dir (start refused)
     │    ├── QuoteIdTaken           a concurrent request took this quote id (the service re-reads)
     │    ├── AlreadyClosed          a quote closed by another thread first (the service answers
     │                               as for a repeated report)
     │    └── LogMoved               a switch meant to follow an entry that is no longer the last
     │                               (the service catches its successor up and tries again)
     ├── DeadlinePassed              the caller's deadline passed before the   -> DEADLINE_EXCEEDED
     │                               work was stored or learned (nothing was)
     ├── RequestNotReceived          the request message never arrived (gRPC   -> RESOURCE_EXHAUSTED
     │                               refused it as too large, or the caller left)
     ├── NotNow                      an operator call the server's state does  -> FAILED_PRECONDITION
     │                               not allow (online when not in shadow)
     ├── SnapshotError               a snapshot that cannot be loaded (wrong schema, corrupt, other
     │                               config)
     ├── ModelFileError              a value model file that cannot be served
     ├── KeyFileError                the user-id key file is missing, unreadable or not the
     │                               state file's (start refused)
     └── LogError (ValueError)       a behavior log ``pricebandit-train`` cannot read

A class without a status code that reaches a handler is a bug there: ``INTERNAL``.
"""

from __future__ import annotations


class PricingError(Exception):
    """Base of every error the project raises on purpose."""


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


class StoreError(PricingError):
    """Raised by the state store; the subclasses say what the service or the operator does next."""


class StoreFailed(StoreError, Unavailable):
    """The store cannot read or write now. ``cause`` is a short name ("disk full", "read-only",
    "I/O error", "corrupt", "busy", "replaced"); the message says it, the database's own words and
    what to do. Nothing was written by the operation that raised it."""

    def __init__(self, cause: str, message: str) -> None:
        super().__init__(message)
        self.cause = cause


class StoreCorrupt(StoreError):
    """The store's file cannot be used as it is; the message says what to do."""


class DataDirInUse(StoreError):
    """Another process holds the data dir's lock: two servers on one state file lose outcomes."""


class QuoteIdTaken(StoreError):
    """A pending or logged quote already has this id (two requests raced with one caller id)."""


class LogMoved(StoreError):
    """An entry meant to follow log entry ``expected`` was not written: the log is at ``found`` now."""

    def __init__(self, expected: int, found: int) -> None:
        super().__init__(f"the log moved on from entry {expected} to {found}")
        self.expected, self.found = expected, found


class AlreadyClosed(StoreError):
    """The quote is no longer pending: another thread (a retry, the sweeper) closed it first."""

    def __init__(self, quote_id: str) -> None:
        super().__init__(f"quote {quote_id!r} is already closed")
        self.quote_id = quote_id


class SnapshotError(PricingError):
    """A learner snapshot cannot be loaded: corrupt, another schema version, or another setup."""


class ModelFileError(PricingError):
    """A value model file that cannot be served: missing, corrupt, another schema or encoding."""


class KeyFileError(PricingError):
    """The user-id key file (``server/pseudonyms.py``) cannot be used; the message says what to do."""


class LogError(PricingError, ValueError):
    """A behavior log that cannot be read; the message names the file, line and field."""


class DeadlinePassed(PricingError):
    """The caller's deadline passed before the call's work was stored: nothing was stored or learned,
    so no work is done for a caller who has left (a retry with the same id starts afresh)."""


class RequestNotReceived(PricingError):
    """The request stream broke before its message arrived, with time left: gRPC refused the
    message as larger than the server's limit (a caller cancelling in that instant looks the same)."""


class NotNow(PricingError):
    """An operator call the server's state does not allow (FAILED_PRECONDITION): switching a server
    online that is not in shadow mode, evaluating on a log with no decision."""
