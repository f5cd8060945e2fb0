"""Redis as the shared store: any number of server processes (replicas) on one ``redis-server``.

The outcome log is a Redis Stream whose entry ids are ``0-<seq>``: ``seq`` comes from a counter that
the same Lua script increments, so the log's order is the order writes reached Redis, its numbers
are contiguous (the ``seq`` the service, snapshots and recovery count by, as SQLite's), any position
is read with one exclusive ``XRANGE``, and a follower waits for new entries with ``XREAD BLOCK``
instead of polling. (A list with a counter would need its own index to read after a position.)

Every write is one atomic step in Redis: a Lua script or a ``MULTI``/``EXEC``. Closing a quote moves
it from pending into the log in one script that first checks it is still pending, so across all
replicas a quote is closed exactly once; a close that also changes the shopper's value-model state
computes that change from the states it reads under ``WATCH`` and commits with ``EXEC``: if another
writer changed one of them meanwhile, nothing is written and it computes again. ``due`` claims the
quotes it returns (their expiry moves ``CLAIM_SECONDS`` on), so with several replicas each expired
quote goes to one sweeper; a claim that is never closed (its replica died) lapses and is taken again.

Durability: a method returns once Redis has answered, and Redis answers a write after appending it
to its append-only file; with ``appendfsync always`` that append is fsynced first, so a Redis crash
loses nothing acknowledged. With ``everysec`` a Redis crash (not a server's) can lose about the last
second of acknowledged writes; with ``appendonly no`` everything since the last RDB snapshot. The
store logs a warning at start when Redis is not set to ``always``.

Failures are named (``server/redis_faults.py``): unreachable, timeout, loading, out of memory,
persistence failed, read-only; the client never retries by itself (a retried write could be
doubled), ``check()`` and ``recover()`` try a one-field write, so health follows Redis.
The decision is stored as the SQLite store stores it: a record (``server/record.py``) naming its
feature layout, which the ``layouts`` hash holds once; entries from before records hold JSON.
"""

from __future__ import annotations

import json
import logging
import struct
import time
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any, TypeVar
from urllib.parse import urlsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from learner import (
    AlreadyClosed,
    Decision,
    LogMoved,
    QuoteIdTaken,
    Settlement,
    StoreCorrupt,
    StoreFailed,
    Unavailable,
)
from learner.value import StateChange
from server.pseudonyms import UserIdKey
from server.record import RecordCodec
from server.redis_faults import redis_failure
from server.store import (
    ADOPTED_KEY,
    JSON_SCHEMA_VERSION,
    SCHEMA_VERSION,
    SNAPSHOTS_KEPT,
    AfterCommit,
    LogEntry,
    RecentQuote,
    StoredSnapshot,
    Switch,
    SwitchEntry,
    recent_quotes_key,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

KEY_PREFIX = "pricebandit:"
"""Every key of the store starts so; the URL's database number separates deployments."""
CLAIM_SECONDS = 5.0
"""How long an expired quote handed out by ``due`` is kept from the other sweepers: long enough for
one sweep of ``EXPIRY_BATCH`` closes, short because a replica that dies (or loses Redis) after its
claim delays those quotes' expiry by this much. A claim that lapses too soon costs only work: the
close itself decides, once."""
TIMEOUT_SECONDS = 2.0
"""A Redis call that takes longer fails as "timeout" (health then says so)."""
CONNECT_SECONDS = 1.0
LOG_PAGE = 1000
WATCH_ATTEMPTS = 50
"""A state change retried this often because other writers kept changing its users is refused."""
_SNAPSHOT_HEADER = struct.Struct(">qd")  # last_seq, created_at; then the blob


def key(name: str) -> str:
    """The one place a store key is named."""
    return KEY_PREFIX + name


def redis_url(text: str) -> str:
    """``text`` if it is a ``redis://host[:port][/db]`` URL, else ValueError saying what is wanted."""
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 (reading it checks it: a port that is no number raises ValueError)
    except ValueError as error:
        raise ValueError(f"{text!r} is not a redis://host:port/db URL ({error})") from None
    db = parts.path.strip("/")
    if parts.scheme != "redis" or not parts.hostname or (db and not db.isdigit()) or parts.query:
        raise ValueError(f"{text!r} is not a redis://host:port/db URL (or 'sqlite')")
    return text


_PUT = """
local n = #KEYS - 3
for i = 1, n do
  if redis.call('EXISTS', KEYS[3 + i]) == 1 then return i end
end
for i = 1, n do
  local a = 2 + (i - 1) * 6
  redis.call('SET', KEYS[3 + i], ARGV[a + 1])
  redis.call('ZADD', KEYS[1], ARGV[a + 2], ARGV[a])
  if ARGV[1] == '1' then
    if ARGV[a + 4] == '1' then
      if redis.call('HEXISTS', KEYS[2], ARGV[a + 3]) == 1 then
        redis.call('HSET', KEYS[2], ARGV[a + 3], ARGV[a])
      end
    else
      redis.call('HSET', KEYS[2], ARGV[a + 3], ARGV[a])
      redis.call('ZADD', KEYS[3], ARGV[a + 5], ARGV[a + 3])
    end
  end
end
return 0
"""
"""Store pending quotes (KEYS: expiry, recent, recent_at, one key per quote; ARGV: remember, then per
quote id, decision, expires_at, recent field, stable, priced_at). Returns the 1-based index of a
quote whose id is taken, having written nothing; 0 once all are stored."""

_APPEND = """
local decision = ARGV[6]
if decision == '' then
  decision = redis.call('GET', KEYS[1])
  if not decision then return 0 end
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[1])
end
local seq = redis.call('INCR', KEYS[3])
redis.call('XADD', KEYS[4], '0-' .. seq, 'quote_id', ARGV[1], 'kind', ARGV[2], 'reward', ARGV[3],
           'learned', ARGV[4], 'closed_at', ARGV[5], 'decision', decision)
if redis.call('HSETNX', KEYS[5], ARGV[1], seq) == 0 and ARGV[2] == 'late' then
  redis.call('HSETNX', KEYS[6], ARGV[1], seq)
end
for i = 7, #KEYS do
  redis.call('HSET', KEYS[i], 'model_version', ARGV[7], 'updated_at', ARGV[8], 'state', ARGV[i + 2])
end
return seq
"""
"""Append a log entry (KEYS: the quote's pending key, expiry, seq, log, closed, late, then one key per
user state written; ARGV: quote id, kind, reward, learned, closed_at, decision, model version, now,
then the users' states). With an empty decision it closes the pending quote, moving its stored
decision: 0 if it is not pending (nothing written). Returns the entry's seq. The DSJSON line is made
from the entry when the log is exported (``server.decision_log.dsjson_lines``), not stored."""

_SWITCH = """
local last = tonumber(redis.call('GET', KEYS[1]) or '0')
if last ~= tonumber(ARGV[1]) then return -last end
local seq = last + 1
redis.call('SET', KEYS[1], seq)
redis.call('XADD', KEYS[2], '0-' .. seq, 'kind', 'switch', 'closed_at', ARGV[2], 'record', ARGV[3],
           'snapshot', ARGV[4], 'learner', ARGV[5])
redis.call('HSET', KEYS[3], ARGV[6], ARGV[3], 'learner', ARGV[5])
if ARGV[4] ~= '' then
  redis.call('LPUSH', KEYS[4], ARGV[7])
  redis.call('LTRIM', KEYS[4], 0, tonumber(ARGV[8]) - 1)
  redis.call('HSET', KEYS[3], 'switched_at', seq)
end
return seq
"""
"""Append a switch as the entry after ARGV[1] (KEYS: seq, log, meta, snapshots; ARGV: after, at,
record, snapshot or '', learner settings, the adopted record's field, the packed snapshot, snapshots
kept): the record and the learner settings replace the stored ones and a new learner's snapshot
becomes the latest, in the one script. Returns the switch's seq, or minus the log's last seq when
that is not ARGV[1] (nothing written)."""

_SNAPSHOT = """
if tonumber(ARGV[1]) < tonumber(redis.call('HGET', KEYS[2], 'switched_at') or '0') then return 0 end
redis.call('LPUSH', KEYS[1], ARGV[2])
redis.call('LTRIM', KEYS[1], 0, tonumber(ARGV[3]) - 1)
return 1
"""
"""Push a snapshot (KEYS: snapshots, meta; ARGV: its last_seq, packed, snapshots kept) unless it is
from before the last switch of the learner: another replica's model of the old configuration."""

_STATES = """
for i = 1, #KEYS do
  redis.call('HSET', KEYS[i], 'model_version', ARGV[1], 'updated_at', ARGV[2], 'state', ARGV[i + 2])
end
return 0
"""

_CLAIM = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(ids) do redis.call('ZADD', KEYS[1], ARGV[3], id) end
return ids
"""
"""Claim up to ARGV[2] quotes of the expiry set (KEYS[1]) due by ARGV[1]: they come back due at
ARGV[3]. In learning order: expiry, then id."""

_FORGET = """
local fields = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[1])
for _, field in ipairs(fields) do redis.call('HDEL', KEYS[1], field) end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[1])
return #fields
"""


def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


def _number(value: float) -> str:
    return repr(float(value))


class RedisStore:
    """The shared store. Thread-safe: redis-py hands each call a pooled connection."""

    shared_log = True
    """Other processes append to this log too: learn by following it (``PricingService.follow_log``)."""

    def __init__(self, url: str) -> None:
        """Connect to ``url`` (``redis://host:port/db``) and check the store's schema version.
        StoreFailed when Redis cannot be used, StoreCorrupt when it holds another schema."""
        parts = urlsplit(redis_url(url))
        self.where = f"redis://{parts.hostname}:{parts.port or 6379}/{parts.path.strip('/') or 0}"
        """The URL without its password: what messages name."""
        # Any: redis-py types every answer as bytes | str whatever decode_responses says; this
        # client's are bytes (decode_responses off: snapshots and states are binary).
        self._client: Any = redis.Redis.from_url(
            url, socket_timeout=TIMEOUT_SECONDS, socket_connect_timeout=CONNECT_SECONDS,
            retry=Retry(NoBackoff(), 0), health_check_interval=0)
        self._put = self._client.register_script(_PUT)
        self._append = self._client.register_script(_APPEND)
        self._write_states_script = self._client.register_script(_STATES)
        self._claim = self._client.register_script(_CLAIM)
        self._forget = self._client.register_script(_FORGET)
        self._switch = self._client.register_script(_SWITCH)
        self._snapshot = self._client.register_script(_SNAPSHOT)
        self._records = RecordCodec(
            lambda digest: _text(self._io(lambda: self._client.hget(key("layouts"), digest))),
            lambda layouts: self._io(lambda: self._client.hset(key("layouts"), mapping=dict(layouts))),
            damaged="the Redis store is damaged")
        self._fault: StoreFailed | None = None
        try:
            self._check_schema_version()
            self._warn_unless_fsync_always()
        except BaseException:
            self._client.close()
            raise

    def _io(self, operation: Callable[[], T]) -> T:
        """Run a Redis operation; a Redis failure becomes the named StoreFailed, kept for ``check()``."""
        try:
            result = operation()
        except redis.WatchError:
            raise
        except redis.RedisError as error:
            self._fault = redis_failure(error, self.where)
            raise self._fault from error
        self._fault = None
        return result

    def _check_schema_version(self) -> None:
        """Refuse a store of another schema; mark one of JSON decisions (version 2, read as they are)
        as holding records from now on."""
        meta = key("meta")
        self._io(lambda: self._client.hsetnx(meta, "schema_version", str(SCHEMA_VERSION)))
        version = _text(self._io(lambda: self._client.hget(meta, "schema_version")))
        if version == str(JSON_SCHEMA_VERSION):
            self._io(lambda: self._client.hset(meta, "schema_version", str(SCHEMA_VERSION)))
        elif version != str(SCHEMA_VERSION):
            raise StoreCorrupt(
                f"the Redis store {self.where} has schema version {version}, this build uses "
                f"{SCHEMA_VERSION}: run the matching pricebandit release, or use another database")

    def _warn_unless_fsync_always(self) -> None:
        try:
            answer = self._client.config_get("append*")
        except redis.ResponseError:  # CONFIG refused (a managed Redis): nothing to check
            return
        except redis.RedisError as error:
            raise redis_failure(error, self.where) from error
        settings = {_text(name): _text(value) for name, value in answer.items()}
        if (settings.get("appendonly"), settings.get("appendfsync")) != ("yes", "always"):
            log.warning("%s has appendonly=%s appendfsync=%s: a Redis crash can lose acknowledged quotes "
                        "and rewards (everysec: about the last second; no append-only file: everything "
                        "since its last snapshot); set appendonly yes, appendfsync always", self.where,
                        settings.get("appendonly"), settings.get("appendfsync"))

    # -- the user-id key ---------------------------------------------------------------------
    @property
    def keyed_users(self) -> bool:
        return bool(self._io(lambda: self._client.hexists(key("meta"), "user_id_key")))

    def use_user_key(self, user_key: UserIdKey) -> int:
        """Record ``user_key`` as the one users are stored under; StoreCorrupt if it is another."""
        meta = key("meta")
        self._io(lambda: self._client.hsetnx(meta, "user_id_key", user_key.check_value))
        if _text(self._io(lambda: self._client.hget(meta, "user_id_key"))) != user_key.check_value:
            raise StoreCorrupt(
                f"the Redis store {self.where} stores its users under another user-id key than the one "
                "given: start every replica with the key file it was written with (--user-id-key-file)")
        return 0

    # -- the replicas' one learner configuration ----------------------------------------------
    def use_learner(self, settings: dict[str, Any]) -> None:
        """Record the learner's settings (``PricerConfig.decision_config()``) on first use; StoreCorrupt
        naming the settings that differ for a replica started with others: applying one log with
        another learner would give it another model, silently."""
        meta, text = key("meta"), json.dumps(settings, sort_keys=True)
        wanted = json.loads(text)  # as stored: tuples are lists
        self._io(lambda: self._client.hsetnx(meta, "learner", text))
        stored = json.loads(_text(self._io(lambda: self._client.hget(meta, "learner"))) or "{}")
        differ = sorted(name for name in stored.keys() | wanted.keys()
                        if stored.get(name) != wanted.get(name))
        if differ:
            raise StoreCorrupt(
                f"the replicas on {self.where} learn with other settings ({', '.join(differ)}: "
                f"{', '.join(f'{name}={stored.get(name)!r}' for name in differ)}): start every replica "
                "with the same learner flags, or use another database")

    # -- pending quotes ----------------------------------------------------------------------
    def put_pending(self, decisions: list[Decision], *, remember_prices: bool = False) -> None:
        args: list[Any] = ["1" if remember_prices else "0"]
        for d, record in zip(decisions, self._records.encode(decisions), strict=True):
            field = f"{recent_quotes_key(d.user_id)}\n{d.product_id}"
            args += [d.quote_id, record, _number(d.expires_at), field,
                     "1" if d.stable_of else "0", _number(d.created_at)]
        keys = [key("expiry"), key("recent"), key("recent_at"),
                *(key(f"quote:{d.quote_id}") for d in decisions)]
        taken = int(self._io(lambda: self._put(keys=keys, args=args)))
        if taken:
            raise QuoteIdTaken(f"quote {decisions[taken - 1].quote_id!r} is already pending")

    def recent_quote(self, user_id: str, product_id: str) -> RecentQuote | None:
        field = f"{recent_quotes_key(user_id)}\n{product_id}"

        def read() -> list[Any]:
            with self._client.pipeline(transaction=True) as pipe:
                return pipe.hget(key("recent"), field).zscore(key("recent_at"), field).execute()

        quote_id, priced_at = self._io(read)
        if quote_id is None or priced_at is None:
            return None
        pending = self.pending(quote_id.decode())
        decision = pending or self.find_decision(quote_id.decode())
        return None if decision is None else RecentQuote(decision, float(priced_at), pending is not None)

    def forget_recent_quotes(self, priced_before: float) -> int:
        return int(self._io(lambda: self._forget(keys=[key("recent"), key("recent_at")],
                                                 args=[_number(priced_before)])))

    def pending(self, quote_id: str) -> Decision | None:
        text = self._io(lambda: self._client.get(key(f"quote:{quote_id}")))
        return None if text is None else self._records.stored(text, f"pending quote {quote_id!r}")

    def find_decision(self, quote_id: str) -> Decision | None:
        found = self.pending(quote_id)
        if found is not None:
            return found
        seq = self._io(lambda: self._client.hget(key("closed"), quote_id))
        entry = None if seq is None else self._entry(int(seq))
        return None if entry is None else entry.decision

    def due(self, now: float, limit: int) -> list[Decision]:
        """Claim up to ``limit`` quotes whose window has closed, oldest first (then by id): each is
        handed to one caller across all replicas until it is closed or ``CLAIM_SECONDS`` pass."""
        ids = self._io(lambda: self._claim(keys=[key("expiry")],
                                           args=[_number(now), limit, _number(now + CLAIM_SECONDS)]))
        if not ids:
            return []
        texts = self._io(lambda: self._client.mget([key(f"quote:{i.decode()}") for i in ids]))
        stored = zip(ids, texts, strict=True)
        return [self._records.stored(text, f"pending quote {i.decode()!r}") for i, text in stored
                if text is not None]  # closed since the claim read it: nothing to expire

    def pending_count(self) -> int:
        return int(self._io(lambda: self._client.zcard(key("expiry"))))

    # -- the outcome log ---------------------------------------------------------------------
    def close_quote(self, decision: Decision, kind: str, reward: float, learned: bool,
                    closed_at: float, after_commit: AfterCommit | None = None,
                    states: StateChange | None = None) -> int:
        """Atomically move a pending quote into the log, with ``states`` (the shopper's answer);
        AlreadyClosed if it is no longer pending (another thread or replica closed it): the states
        are then left alone. ``after_commit(seq)`` runs once Redis has the entry; with several
        writers these calls are not in log order (a shared log is learned by following it)."""
        seq = self._log(decision.quote_id, kind, reward, learned, closed_at, b"", states)
        if seq == 0:
            raise AlreadyClosed(decision.quote_id)
        if states is not None:
            states.remember()
        if after_commit is not None:
            after_commit(seq)
        return seq

    def append_log(self, decision: Decision, kind: str, reward: float, learned: bool,
                   closed_at: float, after_commit: AfterCommit | None = None) -> int:
        seq = self._log(decision.quote_id, kind, reward, learned, closed_at,
                        self._records.encode([decision])[0], None)
        if after_commit is not None:
            after_commit(seq)
        return seq

    def _log(self, quote_id: str, kind: str, reward: float, learned: bool, closed_at: float,
             decision: bytes, states: StateChange | None) -> int:
        keys = [key(f"quote:{quote_id}"), key("expiry"), key("seq"), key("log"), key("closed"), key("late")]
        args = [quote_id, kind, _number(reward), "1" if learned else "0", _number(closed_at), decision]
        if states is None:
            return int(self._io(lambda: self._append(keys=keys, args=[*args, "", ""])))
        return int(self._with_states(states, lambda pipe, users, blobs: self._append(
            keys=keys + users, args=[*args, states.model_version, _number(states.now), *blobs], client=pipe)))

    def _with_states(self, change: StateChange, write: Callable[[Any, list[str], list[bytes]], Any]) -> Any:
        """Run ``write(pipe, user keys, new states)`` in MULTI/EXEC with ``change`` computed from the
        states read under WATCH: if another writer changes one before EXEC, compute again."""
        version = change.model_version

        def attempt() -> Any:
            with self._client.pipeline(transaction=True) as pipe:
                for _ in range(WATCH_ATTEMPTS):
                    try:
                        def load(user_id: str) -> bytes | None:
                            user = key(f"user:{user_id}")
                            pipe.watch(user)
                            stored_version, state = pipe.hmget(user, "model_version", "state")
                            return state if _text(stored_version) == version else None

                        new = change(load)
                        pipe.multi()
                        write(pipe, [key(f"user:{user_id}") for user_id in new], list(new.values()))
                        return pipe.execute()[0]
                    except redis.WatchError:
                        continue
            raise Unavailable(f"the state store is too busy: {WATCH_ATTEMPTS} attempts to change users' "
                              "states met other writers; retry")

        return self._io(attempt)

    def settlement(self, quote_id: str) -> Settlement | None:
        first = self._io(lambda: self._client.hget(key("closed"), quote_id))
        late = self._io(lambda: self._client.hget(key("late"), quote_id))
        entry = None if first is None else self._entry(int(first))
        if entry is None:
            return None
        late_entry = None if late is None else self._entry(int(late))
        return Settlement(reward=entry.reward, reported=entry.kind == "reward",
                          late_reward=None if late_entry is None else late_entry.reward)

    def _entry(self, seq: int) -> LogEntry | None:
        found = self._io(lambda: self._client.xrange(key("log"), f"0-{seq}", f"0-{seq}"))
        entry = self._log_entry(*found[0]) if found else None
        return entry if isinstance(entry, LogEntry) else None

    def logged_at(self, seq: int) -> float | None:
        """When log entry ``seq`` was logged (its ``closed_at``); None if there is none."""
        found = self._io(lambda: self._client.xrange(key("log"), f"0-{seq}", f"0-{seq}"))
        return float(found[0][1][b"closed_at"]) if found else None

    def log_after(self, seq: int) -> Iterator[LogEntry]:
        """The outcomes after ``seq`` in order (the switches between them left out)."""
        return (entry for entry in self.entries_after(seq) if isinstance(entry, LogEntry))

    def entries_after(self, seq: int) -> Iterator[LogEntry | SwitchEntry]:
        """The outcomes and switches after ``seq`` in order, read in pages."""
        while True:
            page = self._io(partial(self._client.xrange, key("log"), f"(0-{seq}", "+", count=LOG_PAGE))
            if not page:
                return
            for entry_id, fields in page:
                entry = self._log_entry(entry_id, fields)
                yield entry
                seq = entry.seq

    def append_switch(self, switch: Switch, after: int, after_commit: AfterCommit | None = None) -> int:
        """Append ``switch`` as the entry after ``after``, in one script with the adopted record, the
        learner settings every replica is checked by, and (a new learner) its snapshot as the latest;
        LogMoved, writing nothing, if another entry came after ``after`` first."""
        blob = switch.snapshot or b""
        packed = _SNAPSHOT_HEADER.pack(after + 1, switch.at) + blob if switch.snapshot is not None else b""
        seq = int(self._io(lambda: self._switch(
            keys=[key("seq"), key("log"), key("meta"), key("snapshots")],
            args=[after, _number(switch.at), switch.record, blob, json.dumps(switch.learner, sort_keys=True),
                  ADOPTED_KEY, packed, SNAPSHOTS_KEPT])))
        if seq <= 0:
            raise LogMoved(after, -seq)
        if after_commit is not None:
            after_commit(seq)
        return seq

    def wait_for_log(self, seq: int, seconds: float) -> bool:
        """Wait up to ``seconds`` for an entry after ``seq``; whether there is one."""
        found = self._io(lambda: self._client.xread({key("log"): f"0-{seq}"}, count=1,
                                                    block=max(1, int(seconds * 1000))))
        return bool(found)

    def last_seq(self) -> int:
        return int(self._io(lambda: self._client.get(key("seq"))) or 0)

    # -- snapshots ---------------------------------------------------------------------------
    def save_snapshot(self, blob: bytes, last_seq: int, created_at: float) -> bool:
        """Store a snapshot of the learner after log entry ``last_seq``; keep the newest few. False
        (nothing stored) for a snapshot from before the last switch of the learner: it is of the old
        configuration (a replica that has not reached the switch yet)."""
        packed = _SNAPSHOT_HEADER.pack(last_seq, created_at) + blob
        return bool(self._io(lambda: self._snapshot(keys=[key("snapshots"), key("meta")],
                                                    args=[last_seq, packed, SNAPSHOTS_KEPT])))

    def adopted(self) -> str | None:
        return _text(self._io(lambda: self._client.hget(key("meta"), ADOPTED_KEY)))

    def latest_snapshot(self) -> StoredSnapshot | None:
        packed = self._io(lambda: self._client.lindex(key("snapshots"), 0))
        if packed is None:
            return None
        last_seq, created_at = _SNAPSHOT_HEADER.unpack_from(packed)
        return StoredSnapshot(bytes(packed[_SNAPSHOT_HEADER.size:]), last_seq, created_at)

    # -- users' value-model states ----------------------------------------------------------
    def load_user_state(self, user_id: str, model_version: str) -> bytes | None:
        stored_version, state = self._io(lambda: self._client.hmget(key(f"user:{user_id}"),
                                                                    "model_version", "state"))
        return state if _text(stored_version) == model_version else None

    def save_user_states(self, change: StateChange) -> None:
        self._with_states(change, lambda pipe, users, blobs: self._write_states_script(
            keys=users, args=[change.model_version, _number(change.now), *blobs], client=pipe))
        change.remember()

    # -- health ------------------------------------------------------------------------------
    def check(self) -> StoreFailed | None:
        """Why the store cannot be used now: the last call failed, or the probe write does. A write,
        not a PING: Redis answers PING while it refuses writes (out of memory, persistence failed,
        read-only), and an idle replica must say so too. Every 0.25 s (the store watch), one small
        append-only-file write per replica."""
        return self._fault if self._fault is not None else self.recover()

    def recover(self) -> StoreFailed | None:
        """A one-field write: None once Redis takes writes again."""
        try:
            self._io(lambda: self._client.hset(key("meta"), "probed_at", repr(time.time())))
        except StoreFailed as failure:
            return failure
        return None

    def close(self) -> None:
        self._client.close()

    def _log_entry(self, entry_id: bytes, fields: dict[bytes, bytes]) -> LogEntry | SwitchEntry:
        seq = int(entry_id.split(b"-")[1])
        if fields[b"kind"] == b"switch":
            snapshot = fields[b"snapshot"]
            return SwitchEntry(seq, Switch(fields[b"record"].decode(), snapshot or None,
                                           json.loads(fields[b"learner"]), float(fields[b"closed_at"])))
        return LogEntry(seq, self._records.stored(fields[b"decision"], f"log entry {seq}"),
                        fields[b"kind"].decode(), float(fields[b"reward"]), fields[b"learned"] == b"1")
