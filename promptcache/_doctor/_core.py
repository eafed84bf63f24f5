"""The pure core of the cache doctor: follow prompt families, explain what the cache missed.

For every request that reached the provider, :meth:`Diagnoser.observe` gets its fingerprint
(:mod:`._fingerprint`) and the token counts the provider billed. It compares the request with
the family's recent requests (at most four, as integer tuples) and works out what an earlier
request made readable: the shared prefix, up to what that request left in the cache. When the
provider read clearly less, it explains why, trying in order:

* *scope changed*: model, tools or their order, ``tool_choice``, reasoning/thinking settings,
  response format, ``prompt_cache_key`` (each scopes the cache);
* *prefix changed*: a block before the final turn differs — which block, where, what it looks
  like (a timestamp, an id, a counter) — single-turn apps included;
* *below minimum*: the shared prefix is shorter than the model's minimum cacheable length;
* *breakpoints*: none at all (nothing is written), more than four, or moved beyond where the
  provider finds the earlier entry (Anthropic's 20-block lookback; gpt-5.6+ exact boundaries);
* *TTL lapsed*: longer since the family's last use than the lifetime in force;
* *routing overflow*: one prefix and key sent faster than ~15 per minute (OpenAI);
* *hints withheld*: the planner kept OpenAI's cache hints from an endpoint serving an OpenAI
  model (``endpoint="compatible"``, or judged not OpenAI), or dropped them after the server
  refused them — as the planner's :meth:`~promptcache._plan.DefaultPlanner.withheld` records;
* *unexplained*: none of the above (the provider may have evicted the entry early).

Separately it keeps the family's cache writes and calls them *never read* when their lifetime
passed without a later read, once that is the usual fate of the family's writes.

Above the routing limit the planner sends a family under derived keys (shards, each on its
own machines): a request is then compared only with earlier requests sent under the same key,
and a shard's first request is cold by design (the price of sharding), not a finding.

Everything is in memory, bounded, and guarded by one lock. No I/O, no clock: time comes in.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from itertools import compress, count
from operator import itemgetter, ne
from typing import Final

import xxhash

from promptcache._api import Api
from promptcache._doctor._ask import kind_of_reason
from promptcache._doctor._findings import DoctorOptions, Evidence, Finding, Kind
from promptcache._doctor._fingerprint import Print, text_of_block
from promptcache._plan._endpoints import WithheldHints, is_openai_model
from promptcache._plan._options import OpenAIOptions
from promptcache._plan._volatile import common_prefix_len, volatile_lines

__all__ = [
    "Billed",
    "Diagnoser",
    "Pricer",
    "common_blocks",
    "diff_block",
    "must_repeat",
]

MAX_FAMILIES: Final = 1024
MAX_RECENT: Final = 4
MAX_KEYS: Final = 64  # per family: the latest request sent under each prompt_cache_key
MAX_ROUTES: Final = 4096
ROUTING_LIMIT_PER_MIN: Final = 15
LOOKBACK: Final = 20  # Anthropic: blocks a breakpoint looks back for an earlier entry
MAX_BREAKPOINTS: Final = 4

#: ``(provider, model, when, counts) -> picodollars`` with counts as the ledger's
#: ``(input, read, 5m, 1h, 30m, 12h, output, reasoning)``; ``None`` when no price is known.
Pricer = Callable[[str, str, float, tuple[int, int, int, int, int, int, int, int]], int | None]
_TTL_INDEX: Final = {"5m": 2, "1h": 3, "30m": 4, "12h": 5}
_PICO: Final = Decimal(10) ** 12


@dataclass(frozen=True, slots=True)
class Billed:
    """What the provider reported for one request."""

    input_tokens: int  # inclusive
    read: int
    writes: dict[str, int]  # ttl -> tokens written
    provider: str
    provider_reason: str | None = None  # the provider's own miss explanation, when asked

    @property
    def written(self) -> int:
        """All tokens written, whatever their TTL."""
        return sum(self.writes.values())


@dataclass(slots=True)
class _Seen:
    time: float
    p: Print
    ratio: float  # tokens per char in this request
    reach: int  # tokens of it a later request can read (what it read or wrote)


@dataclass(slots=True)
class _Write:
    time: float
    ttl_s: float
    start: int  # tokens: the write covers [start, start + tokens)
    tokens: int
    premium: int | None  # picodollars paid beyond plain input for it
    read: bool = False


@dataclass(slots=True)
class _Family:
    recent: deque[_Seen] = field(default_factory=lambda: deque(maxlen=MAX_RECENT))
    writes: deque[_Write] = field(default_factory=lambda: deque(maxlen=64))
    expired_tokens: int = 0  # tokens of writes whose lifetime passed
    wasted_tokens: int = 0  # of which never read
    wasted_writes: int = 0
    reported_waste: int = 0  # wasted writes already reported
    pending_pico: int | None = 0  # premium of wasted writes not yet reported
    api: str = ""
    model: str = ""
    # The latest request under each key as sent: a shard's previous request may be further
    # back than ``recent`` reaches. Same objects as in ``recent`` (their bytes are dropped too).
    by_key: OrderedDict[str | None, _Seen] = field(default_factory=OrderedDict)
    sharded: bool = False  # some request went under a shard key: compare within a key only


def common_blocks(a: tuple[int, ...], b: tuple[int, ...]) -> int:
    """Return how many leading blocks two fingerprints share."""
    n = min(len(a), len(b))
    k = n - 1
    # The usual case — every block but the last shared (a new question, a new turn) — is
    # one tuple comparison in C, ~3x faster than walking the blocks one call at a time.
    if k > 8 and a[:k] == b[:k]:
        return k if a[k] != b[k] else n
    return next(compress(count(), map(ne, a, b)), n)


_KINDS_OF_VOLATILE: Final = (
    ("timestamp", re.compile(r"\d{1,2}:\d{2}|\d{4}-\d{2}-\d{2}T|\b1[6-9]\d{8}\b")),
    ("date", re.compile(r"\d{4}-\d{2}-\d{2}|\d{1,2}[/.]\d{1,2}[/.]\d{2,4}|[A-Z][a-z]+ \d{1,2},")),
    ("uuid", re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-")),
    ("id", re.compile(r"[0-9a-f]{12,}|\b[a-z]+[_-][A-Za-z0-9]{6,}")),
    ("counter", re.compile(r"\d+")),
)


def _volatile_kind(line: str) -> str | None:
    """Name what a changed line looks like (``None``: not a volatile-looking line)."""
    if not volatile_lines(line):
        return None
    for name, rx in _KINDS_OF_VOLATILE:
        if rx.search(line):
            return name
    return "volatile"


class Diagnoser:
    """Follows prompt families and turns provider cache misses into :class:`Finding` objects."""

    def __init__(
        self,
        options: DoctorOptions,
        pricer: Pricer | None = None,
        *,
        withheld: Callable[[], Sequence[WithheldHints]] | None = None,
        openai: OpenAIOptions | None = None,
        planning: bool = True,
    ) -> None:
        self.options = options
        self._pricer = pricer
        self._withheld = withheld  # the planner's records of hints it did not send
        self._openai = openai  # the planner's options (routing), when it is the default one
        self._planning = planning  # False: restructure="off", the planner sends as written
        self._lock = threading.Lock()
        self._families: OrderedDict[str, _Family] = OrderedDict()
        self._routes: OrderedDict[tuple[str, int, str | None], deque[float]] = OrderedDict()
        self.findings: dict[str, Finding] = {}

    # --- entry point -----------------------------------------------------------------------
    def observe(self, p: Print, billed: Billed, now: float) -> list[Finding]:
        """Learn one request; return the findings it produced (each with ``count=1``)."""
        if not p.digests or billed.input_tokens <= 0:
            return []
        ratio = billed.input_tokens / max(1, p.total)
        with self._lock:
            fam = self._families.get(p.family)
            if fam is None:
                fam = self._families[p.family] = _Family()
                if len(self._families) > MAX_FAMILIES:
                    self._families.popitem(last=False)
            else:
                self._families.move_to_end(p.family)
            fam.api, fam.model = p.api.value, p.model
            rate = self._rate(p, now)
            out: list[Finding] = []
            found = self._explain(fam, p, billed, ratio, rate, now)
            if found is not None:
                out.append(found)
            self._track_writes(fam, p, billed, now)
            waste = self._waste(fam, p.family, now)
            if waste is not None:
                out.append(waste)
            for s in fam.recent:
                s.p.raws = None  # only the latest request's bytes are kept
            reach = billed.read + billed.written
            if p.api is not Api.ANTHROPIC_MESSAGES and not p.explicit:
                # Implicit caching (before gpt-5.6) keeps the whole prompt, unreported.
                reach = max(reach, billed.input_tokens)
            seen = _Seen(now, p, ratio, reach)
            fam.recent.append(seen)
            by_key = fam.by_key
            by_key[p.key] = seen
            by_key.move_to_end(p.key)
            if len(by_key) > MAX_KEYS:
                by_key.popitem(last=False)
            if p.sharded:
                fam.sharded = True
            for f in out:
                old = self.findings.get(f.key)
                self.findings[f.key] = f if old is None else old.merged(f)
            return out

    def overflow(self, p: Print, now: float) -> Finding:
        """Record a request that carries more breakpoints than the provider allows."""
        f = Finding(
            kind="breakpoints",
            family=p.family[:12],
            api=p.api.value,
            model=p.model,
            summary=(
                f"{p.bp_count} cache breakpoints in one request (the app's own and the "
                f"automatic one included): more than the {MAX_BREAKPOINTS} allowed"
                + (", so the provider rejects it" if p.api is Api.ANTHROPIC_MESSAGES else "")
            ),
            fix=(
                f"keep at most {MAX_BREAKPOINTS}: drop the app's own cache_control and let "
                "restructure='safe' place them, or remove the top-level cache_control"
            ),
            evidence=Evidence(breakpoints=p.bp_count, block="breakpoint overflow"),
            first_seen=now,
            last_seen=now,
        )
        with self._lock:
            old = self.findings.get(f.key)
            self.findings[f.key] = f if old is None else old.merged(f)
        return f

    def sweep(self, now: float) -> list[Finding]:
        """Settle writes whose lifetime has passed (for ``pc.doctor()`` between calls)."""
        out: list[Finding] = []
        with self._lock:
            for key, fam in self._families.items():
                f = self._waste(fam, key, now)
                if f is not None:
                    out.append(f)
                    old = self.findings.get(f.key)
                    self.findings[f.key] = f if old is None else old.merged(f)
        return out

    # --- explanation of one request --------------------------------------------------------
    def _explain(
        self, fam: _Family, p: Print, billed: Billed, ratio: float, rate: int, now: float
    ) -> Finding | None:
        if not fam.recent:
            return None  # the first call of a family has nothing to compare with
        candidates: Sequence[_Seen] = fam.recent
        if fam.sharded or p.sharded:
            # Each shard key routes to its own machines: only a request sent under the same
            # key left anything this one can read.
            keyed = [r for r in fam.recent if r.p.key == p.key]
            last = fam.by_key.get(p.key)
            if last is not None and all(r is not last for r in keyed):
                keyed.insert(0, last)
            if keyed:
                candidates = keyed
            else:
                stem = p.scope.get("prompt_cache_key")
                if p.sharded or any(r.p.scope.get("prompt_cache_key") == stem for r in fam.recent):
                    return None  # the first request of a new shard: cold by design
                # Another key altogether: compared with all, it is a scope change.
        # Compare with the most similar earlier request (same scope first, then the longest
        # shared prefix, then the newest): that is the one this request continues.
        digests = p.digests
        same, shared, s = max(
            (
                (
                    r.p.scope == p.scope and r.p.tools == p.tools,
                    common_blocks(r.p.digests, digests),
                    r,
                )
                for r in reversed(candidates)
            ),
            key=itemgetter(0, 1),
        )
        cut = must_repeat(s.p, p)
        early = shared < cut
        if early:
            # What the earlier request shared with this one, had the prefix held.
            ideal = int(s.p.ends[cut - 1] * s.ratio) if cut else 0
        else:
            ideal = int(p.ends[shared - 1] * ratio) if shared else 0
        ideal = min(ideal, billed.input_tokens)
        read = billed.read
        tol = max(16 if p.api is Api.ANTHROPIC_MESSAGES else 128, ideal // 20)
        if ideal <= 0 or read >= ideal - tol:
            return None
        minimum = p.min_tokens or 0
        gap = now - s.time
        ev = Evidence(expected_tokens=ideal, cached_tokens=read, gap_s=round(gap, 1))
        if ideal < minimum:
            if read > 0:
                return None
            return self._finding(
                "below_minimum",
                p,
                billed,
                now,
                ideal,
                replace(ev, min_tokens=minimum, prefix_tokens=ideal),
                f"the shared prefix (~{ideal} tokens) is below {p.model}'s minimum of "
                f"{minimum}: the provider caches nothing",
                "grow the static prefix past the minimum (e.g. move fixed instructions or "
                "examples into the system prompt), or accept that this prompt is not cached",
            )
        if not same:
            fields = tuple(k for k in p.scope if p.scope[k] != s.p.scope.get(k))
            if s.p.tools != p.tools:
                order = sorted(s.p.tools) == sorted(p.tools)
                fields = ("tools order",) if order and not fields else (*fields, "tools")
                if order and "tools" in fields:
                    fields = tuple("tools order" if f == "tools" else f for f in fields)
            what = ", ".join(fields)
            return self._finding(
                "scope_changed",
                p,
                billed,
                now,
                ideal - read,
                replace(ev, fields=fields),
                f"{what} changed since the family's previous request: its cache does not apply",
                "keep these settings fixed within a prompt family"
                + (
                    "; list tools in a fixed order (restructure='auto' sorts them)"
                    if "tools order" in fields
                    else ""
                ),
            )
        if early:
            return self._prefix_changed(p, s, shared, billed, now, ideal, ratio, ev)
        reach = s.reach
        withheld = self._withheld_for(p)
        if (
            s.p.bp_count == 0
            and (p.api is Api.ANTHROPIC_MESSAGES or s.p.explicit)
            and (reach < ideal - tol)
        ):
            if withheld is not None:
                return self._hints_withheld(p, billed, now, ideal - read, ev, withheld)
            return self._finding(
                "breakpoints",
                p,
                billed,
                now,
                ideal - read,
                replace(ev, breakpoints=0),
                "the earlier request carried no cache breakpoint, so nothing was written "
                "for this one to read",
                "use restructure='safe' (the default), or add cache_control / "
                "prompt_cache_breakpoint at the end of the static prefix",
            )
        expected = min(ideal, reach)
        if read >= expected - tol:
            return None  # the earlier request wrote less than was shared: nothing lost here
        ev = replace(ev, expected_tokens=expected)
        missed = expected - read
        if gap > s.p.ttl_s:
            return self._finding(
                "ttl_lapsed",
                p,
                billed,
                now,
                missed,
                replace(ev, ttl_s=s.p.ttl_s),
                f"{_dur(gap)} since the family's last request, longer than the "
                f"{_dur(s.p.ttl_s)} cache lifetime in force",
                (
                    "let restructure='safe' choose 5m or 1h from the gaps, or set "
                    "cache_control ttl='1h' yourself"
                    if p.api is Api.ANTHROPIC_MESSAGES
                    else "on gpt-5.6+ Responses use prompt_cache_options ttl='12h'; before "
                    "gpt-5.6, prompt_cache_retention='24h'"
                ),
            )
        bp = self._breakpoint_problem(p, s, shared)
        if bp is not None:
            return self._finding(
                "breakpoints",
                p,
                billed,
                now,
                missed,
                replace(ev, breakpoints=p.bp_count),
                bp,
                "let the planner place breakpoints (restructure='safe'), keep at most 4, "
                "and mark the same boundary on every request of the family",
            )
        if p.api is not Api.ANTHROPIC_MESSAGES and rate > ROUTING_LIMIT_PER_MIN:
            return self._finding(
                "routing_overflow",
                p,
                billed,
                now,
                missed,
                replace(ev, rate_per_min=rate),
                f"{rate} requests in the last minute for one prefix and "
                + (f"prompt_cache_key {p.key!r}" if p.key else "no prompt_cache_key")
                + f": above ~{ROUTING_LIMIT_PER_MIN}/min the provider routes the rest "
                "to other machines, which do not hold the prefix",
                self._routing_fix(p),
            )
        if withheld is not None:
            return self._hints_withheld(p, billed, now, missed, ev, withheld)
        why = billed.provider_reason
        told = kind_of_reason(why) if why else None
        if told is not None:
            return self._finding(
                told,  # type: ignore[arg-type]  # a kind from the table in _ask
                p,
                billed,
                now,
                missed,
                replace(ev, fields=(why.split(" ", 1)[0],) if why else ()),
                f"the provider says: {why}",
                "see the provider's reason; keep that part of the request fixed within a family",
            )
        return self._finding(
            "unexplained", p, billed, now, missed, ev,
            "the prefix, settings and timing all allowed a read; the provider did not "
            "(early eviction, or a replica without the entry)",
            "nothing to change if rare; DoctorOptions(ask_provider=True) asks the provider why",
        )  # fmt: skip

    def _routing_fix(self, p: Print) -> str:
        """Return the option that spreads this family below the limit, as the planner is set."""
        spread = (
            f"spread the family over several prompt_cache_key values, each below "
            f"{ROUTING_LIMIT_PER_MIN} requests per minute"
        )
        opts = self._openai
        if opts is None:  # a custom planner: say what the default one does
            return f"{spread} (promptcache's default planner does it above the limit)"
        if not self._planning:
            return f"{spread}: restructure='safe' (the default) does it; it is 'off' here"
        if opts.routing_limit_per_minute is None:
            return (
                f"{spread}: OpenAIOptions(routing_limit_per_minute={ROUTING_LIMIT_PER_MIN}) "
                "(the default) does it; it is set to None here"
            )
        if not p.sharded and not opts.shard_user_keys:
            return (
                f"{spread}: OpenAIOptions(shard_user_keys=True) lets promptcache shard the "
                "app's own prompt_cache_key"
            )
        return (
            f"{spread}: sharding is on (OpenAIOptions(routing_limit_per_minute="
            f"{opts.routing_limit_per_minute:g})), yet this key is above the limit; a lower "
            "routing_limit_per_minute gives each shard more headroom"
        )

    def _withheld_for(self, p: Print) -> WithheldHints | None:
        """Return the planner's record of hints kept from this request, if they would help.

        A refusal counts for every model (the hints were dropped after it). Hints withheld by
        choice count only for an OpenAI model: a vLLM or llama.cpp server gains nothing from
        OpenAI's fields, so there is nothing to turn on.
        """
        if p.api is Api.ANTHROPIC_MESSAGES or self._withheld is None:
            return None
        try:
            records = self._withheld()
        except Exception:  # the planner's bookkeeping must not stop the explanation
            return None
        found: WithheldHints | None = None
        for r in records:
            if r.base_url != p.base_url:
                continue
            if r.reason == "rejected":
                return r
            if r.model == p.model and is_openai_model(p.model):
                found = r
        return found

    def _hints_withheld(
        self, p: Print, billed: Billed, now: float, missed: int, ev: Evidence, w: WithheldHints
    ) -> Finding:
        hints = ", ".join(w.hints)
        if w.reason == "rejected":
            summary = (
                f"{w.host} refused {hints} ({w.detail!r}); promptcache dropped them after the "
                "refusal and the requests since went without"
            )
            fix = (
                f"{w.fix}; if {w.host} forwards to OpenAI, let it pass these fields through "
                "to get OpenAI's cache hints back"
            )
        elif w.reason == "declared":
            summary = (
                f'OpenAIOptions(endpoint="compatible") kept {hints} from {w.host}, yet '
                f"{p.model} is an OpenAI model that would use them"
            )
            fix = w.fix
        else:
            summary = (
                f"promptcache judged {w.host} not to be OpenAI ({w.detail}) and sent no {hints}"
            )
            fix = f"if {w.host} forwards to OpenAI: {w.fix}"
        return self._finding(
            "hints_withheld",
            p,
            billed,
            now,
            missed,
            replace(ev, host=w.host, fields=w.hints),
            summary,
            fix,
        )

    def _prefix_changed(
        self,
        p: Print,
        s: _Seen,
        d: int,
        billed: Billed,
        now: float,
        ideal: int,
        ratio: float,
        ev: Evidence,
    ) -> Finding:
        label, char_offset, before, after, volatile = diff_block(s.p, p, d, self.options)
        start = p.ends[d - 1] if d else 0
        where = f"{label}, char {char_offset}" if char_offset is not None else label
        looks = f" (looks like a {volatile})" if volatile else ""
        fix = (
            "move the changing line after the cached prefix: restructure='auto' does it, or "
            "mark it with promptcache.dynamic()"
            if volatile
            else "keep earlier blocks byte-identical between calls; put what changes last"
        )
        # Money: only what the earlier request had actually left in the cache was lost.
        missed = min(ideal, s.reach) - billed.read
        return self._finding(
            "prefix_changed", p, billed, now, missed,
            replace(
                ev,
                block=label,
                char_offset=char_offset,
                token_offset=int((start + (char_offset or 0)) * ratio),
                before=before,
                after=after,
                volatile=volatile,
            ),
            f"the prompt changed in {where}{looks}: nothing after it could be read",
            fix,
        )  # fmt: skip

    @staticmethod
    def _breakpoint_problem(p: Print, s: _Seen, shared: int) -> str | None:
        if p.bp_count > MAX_BREAKPOINTS:
            return (
                f"{p.bp_count} breakpoints (the app's own included): more than the "
                f"{MAX_BREAKPOINTS} allowed"
            )
        if p.api is Api.ANTHROPIC_MESSAGES:
            if p.bp_count == 0:
                return "this request carries no cache breakpoint: the provider reads nothing"
            written = [b for b in s.p.bps if b < shared]
            if not written:
                # Every entry the earlier request wrote ends after the point where the two
                # differ (a breakpoint only on the last block, or the automatic one).
                return (
                    f"the earlier request wrote the cache only at its end, past {p.label(shared)}"
                    " where requests differ: no entry covers the shared prefix"
                    if shared < len(p.where) and s.p.bp_count
                    else None
                )
            if not p.bps:
                return None
            w = max(written)
            if not any(w <= b < w + LOOKBACK for b in p.bps):
                return (
                    f"the breakpoints moved: the earlier entry ends at block {w}, more than "
                    f"{LOOKBACK} blocks before this request's nearest breakpoint"
                )
            return None
        if p.explicit and s.p.bps:
            earlier = {b for b in s.p.bps if b < shared}
            if earlier and not earlier.intersection(p.bps):
                return (
                    "the breakpoints moved: none sits where the earlier request wrote "
                    "(gpt-5.6+ reads only at an exact breakpoint)"
                )
        return None

    # --- writes and routing --------------------------------------------------------------
    def _track_writes(self, fam: _Family, p: Print, billed: Billed, now: float) -> None:
        for w in fam.writes:
            if not w.read and billed.read > w.start and now - w.time <= w.ttl_s:
                w.read = True
        for ttl, tokens in billed.writes.items():
            if tokens <= 0:
                continue
            premium = self._premium(billed.provider, p.model, now, ttl, tokens)
            fam.writes.append(_Write(now, p.ttl_s, billed.read, tokens, premium))

    def _waste(self, fam: _Family, family: str, now: float) -> Finding | None:
        while fam.writes and now - fam.writes[0].time > fam.writes[0].ttl_s:
            w = fam.writes.popleft()
            fam.expired_tokens += w.tokens
            if not w.read:
                fam.wasted_tokens += w.tokens
                fam.wasted_writes += 1
                fam.pending_pico = (
                    None
                    if fam.pending_pico is None or w.premium is None
                    else fam.pending_pico + w.premium
                )
        new = fam.wasted_writes - fam.reported_waste
        # Reported once most of the family's writes go unread: a conversation's last turn
        # writes for a next turn that never comes, and that alone is no problem to fix.
        if new <= 0 or fam.wasted_writes < 2 or fam.wasted_tokens * 2 < fam.expired_tokens:
            return None
        fam.reported_waste = fam.wasted_writes
        pico, fam.pending_pico = fam.pending_pico, 0
        share = fam.wasted_tokens * 100 // max(1, fam.expired_tokens)
        return Finding(
            kind="writes_never_read",
            family=family[:12],
            api=fam.api,
            model=fam.model,
            summary=(
                f"{fam.wasted_writes} cache writes ({share}% of the tokens written) expired "
                "without being read"
            ),
            fix=(
                "write only prefixes that are reused: restructure='safe' stops writing a "
                "family's one-offs; check what changes between its requests"
            ),
            evidence=Evidence(writes=new, written_tokens=fam.wasted_tokens),
            cost=None if pico is None else Decimal(pico) / _PICO,
            missed_tokens=0,
            count=new,
            first_seen=now,
            last_seen=now,
        )

    def _rate(self, p: Print, now: float) -> int:
        if p.api is Api.ANTHROPIC_MESSAGES:
            return 0
        key = (p.base_url, p.digests[0], p.key)
        times = self._routes.get(key)
        if times is None:
            times = self._routes[key] = deque(maxlen=4 * ROUTING_LIMIT_PER_MIN)
            if len(self._routes) > MAX_ROUTES:
                self._routes.popitem(last=False)
        while times and now - times[0] > 60:
            times.popleft()
        times.append(now)
        return len(times)

    # --- money -----------------------------------------------------------------------------
    def _price(self, provider: str, model: str, now: float, counts: list[int]) -> int | None:
        if self._pricer is None:
            return None
        c = counts
        return self._pricer(provider, model, now, (c[0], c[1], c[2], c[3], c[4], c[5], 0, 0))

    def _premium(self, provider: str, model: str, now: float, ttl: str, tokens: int) -> int | None:
        i = _TTL_INDEX.get(ttl)
        if i is None:
            return None
        wrote = [tokens, 0, 0, 0, 0, 0]
        wrote[i] = tokens
        paid = self._price(provider, model, now, wrote)
        plain = self._price(provider, model, now, [tokens, 0, 0, 0, 0, 0])
        return None if paid is None or plain is None else max(0, paid - plain)

    def _miss_cost(self, p: Print, billed: Billed, now: float, missed: int) -> Decimal | None:
        """Return what reading ``missed`` more tokens would have saved on this request."""
        actual = [billed.input_tokens, billed.read, 0, 0, 0, 0]
        for ttl, n in billed.writes.items():
            if ttl in _TTL_INDEX:
                actual[_TTL_INDEX[ttl]] += n
        better = list(actual)
        better[1] += missed
        left = missed
        for i in (3, 5, 2, 4):  # tokens that were (re)written would have been read instead
            take = min(left, better[i])
            better[i] -= take
            left -= take
        paid = self._price(billed.provider, p.model, now, actual)
        ideal = self._price(billed.provider, p.model, now, better)
        if paid is None or ideal is None:
            return None
        return Decimal(max(0, paid - ideal)) / _PICO

    def _finding(
        self,
        kind: Kind,
        p: Print,
        billed: Billed,
        now: float,
        missed: int,
        ev: Evidence,
        summary: str,
        fix: str,
    ) -> Finding:
        missed = max(0, missed)
        if billed.provider_reason:
            ev = replace(ev, provider_reason=billed.provider_reason)
        return Finding(
            kind=kind,
            family=p.family[:12],
            api=p.api.value,
            model=p.model,
            summary=summary,
            fix=fix,
            evidence=ev,
            cost=self._miss_cost(p, billed, now, missed),
            missed_tokens=missed,
            count=1,
            first_seen=now,
            last_seen=now,
        )


def must_repeat(old: Print, new: Print) -> int:
    """Return how many leading blocks of ``old`` the request ``new`` should repeat verbatim.

    All of ``old`` when ``new`` continues the conversation (more turns), else all but its final
    turn (a new question in its place) — and never ``new``'s own final turn. A difference
    before that is a changed prefix; parting later is a new question or conversation.
    """
    keep = len(old.digests) if new.turns > old.turns else old.last_turn
    return min(keep, new.last_turn)


def diff_block(
    old: Print, new: Print, d: int, options: DoctorOptions
) -> tuple[str, int | None, str | None, str | None, str | None]:
    """Describe how block ``d`` changed: ``(label, char offset, before, after, volatile kind)``.

    Needs the blocks' bytes (kept for a family's latest request); without them only the label
    is known. Excerpts follow ``options.excerpts``: text, a digest, or nothing.
    """
    label = new.label(d) if d < len(new.where) else old.label(d)
    old_raw = old.raws[d] if old.raws is not None and d < len(old.raws) else None
    new_raw = new.raws[d] if new.raws is not None and d < len(new.raws) else None
    if old_raw is None or new_raw is None:
        return label, None, None, None, None
    a = text_of_block(old_raw) or _decoded(old_raw)
    b = text_of_block(new_raw) or _decoded(new_raw)
    i = common_prefix_len(a, b)
    ls = b.rfind("\n", 0, i) + 1
    le = b.find("\n", i)
    volatile = _volatile_kind(b[ls : (len(b) if le < 0 else le + 1)][:400])
    k = options.excerpt_chars
    if options.excerpts == "off" or k == 0:
        return label, i, None, None, volatile
    lo = max(0, i - k)
    before, after = a[lo : i + k], b[lo : i + k]
    if options.excerpts == "hash":
        before, after = _digest(before), _digest(after)
    return label, i, before, after, volatile


def _decoded(raw: str | bytes) -> str:
    return raw if isinstance(raw, str) else raw.decode("utf-8", "replace")


def _digest(text: str) -> str:
    return "xxh3:" + xxhash.xxh3_64_hexdigest(text.encode("utf-8", "surrogatepass"))[:12]


def _dur(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f}h"
    if seconds >= 60:
        return f"{seconds / 60:.0f}m"
    return f"{seconds:.0f}s"
