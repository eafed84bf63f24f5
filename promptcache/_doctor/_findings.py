"""What the doctor reports: typed findings, their evidence, and the options that shape them.

A :class:`Finding` explains provider cache misses of one kind in one prompt family: what
happened (``evidence``), what it cost (``cost``, USD, from the ledger's price book), and what
to do (``fix``). Repeats of the same explanation are folded into one finding (``count`` grows,
``cost`` and ``missed_tokens`` add up), so the history stays small however busy the app is.
Everything here is JSON-able with a version, for the persisted history.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from decimal import Decimal
from typing import Any, Final, Literal

__all__ = [
    "KINDS",
    "DoctorOptions",
    "Evidence",
    "Finding",
    "Kind",
]

Kind = Literal[
    "prefix_changed",
    "below_minimum",
    "ttl_lapsed",
    "scope_changed",
    "breakpoints",
    "writes_never_read",
    "routing_overflow",
    "hints_withheld",
    "unexplained",
]
#: Every kind, in the order the doctor tries them on a miss.
KINDS: Final[tuple[Kind, ...]] = (
    "prefix_changed",
    "below_minimum",
    "ttl_lapsed",
    "scope_changed",
    "breakpoints",
    "writes_never_read",
    "routing_overflow",
    "hints_withheld",
    "unexplained",
)


@dataclass(frozen=True, slots=True)
class DoctorOptions:
    """How the cache doctor watches a :class:`~promptcache.PromptCache`.

    Attributes:
        enabled: follow prompt families and explain provider cache misses (the per-call cost
            is a hash of each request block, see the benchmark in the docs).
        excerpts: what a *prefix changed* finding shows of the text around the change:
            ``"text"`` (at most ``excerpt_chars`` characters either side), ``"hash"`` (a
            short digest of each side instead, so no prompt text is kept) or ``"off"``.
        excerpt_chars: characters either side of a change in a ``"text"`` excerpt (≤ 80).
        warnings: also emit a :class:`~promptcache.CacheMissWarning` when a kind first
            appears for a family (the ``promptcache.doctor`` logger always says so, once).
        history: persist findings in ``doctor.json`` in the cache directory (0600), for
            ``promptcache doctor`` and other processes.
        ask_provider: opt in to the providers' own miss explanations: Anthropic
            ``diagnostics.previous_message_id`` and OpenAI Responses
            ``prompt_cache_options.comparison_response_id`` are added to a family's requests
            (naming its previous response) and the answer is folded into the finding.
            Off by default: it changes what is sent. Anthropic may need a beta header for it.

    """

    enabled: bool = True
    excerpts: Literal["text", "hash", "off"] = "text"
    excerpt_chars: int = 40
    warnings: bool = False
    history: bool = True
    ask_provider: bool = False

    def __post_init__(self) -> None:
        from promptcache._errors import ConfigError

        if self.excerpts not in ("text", "hash", "off"):
            raise ConfigError(f"excerpts must be 'text', 'hash' or 'off', not {self.excerpts!r}")
        if not isinstance(self.excerpt_chars, int) or not 0 <= self.excerpt_chars <= 80:
            raise ConfigError(f"excerpt_chars must be an int from 0 to 80: {self.excerpt_chars!r}")


@dataclass(frozen=True, slots=True)
class Evidence:
    """The facts behind a finding; fields a kind does not use stay ``None``.

    Token figures are the provider's own counts for the request; positions inside a request
    (``token_offset``) are estimates from its character sizes.
    """

    expected_tokens: int | None = None  # what earlier requests of the family made readable
    cached_tokens: int | None = None  # what the provider reported as read
    block: str | None = None  # "tools", "system", "instructions", "message 3", "message 3 part 1"
    char_offset: int | None = None  # inside the block's text
    token_offset: int | None = None  # from the start of the request
    before: str | None = None  # excerpt (or "xxh3:…" digest) of the earlier request
    after: str | None = None  # the same place in this request
    volatile: str | None = None  # what the changed text looks like: "timestamp", "id", …
    fields: tuple[str, ...] = ()  # scope settings that changed
    gap_s: float | None = None  # time since the family's earlier request
    ttl_s: float | None = None  # the cache lifetime in force for it
    min_tokens: int | None = None  # the model's minimum cacheable prefix
    prefix_tokens: int | None = None  # the shared prefix
    breakpoints: int | None = None  # breakpoints in this request (incl. automatic)
    rate_per_min: float | None = None  # requests per minute for one prefix and key
    writes: int | None = None  # cache writes never read
    written_tokens: int | None = None
    host: str | None = None
    provider_reason: str | None = None  # the provider's own explanation, when asked

    def to_json(self) -> dict[str, Any]:
        """JSON-able dict without the unset fields."""
        out = {k: v for k, v in asdict(self).items() if v is not None and v != ()}
        if "fields" in out:
            out["fields"] = list(out["fields"])
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Evidence:
        """Inverse of :meth:`to_json` (unknown keys from newer versions are ignored)."""
        known = {f for f in cls.__dataclass_fields__}
        kw = {k: v for k, v in data.items() if k in known}
        if "fields" in kw:
            kw["fields"] = tuple(str(x) for x in kw["fields"])
        return cls(**kw)


@dataclass(frozen=True, slots=True)
class Finding:
    """One explanation of provider cache misses in one prompt family.

    ``family`` is a short id of the prompt family (requests expected to share a prefix);
    ``cost`` is what the misses cost in USD beyond reading the cache (``None`` when no price
    is known); ``count`` how many requests it explains, between ``first_seen`` and
    ``last_seen`` (seconds since the epoch).
    """

    kind: Kind
    family: str
    api: str
    model: str
    summary: str
    fix: str
    evidence: Evidence = field(default_factory=Evidence)
    cost: Decimal | None = None
    missed_tokens: int = 0
    count: int = 1
    first_seen: float = 0.0
    last_seen: float = 0.0

    @property
    def key(self) -> str:
        """What repeats of this finding share (kind, family, and where for a prefix change)."""
        where = self.evidence.block or ",".join(self.evidence.fields)
        return f"{self.family}|{self.kind}|{where}"

    def merged(self, later: Finding) -> Finding:
        """Fold a repeat into this finding (the later evidence wins, totals add up)."""
        cost = (
            None
            if self.cost is None and later.cost is None
            else (self.cost or Decimal(0)) + (later.cost or Decimal(0))
        )
        return replace(
            later,
            cost=cost,
            missed_tokens=self.missed_tokens + later.missed_tokens,
            count=self.count + later.count,
            first_seen=min(self.first_seen, later.first_seen),
            last_seen=max(self.last_seen, later.last_seen),
        )

    def to_json(self) -> dict[str, Any]:
        """JSON-able dict (the history's storage form)."""
        return {
            "kind": self.kind,
            "family": self.family,
            "api": self.api,
            "model": self.model,
            "summary": self.summary,
            "fix": self.fix,
            "evidence": self.evidence.to_json(),
            "cost": None if self.cost is None else str(self.cost),
            "missed_tokens": self.missed_tokens,
            "count": self.count,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Finding:
        """Inverse of :meth:`to_json`."""
        kind = str(data["kind"])
        if kind not in KINDS:
            raise ValueError(f"unknown finding kind {kind!r}")
        cost = data.get("cost")
        return cls(
            kind=kind,  # checked against KINDS above
            family=str(data["family"]),
            api=str(data.get("api", "")),
            model=str(data.get("model", "")),
            summary=str(data.get("summary", "")),
            fix=str(data.get("fix", "")),
            evidence=Evidence.from_json(data.get("evidence") or {}),
            cost=None if cost is None else Decimal(str(cost)),
            missed_tokens=int(data.get("missed_tokens", 0)),
            count=int(data.get("count", 1)),
            first_seen=float(data.get("first_seen", 0.0)),
            last_seen=float(data.get("last_seen", 0.0)),
        )
