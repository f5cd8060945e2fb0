"""No user id in clear in the state file: keyed pseudonyms, the key's life cycle, and the migration
of a state file written before pseudonyms."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from builders import request
from conftest import DEADLINE, ServerHandle
from learner import Pricer
from learner.value import BehaviorEvent, UserStates, load
from pricing.v1 import pricing_pb2
from server.pseudonyms import KEY_FILENAME, UserIdKey
from server.store import LEGACY_SCHEMA_VERSION, SQLiteStore

SECRET_USER = "alice.secret@example.com"


def state_bytes(data_dir: Path) -> bytes:
    """Everything SQLite keeps for the data dir: the database file and its write-ahead log."""
    return b"".join(path.read_bytes() for path in sorted(data_dir.glob(f"{SQLiteStore.FILENAME}*")))


def view(seconds_ago: float) -> pricing_pb2.BehaviorEvent:
    stamp = Timestamp()
    stamp.FromNanoseconds(int((time.time() - seconds_ago) * 1e9))
    return pricing_pb2.BehaviorEvent(user_id=SECRET_USER, timestamp=stamp,
                                     event_type=pricing_pb2.BehaviorEvent.VIEW, product_id="sku-9",
                                     category="shoes", price=90.0, unit_cost=40.0, list_price=100.0)


def test_no_user_id_is_stored_in_clear(start_server: Callable[..., ServerHandle]) -> None:
    pricing = start_server()
    pricing.stub.Observe(iter([view(60)]), timeout=DEADLINE)
    rewarded = pricing.quote(user_id=SECRET_USER, recent_events=[view(30)])
    pricing.reward(rewarded.quote_id, True)
    pricing.quote(user_id=SECRET_USER)  # left pending
    pricing.stub.QuoteBatch(pricing_pb2.QuoteBatchRequest(
        user_id=SECRET_USER, products=[pricing_pb2.Product(product_id="sku-2", unit_cost=5, list_price=9)]),
        timeout=DEADLINE)
    pseudonym = pricing.pseudonym(SECRET_USER)
    users = pricing.server.service.pricer.users
    assert users is not None and users.get(pseudonym).events == 3  # observed, sent with a quote, closed
    pricing.stop()
    stored = state_bytes(pricing.config.data_dir)
    assert SECRET_USER.encode() not in stored and b"alice" not in stored
    assert pseudonym.encode() in stored  # the shopper is found again by the keyed hash
    assert (pricing.config.data_dir / KEY_FILENAME).stat().st_mode & 0o077 == 0  # the owner's only


def test_the_pseudonym_depends_on_the_key() -> None:
    one, other = UserIdKey(bytes(32)), UserIdKey(bytes(range(32)))
    assert one.pseudonym(SECRET_USER) == one.pseudonym(SECRET_USER) != other.pseudonym(SECRET_USER)
    assert one.pseudonym("a") != one.pseudonym("b") and SECRET_USER not in one.pseudonym(SECRET_USER)


def test_a_state_file_without_its_key_is_refused(tmp_path: Path, refused_start: Callable[..., str],
                                                  start_server: Callable[..., ServerHandle]) -> None:
    pricing = start_server()
    pricing.quote(user_id=SECRET_USER)
    pricing.stop()
    data_dir = pricing.config.data_dir
    key_file = data_dir / KEY_FILENAME
    saved = key_file.read_text()
    key_file.unlink()
    log = refused_start(data_dir)
    assert "user-id.key does not exist, but the state file's users were keyed by it" in log
    other = tmp_path / "other.key"
    other.write_text(bytes(range(32)).hex())
    log = refused_start(data_dir, "--user-id-key-file", str(other))
    assert "stores its users under another user-id key" in log
    other.write_text("not hex")
    assert "must hold at least 32 hex digits" in refused_start(data_dir, "--user-id-key-file", str(other))
    key_file.write_text(saved)
    pricing.start()  # the right key: served again, the pending quote still there
    assert pricing.server.service.store.pending_count() == 1


def test_a_state_file_with_raw_user_ids_is_migrated(tmp_path: Path,
                                                    start_server: Callable[..., ServerHandle]) -> None:
    """A state file from before pseudonyms (schema 1) gets its ids replaced on the first start."""
    data_dir = tmp_path / "data0"  # where start_server puts its first server
    legacy = SQLiteStore(data_dir)
    decision = Pricer().quote(request("q-legacy", user_id=SECRET_USER), now=time.time())
    legacy.put_pending([replace(decision, expires_at=time.time() + 600)])
    model = load("default")
    UserStates(model, legacy).observe([BehaviorEvent(SECRET_USER, time.time() - 60, "view", price=90.0,
                                                     unit_cost=40.0, list_price=100.0)], time.time())
    legacy._db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'",
                       (str(LEGACY_SCHEMA_VERSION),))
    legacy.close()
    assert SECRET_USER.encode() in state_bytes(data_dir)
    pricing = start_server(value_model="default")
    pseudonym = pricing.pseudonym(SECRET_USER)
    assert pricing.server.service.store.pending("q-legacy").user_id == pseudonym  # type: ignore[union-attr]
    users = pricing.server.service.pricer.users
    assert users is not None and users.get(pseudonym).events == 1  # the state moved with its user
    assert SECRET_USER.encode() not in state_bytes(data_dir)  # not even in freed pages
    pricing.stop()


@pytest.mark.parametrize("user_id", ["", "x" * 257])
def test_bad_user_ids_are_refused_before_hashing(pricing: ServerHandle, user_id: str) -> None:
    with pytest.raises(grpc.RpcError) as error:
        pricing.quote(user_id=user_id)
    assert error.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert error.value.details().startswith("user_id: ")
