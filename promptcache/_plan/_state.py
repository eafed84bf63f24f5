"""What the planner learns across calls: families, reuse intervals, volatility, endpoints.

A *family* is the set of requests that share a prompt skeleton (model, tools, and the head of
the system prompt with digits and ids removed). Per family the planner remembers the block
hash sequences of recent requests (to find the prefix that was actually reused and to see a
conversation grow), the gaps between calls (to choose a TTL), and the labels of lines seen to
change between calls (auto mode). Everything is in memory, bounded, and guarded by one lock:
the transport calls the planner from many threads.
"""

from __future__ import annotations

import itertools
import os
import threading
import weakref
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from itertools import compress, count
from operator import ne
from typing import Final, Literal

from promptcache._plan._endpoints import WithheldHints
from promptcache._plan._routing import Route
from promptcache._plan._tokens import Calibration

__all__ = ["Family", "Match", "PlannerState"]

MAX_FAMILIES: Final = 4096
MAX_SEQS: Final = 8
# Ends of earlier requests remembered per family (as chained digests), so a turn is known to
# extend its conversation's previous turn even when many other conversations of the family
# were sent in between (more than the MAX_SEQS compared block by block).
MAX_ENDS: Final = 4096
MAX_GAPS: Final = 16
MAX_LABELS: Final = 32
MAX_WITHHELD: Final = 256
MAX_SHAPES: Final = 1024
# Stored responses whose `instructions` went out as a leading developer item: a chained turn
# (previous_response_id) needs to know, to not send the same text a second time. Each entry is
# ~150 bytes; a chain beyond this many newer moved responses falls back to "sent as written".
MAX_MOVED_RESPONSES: Final = 65_536
# A line must be seen changing twice before it counts as volatile: one change is as likely to
# be a developer editing the prompt, and moving an edited line for good would be wrong.
LABEL_CONFIRMATIONS: Final = 2


@dataclass(slots=True)
class Match:
    """How the current request relates to earlier requests of its family."""

    common: int = 0  # blocks shared with the most similar recent request
    grew_from: int = 0  # length of an earlier request that is a full prefix of this one
    new_family: bool = True
    # Whether a first call should write speculatively: yes, unless this app's new families
    # have mostly turned out to be one-offs (unique prompts that are never sent again).
    speculate: bool = True
    # The family's recent calls shared nothing with their predecessors: writing the end of a
    # request "for the next turn" has not been paying off.
    stale: bool = False
    # The family has been seen before and no request of it has ever extended an earlier one
    # (shared examples, a different question each time): the end of a request is not where
    # the next one reads, however much history it carries.
    diverging: bool = False


@dataclass(slots=True)
class Family:
    """Learnt facts about one prompt family."""

    calls: int = 0
    seqs: deque[tuple[float, tuple[int, ...]]] = field(
        default_factory=lambda: deque(maxlen=MAX_SEQS)
    )
    times: deque[float] = field(default_factory=lambda: deque(maxlen=MAX_GAPS + 1))
    growth_gaps: deque[float] = field(default_factory=lambda: deque(maxlen=MAX_GAPS))
    grown: bool = False
    ends: OrderedDict[int, float] = field(default_factory=OrderedDict)  # chained digest -> time
    unshared: int = 0  # consecutive calls (after the first) that shared no readable prefix
    head_text: str | None = None
    labels: dict[str, int] = field(default_factory=dict)  # label -> times seen changing
    new_families: int = 0  # (heads only) families first seen under this coarse key
    recurring: int = 0  # (heads only) of which were seen a second time
    # Digests of items whose string content (or tool output) went out as a list of parts, to
    # carry a breakpoint: they keep that shape on every later call, so the bytes of an earlier
    # turn never change when the breakpoint moves on (OpenAI renders the two shapes apart).
    listed: OrderedDict[int, None] = field(default_factory=OrderedDict)
    chained: bool = False  # (heads only) a request chained with previous_response_id was seen

    def gaps(self) -> list[float]:
        """Inter-arrival times of the family's calls, oldest first."""
        t = list(self.times)
        return [b - a for a, b in itertools.pairwise(t)]


class PlannerState:
    """All mutable planner state; every method takes the lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        _live.add(self)
        self._families: OrderedDict[str, Family] = OrderedDict()
        self._heads: OrderedDict[str, Family] = OrderedDict()
        self._rejected: dict[str, set[str]] = {}
        self._accepted: dict[str, set[str]] = {}
        self._withheld: OrderedDict[tuple[str, str, str], _Withheld] = OrderedDict()
        self._routes: OrderedDict[str, Route] = OrderedDict()
        self._moved: OrderedDict[str, str] = OrderedDict()  # response id -> moved text digest
        self.calibration = Calibration()

    # --- families ---------------------------------------------------------------------------
    def record(
        self, key: str, seq: tuple[int, ...], now: float, coarse: str = "", useful: int = 1
    ) -> Match:
        """Match ``seq`` against the family's recent requests, then remember it.

        ``useful`` is how many leading blocks a shared prefix needs before the provider can
        read it (the model minimum): sharing fewer does not count as reuse.
        """
        with self._lock:
            fam = self._families.get(key)
            if fam is None:
                fam = self._families[key] = Family()
                if len(self._families) > MAX_FAMILIES:
                    self._families.popitem(last=False)
            else:
                self._families.move_to_end(key)
            m = Match(new_family=fam.calls == 0)
            head = self._heads.get(coarse)
            if head is None:
                head = self._heads[coarse] = Family()
            if fam.calls == 0:
                m.speculate = head.new_families < 4 or head.recurring * 4 >= head.new_families
                head.new_families += 1
            elif fam.calls == 1:
                head.recurring += 1
            grew_at: float | None = None
            for t, old in fam.seqs:
                c = _common(old, seq)
                m.common = max(m.common, c)
                if c == len(old) and len(seq) > len(old) and len(old) >= m.grew_from:
                    m.grew_from = len(old)
                    grew_at = t
            chain = _chain(seq)
            if grew_at is None:
                # The previous turn may be older than the last MAX_SEQS requests (interleaved
                # conversations): find the longest earlier request this one extends.
                for n in range(len(seq) - 1, 0, -1):
                    t_end = fam.ends.get(chain[n - 1])
                    if t_end is not None:
                        m.grew_from, grew_at = n, t_end
                        m.common = max(m.common, n)
                        break
            if grew_at is not None:
                fam.grown = True
                fam.growth_gaps.append(now - grew_at)
            m.diverging = fam.calls > 0 and not fam.grown
            if fam.calls > 0:
                # A shared prefix below the provider's minimum is no reuse: tools listed in a
                # new order every call share a first tool by chance about half the time, and
                # counting that as sharing kept writing prompts nobody reads.
                fam.unshared = 0 if m.common >= max(1, useful) else fam.unshared + 1
            m.stale = fam.unshared >= 2
            # A request repeated verbatim (or a retry) refreshes rather than duplicates.
            fam.seqs = deque((s for s in fam.seqs if s[1] != seq), maxlen=MAX_SEQS)
            fam.seqs.append((now, seq))
            if chain:
                fam.ends[chain[-1]] = now
                fam.ends.move_to_end(chain[-1])
                if len(fam.ends) > MAX_ENDS:
                    fam.ends.popitem(last=False)
            fam.times.append(now)
            fam.calls += 1
            return m

    def snapshot(self, key: str) -> tuple[list[float], list[float], bool]:
        """Return ``(gaps, growth_gaps, grown)`` for a family."""
        with self._lock:
            fam = self._families.get(key)
            if fam is None:
                return [], [], False
            return fam.gaps(), list(fam.growth_gaps), fam.grown

    def listed(self, key: str, among: Iterable[int]) -> set[int]:
        """Those of ``among`` (item digests) that went out with string content as a part list."""
        with self._lock:
            fam = self._families.get(key)
            if fam is None or not fam.listed:
                return set()
            return {d for d in among if d in fam.listed}

    def add_listed(self, key: str, digests: set[int]) -> None:
        """Remember items sent as a part list (bounded: the oldest are forgotten first)."""
        with self._lock:
            fam = self._families.get(key)
            if fam is None:
                return
            for d in digests:
                fam.listed[d] = None
                fam.listed.move_to_end(d)
            while len(fam.listed) > MAX_SHAPES:
                fam.listed.popitem(last=False)

    # --- heads: keyed coarsely (api, model, tenant, tools), because the family key itself is
    # computed from the head *after* volatile lines are removed, which needs these labels.
    def labels(self, coarse: str) -> frozenset[str]:
        """Line labels observed to precede changing text under ``coarse``."""
        with self._lock:
            head = self._heads.get(coarse)
            if head is None:
                return frozenset()
            return frozenset(k for k, n in head.labels.items() if n >= LABEL_CONFIRMATIONS)

    def swap_head(self, coarse: str, text: str) -> str | None:
        """Remember the latest head text under ``coarse`` and return the previous one."""
        with self._lock:
            head = self._heads.get(coarse)
            if head is None:
                head = self._heads[coarse] = Family()
                if len(self._heads) > MAX_FAMILIES:
                    self._heads.popitem(last=False)
            old, head.head_text = head.head_text, text
            return old

    def chains(self, coarse: str, *, now_chained: bool) -> bool:
        """Whether requests under ``coarse`` chain with ``previous_response_id`` (sticky)."""
        with self._lock:
            head = self._heads.get(coarse)
            if head is None:
                if not now_chained:
                    return False
                head = self._heads[coarse] = Family()
                if len(self._heads) > MAX_FAMILIES:
                    self._heads.popitem(last=False)
            head.chained = head.chained or now_chained
            return head.chained

    # --- Responses: stored responses that carry moved instructions (see _openai) -------------
    def remember_moved(self, response_id: str, digest: str) -> None:
        """Remember that ``response_id``'s stored input starts with the moved text ``digest``."""
        with self._lock:
            self._moved[response_id] = digest
            self._moved.move_to_end(response_id)
            if len(self._moved) > MAX_MOVED_RESPONSES:
                self._moved.popitem(last=False)

    def moved_in(self, response_id: str) -> str | None:
        """Return the digest of the instructions moved into ``response_id``'s history, if any."""
        with self._lock:
            return self._moved.get(response_id)

    def add_label(self, coarse: str, label: str) -> bool:
        """Count one observed change after ``label``; return whether it is now confirmed."""
        with self._lock:
            head = self._heads.get(coarse)
            if head is None or (label not in head.labels and len(head.labels) >= MAX_LABELS):
                return False
            head.labels[label] = n = head.labels.get(label, 0) + 1
            return n >= LABEL_CONFIRMATIONS

    # --- OpenAI routing: shards of a family's prompt_cache_key (see _routing) ---------------
    def shard(
        self,
        route: str,
        now: float,
        limit: float,
        conversation: Callable[[], tuple[int, bool] | None],
    ) -> int:
        """Count a request of ``route`` (family and key) and return the shard it goes to.

        ``conversation`` is called only when the family is sharded.
        """
        with self._lock:
            r = self._routes.get(route)
            if r is None:
                r = self._routes[route] = Route()
                if len(self._routes) > MAX_FAMILIES:
                    self._routes.popitem(last=False)
            else:
                self._routes.move_to_end(route)
            n = r.size(now, limit)
            return r.assign(now, limit, conversation() if n > 1 else None)

    # --- endpoint capabilities -------------------------------------------------------------
    def is_rejected(self, base_url: str, param: str) -> bool:
        """Whether ``base_url`` was seen to reject ``param``."""
        with self._lock:
            return param in self._rejected.get(base_url, ())

    def reject(self, base_url: str, params: set[str]) -> set[str]:
        """Remember that ``base_url`` rejects ``params``; return those it had not rejected yet."""
        with self._lock:
            known = self._rejected.setdefault(base_url, set())
            new = params - known
            known.update(params)
            return new

    # --- hints withheld (for the doctor) ------------------------------------------------------
    def withhold(
        self,
        base_url: str,
        host: str,
        model: str | None,
        hints: tuple[str, ...],
        reason: Literal["not_openai", "declared", "rejected"],
        detail: str,
        fix: str,
        now: float,
    ) -> None:
        """Count one request (or refusal) for which ``hints`` were not sent, and why."""
        key = (base_url, model or "", reason)
        with self._lock:
            seen = self._withheld.get(key)
            if seen is None:
                first = WithheldHints(
                    base_url, host, model, hints, reason, detail, fix, 0, now, now
                )
                self._withheld[key] = seen = _Withheld(first)
                if len(self._withheld) > MAX_WITHHELD:
                    self._withheld.popitem(last=False)
            elif hints != seen.record.hints and not set(hints) <= set(seen.record.hints):
                merged = tuple(dict.fromkeys((*seen.record.hints, *hints)))
                seen.record = replace(seen.record, hints=merged, detail=detail)
            seen.requests += 1
            seen.last = now

    def withheld(self) -> list[WithheldHints]:
        """Every endpoint (and model) sent fewer hints than OpenAI would take, oldest first."""
        with self._lock:
            return [
                replace(w.record, requests=w.requests, last_seen=w.last)
                for w in self._withheld.values()
            ]


@dataclass(slots=True)
class _Withheld:
    record: WithheldHints
    requests: int = 0
    last: float = 0.0


def _common(a: tuple[int, ...], b: tuple[int, ...]) -> int:
    # Index of the first difference, found by C iterators (no Python loop over the blocks):
    # this runs against up to 8 earlier requests on every call.
    return next(compress(count(), map(ne, a, b)), min(len(a), len(b)))


def _chain(seq: tuple[int, ...]) -> list[int]:
    """Digest of every prefix of ``seq``: ``out[i]`` stands for ``seq[: i + 1]``."""
    out: list[int] = []
    h = 0
    for block in seq:
        h = hash((h, block))
        out.append(h)
    return out


_live: weakref.WeakSet[PlannerState] = weakref.WeakSet()


def _after_fork() -> None:
    # A forked child: a parent thread may have held a lock, and no thread will release it here.
    # What it guards is only what the planner learnt: kept as it was.
    for obj in list(_live):
        obj._lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)
