"""Public value types of the emulator: served calls, latency model, faults, OpenAI settings."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["Billing", "Fault", "FaultKind", "LatencyModel", "OpenAISettings", "ServedCall"]

FaultKind = Literal["rate_limit", "server_error", "overloaded", "stream_cut"]


@dataclass(frozen=True)
class Billing:
    """Input/output token usage as billed, in one provider-neutral shape.

    ``input_tokens`` is inclusive: uncached + cache read + cache write.
    """

    input_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_by_ttl: dict[str, int] = field(default_factory=dict)
    output_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def cache_write_tokens(self) -> int:
        """All tokens written to the cache, whatever their TTL."""
        return sum(self.cache_write_by_ttl.values())

    @property
    def uncached_input_tokens(self) -> int:
        """Input tokens billed at the ordinary input rate."""
        return self.input_tokens - self.cache_read_tokens - self.cache_write_tokens


@dataclass(frozen=True)
class ServedCall:
    """Ground truth about one request the emulator answered.

    Attributes:
        api: ``"openai.chat"``, ``"openai.responses"``, ``"openai.input_tokens"``,
            ``"anthropic.messages"``, ``"anthropic.count_tokens"``, or ``"unknown"``.
        model: The requested model ("" when the request had none).
        stream: Whether the request asked for SSE streaming.
        status: HTTP status sent back.
        request_body: The parsed JSON body, or ``None`` if it was not valid JSON.
        input_tokens: Billed input, INCLUSIVE of cache reads and writes.
        uncached_input_tokens: Input billed at the ordinary rate.
        cache_read_tokens: Input served from the prompt cache.
        cache_write_tokens: Input written to the prompt cache (billed writes only; OpenAI models
            before gpt-5.6 write for free and report 0).
        cache_write_by_ttl: Writes split by lifetime, keys among ``"5m"``, ``"1h"``, ``"30m"``,
            ``"12h"``.
        output_tokens: Output tokens billed (reasoning included).
        reasoning_tokens: The reasoning part of ``output_tokens``.
        response_id: The id sent back (``chatcmpl-…``, ``resp_…``, ``msg_…``) or ``None``.
        path: The request path.
        host: The host the client addressed (the production host when the request came through
            :meth:`Emulator.transport`, else the ``Host`` header).
        started: Emulator-clock time at which the request was handled.
        prompt_cache_key: OpenAI ``prompt_cache_key`` if any.
        error_type: The provider error type for non-2xx answers (e.g. ``rate_limit_error``).
        fault: The injected fault that shaped this answer, if any.
        handling_ms: Time the emulator itself spent (parse, count, cache), without latency
            simulation or network.
        ttft_s: Simulated time to first token that was slept, 0 without a latency model.
        machine: OpenAI only: which machine of the routing pool served the request, 0 for the
            prefix's home machine, 1 and up for overflow machines (see :class:`OpenAISettings`).

    """

    api: str
    model: str
    stream: bool
    status: int
    request_body: dict[str, Any] | None
    input_tokens: int = 0
    uncached_input_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_by_ttl: dict[str, int] = field(default_factory=dict)
    output_tokens: int = 0
    reasoning_tokens: int = 0
    response_id: str | None = None
    path: str = ""
    host: str = ""
    started: float = 0.0
    prompt_cache_key: str | None = None
    error_type: str | None = None
    fault: str | None = None
    handling_ms: float = 0.0
    ttft_s: float = 0.0
    machine: int = 0

    def to_json(self) -> dict[str, Any]:
        """Return this call as a JSON-ready dict (the ``GET /_emulator/calls`` item shape)."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class LatencyModel:
    """Simulated provider latency, slept in real time before the answer starts.

    Time to first token grows with the prompt tokens that had to be prefilled; cached tokens are
    much cheaper, which is the latency effect of prompt caching::

        ttft = base_s + uncached_tokens * per_uncached_token_s + cached_tokens * per_cached_token_s

    where cache writes count as uncached. Streams then pause ``per_output_token_s`` per output
    delta; non-streaming answers sleep ``ttft + output_tokens * per_output_token_s``.
    The defaults make a 100k-token cold prompt take about 0.5 s and a warm one about 0.07 s.
    """

    base_s: float = 0.02
    per_uncached_token_s: float = 5e-6
    per_cached_token_s: float = 5e-7
    per_output_token_s: float = 0.002

    def ttft(self, uncached_tokens: int, cached_tokens: int) -> float:
        """Time to first token for a prompt with this many uncached and cached tokens."""
        return (
            self.base_s
            + uncached_tokens * self.per_uncached_token_s
            + cached_tokens * self.per_cached_token_s
        )


@dataclass(frozen=True)
class Fault:
    """A failure to inject into the next matching requests (see ``Emulator.inject``).

    Attributes:
        kind: ``"rate_limit"`` (429 with ``retry-after``), ``"server_error"`` (500),
            ``"overloaded"`` (529 on Anthropic, 503 on OpenAI), or ``"stream_cut"`` (the
            connection drops after ``after_events`` SSE events; non-streaming requests get
            their body truncated mid-way).
        retry_after: Seconds sent in ``retry-after`` (and ``retry-after-ms``) for 429/529/503.
        after_events: For ``stream_cut``, how many SSE events are sent before the cut.
        api: Only match requests to this api (e.g. ``"openai.chat"``); ``None`` matches all.
        model: Only match requests for this model; ``None`` matches all.

    """

    kind: FaultKind
    retry_after: float | None = 1.0
    after_events: int = 3
    api: str | None = None
    model: str | None = None

    @classmethod
    def rate_limit(cls, retry_after: float = 1.0, **match: Any) -> Fault:
        """Make a 429 in the provider's shape with a ``retry-after`` header."""
        return cls("rate_limit", retry_after=retry_after, **match)

    @classmethod
    def server_error(cls, **match: Any) -> Fault:
        """Make a 500 in the provider's shape."""
        return cls("server_error", retry_after=None, **match)

    @classmethod
    def overloaded(cls, retry_after: float = 1.0, **match: Any) -> Fault:
        """Make Anthropic's 529 ``overloaded_error`` (503 on OpenAI routes)."""
        return cls("overloaded", retry_after=retry_after, **match)

    @classmethod
    def stream_cut(cls, after_events: int = 3, **match: Any) -> Fault:
        """Drop the connection after ``after_events`` SSE events."""
        return cls("stream_cut", retry_after=None, after_events=after_events, **match)

    def __post_init__(self) -> None:
        if self.kind not in ("rate_limit", "server_error", "overloaded", "stream_cut"):
            raise ValueError(f"unknown fault kind {self.kind!r}")
        if self.after_events < 0:
            raise ValueError("after_events must be >= 0")

    def matches(self, api: str, model: str) -> bool:
        """Whether this fault applies to a request to ``api`` for ``model``."""
        return (self.api is None or self.api == api) and (self.model is None or self.model == model)


@dataclass(frozen=True)
class OpenAISettings:
    """OpenAI rules that the docs state only approximately, as settings with documented defaults.

    Sources are PROVIDERS.md §2.1 (see ``docs/emulator.md``, "Routing and retention").

    Attributes:
        routing_limit_per_minute: Requests per minute one machine serves for one routing key
            (model, the prompt's first 256 tokens, ``prompt_cache_key``) before the rest
            overflows to other machines, whose caches are separate. The guide: "traffic above
            15 requests per minute can lead to overflow routing". ``None`` turns overflow
            routing off.
        overflow_machines: Size of the pool an overflowing request lands in (a machine chosen
            by a hash of the routing key and the overflow count, so runs are reproducible). Not
            documented by OpenAI: the default stands for a large fleet in which overflow rarely
            finds a machine that saw the prefix recently.
        in_memory_idle_s: ``in_memory`` retention (models before gpt-5.6): lifetime since last
            use. Documented as "5-10 minutes of inactivity"; the default is the upper end.
        in_memory_max_s: ``in_memory`` retention: the most an entry lives after it was written,
            however often it is read ("at most an hour").
        zdr: The organisation has Zero Data Retention. Before gpt-5.5 the default retention is
            ``24h`` for organisations without ZDR and ``in_memory`` with ZDR (openai 3.51.0
            ``prompt_cache_retention`` docstring); gpt-5.5 and later support only ``24h``.

    """

    routing_limit_per_minute: float | None = 15.0
    overflow_machines: int = 1000
    in_memory_idle_s: float = 600.0
    in_memory_max_s: float = 3600.0
    zdr: bool = False

    def __post_init__(self) -> None:
        limit = self.routing_limit_per_minute
        if limit is not None and not limit > 0:
            raise ValueError("routing_limit_per_minute must be > 0 or None")
        if self.overflow_machines < 1:
            raise ValueError("overflow_machines must be >= 1")
        if not 0 < self.in_memory_idle_s <= self.in_memory_max_s:
            raise ValueError("need 0 < in_memory_idle_s <= in_memory_max_s")
