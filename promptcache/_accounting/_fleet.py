"""The fleet ledger: every machine's calls, summed per minute in the shared Redis store.

Each machine keeps its SQLite ledger (:mod:`promptcache._accounting._ledger`) for per-call
detail. With a Redis store, every record is also added, in memory, to a per-minute aggregate
keyed by its dimensions (API, provider, model, app function, tags) — a dict update, a few µs on
the call path — and a daemon thread sends the aggregates every second. Why aggregates and not
every record: a busy fleet makes millions of calls a day and the report only ever sums them by
these dimensions; per minute keeps the ``--since`` resolution useful while the size of Redis
data grows with the number of distinct (minute, model, tags, function) combinations, not with
traffic. The tenant fingerprint is left out (the report never groups by it).

Layout (every key under the hash tag ``{promptcache-ledger}``, so one Lua script can touch them
all, on a Redis Cluster too):

- ``promptcache-ledger:{promptcache-ledger}:m:<minute>``: a hash, one field per dimension and
  column (``<dimensions JSON>`` TAB ``<column>``), values integers (tokens, counts, picodollars),
  expiring after :data:`RETENTION` seconds;
- ``promptcache-ledger:{promptcache-ledger}:index``: a sorted set of the minutes present, capped
  at :data:`MAX_MINUTES` members (the oldest go first);
- ``promptcache-ledger:{promptcache-ledger}:batch:<id>``: a marker per batch sent (one day).

Exactly once. ``HINCRBY`` is not idempotent: a batch applied whose reply was lost, sent again,
would count twice. So each batch carries a random id, and one Lua script sets the marker with
``SET NX`` and applies the increments only if it was not there, atomically: a batch sent again
after a lost reply is applied once, so sending it again (the store's retries, or the next
cycle after an outage) is safe. A batch is dropped only once Redis said it has it; while Redis
is down, batches wait in memory up to :data:`MAX_PENDING_FIELDS` fields, then the oldest are
dropped and counted (:attr:`FleetLedger.dropped`). At exit (and ``PromptCache.close``) the
pending batches are sent once, with the store's short timeouts (a dead Redis loses them then).

Reading (:meth:`FleetLedger.view`) loads the aggregates of the asked period into an in-memory
SQLite table with the local ledger's schema, and runs the local ledger's own sums over it: the
same :class:`~promptcache._accounting._ledger.Summary`, ``group_by`` and report, to the minute.
"""

from __future__ import annotations

import atexit
import logging
import os
import secrets
import sqlite3
import threading
import time
import weakref
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import orjson

from promptcache._accounting._ledger import (
    _AGG,
    _INSERT,
    _NONE_LABEL,
    _SCHEMA,
    GroupKey,
    Record,
    Summary,
    _add,
    _day,
    _row_of,
    _summary,
    _ts,
)
from promptcache._errors import ConfigError

if TYPE_CHECKING:
    from promptcache._store._redis import RedisStore
    from promptcache._store._safe import SafeStore

__all__ = ["FleetLedger", "FleetView", "fleet_store"]

log = logging.getLogger("promptcache")

_TAG: Final = "promptcache-ledger:{promptcache-ledger}:"
INDEX_KEY: Final = _TAG + "index"
#: Seconds a minute's aggregates live (and the index's window).
RETENTION: Final = 35 * 86400
#: Most minutes the index keeps (35 days of minutes).
MAX_MINUTES: Final = 35 * 1440
#: Fields waiting in memory while Redis is unreachable, beyond which the oldest batches go.
MAX_PENDING_FIELDS: Final = 200_000
#: Seconds between sends.
INTERVAL: Final = 1.0
_IDLE: Final = 5.0
_COLUMNS: Final = 18  # the summable columns of a ledger row, in ``_AGG`` order

_APPLY: Final = """
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', 86400) then return 0 end
local retention = tonumber(ARGV[1])
local cap = tonumber(ARGV[2])
local i = 3
for k = 3, #KEYS do
  local minute = ARGV[i]
  local n = tonumber(ARGV[i + 1])
  i = i + 2
  for _ = 1, n do
    redis.call('HINCRBY', KEYS[k], ARGV[i], ARGV[i + 1])
    i = i + 2
  end
  redis.call('EXPIRE', KEYS[k], retention)
  redis.call('ZADD', KEYS[2], minute, minute)
end
local extra = redis.call('ZCARD', KEYS[2]) - cap
if extra > 0 then redis.call('ZREMRANGEBYRANK', KEYS[2], 0, extra - 1) end
return 1
"""


def _minute_key(minute: int) -> str:
    return f"{_TAG}m:{minute}"


Aggregates = dict[tuple[int, str], list[int]]


class _Batch:
    __slots__ = ("fields", "id", "sums")

    def __init__(self, sums: Aggregates) -> None:
        self.id = secrets.token_hex(12)
        self.sums = sums
        self.fields = sum(sum(1 for v in values if v) for values in sums.values())


class FleetLedger:
    """Sends this process's ledger records, summed per minute, to the fleet's Redis."""

    def __init__(self, store: RedisStore) -> None:
        self.store = store
        #: Batches that could not be sent and were given up (Redis down too long).
        self.dropped = 0
        #: Batches Redis confirmed.
        self.sent = 0
        self._reset()
        _live.add(self)

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._sums: Aggregates = {}
        self._pending: list[_Batch] = []
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()
        self._closed = False

    def add(self, record: Record) -> None:
        """Add one record to this minute's aggregate (on the call path: no I/O)."""
        row = _row_of(*record)
        dims = orjson.dumps([row[2], row[3], row[4], row[5], row[6]]).decode()
        key = (int(record.ts // 60), dims)
        with self._lock:
            sums = self._sums.get(key)
            if sums is None:
                self._sums[key] = list(row[8:])
            else:
                for i, value in enumerate(row[8:]):
                    sums[i] += value
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(
                    target=self._run, name="promptcache-fleet-ledger", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        idle = 0.0
        while True:
            self._wake.wait(INTERVAL)
            self._wake.clear()
            with self._lock:
                if self._closed:  # close() made the last attempt
                    self._thread = None
                    return
                busy = bool(self._sums or self._pending)
                if not busy:
                    idle += INTERVAL
                    if idle >= _IDLE:
                        self._thread = None
                        return
                    continue
            idle = 0.0
            self.send()

    def send(self) -> bool:
        """Send what is waiting; ``True`` when nothing is left (never raises)."""
        with self._lock:
            if self._sums:
                self._pending.append(_Batch(self._sums))
                self._sums = {}
            batches = list(self._pending)
        for batch in batches:
            try:
                self._apply(batch)
            except Exception as exc:
                log.info("promptcache: fleet ledger not sent (kept for later): %r", exc)
                break
            with self._lock:
                self._pending.remove(batch)
                self.sent += 1
        with self._lock:
            waiting = sum(b.fields for b in self._pending)
            while waiting > MAX_PENDING_FIELDS and self._pending:
                waiting -= self._pending.pop(0).fields
                self.dropped += 1
            return not self._pending and not self._sums

    def _apply(self, batch: _Batch) -> None:
        by_minute: dict[int, list[str]] = {}
        for (minute, dims), values in batch.sums.items():
            out = by_minute.setdefault(minute, [])
            for col, value in enumerate(values):
                if value:
                    out += [f"{dims}\t{col}", str(value)]
        keys = [f"{_TAG}batch:{batch.id}", INDEX_KEY]
        args: list[str] = [str(RETENTION), str(MAX_MINUTES)]
        for minute, fields in by_minute.items():
            keys.append(_minute_key(minute))
            args += [str(minute), str(len(fields) // 2), *fields]
        client: Any = self.store.client
        # Idempotent thanks to the batch marker: a retry after a lost reply applies nothing.
        self.store.call(lambda: client.eval(_APPLY, len(keys), *keys, *args), idempotent=True)

    def flush(self, timeout: float = 5.0) -> bool:
        """Send everything now (retrying for up to ``timeout`` s); ``True`` when all went."""
        deadline = time.monotonic() + timeout
        while not self.send():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True

    def close(self) -> None:
        """Send what is left (one attempt: a dead Redis must not hold up exit) and stop."""
        self.send()
        with self._lock:
            self._closed = True
        self._wake.set()
        _live.discard(self)

    def view(self) -> FleetView:
        """Return the fleet's totals (every machine's records that reached Redis)."""
        return FleetView(self.store)

    def _after_fork(self) -> None:
        # The parent sends what it had summed; the child starts from nothing.
        self._reset()


class FleetView:
    """Query the fleet ledger like a local :class:`~promptcache._accounting._ledger.Ledger`."""

    def __init__(self, store: RedisStore) -> None:
        self.store = store
        #: Shown by ``promptcache report`` where a local report shows the directory.
        self.directory = f"fleet ledger in {store.location}"

    def _load(self, since: float | None, until: float | None) -> sqlite3.Connection:
        client: Any = self.store.client
        low = "-inf" if since is None else str(int(since // 60))
        high = "+inf" if until is None else f"({int(-(-until // 60))}"

        def read() -> list[tuple[int, dict[bytes, bytes]]]:
            minutes = [int(m) for m in client.zrangebyscore(INDEX_KEY, low, high)]
            pipe = client.pipeline(transaction=False)
            for minute in minutes:
                pipe.hgetall(_minute_key(minute))
            return list(zip(minutes, pipe.execute(), strict=True))

        data = self.store.call(read, idempotent=True)
        conn = sqlite3.connect(":memory:")
        conn.executescript(_SCHEMA)
        rows = []
        for minute, fields in data:
            groups: dict[str, list[int]] = {}
            for name, value in fields.items():
                dims, _, col = name.decode().rpartition("\t")
                groups.setdefault(dims, [0] * _COLUMNS)[int(col)] += int(value)
            ts = minute * 60.0
            for dims, sums in groups.items():
                api, provider, model, function, tags = orjson.loads(dims)
                rows.append((ts, _day(ts), api, provider, model, function, tags, "", *sums))
        conn.executemany(_INSERT, rows)
        return conn

    def _rows(
        self,
        sql_tail: str,
        select: str,
        since: float | datetime | None,
        until: float | datetime | None,
        filters: dict[str, str | None],
    ) -> list[tuple[Any, ...]]:
        s, u = _ts(since), _ts(until)
        clauses: list[str] = []
        args: list[Any] = []
        if s is not None:
            clauses.append("ts >= ?")
            args.append(s // 60 * 60)  # to the minute
        if u is not None:
            clauses.append("ts < ?")
            args.append(u)
        for col in ("model", "function", "provider"):
            if filters.get(col) is not None:
                clauses.append(f"{col} = ?")
                args.append(filters[col])
        if filters.get("tag") is not None:
            clauses.append("EXISTS (SELECT 1 FROM json_each(records.tags) WHERE value = ?)")
            args.append(filters["tag"])
        where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        conn = self._load(s, u)
        try:
            return conn.execute(select.format(where=where) + sql_tail, args).fetchall()
        finally:
            conn.close()

    def summary(
        self,
        since: float | datetime | None = None,
        until: float | datetime | None = None,
        *,
        model: str | None = None,
        tag: str | None = None,
        function: str | None = None,
        provider: str | None = None,
    ) -> Summary:
        """Fleet totals, like :meth:`Ledger.summary` (times to the minute).

        Raises :class:`~promptcache.StoreError` when Redis cannot be read.
        """
        filters = {"model": model, "tag": tag, "function": function, "provider": provider}
        rows = self._rows("", f"SELECT {_AGG} FROM records{{where}}", since, until, filters)
        return _summary(_add(rows, _COLUMNS))

    def group_by(
        self,
        key: GroupKey,
        since: float | datetime | None = None,
        until: float | datetime | None = None,
        *,
        model: str | None = None,
        tag: str | None = None,
        function: str | None = None,
        provider: str | None = None,
    ) -> dict[str, Summary]:
        """Fleet summaries per group, like :meth:`Ledger.group_by`."""
        if key not in ("model", "provider", "tag", "function", "day", "api"):
            raise ConfigError(f"cannot group by {key!r}")
        filters = {"model": model, "tag": tag, "function": function, "provider": provider}
        if key == "tag":
            select = (
                f"SELECT COALESCE(t.value, '{_NONE_LABEL}'), {_AGG} FROM records "
                "LEFT JOIN json_each(records.tags) t{where}"
            )
        else:
            select = f"SELECT COALESCE({key}, '{_NONE_LABEL}'), {_AGG} FROM records{{where}}"
        groups: dict[str, list[tuple[Any, ...]]] = {}
        for r in self._rows(" GROUP BY 1 ORDER BY 1", select, since, until, filters):
            groups.setdefault(str(r[0]), []).append(tuple(r[1:]))
        return {k: _summary(_add(v, _COLUMNS)) for k, v in sorted(groups.items())}


def fleet_store(store: SafeStore | Any) -> RedisStore | None:
    """Return the Redis store under ``store`` (a SafeStore, maybe encrypted), or ``None``."""
    inner = getattr(store, "inner", store)
    while type(inner).__name__ in ("EncryptedStore", "SafeStore"):
        inner = inner.inner
    from promptcache._store._redis import RedisStore

    return inner if isinstance(inner, RedisStore) else None


def open_fleet(directory: Path, spec: str) -> FleetView:
    """Return a view of the fleet ledger of the Redis store ``spec`` (for the CLI)."""
    from promptcache._store import open_store

    store = fleet_store(open_store(spec, directory))
    if store is None:
        raise ConfigError(f"--store must be a Redis URL, not {spec!r}")
    return FleetView(store)


_live: weakref.WeakSet[FleetLedger] = weakref.WeakSet()


def _after_fork() -> None:
    for fleet in list(_live):
        fleet._after_fork()


def _at_exit() -> None:
    for fleet in list(_live):
        fleet.send()  # one attempt, with the store's short timeouts


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)
atexit.register(_at_exit)
