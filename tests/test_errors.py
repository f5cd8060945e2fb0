"""One hierarchy of errors, drawn where it is defined; the store's answers are specific errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from builders import request
from learner import AlreadyClosed, Pricer, PricingError, errors
from learner.value import ModelFileError
from learner.value.train import LogError
from server.store import SQLiteStore


def test_every_error_is_a_pricing_error_drawn_in_the_module_docstring() -> None:
    defined = [value for value in vars(errors).values()
               if isinstance(value, type) and issubclass(value, BaseException)
               and value.__module__ == errors.__name__]
    names = {error.__name__ for error in defined}
    assert {"QuoteIdTaken", "StoreCorrupt", "ModelFileError", "LogError", "AlreadyClosed",
            "StoreFailed", "DataDirInUse"} <= names
    tree = errors.__doc__ or ""
    for error in defined:
        assert issubclass(error, PricingError), error
        assert error is PricingError or f"── {error.__name__} " in tree, error
    assert ModelFileError is errors.ModelFileError and LogError is errors.LogError


def test_closing_a_closed_quote_is_already_closed_not_any_lookup_error(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path)
    decision = Pricer().quote(request("q-1"), now=0.0)
    store.put_pending([decision])
    store.close_quote(decision, "reward", 1.0, True, 1.0)
    with pytest.raises(AlreadyClosed, match="'q-1' is already closed"):
        store.close_quote(decision, "expired", 0.0, True, 2.0)
    store.close()
