"""The ledger: every call's tokens and dollars, persisted in the PromptCache directory.

Recording a call (:meth:`Ledger.append`, on the request path) is one ``os.write`` of a compact,
versioned JSON line to this process's own append-only journal,
``ledger-journal/<pid>-<random>.jsonl`` beside ``ledger.sqlite3``: a few µs. A daemon thread
folds the journal into SQLite every second (or every :data:`FLUSH_EVERY` records), and so do
every query, :meth:`Ledger.flush` and :meth:`Ledger.close`.

What a crash can lose. A written line is in the operating system's page cache at once, and the
page cache outlives the process: ``SIGKILL``, ``os._exit``, a segfault or an OOM kill lose at
most the one record being written at that instant (a torn last line, skipped on replay). There
is no ``fsync`` per record, so a power cut or kernel crash can lose what the kernel had not yet
written back (seconds). Journals of dead processes are folded in ("replayed") by the next
process that opens the ledger, or by any live process within :data:`ORPHAN_INTERVAL` seconds.

Many processes share one ledger directory (gunicorn workers). Each writes its own journal and
holds an exclusive ``flock`` on it while it lives; a journal whose lock can be taken belongs to
a dead process. Folding is exactly-once: the byte offset folded so far is stored per journal in
SQLite, in the same transaction as the rows it inserted, so two processes folding the same
orphan, or a crash in the middle of a fold, never count a record twice. A fully folded journal
is deleted; the live one is rotated every :data:`ROTATE_BYTES`.

After ``fork()`` the child starts its own journal (it never writes into its parent's) and opens
its own SQLite connection: the parent closes its connection before forking (waiting for a fold
in progress, at most :data:`FORK_WAIT` seconds), so no SQLite lock or connection crosses the
fork. Should the wait time out, the child leaves SQLite alone (an inherited connection is
abandoned, never closed: closing one in a child can corrupt the database), keeps journaling,
and its journal is folded in by the next process.

A broken ledger never breaks a call. A corrupt ``ledger.sqlite3`` is moved aside to
``ledger.sqlite3.corrupt-<time>`` and a fresh one started, with one :class:`StoreWarning`. When
the database cannot be written (read-only file or directory, full disk, unusable directory),
this ledger warns once and keeps this process's records in memory — an in-memory SQLite
database, rolled up to one row per day and attribution beyond :data:`MEMORY_ROWS` rows — so
:meth:`Ledger.summary` still counts them, on top of whatever the file still reads; they are
lost when the process exits unless the journal could hold them (up to :data:`JOURNAL_CAP`
unfolded bytes), in which case the next process folds them in. Records that fit nowhere
(journal unwritable and more than :data:`QUEUE_CAP` waiting in memory) are dropped and counted
in :attr:`Ledger.dropped`. Queries and :meth:`Ledger.close` never raise ``sqlite3`` errors:
they return what is known (after the one warning). The one exception they raise is
:class:`~promptcache.ConfigError` for a ledger written by a newer promptcache.

Privacy: ``ledger.sqlite3`` (and SQLite's ``-wal``/``-shm``, which take its mode) and the
journals are created 0600 and the journal directory 0700, whatever the umask; a ledger file
left group- or world-readable by an older version is made 0600 when opened.

Storage (schema version in ``PRAGMA user_version``): one row per call, or, after
``rollup_after_days``, one row per day × model × attribution holding the sums; plus a
``journal`` table of folded offsets (additive: older promptcache versions ignore it). Money is
stored as integer picodollars (10⁻¹² USD) so sums are exact; the API returns
:class:`~decimal.Decimal`. No prompt text and no credentials are stored — only counts, prices,
model names, tags, the app function name and the tenant's salted fingerprint.

How unknown costs aggregate: a call whose price is unknown (unlisted model, or a stream that
reported no usage) makes every cost field of any summary that includes it ``None`` —
never a silent 0. ``cost_known`` still carries the sum over the priced calls, and
``unknown_cost_requests`` says how many were left out, so a report can show
"$1.23 + 2 unpriced calls".
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import secrets
import sqlite3
import sys
import threading
import time
import warnings
import weakref
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any, Literal, NamedTuple

import orjson

from promptcache._errors import ConfigError, StoreWarning

__all__ = [
    "FLUSH_EVERY",
    "JOURNAL_VERSION",
    "SCHEMA_VERSION",
    "Ledger",
    "Record",
    "Summary",
]

SCHEMA_VERSION = 1
#: Version of a journal line: ``[JOURNAL_VERSION, *Record]``.
JOURNAL_VERSION = 1
#: Records appended since the last fold that wake the flusher early.
FLUSH_EVERY = 4096
#: Seconds between background folds.
FLUSH_INTERVAL = 1.0
#: Seconds between looks for journals of dead processes (also done on open and by queries).
ORPHAN_INTERVAL = 10.0
#: A live journal is replaced by a new one once it is this large and fully folded.
ROTATE_BYTES = 4 << 20
#: Unfolded bytes a journal may hold while the database cannot be written (~300k records).
JOURNAL_CAP = 64 << 20
#: Records kept in memory waiting for a fold when the journal cannot be written.
QUEUE_CAP = 100_000
#: Rows of the in-memory ledger (used when the file cannot be written) before it is rolled up.
MEMORY_ROWS = 50_000
#: Seconds ``fork()`` waits for a fold in progress before the child gives up on SQLite.
FORK_WAIT = 5.0

_FILE = "ledger.sqlite3"
_JOURNAL_DIR = "ledger-journal"
_SUFFIX = ".jsonl"
_PICO = Decimal(10) ** 12
_CHUNK = 8 << 20
_BUSY_MS = 10_000
_JOURNALING = sys.platform != "win32"  # flock and pread: POSIX only

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


@functools.lru_cache(maxsize=1024)
def _utc_date(days: int) -> str:
    return datetime.fromtimestamp(days * 86400, UTC).strftime("%Y-%m-%d")


def _day(ts: float) -> str:
    # Unix time has exactly 86400 s a day: the UTC date is a function of ts // 86400.
    return _utc_date(int(ts // 86400))


@functools.lru_cache(maxsize=4096)
def _tags_json(tags: tuple[str, ...]) -> str:
    return orjson.dumps(tags).decode()


def _ts(value: float | datetime | None) -> float | None:
    if value is None or isinstance(value, float | int):
        return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def _row(r: Record) -> tuple[Any, ...]:
    return _row_of(*r)


def _row_of(
    ts: float, api: str, provider: str, model: str, function: str | None,
    tags: tuple[str, ...], tenant: str, hit: int, error: int, usage_known: int,
    inp: int, read: int, w5m: int, w1h: int, w30m: int, w12h: int, output: int,
    reasoning: int, cost: int | None, without: int | None, avoided: int | None,
    avoided_without: int | None,
) -> tuple[Any, ...]:  # fmt: skip
    """Build the ``records`` row of one call (the fields of :class:`Record`, in order)."""
    priced = cost is not None and without is not None
    avoided_known = avoided is not None and avoided_without is not None
    return (
        ts, _day(ts), api, provider, model, function,
        _tags_json(tags if type(tags) is tuple else tuple(tags)), tenant,
        1, hit, error,
        0 if usage_known else 1,
        0 if priced else 1,
        1 if hit and not avoided_known else 0,
        inp, read, w5m, w1h, w30m, w12h, output, reasoning,
        cost if priced else 0,
        without if priced else 0,
        avoided if avoided_known else 0,
        avoided_without if avoided_known else 0,
    )  # fmt: skip


_INSERT = (
    "INSERT INTO records (ts, day, api, provider, model, function, tags, tenant, n, hits, "
    "errors, unknown_usage, unpriced, unavoided, input, read, w5m, w1h, w30m, w12h, output, "
    "reasoning, cost, without, avoided, avoided_without) VALUES "
    "(" + ",".join("?" * 26) + ")"
)


_JOURNAL_TABLE = """
CREATE TABLE IF NOT EXISTS journal (
    name TEXT PRIMARY KEY,         -- a file in ledger-journal/
    folded INTEGER NOT NULL        -- bytes of it already folded into records
)
"""

_NL = orjson.OPT_APPEND_NEWLINE


def _encode(record: Record) -> bytes:
    """One journal line: ``[JOURNAL_VERSION, *record]`` as compact JSON, newline-terminated."""
    return orjson.dumps((JOURNAL_VERSION, *record), option=_NL)


_INTS = frozenset({int})
_MONEY = frozenset({int, type(None)})
_STRS = frozenset({str})


def _line_row(v: Any) -> tuple[Any, ...] | None:
    """Build the ``records`` row of a parsed journal line (``None``: not one of ours)."""
    if type(v) is not list or len(v) != 23 or v[0] != JOURNAL_VERSION:
        return None
    ts, api, provider, model, function, tags, tenant = v[1:8]
    if not (
        (type(ts) is float or type(ts) is int)
        and type(api) is str
        and type(provider) is str
        and type(model) is str
        and (function is None or type(function) is str)
        and type(tags) is list
        and type(tenant) is str
        and _STRS.issuperset(map(type, tags))
        and _INTS.issuperset(map(type, v[8:19]))
        and _MONEY.issuperset(map(type, v[19:23]))
    ):
        return None
    return _row_of(float(ts), api, provider, model, function, tuple(tags), tenant, *v[8:23])


def _decode_rows(data: bytes) -> tuple[list[tuple[Any, ...]], int]:
    """Rows to insert for the complete lines in ``data``, and how many lines were skipped.

    A line that is not valid JSON (torn by a kill) or not a record of a known version is
    skipped and counted.
    """
    rows: list[tuple[Any, ...]] = []
    skipped = 0
    loads, bad_json = orjson.loads, orjson.JSONDecodeError
    for line in data.split(b"\n"):
        if not line:
            continue
        try:
            row = _line_row(loads(line))
        except bad_json:
            row = None
        if row is None:
            skipped += 1
        else:
            rows.append(row)
    return rows, skipped


def _fold(conn: sqlite3.Connection, name: str, fd: int, *, final: bool) -> tuple[int, int]:
    """Fold the unfolded complete lines of journal ``name`` (open as ``fd``) into ``conn``.

    One transaction inserts the rows and records the new offset, so a fold is exactly-once
    whoever does it and wherever it is interrupted. ``final`` (the writer is gone): a last line
    without its newline is a torn write, skipped. Returns ``(offset, lines skipped)``.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        row = conn.execute("SELECT folded FROM journal WHERE name = ?", (name,)).fetchone()
        start = offset = int(row[0]) if row else 0
        skipped = 0
        while True:
            chunk = os.pread(fd, _CHUNK, offset)
            end = chunk.rfind(b"\n") + 1
            rows, bad = _decode_rows(chunk[:end])
            skipped += bad
            if rows:
                conn.executemany(_INSERT, rows)
            offset += end
            if len(chunk) < _CHUNK:  # reached the end of the file
                if final and end < len(chunk):
                    offset += len(chunk) - end
                    skipped += 1
                break
            if end == 0:  # an 8 MiB line is no line of ours: skip it
                offset += len(chunk)
                skipped += 1
        if offset != start:
            conn.execute(
                "INSERT OR REPLACE INTO journal (name, folded) VALUES (?, ?)", (name, offset)
            )
        conn.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise
    return offset, skipped


def _error_kind(exc: BaseException) -> Literal["busy", "corrupt", "broken"]:
    """Busy (try again later), corrupt (move the file aside) or broken (stop writing)."""
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        if isinstance(code, int):
            primary = code & 0xFF
            if primary in (5, 6):  # SQLITE_BUSY, SQLITE_LOCKED
                return "busy"
            if primary in (11, 26):  # SQLITE_CORRUPT, SQLITE_NOTADB
                return "corrupt"
        else:
            text = str(exc).lower()
            if "locked" in text or "busy" in text:
                return "busy"
            if "malformed" in text or "not a database" in text:
                return "corrupt"
    return "broken"


if _JOURNALING:
    import fcntl

    def _try_lock(fd: int) -> bool:
        """Take the exclusive ``flock`` of a journal; False when a live process holds it."""
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
        return True

else:  # pragma: no cover - no journal without flock: records wait in memory between folds

    def _try_lock(fd: int) -> bool:
        return False


def _private_dir(path: Path) -> None:
    """Create ``path`` (and parents) 0700 whatever the umask; an existing one is left alone."""
    if path.is_dir():
        return
    missing = [p for p in (path, *path.parents) if not p.exists()]
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    for p in missing:
        with contextlib.suppress(OSError):
            os.chmod(p, 0o700)


def _private_file(path: Path) -> None:
    """Create ``path`` 0600 if missing; make an existing one 0600 (ours: never widen it)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        with contextlib.suppress(OSError):
            if os.stat(path).st_mode & 0o077:
                os.chmod(path, 0o600)
        return
    try:
        os.chmod(path, 0o600)  # the umask may have taken bits away from 0o600 itself
    finally:
        os.close(fd)


# Connections a forked child inherited mid-use: kept referenced forever, because closing (or
# garbage-collecting) a connection in a child that did not open it can corrupt the database.
_ABANDONED: list[sqlite3.Connection] = []


class Ledger:
    """The persisted ledger of one PromptCache directory, shared by every process using it.

    Args:
        directory: the PromptCache directory; the ledger lives in ``ledger.sqlite3`` there,
            with one journal per live process in ``ledger-journal/``.
        rollup_after_days: individual calls older than this are folded into one row per day,
            model, provider, API, function, tags and tenant (``None``: never).
        retention_days: rows older than this are deleted (``None``: keep forever).
        clock: injectable time source (seconds since the epoch).

    ``dropped`` counts records this ledger could keep nowhere (see the module docstring);
    ``skipped`` counts journal lines that could not be read back (torn by a kill, damaged).

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
        self.journal_dir = self.directory / _JOURNAL_DIR
        self.rollup_after_days = rollup_after_days
        self.retention_days = retention_days
        self.dropped = 0
        self.skipped = 0
        self._clock = clock
        self._io = threading.Lock()  # the SQLite connection, folding, the in-memory ledger
        self._wlock = threading.Lock()  # the journal descriptor (held for one os.write)
        self._conn: sqlite3.Connection | None = None
        self._ino = 0
        # This process's journal: None = not opened yet, -1 = cannot be written.
        self._fd: int | None = None
        self._jname: str | None = None
        self._jsize = 0  # bytes written to it
        self._folded = 0  # bytes of it folded into ledger.sqlite3
        self._writable = False
        self._finalizer: weakref.finalize[Any, Any] | None = None
        self._jerror: BaseException | None = None
        self._queue: deque[Record] = deque()  # records the journal could not take
        self._pending = 0
        # When ledger.sqlite3 cannot be written: this process's records, in memory.
        self._broken: BaseException | None = None
        self._unsafe = False  # forked while the ledger was in use: leave SQLite alone
        self._newer: ConfigError | None = None
        self._mem: sqlite3.Connection | None = None
        self._mem_offset = 0  # bytes of the journal folded into the in-memory ledger
        self._mem_full = False
        self._notices: list[str] = []
        self._warned: set[str] = set()
        self._maintained = 0.0
        self._scanned = 0.0
        self._fork_held = False
        self._closed = False
        _LIVE.add(self)

    # ----------------------------------------------------------------- recording (hot path)

    def append(self, record: Record) -> None:
        """Journal one record (one ``os.write``); it reaches ``ledger.sqlite3`` within a second."""
        try:
            line = _encode(record)
        except TypeError:  # an int beyond 64 bits: neither the journal nor SQLite can hold it
            self.dropped += 1
            return
        opened = False
        with self._wlock:
            if self._fd is None:
                self._open_journal()
                opened = True
            written = False
            if self._writable and self._jsize - self._folded < JOURNAL_CAP:
                fd: int = self._fd  # type: ignore[assignment]
                try:
                    n = os.write(fd, line)
                except OSError as exc:
                    self._journal_failed(exc, 0)
                else:
                    if n == len(line):
                        self._jsize += n
                        written = True
                    else:  # a short write (disk full): the torn tail is skipped on replay
                        self._journal_failed(OSError(f"short write ({n} of {len(line)})"), n)
            if not written:
                if len(self._queue) < QUEUE_CAP:
                    self._queue.append(record)
                else:
                    self.dropped += 1
            self._pending += 1
            pending = self._pending
        flusher = _FLUSHER
        if opened or not flusher.running:
            flusher.start()
        elif pending >= FLUSH_EVERY:
            flusher.wake()
        if self._notices:
            self._warn()

    def _open_journal(self) -> None:
        """Create this process's journal (caller holds ``_wlock``); on failure, mark it unusable."""
        _LIVE.add(self)
        self._closed = False  # recording again after close() reopens the ledger
        self._fd, self._writable = -1, False
        self._jname, self._jsize, self._folded, self._mem_offset = None, 0, 0, 0
        if not _JOURNALING:  # pragma: no cover
            return
        try:
            _private_dir(self.journal_dir)
            base = f"{os.getpid()}-{secrets.token_hex(8)}"
            # Created under a hidden name and locked before it is renamed into view, so no
            # other process can take it for a dead process's journal.
            tmp = self.journal_dir / f".{base}.tmp"
            flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC
            fd = os.open(tmp, flags, 0o600)
            try:
                os.fchmod(fd, 0o600)  # the umask may have taken bits away from 0o600
                if not _try_lock(fd):
                    raise OSError(f"cannot lock {tmp}")
                os.rename(tmp, self.journal_dir / (base + _SUFFIX))
            except BaseException:
                os.close(fd)
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        except OSError as exc:
            self._jerror = exc
            return
        fin = weakref.finalize(self, os.close, fd)
        fin.atexit = False  # close() folds it at exit; the finalizer is for a dropped Ledger
        self._fd, self._jname, self._writable, self._finalizer = fd, base + _SUFFIX, True, fin

    def _journal_failed(self, exc: BaseException, written: int) -> None:
        # Keep the descriptor (and its lock): what it holds is still folded, torn tail skipped.
        self._writable = False
        self._jsize += written
        self._jerror = exc

    # ----------------------------------------------------------------- folding

    def _connect(self) -> sqlite3.Connection:
        """Return the open connection to ``ledger.sqlite3`` (caller holds ``_io``)."""
        conn = self._conn
        if conn is not None:
            try:
                same = os.stat(self.path).st_ino == self._ino
            except OSError:
                same = False
            if same:
                return conn
            self._drop_conn()  # another process moved a corrupt file aside: reopen
        _LIVE.add(self)
        _private_dir(self.directory)
        _private_file(self.path)
        for suffix in ("-wal", "-shm"):  # left group-readable by an older version
            with contextlib.suppress(OSError):
                side = f"{self.path}{suffix}"
                if os.stat(side).st_mode & 0o077:
                    os.chmod(side, 0o600)
        conn = sqlite3.connect(
            self.path, timeout=_BUSY_MS / 1000, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {_BUSY_MS}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            (version,) = conn.execute("PRAGMA user_version").fetchone()
            if version > SCHEMA_VERSION:
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
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                    raise
            conn.execute(_JOURNAL_TABLE)
            self._ino = os.stat(self.path).st_ino
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        self._fold_orphans(conn)  # replay what dead processes left behind
        return conn

    def _drop_conn(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):
                conn.close()

    def _sync(self, *, scan: bool) -> None:
        """Fold this process's records (with ``scan``, dead processes' journals too).

        Into the file, or into memory when the file cannot be written. Caller holds ``_io``.
        Raises no sqlite3 or OS error: failures become one notice, emitted later on a caller's
        thread.
        """
        self._pending = 0
        if self._broken is None and not self._unsafe:
            for attempt in range(2):
                try:
                    self._fold_to_file(scan)
                except ConfigError as exc:  # written by a newer promptcache
                    self._drop_conn()
                    self._newer = exc
                    self._degrade(exc)
                except (sqlite3.Error, OSError) as exc:
                    self._drop_conn()
                    kind = _error_kind(exc)
                    if kind == "busy":  # another process holds the lock: next time
                        return
                    if kind == "corrupt" and attempt == 0 and self._quarantine(exc):
                        continue
                    self._degrade(exc)
                break
        if self._broken is not None or self._unsafe:
            try:
                self._fold_to_memory()
            except (sqlite3.Error, OSError, MemoryError):  # the journal still has them, if any
                self._mem_full = True
        self._note_trouble()

    def _fold_to_file(self, scan: bool) -> None:
        conn = self._connect()
        fd, name = self._fd, self._jname
        if fd is not None and fd >= 0 and name is not None and self._jsize > self._folded:
            self._folded, bad = _fold(conn, name, fd, final=False)
            self.skipped += bad
        if self._queue:
            q = self._queue
            batch = [q.popleft() for _ in range(len(q))]
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    conn.executemany(_INSERT, [_row(r) for r in batch])
                    conn.execute("COMMIT")
                except BaseException:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                    raise
            except BaseException:
                q.extendleft(reversed(batch))  # in order, for the next attempt
                raise
        if scan or time.monotonic() - self._scanned >= ORPHAN_INTERVAL:
            self._fold_orphans(conn)
        self._maybe_maintain(conn)
        if self._folded >= ROTATE_BYTES:  # even while records keep coming: see _rotate
            self._rotate(conn)

    def _rotate(self, conn: sqlite3.Connection) -> None:
        """Start a fresh journal at the next append; fold what is left of this one, delete it.

        Once the descriptor is swapped (under ``_wlock``, which every write holds) nobody
        writes to the old journal again, so its remainder is complete lines: a final fold.
        """
        with self._wlock:
            fd, name, fin = self._fd, self._jname, self._finalizer
            self._fd, self._jname, self._finalizer, self._writable = None, None, None, False
            self._jsize = self._folded = self._mem_offset = 0
        if fd is not None and fd >= 0 and name is not None:
            self._retire(conn, fd, name, fin)

    def _retire(
        self, conn: sqlite3.Connection, fd: int, name: str, fin: weakref.finalize[Any, Any] | None
    ) -> None:
        """Fold a journal nobody writes to any more, delete it, and close it."""
        try:
            _, bad = _fold(conn, name, fd, final=True)
            self.skipped += bad
            try:
                os.unlink(self.journal_dir / name)
            except FileNotFoundError:
                pass
            except OSError:
                return  # stays; its folded offset keeps it from being counted twice
            # Only after the unlink: were the row gone first, a crash would fold it again.
            conn.execute("DELETE FROM journal WHERE name = ?", (name,))
        finally:
            if fin is not None:
                fin.detach()
            with contextlib.suppress(OSError):
                os.close(fd)  # releases the lock: anything left is an orphan, folded later

    def _fold_orphans(self, conn: sqlite3.Connection) -> None:
        """Fold and delete the journals of processes that are gone (their lock is free)."""
        self._scanned = time.monotonic()
        try:
            names = os.listdir(self.journal_dir)
        except OSError:
            return
        for name in names:
            if name == self._jname:
                continue
            path = self.journal_dir / name
            if name.startswith(".") and name.endswith(".tmp"):
                self._drop_stale_tmp(path)
                continue
            if not name.endswith(_SUFFIX):
                continue
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                continue
            if not _try_lock(fd):  # its process is alive (or another one is folding it)
                os.close(fd)
                continue
            try:
                # Locked after another process folded and deleted it: nothing to do.
                if os.stat(path).st_ino != os.fstat(fd).st_ino:
                    os.close(fd)
                    continue
            except OSError:
                os.close(fd)
                continue
            self._retire(conn, fd, name, None)
        # Offsets of journals deleted by a process that died before forgetting them. Listed
        # inside the write transaction: no journal can gain a row meanwhile.
        known = {r[0] for r in conn.execute("SELECT name FROM journal")}
        if known - set(names):
            conn.execute("BEGIN IMMEDIATE")
            try:
                present = set(os.listdir(self.journal_dir))
                conn.executemany(
                    "DELETE FROM journal WHERE name = ?", [(n,) for n in known - present]
                )
                conn.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise

    @staticmethod
    def _drop_stale_tmp(path: Path) -> None:
        # A process killed between creating its journal and renaming it leaves an empty file.
        try:
            if time.time() - os.stat(path).st_mtime < 60:
                return
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return
        try:
            if _try_lock(fd) and os.fstat(fd).st_size == 0:
                os.unlink(path)
        except OSError:
            pass
        finally:
            os.close(fd)

    def _maybe_maintain(self, conn: sqlite3.Connection) -> None:
        now = self._clock()
        if now - self._maintained < 3600:
            return
        self._maintained = now
        if self.rollup_after_days is None and self.retention_days is None:
            return
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
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise

    # ----------------------------------------------------------------- when things break

    def _quarantine(self, exc: BaseException) -> bool:
        """Move a corrupt ledger (and its -wal/-shm) aside; True when a fresh one can start."""
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        aside = self.path.with_name(f"{_FILE}.corrupt-{stamp}-{os.getpid()}")
        try:
            os.replace(self.path, aside)
        except FileNotFoundError:
            return True  # another process moved it already
        except OSError:
            return False
        for suffix in ("-wal", "-shm"):
            with contextlib.suppress(OSError):
                os.replace(f"{self.path}{suffix}", f"{aside}{suffix}")
        self._notices.append(
            f"promptcache ledger: {self.path} was corrupt ({exc}); moved it aside to "
            f"{aside.name} and started a fresh ledger"
        )
        self._warned.add("corrupt")
        return True

    def _degrade(self, exc: BaseException) -> None:
        """Stop writing ``ledger.sqlite3`` in this ledger; keep this process's records in memory."""
        self._broken = exc
        self._mem_offset = self._folded  # what the file holds of our journal

    def _memory(self) -> sqlite3.Connection:
        if self._mem is None:
            mem = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
            for stmt in _SCHEMA.split(";"):
                if stmt.strip():
                    mem.execute(stmt)
            self._mem = mem
        return self._mem

    def _fold_to_memory(self) -> None:
        """Add this process's journal lines and queued records to the in-memory ledger."""
        mem = self._memory()
        rows: list[tuple[Any, ...]] = []
        fd = self._fd
        if fd is not None and fd >= 0 and self._jsize > self._mem_offset:
            try:
                data = os.pread(fd, self._jsize - self._mem_offset, self._mem_offset)
            except OSError:
                data = b""
            end = data.rfind(b"\n") + 1
            rows, bad = _decode_rows(data[:end])
            self.skipped += bad
            self._mem_offset += end
        q = self._queue
        queued = [_row(q.popleft()) for _ in range(len(q))]
        if self._mem_full:
            self.dropped += len(queued)  # journaled rows are not lost: the journal keeps them
            return
        mem.executemany(_INSERT, rows + queued)
        (n,) = mem.execute("SELECT COUNT(*) FROM records").fetchone()
        if n > MEMORY_ROWS:
            (latest,) = mem.execute("SELECT MAX(ts) FROM records").fetchone()
            _rollup(mem, latest + 86400)  # every day, today included: one row per attribution
            (n,) = mem.execute("SELECT COUNT(*) FROM records").fetchone()
            self._mem_full = n > MEMORY_ROWS

    def _note_trouble(self) -> None:
        """Queue the one warning about a ledger that cannot be written as designed."""
        if "degraded" in self._warned:
            return
        where = self.path
        if self._unsafe:
            text = (
                "this process was forked while the ledger was in use, so it leaves SQLite "
                "alone: its records are journaled for the next process to fold in, and "
                "summary() here counts only this process's calls"
            )
        elif self._broken is not None:
            kept = (
                f"and in its journal in {self.journal_dir} for the next process to fold in"
                if self._writable
                else "only, and lost when it exits"
            )
            text = (
                f"cannot write {where} ({self._broken!r}); calls go on, and this process's "
                f"records are kept in memory (summary() counts them) {kept}"
            )
        elif self._jerror is not None:
            text = (
                f"cannot write a journal in {self.journal_dir} ({self._jerror!r}); records "
                "are written to the ledger every second instead, so a crash can lose up to a "
                "second of them"
            )
        else:
            return
        self._warned.add("degraded")
        self._notices.append(f"promptcache ledger: {text}")

    def _warn(self, stacklevel: int = 3) -> None:
        # Called on a caller's thread only: a warning raised in the flusher thread would be
        # lost (or, under warnings-as-errors, kill it).
        while self._notices:
            try:
                message = self._notices.pop(0)
            except IndexError:
                return
            warnings.warn(message, StoreWarning, stacklevel=stacklevel)

    # ----------------------------------------------------------------- lifecycle

    def flush(self) -> None:
        """Fold this process's records into ``ledger.sqlite3`` now (safe from any thread)."""
        with self._io:
            self._sync(scan=False)
        self._warn()

    def _background(self) -> None:
        """One tick of the flusher thread."""
        dirty = self._jsize > (self._folded if self._broken is None else self._mem_offset)
        due = time.monotonic() - self._scanned >= ORPHAN_INTERVAL and self._conn is not None
        if not (dirty or self._queue or due):
            return
        with self._io:
            self._sync(scan=False)

    def close(self) -> None:
        """Fold and delete this process's journal and release every descriptor.

        Never raises: a journal that cannot be folded now stays on disk for the next process.
        The ledger can still be queried (each query then opens and closes the database), and
        recording again reopens it with a new journal.
        """
        with self._io:
            self._sync(scan=True)
            with self._wlock:
                fd, name, fin = self._fd, self._jname, self._finalizer
                self._fd, self._jname, self._finalizer, self._writable = None, None, None, False
                self._jsize = self._folded = self._mem_offset = 0
            if fd is not None and fd >= 0:
                conn = self._conn
                if conn is not None and name is not None:
                    with contextlib.suppress(sqlite3.Error, OSError):
                        self._retire(conn, fd, name, fin)
                else:
                    if fin is not None:
                        fin.detach()
                    with contextlib.suppress(OSError):
                        os.close(fd)
            self._drop_conn()
            self._closed = True
        _LIVE.discard(self)
        _FLUSHER.wake()
        self._warn()

    def _before_fork(self) -> None:
        # No SQLite connection, lock or fold in progress may cross the fork: wait for a fold
        # to finish (bounded) and close the connection; the parent reopens it when needed.
        self._fork_held = self._io.acquire(timeout=FORK_WAIT)
        self._wlock.acquire()
        if self._fork_held:
            self._drop_conn()

    def _after_fork_in_parent(self) -> None:
        self._wlock.release()
        if self._fork_held:
            self._io.release()

    def _reset_after_fork(self) -> None:
        """In the child: own locks, own journal, none of the parent's records or connection."""
        self._io = threading.Lock()
        self._wlock = threading.Lock()
        if self._conn is not None or not self._fork_held:
            # Forked mid-fold: SQLite's in-process lock state is the parent's. Never close
            # (or garbage-collect) the inherited connection, and never open another.
            if self._conn is not None:
                _ABANDONED.append(self._conn)
            self._conn = None
            self._unsafe = True
        if self._finalizer is not None:
            self._finalizer.detach()
        if self._fd is not None and self._fd >= 0:
            # Closing our copy leaves the parent's lock in place (it holds its own).
            with contextlib.suppress(OSError):
                os.close(self._fd)
        self._fd, self._jname, self._finalizer, self._writable = None, None, None, False
        self._jsize = self._folded = self._mem_offset = 0
        self._jerror = self._broken = None
        self._queue = deque()
        self._pending = 0
        self._mem = None
        self._mem_full = False
        self._notices = []
        self._warned = set()
        self.dropped = self.skipped = 0
        self._scanned = 0.0

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

    def _query(self, sql: str, args: Sequence[Any]) -> list[tuple[Any, ...]]:
        """Run ``sql`` over everything known; never raises sqlite3 errors.

        That is the file, plus this process's records that only memory holds when the file
        cannot be written.
        """
        with self._io:
            self._sync(scan=True)
            newer = self._newer
            rows: list[tuple[Any, ...]] | None = None
            for attempt in range(2):
                conn = self._conn
                if newer is not None or conn is None or self._broken is not None:
                    break
                try:
                    rows = conn.execute(sql, args).fetchall()
                    break
                except sqlite3.Error as exc:
                    self._drop_conn()
                    kind = _error_kind(exc)
                    if kind == "busy":
                        break
                    if kind == "corrupt" and attempt == 0 and self._quarantine(exc):
                        self._sync(scan=False)  # a fresh file, with our journal folded in
                        continue
                    self._degrade(exc)
                    self._sync(scan=False)  # into memory, with the one warning
                    break
            if rows is None and newer is None:
                if self._broken is None and not self._unsafe and "busy" not in self._warned:
                    self._warned.add("busy")
                    self._notices.append(
                        f"promptcache ledger: {self.path} stayed locked by another process; "
                        "this result may miss this process's latest calls (its journal keeps "
                        "them)"
                    )
                rows = [] if self._unsafe else self._read_file(sql, args)
                if self._mem is not None:
                    with contextlib.suppress(sqlite3.Error):
                        rows += self._mem.execute(sql, args).fetchall()
            if self._closed:  # a query after close() leaves nothing open behind it
                self._drop_conn()
                _LIVE.discard(self)
        self._warn(4)  # at the caller of summary()/group_by()/records()
        if newer is not None:
            raise newer
        return rows or []

    def _read_file(self, sql: str, args: Sequence[Any]) -> list[tuple[Any, ...]]:
        """Read what a ledger file we cannot write still holds (nothing if unreadable)."""
        if not self.path.is_file():
            return []
        uri = self.path.absolute().as_uri()
        # Read-only first; a WAL database without its -shm (which a full disk or a read-only
        # directory cannot create) only opens as immutable, which skips an uncheckpointed WAL.
        for mode in ("?mode=ro", "?immutable=1"):
            try:
                conn = sqlite3.connect(uri + mode, uri=True, timeout=1.0, check_same_thread=False)
            except sqlite3.Error:
                continue
            try:
                return conn.execute(sql, args).fetchall()
            except sqlite3.Error:
                continue
            finally:
                conn.close()
        return []

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
        When the ledger file cannot be written or read, the totals are what is still known
        (this process's calls, kept in memory) and one :class:`StoreWarning` says so.
        """
        where, args = self._where(since, until, model, tag, function, provider)
        rows = self._query(f"SELECT {_AGG} FROM records{where}", args)
        return _summary(_add(rows, 18))

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
        groups: dict[str, list[tuple[Any, ...]]] = {}
        for r in self._query(sql, args):
            groups.setdefault(str(r[0]), []).append(tuple(r[1:]))
        return {k: _summary(_add(v, 18)) for k, v in sorted(groups.items())}

    def records(self) -> int:
        """Return the number of rows (calls plus rolled-up day rows), after folding."""
        return int(_add(self._query("SELECT COUNT(*) FROM records", ()), 1)[0])


def _add(rows: Sequence[Sequence[int]], width: int) -> list[int]:
    """Column sums of aggregate rows (one from the file, one from memory)."""
    if not rows:
        return [0] * width
    return [sum(col) for col in zip(*rows, strict=True)]


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
    """One daemon thread per process folding every live ledger each second (or on demand).

    It ends when no ledger is left open, and is started again by the next record.
    """

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
        self._event.set()

    def _run(self) -> None:
        while True:
            self._event.wait(FLUSH_INTERVAL)
            self._event.clear()
            ledgers = list(_LIVE)
            if not ledgers:
                with self._lock:  # start() checks under the same lock: no ledger is missed
                    if not _LIVE:
                        self.running = False
                        return
                continue
            for ledger in ledgers:
                try:
                    ledger._background()
                except Exception as exc:  # never let the thread die; say so on a caller's thread
                    ledger._notices.append(f"promptcache ledger: background fold failed: {exc!r}")


_FLUSHER = _Flusher()
_FORKING: list[Ledger] = []


def _flush_all() -> None:
    for ledger in list(_LIVE):
        with contextlib.suppress(Exception):
            ledger.close()


def _before_fork() -> None:
    _FORKING[:] = list(_LIVE)
    for ledger in _FORKING:
        ledger._before_fork()


def _after_fork_in_parent() -> None:
    for ledger in _FORKING:
        ledger._after_fork_in_parent()
    _FORKING.clear()


def _after_fork_in_child() -> None:
    global _FLUSHER
    _FLUSHER = _Flusher()
    for ledger in _FORKING:
        ledger._reset_after_fork()
    _FORKING.clear()


atexit.register(_flush_all)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_before_fork,
        after_in_parent=_after_fork_in_parent,
        after_in_child=_after_fork_in_child,
    )
