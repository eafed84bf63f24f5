"""The doctor in the running app: a thin driver around :class:`~._core.Diagnoser`.

:class:`Doctor` sits where the transport talks to the planner (it implements the same
``Planner`` protocol and forwards every call), because ``observe`` is where a request's body as
sent meets the usage the provider billed. On the call's path it only fingerprints the sent body
(the user may change their messages list right after the call) and queues the observation;
comparing, explaining, pricing and excerpting run behind, on a short-lived thread, for the
calls gathered over :data:`BATCH_S` — so a miss costs the caller no more than the fingerprint.
``findings()`` and ``flush()`` examine what is queued first. With ``warnings=True`` (a warning
should point at its call) or ``ask_provider=True`` (the next request needs this answer's id),
each call is examined as it returns. Nothing here may fail a call: every error is swallowed
(and logged at debug level).

What it finds reaches users three ways: a log line on the ``promptcache.doctor`` logger (and
optionally a :class:`~promptcache.CacheMissWarning`) the first time a kind appears for a family;
``PromptCache.doctor()``; and the persisted history read by ``promptcache doctor``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import warnings
import weakref
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

from promptcache._api import Api, RequestInfo
from promptcache._doctor import _history
from promptcache._doctor._ask import ask, read_answer
from promptcache._doctor._core import MAX_BREAKPOINTS, Billed, Diagnoser, Pricer
from promptcache._doctor._findings import DoctorOptions, Finding
from promptcache._doctor._fingerprint import Print, as_shard, fingerprint
from promptcache._errors import CacheMissWarning
from promptcache._hooks import Accountant, Planner, Rewrite, UsageMeta
from promptcache._plan._options import OpenAIOptions
from promptcache._plan._routing import SHARD_NOTE

__all__ = ["Doctor", "billed_of", "make_pricer"]

log = logging.getLogger("promptcache.doctor")
FLUSH_EVERY_S: Final = 5.0
#: Observations gathered this long are examined together, off the call path.
BATCH_S: Final = 0.2
#: Bodies with more parts than this are fingerprinted on the call path: copying their
#: containers (~1 µs per part) would cost about what the fingerprint does.
COPY_PARTS: Final = 12
#: A bigger backlog than this (a thread that never got to run) drops its oldest calls.
BACKLOG_MAX: Final = 10_000
MAX_ANNOUNCED: Final = 256  # distinct (family, kind) pairs announced per process


def billed_of(meta: UsageMeta | None) -> Billed | None:
    """Return the provider's counts from the accountant's meta (``None``: none reported)."""
    if not meta:
        return None
    inner = meta.get("usage")
    if not isinstance(inner, Mapping):
        return None
    try:
        writes = inner.get("cache_write_tokens_by_ttl") or {}
        by_ttl = {str(k): int(v) for k, v in writes.items() if v}
        total_writes = int(inner.get("cache_write_tokens") or 0)
        if total_writes and not by_ttl:
            by_ttl = {"": total_writes}
        return Billed(
            input_tokens=int(inner.get("input_tokens") or 0),
            read=int(inner.get("cache_read_tokens") or 0),
            writes=by_ttl,
            provider=str(meta.get("provider") or ""),
            provider_reason=None,
        )
    except (TypeError, ValueError, AttributeError):
        return None


def make_pricer(prices: Mapping[str, Any] | None) -> Pricer:
    """Return a :data:`Pricer` over the ledger's price book (same overrides and data)."""
    from promptcache._accounting._pricing import PriceBook, _IntRates, provider_from_model

    book = PriceBook(prices)
    memo: dict[tuple[str, str, int], _IntRates | None] = {}

    def price(
        provider: str,
        model: str,
        when: float,
        counts: tuple[int, int, int, int, int, int, int, int],
    ) -> int | None:
        day = int(when // 86400)
        key = (provider, model, day)
        if key not in memo:
            api = Api.ANTHROPIC_MESSAGES if "claude" in model else Api.OPENAI_CHAT
            # rates() never warns: the accountant already said once that a price is unknown.
            rates = book.rates(provider, (model,), when, fallback=provider_from_model(api, model))
            if len(memo) > 1024:
                memo.clear()
            memo[key] = None if rates is None else _IntRates.of(rates)
        ir = memo[key]
        return None if ir is None else ir.price(counts)[0]

    return price


@dataclass(slots=True)
class _Carried:
    """The planner's own facts and the doctor's fingerprint, on one ``Rewrite.plan``."""

    inner: Any
    #: The fingerprint, taken when examined (behind the call: see :func:`_snapshot`).
    print: Print | None
    #: A copy of the sent body's containers, fingerprinted later (``None``: ``print`` is set).
    snapshot: dict[str, Any] | None = None
    sharded: bool = False
    unasked: dict[str, Any] | None = None  # the body before the provider was asked why

    def fingerprint(self, info: RequestInfo) -> Print:
        if self.print is None:
            assert self.snapshot is not None
            self.print = fingerprint(info, self.snapshot)
            if self.sharded:
                as_shard(self.print)
            self.snapshot = None
        return self.print


def _parts(body: dict[str, Any]) -> int:
    """How many messages, tools and system blocks a body has (a proxy for copying its parts)."""
    n = 0
    for name in ("messages", "input", "tools", "system"):
        value = body.get(name)
        if type(value) is list:
            n += len(value)
    return n


def _snapshot(obj: Any) -> tuple[Any, int]:
    """Copy the containers of a body (strings are shared: immutable) and count breakpoints.

    The doctor fingerprints the body as sent after the call returned, and the user may change
    their own messages list (append the answer, edit a turn) right after it: what is copied
    here is what they could change. The count is of every dict carrying a breakpoint key: at
    least the fingerprint's own count, so an overflow is still found before sending.
    """
    kind = type(obj)
    if kind is dict:
        marks = 0
        copy: dict[str, Any] = {}
        for k, v in obj.items():
            if k in _BP_KEYS:
                marks += 1
            if type(v) in _CONTAINERS:
                v, n = _snapshot(v)
                marks += n
            copy[k] = v
        return copy, marks
    if kind is list or kind is tuple:
        total = 0
        items = []
        for v in obj:
            if type(v) in _CONTAINERS:
                v, n = _snapshot(v)
                total += n
            items.append(v)
        return items, total
    return obj, 0


_BP_KEYS: Final = frozenset({"cache_control", "prompt_cache_breakpoint"})
_CONTAINERS: Final = (dict, list, tuple)


class _Listener:
    """Forwards to the accountant; reads the provider's answer to the doctor's question."""

    def __init__(self, inner: Accountant, doctor: Doctor) -> None:
        self.inner = inner
        self._doctor = doctor

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)  # the ledger, close(), … of the real accountant

    def record_upstream(
        self, info: RequestInfo, body: bytes, *, status: int, complete: bool
    ) -> UsageMeta | None:
        meta = self.inner.record_upstream(info, body, status=status, complete=complete)
        if status < 400:
            try:
                self._doctor.heard(info, read_answer(info.api, body, stream=info.stream))
            except Exception:  # the doctor must never cost the user a call
                log.debug("promptcache doctor could not read a response", exc_info=True)
        return meta

    def record_local_hit(self, info: RequestInfo, meta: UsageMeta | None) -> None:
        self.inner.record_local_hit(info, meta)


def _unwrap(sent: Rewrite) -> Rewrite:
    # The planner gets its Rewrite back exactly as it made it.
    if isinstance(sent.plan, _Carried):
        return replace(sent, plan=sent.plan.inner)
    return sent


class Doctor:
    """Wraps the planner: forwards everything, and explains provider cache misses."""

    def __init__(
        self,
        inner: Planner,
        options: DoctorOptions,
        *,
        directory: Path | None = None,
        pricer: Pricer | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.inner = inner
        self.options = options
        # What the planner knows about endpoints and routing (a DefaultPlanner; a custom
        # planner may have neither): which hints it withheld, and whether it shards.
        withheld = getattr(inner, "withheld", None)
        openai = getattr(inner, "openai", None)
        self.core = Diagnoser(
            options,
            pricer,
            withheld=withheld if callable(withheld) else None,
            openai=openai if isinstance(openai, OpenAIOptions) else None,
            planning=getattr(inner, "mode", "safe") != "off",
        )
        self._directory = directory if options.history else None
        self._clock = clock
        self._lock = threading.Lock()
        self._pending: dict[str, Finding] = {}
        self._flushed = clock()
        self._flushing = False
        self._flush_lock = threading.Lock()
        self._announced: set[str] = set()
        # ask_provider: each family's latest response id, answers in flight, hosts that refused.
        self._last_id: OrderedDict[str, str] = OrderedDict()
        self._answers: dict[int, tuple[str | None, str | None]] = {}
        self._refused: set[str] = set()
        # Calls observed but not examined yet (see the module docstring), and whether a thread
        # is on its way to examine them; one examination at a time, in order.
        self._backlog: deque[tuple[RequestInfo, Rewrite, _Carried | None, UsageMeta | None]] = (
            deque(maxlen=BACKLOG_MAX)
        )
        self._behind = False
        self._examining = threading.Lock()
        _live.add(self)

    def listening(self, accountant: Accountant) -> Accountant:
        """Return the accountant to use: it also hears the provider's answers when asked."""
        return _Listener(accountant, self) if self.options.ask_provider else accountant

    def heard(self, info: RequestInfo, answer: tuple[str | None, str | None]) -> None:
        """Keep a response's id and miss reason until ``observe`` of the same call."""
        with self._lock:
            if len(self._answers) > 1024:
                self._answers.clear()  # calls that never reached observe (errors): forget
            self._answers[id(info)] = answer

    # --- the Planner protocol: forwarded, with the fingerprint riding on the Rewrite ----------
    def rewrite(self, info: RequestInfo, body: dict[str, Any]) -> Rewrite:
        """Plan with the planner, then fingerprint the body that will be sent."""
        sent = self.inner.rewrite(info, body)
        try:
            return self._examine(info, sent)
        except Exception:  # the doctor must never cost the user a call
            log.debug("promptcache doctor could not fingerprint a request", exc_info=True)
            return sent

    def _examine(self, info: RequestInfo, sent: Rewrite) -> Rewrite:
        sharded = bool(sent.notes) and any(n.startswith(SHARD_NOTE) for n in sent.notes)
        # Fingerprinted now when it must be: the question needs the family, a warning should
        # point at its call, an overflow must be found before sending (no usage will come
        # back); and when copying the body would cost about what fingerprinting it does.
        now = self.options.ask_provider or self.options.warnings or _parts(sent.body) > COPY_PARTS
        marks = 0
        if now:
            carried = _Carried(sent.plan, None, sent.body, sharded)
        else:
            snapshot, marks = _snapshot(sent.body)
            carried = _Carried(sent.plan, None, snapshot, sharded)
            now = marks > MAX_BREAKPOINTS
        if now:
            p = carried.fingerprint(info)
        if self.options.ask_provider and info.base_url not in self._refused:
            previous = self._last_id.get(p.family)
            asked = ask(info.api, info.model, sent.body, previous) if previous else None
            if asked is not None:
                carried.unasked = sent.body
                sent = replace(sent, body=asked, changed=True)
        if now and p.bp_count > MAX_BREAKPOINTS:
            # Found before sending: Anthropic answers 400, so no usage will ever come back.
            self._found([self.core.overflow(p, self._clock())])
        sent.plan = carried
        return sent

    def rejected(
        self, info: RequestInfo, sent: Rewrite, status: int, error_body: bytes
    ) -> dict[str, Any] | None:
        """Retry without the doctor's question if it was refused, else ask the planner."""
        carried = sent.plan if isinstance(sent.plan, _Carried) else None
        if carried is not None and carried.unasked is not None:
            text = error_body.decode("utf-8", "replace").lower()
            if "diagnostics" in text or "comparison_response_id" in text:
                self._refused.add(info.base_url)  # this endpoint is not asked again
                return carried.unasked
        return self.inner.rejected(info, _unwrap(sent), status, error_body)

    def observe(self, info: RequestInfo, sent: Rewrite, usage: UsageMeta | None) -> None:
        """Forward to the planner, then follow the request's family."""
        carried = sent.plan if isinstance(sent.plan, _Carried) else None
        self.inner.observe(info, _unwrap(sent), usage)
        if self.options.warnings or self.options.ask_provider:
            self._safely(info, sent, carried, usage)
            return
        with self._lock:
            self._backlog.append((info, sent, carried, usage))
            start = not self._behind
            self._behind = True
        if start:
            self._start_behind()

    def _start_behind(self) -> None:
        try:
            name = "promptcache-doctor"
            threading.Thread(target=self._behind_run, name=name, daemon=True).start()
        except RuntimeError:  # no new threads (interpreter exit): examine here
            with self._lock:
                self._behind = False
            self.examine_backlog()

    def _behind_run(self) -> None:
        time.sleep(BATCH_S)  # gather a batch: one thread per batch, not one per call
        try:
            self.examine_backlog()
        finally:
            with self._lock:
                again = bool(self._backlog)
                self._behind = again
            if again:
                self._start_behind()

    def examine_backlog(self) -> None:
        """Examine every queued observation, in order (never raises)."""
        with self._examining:
            while True:
                with self._lock:
                    if not self._backlog:
                        return
                    batch = list(self._backlog)
                    self._backlog.clear()
                for info, sent, carried, usage in batch:
                    self._safely(info, sent, carried, usage)

    def _safely(
        self, info: RequestInfo, sent: Rewrite, carried: _Carried | None, usage: UsageMeta | None
    ) -> None:
        try:
            self._observe(info, sent, carried, usage)
        except Exception:  # the doctor must never cost the user a call
            log.debug("promptcache doctor failed on a request", exc_info=True)

    # --- the doctor ------------------------------------------------------------------------
    def _observe(
        self, info: RequestInfo, sent: Rewrite, carried: _Carried | None, usage: UsageMeta | None
    ) -> None:
        billed = billed_of(usage)
        if billed is None:
            return
        now = info.started or self._clock()
        p = carried.fingerprint(info) if carried is not None else fingerprint(info, sent.body)
        if self.options.ask_provider:
            with self._lock:
                rid, reason = self._answers.pop(id(info), (None, None))
                if rid is not None:
                    self._last_id[p.family] = rid
                    self._last_id.move_to_end(p.family)
                    if len(self._last_id) > 4096:
                        self._last_id.popitem(last=False)
            if reason is not None:
                billed = replace(billed, provider_reason=reason)
        self._found(self.core.observe(p, billed, now))

    def _found(self, found: list[Finding]) -> None:
        if found:
            self._keep(found)
            for f in found:
                self._announce(f)

    def _keep(self, found: list[Finding]) -> None:
        if self._directory is None:
            return
        with self._lock:
            for f in found:
                old = self._pending.get(f.key)
                self._pending[f.key] = f if old is None else old.merged(f)
        if self._clock() - self._flushed >= FLUSH_EVERY_S and not self._flushing:
            # Off the request path: this may be an event loop, and the history is a file.
            self._flushing = True
            threading.Thread(
                target=self._flush_behind, name="promptcache-doctor", daemon=True
            ).start()

    def _flush_behind(self) -> None:
        try:
            self.flush()
        finally:
            self._flushing = False

    def _sweep(self) -> None:
        # Writes whose lifetime passed since the last call of their family.
        swept = self.core.sweep(self._clock())
        if swept and self._directory is not None:
            with self._lock:
                for f in swept:
                    old = self._pending.get(f.key)
                    self._pending[f.key] = f if old is None else old.merged(f)
        for f in swept:
            self._announce(f)

    def _announce(self, f: Finding) -> None:
        key = f"{f.family}|{f.kind}"
        with self._lock:
            if key in self._announced or len(self._announced) >= MAX_ANNOUNCED:
                return
            self._announced.add(key)
        line = (
            f"promptcache doctor: {f.kind} in family {f.family} ({f.model}): {f.summary}. "
            f"Fix: {f.fix}"
        )
        log.warning(line)
        if self.options.warnings:
            warnings.warn(CacheMissWarning(line), stacklevel=2)

    def findings(self, since: float | None = None) -> list[Finding]:
        """Return this process's findings (folded by key), costliest first."""
        self.examine_backlog()
        self._sweep()
        with self.core._lock:
            items = list(self.core.findings.values())
        if since is not None:
            items = [f for f in items if f.last_seen >= since]
        return sorted(items, key=lambda f: (f.cost or 0, f.count), reverse=True)

    def flush(self) -> None:
        """Add what was found since the last flush to the persisted history (never raises)."""
        self.examine_backlog()
        if self._directory is None:
            return
        # One flush at a time, so close() waits for one running behind (and sees its file).
        with self._flush_lock:
            self._sweep()
            with self._lock:
                pending, self._pending = self._pending, {}
                self._flushed = self._clock()
            if not pending:
                return
            try:
                _history.add(self._directory, pending.values())
            except Exception:  # a full disk or a foreign file must not reach the app
                log.debug("promptcache doctor could not write its history", exc_info=True)


_live: weakref.WeakSet[Doctor] = weakref.WeakSet()


def _after_fork() -> None:
    # A forked child: a parent thread may have held a lock no thread will release here. What
    # the doctor learnt is kept; a flush in flight in the parent is the parent's to finish.
    for d in list(_live):
        d._lock = threading.Lock()
        d.core._lock = threading.Lock()
        d._flush_lock = threading.Lock()
        d._flushing = False
        # The parent's queued calls are the parent's to examine (else both would count them).
        d._examining = threading.Lock()
        d._backlog.clear()
        d._behind = False


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)
