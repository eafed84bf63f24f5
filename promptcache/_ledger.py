"""The ledger: every call's tokens and dollars, persisted in the PromptCache directory.

Recording is an in-memory append (the local-hit path has a budget of microseconds). A daemon
thread flushes the buffer to SQLite every second or every :data:`FLUSH_EVERY` records; so do
``atexit``, :meth:`Ledger.flush` and every query. SQLite in WAL mode with a busy timeout lets
many processes on one machine append to one ledger file without losing a record: each flush is
one transaction, and a flush that fails keeps its records for the next attempt.

Storage (schema version in ``PRAGMA user_version``): one row per call, or, after
``rollup_after_days``, one row per day × model × attribution holding the sums. Money is stored
as integer picodollars (10⁻¹² USD) so sums are exact; the API returns :class:`~decimal.Decimal`.
No prompt text and no credentials are stored — only counts, prices, model names, tags, the
app function name and the tenant's salted fingerprint.

How unknown costs aggregate: a call whose price is unknown (unlisted model, or a stream that
reported no usage) makes every cost field of any summary that includes it ``None`` —
never a silent 0. ``cost_known`` still carries the sum over the priced calls, and
``unknown_cost_requests`` says how many were left out, so a report can show
"$1.23 + 2 unpriced calls".
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sqlite3
import threading
import time
import warnings
import weakref
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any, Literal, NamedTuple

from promptcache._errors import ConfigError, StoreWarning

__all__ = ["FLUSH_EVERY", "SCHEMA_VERSION", "Ledger", "Record", "Summary"]

SCHEMA_VERSION = 1
FLUSH_EVERY = 256
FLUSH_INTERVAL = 1.0
_FILE = "ledger.sqlite3"
_PICO = Decimal(10) ** 12

GroupKey = Literal["model", "provider", "tag", "function", "day", "api"]
_NONE_LABEL = "(none)"


class Record(NamedTuple):
    """One row of the ledger as it is buffered (a tuple: appending it must be cheap).

    Money fields are picodollar integers or ``None`` (unknown). ``hit`` is 1 for a call served
    from the local cache (its tokens are 0: nothing was sent), whose ``avoided`` and
    ``avoided_without`` are the stored call's paid and no-provider-cache costs.
    """

    ts: float
    api: str
    provider: str
    model: str
    function: str | None
    tags: tuple[str, ...]
    tenant: str
    hit: int
    error: int
    usage_known: int
    input: int
    read: int
    w5m: int
    w1h: int
    w30m: int
    w12h: int
    output: int
    reasoning: int
    cost: int | None
    without: int | None
    avoided: int | None
    avoided_without: int | None


def to_pico(value: Decimal | None) -> int | None:
    """Decimal USD to integer picodollars (exact for every genai-prices rate we know)."""
    if value is None:
        return None
    return int((value * _PICO).to_integral_value(ROUND_HALF_EVEN))


def from_pico(value: int | None) -> Decimal | None:
    """Integer picodollars to Decimal USD, normalised (``Decimal('0.0153')``)."""
    if value is None:
        return None
    d = Decimal(value) / _PICO
    return d.quantize(Decimal(1)) if d == d.to_integral_value() else d.normalize()


@dataclass(frozen=True, slots=True)
class Summary:
    """Totals over a set of calls (DESIGN §2), all in tokens and USD.

    Counts: ``requests`` (every call through a wrapped client, local hits and errors included),
    ``local_hits`` (served from the local cache), ``errors`` (HTTP status ≥ 400; not billed),
    ``unknown_usage_requests`` (the provider reported no usage, e.g. a Chat stream without
    ``include_usage``), ``unknown_cost_requests`` (usage or price unknown).

    Tokens are what was sent to providers (local hits send none): ``input_tokens`` is inclusive
    (``uncached_input_tokens + cache_read_tokens + cache_write_tokens``);
    ``cache_write_tokens_by_ttl`` splits writes by ``"5m"``/``"1h"``/``"30m"``/``"12h"``;
    ``output_tokens`` includes ``reasoning_tokens``; ``read_share`` is
    ``cache_read_tokens / input_tokens`` (``None`` without input).

    Dollars (``Decimal`` USD, or ``None`` when any contributing price is unknown):

    * ``cost`` — what was paid (local hits cost 0);
    * ``cost_without_provider_cache`` — the same upstream calls with every input token at the
      input rate;
    * ``saved_by_provider_cache`` — the difference, net of write premiums (may be negative);
    * ``avoided_by_local_hits`` — for each local hit, what the call it replaced cost;
    * ``cost_without_cache`` — what these calls would have cost with neither provider caching
      nor the local cache: ``cost_without_provider_cache`` plus, for each local hit, the
      replaced call's no-provider-cache cost;
    * ``cost_known`` — ``cost`` over the priced calls only (never ``None``).
    """

    requests: int = 0
    local_hits: int = 0
    errors: int = 0
    unknown_usage_requests: int = 0
    unknown_cost_requests: int = 0
    input_tokens: int = 0
    uncached_input_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_tokens_by_ttl: dict[str, int] = field(default_factory=dict)
    output_tokens: int = 0
    reasoning_tokens: int = 0
    cost: Decimal | None = Decimal(0)
    cost_known: Decimal = Decimal(0)
    cost_without_provider_cache: Decimal | None = Decimal(0)
    saved_by_provider_cache: Decimal | None = Decimal(0)
    avoided_by_local_hits: Decimal | None = Decimal(0)
    cost_without_cache: Decimal | None = Decimal(0)
    read_share: float | None = None

    @property
    def saved(self) -> Decimal | None:
        """Everything saved: ``cost_without_cache - cost``."""
        if self.cost is None or self.cost_without_cache is None:
            return None
        return self.cost_without_cache - self.cost

    def to_json(self) -> dict[str, Any]:
        """JSON-able dict of every field (Decimals as strings, ``None`` as null)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            out[f.name] = str(v) if isinstance(v, Decimal) else v
        out["saved"] = None if self.saved is None else str(self.saved)
        return out


# Columns summed by every query, in the order _summary() reads them.
_AGG = """
    COALESCE(SUM(n), 0), COALESCE(SUM(hits), 0), COALESCE(SUM(errors), 0),
    COALESCE(SUM(unknown_usage), 0), COALESCE(SUM(unpriced), 0), COALESCE(SUM(unavoided), 0),
    COALESCE(SUM(input), 0), COALESCE(SUM(read), 0), COALESCE(SUM(w5m), 0), COALESCE(SUM(w1h), 0),
    COALESCE(SUM(w30m), 0), COALESCE(SUM(w12h), 0), COALESCE(SUM(output), 0),
    COALESCE(SUM(reasoning), 0), COALESCE(SUM(cost), 0), COALESCE(SUM(without), 0),
    COALESCE(SUM(avoided), 0), COALESCE(SUM(avoided_without), 0)
"""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    id INTEGER PRIMARY KEY,
    ts REAL NOT NULL,              -- call start, unix seconds (day start for rolled-up rows)
    day TEXT NOT NULL,             -- UTC date, YYYY-MM-DD
    rolled INTEGER NOT NULL DEFAULT 0,
    api TEXT NOT NULL, provider TEXT NOT NULL, model TEXT NOT NULL,
    function TEXT, tags TEXT NOT NULL,  -- tags: JSON array
    tenant TEXT NOT NULL,
    n INTEGER NOT NULL, hits INTEGER NOT NULL, errors INTEGER NOT NULL,
    unknown_usage INTEGER NOT NULL,
    unpriced INTEGER NOT NULL,     -- calls whose cost is unknown (excluded from cost sums)
    unavoided INTEGER NOT NULL,    -- local hits whose avoided cost is unknown
    input INTEGER NOT NULL, read INTEGER NOT NULL,
    w5m INTEGER NOT NULL, w1h INTEGER NOT NULL, w30m INTEGER NOT NULL, w12h INTEGER NOT NULL,
    output INTEGER NOT NULL, reasoning INTEGER NOT NULL,
    cost INTEGER NOT NULL, without INTEGER NOT NULL,           -- picodollars, priced calls
    avoided INTEGER NOT NULL, avoided_without INTEGER NOT NULL -- picodollars, priced hits
);
CREATE INDEX IF NOT EXISTS records_ts ON records (ts);
"""


def _day(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")


def _ts(value: float | datetime | None) -> float | None:
    if value is None or isinstance(value, float | int):
        return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def _row(r: Record) -> tuple[Any, ...]:
    from promptcache._json import dumps

    priced = r.cost is not None and r.without is not None
    avoided_known = r.avoided is not None and r.avoided_without is not None
    return (
        r.ts,
        _day(r.ts),
        r.api,
        r.provider,
        r.model,
        r.function,
        dumps(list(r.tags)).decode(),
        r.tenant,
        1,
        r.hit,
        r.error,
        0 if r.usage_known else 1,
        0 if priced else 1,
        1 if r.hit and not avoided_known else 0,
        r.input,
        r.read,
        r.w5m,
        r.w1h,
        r.w30m,
        r.w12h,
        r.output,
        r.reasoning,
        r.cost if priced else 0,
        r.without if priced else 0,
        r.avoided if avoided_known else 0,
        r.avoided_without if avoided_known else 0,
    )


_INSERT = (
    "INSERT INTO records (ts, day, api, provider, model, function, tags, tenant, n, hits, "
    "errors, unknown_usage, unpriced, unavoided, input, read, w5m, w1h, w30m, w12h, output, "
    "reasoning, cost, without, avoided, avoided_without) VALUES "
    "(" + ",".join("?" * 26) + ")"
)


class Ledger:
    """The persisted ledger of one PromptCache directory, shared by every process using it.

    Args:
        directory: the PromptCache directory; the ledger lives in ``ledger.sqlite3`` there.
        rollup_after_days: individual calls older than this are folded into one row per day,
            model, provider, API, function, tags and tenant (``None``: never).
        retention_days: rows older than this are deleted (``None``: keep forever).
        clock: injectable time source (seconds since the epoch).

    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        rollup_after_days: float | None = 30,
        retention_days: float | None = None,
        clock: Any = time.time,
    ) -> None:
        self.directory = Path(directory)
        self.path = self.directory / _FILE
        self.rollup_after_days = rollup_after_days
        self.retention_days = retention_days
        self._clock = clock
        self._buffer: deque[Record] = deque()
        self._lock = threading.Lock()  # guards the connection; one flush at a time
        self._conn: sqlite3.Connection | None = None
        self._maintained = 0.0
        _LIVE.add(self)

    # ----------------------------------------------------------------- recording (hot path)

    def append(self, record: Record) -> None:
        """Buffer one record; it reaches disk within a second (or at the next query)."""
        # deque.append is atomic: no lock on the hot path, and a concurrent flush that drains
        # with popleft can never lose a record appended meanwhile.
        buf = self._buffer
        buf.append(record)
        if len(buf) >= FLUSH_EVERY:
            _FLUSHER.wake()
        elif not _FLUSHER.running:
            _FLUSHER.start()

    # ----------------------------------------------------------------- persistence

    def _connect(self) -> sqlite3.Connection:
        if self._conn is not None:
            return self._conn
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        conn = sqlite3.connect(
            self.path, timeout=30.0, isolation_level=None, check_same_thread=False
        )
        conn.execute("PRAGMA busy_timeout = 30000")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        (version,) = conn.execute("PRAGMA user_version").fetchone()
        if version > SCHEMA_VERSION:
            conn.close()
            raise ConfigError(
                f"{self.path} has ledger schema {version}; this promptcache reads up to "
                f"{SCHEMA_VERSION}. Upgrade promptcache."
            )
        if version < SCHEMA_VERSION:
            conn.execute("BEGIN IMMEDIATE")
            try:
                for stmt in _SCHEMA.split(";"):
                    if stmt.strip():
                        conn.execute(stmt)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        self._conn = conn
        return conn

    def flush(self) -> None:
        """Write buffered records to disk in one transaction (safe to call from any thread)."""
        with self._lock:
            buf = self._buffer
            batch = [buf.popleft() for _ in range(len(buf))]
            if not batch:
                self._maybe_maintain()
                return
            try:
                conn = self._connect()
                conn.execute("BEGIN IMMEDIATE")
                try:
                    conn.executemany(_INSERT, [_row(r) for r in batch])
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
            except BaseException:
                # Keep the records, in order: the next flush (or atexit) tries again.
                buf.extendleft(reversed(batch))
                raise
            self._maybe_maintain()

    def _maybe_maintain(self) -> None:
        now = self._clock()
        if now - self._maintained < 3600:
            return
        self._maintained = now
        if self.rollup_after_days is None and self.retention_days is None:
            return
        conn = self._connect()
        conn.execute("BEGIN IMMEDIATE")
        try:
            if self.retention_days is not None:
                conn.execute(
                    "DELETE FROM records WHERE ts < ?", (now - self.retention_days * 86400,)
                )
            if self.rollup_after_days is not None:
                _rollup(conn, now - self.rollup_after_days * 86400)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def close(self) -> None:
        """Flush and release the database (the ledger can be reopened by a new instance)."""
        try:
            self.flush()
        finally:
            with self._lock:
                if self._conn is not None:
                    self._conn.close()
                    self._conn = None

    def _reset_after_fork(self) -> None:
        # The child must neither reuse the parent's connection nor flush the parent's records.
        self._lock = threading.Lock()
        self._buffer = deque()
        self._conn = None

    # ----------------------------------------------------------------- queries

    def _where(
        self,
        since: float | datetime | None,
        until: float | datetime | None,
        model: str | None,
        tag: str | None,
        function: str | None,
        provider: str | None,
    ) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        args: list[Any] = []
        if (s := _ts(since)) is not None:
            clauses.append("ts >= ?")
            args.append(s)
        if (u := _ts(until)) is not None:
            clauses.append("ts < ?")
            args.append(u)
        for col, value in (("model", model), ("function", function), ("provider", provider)):
            if value is not None:
                clauses.append(f"{col} = ?")
                args.append(value)
        if tag is not None:
            clauses.append("EXISTS (SELECT 1 FROM json_each(records.tags) WHERE value = ?)")
            args.append(tag)
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", args

    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        self.flush()
        with self._lock:
            yield self._connect()

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
        """Totals over the persisted ledger (every process's records), optionally filtered.

        ``since``/``until`` are datetimes (naive = UTC) or unix seconds, ``until`` exclusive.
        """
        where, args = self._where(since, until, model, tag, function, provider)
        with self._read() as conn:
            row = conn.execute(f"SELECT {_AGG} FROM records{where}", args).fetchone()
        return _summary(row)

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
        """Summaries per model, provider, API, tag, app function or UTC day (``"YYYY-MM-DD"``).

        Calls without a function or tag are grouped under ``"(none)"``. A call with several
        tags counts under each, so tag groups can add up to more than the total.
        """
        if key not in ("model", "provider", "tag", "function", "day", "api"):
            raise ConfigError(f"cannot group by {key!r}")
        where, args = self._where(since, until, model, tag, function, provider)
        if key == "tag":
            sql = (
                f"SELECT COALESCE(t.value, '{_NONE_LABEL}'), {_AGG} FROM records "
                f"LEFT JOIN json_each(records.tags) t{where} GROUP BY 1 ORDER BY 1"
            )
        else:
            sql = (
                f"SELECT COALESCE({key}, '{_NONE_LABEL}'), {_AGG} FROM records{where} "
                "GROUP BY 1 ORDER BY 1"
            )
        with self._read() as conn:
            rows = conn.execute(sql, args).fetchall()
        return {str(r[0]): _summary(r[1:]) for r in rows}

    def records(self) -> int:
        """Return the number of rows on disk (after a flush): calls plus rolled-up day rows."""
        with self._read() as conn:
            (n,) = conn.execute("SELECT COUNT(*) FROM records").fetchone()
        return int(n)


def _summary(row: Sequence[int]) -> Summary:
    (n, hits, errors, unknown_usage, unpriced, unavoided, inp, read, w5m, w1h, w30m, w12h,
     out, reasoning, cost, without, avoided, avoided_without) = row  # fmt: skip
    writes = w5m + w1h + w30m + w12h
    by_ttl = {k: v for k, v in (("5m", w5m), ("1h", w1h), ("30m", w30m), ("12h", w12h)) if v}
    known = from_pico(cost)
    assert known is not None
    c = None if unpriced else known
    wo = None if unpriced else from_pico(without)
    av = None if unavoided else from_pico(avoided)
    av_wo = None if unavoided else from_pico(avoided_without)
    saved = None if c is None or wo is None else wo - c
    total_without = None if wo is None or av_wo is None else wo + av_wo
    return Summary(
        requests=n,
        local_hits=hits,
        errors=errors,
        unknown_usage_requests=unknown_usage,
        unknown_cost_requests=unpriced,
        input_tokens=inp,
        uncached_input_tokens=inp - read - writes,
        cache_read_tokens=read,
        cache_write_tokens=writes,
        cache_write_tokens_by_ttl=by_ttl,
        output_tokens=out,
        reasoning_tokens=reasoning,
        cost=c,
        cost_known=known,
        cost_without_provider_cache=wo,
        saved_by_provider_cache=saved,
        avoided_by_local_hits=av,
        cost_without_cache=total_without,
        read_share=(read / inp) if inp else None,
    )


_ROLLUP_KEY = "day, api, provider, model, function, tags, tenant"
_SUMS = (
    "SUM(n), SUM(hits), SUM(errors), SUM(unknown_usage), SUM(unpriced), SUM(unavoided), "
    "SUM(input), SUM(read), SUM(w5m), SUM(w1h), SUM(w30m), SUM(w12h), SUM(output), "
    "SUM(reasoning), SUM(cost), SUM(without), SUM(avoided), SUM(avoided_without)"
)


def _rollup(conn: sqlite3.Connection, before: float) -> None:
    """Fold individual rows older than ``before`` into one row per day and attribution."""
    # Only whole days are folded, so a day is never half individual rows, half rolled up.
    cutoff = datetime.fromtimestamp(before, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    edge = cutoff.timestamp()
    n = conn.execute("SELECT COUNT(*) FROM records WHERE rolled = 0 AND ts < ?", (edge,))
    if n.fetchone()[0] == 0:
        return
    conn.execute(
        "INSERT INTO records (ts, day, rolled, api, provider, model, function, tags, tenant, n, "
        "hits, errors, unknown_usage, unpriced, unavoided, input, read, w5m, w1h, w30m, w12h, "
        "output, reasoning, cost, without, avoided, avoided_without) "
        f"SELECT MIN(ts), day, 2, api, provider, model, function, tags, tenant, {_SUMS} "
        f"FROM records WHERE ts < ? GROUP BY {_ROLLUP_KEY}",
        (edge,),
    )
    # Everything older than the edge is now in the new rows (rolled = 2): drop the old ones,
    # then mark the new ones as ordinary rolled-up rows.
    conn.execute("DELETE FROM records WHERE ts < ? AND rolled != 2", (edge,))
    conn.execute("UPDATE records SET rolled = 1 WHERE rolled = 2")


_LIVE: weakref.WeakSet[Ledger] = weakref.WeakSet()


class _Flusher:
    """One daemon thread per process flushing every live ledger each second (or on demand)."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self.running = False

    def start(self) -> None:
        with self._lock:
            if self.running:
                return
            self.running = True
        threading.Thread(target=self._run, name="promptcache-ledger", daemon=True).start()

    def wake(self) -> None:
        if not self.running:
            self.start()
        self._event.set()

    def _run(self) -> None:
        while True:
            self._event.wait(FLUSH_INTERVAL)
            self._event.clear()
            for ledger in list(_LIVE):
                if not ledger._buffer:
                    continue
                try:
                    ledger.flush()
                except Exception as exc:  # keep the thread alive; records stay buffered
                    warnings.warn(
                        f"promptcache ledger flush failed, will retry: {exc}",
                        StoreWarning,
                        stacklevel=1,
                    )


_FLUSHER = _Flusher()


def _flush_all() -> None:
    for ledger in list(_LIVE):
        with contextlib.suppress(Exception):
            ledger.close()


def _after_fork() -> None:
    global _FLUSHER
    _FLUSHER = _Flusher()
    for ledger in list(_LIVE):
        ledger._reset_after_fork()


atexit.register(_flush_all)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)
