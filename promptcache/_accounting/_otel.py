"""Optional OpenTelemetry metrics for the ledger (extra ``promptcache[otel]``).

Pass ``metrics=OtelMetrics()`` to :class:`~promptcache._accounting.LedgerAccountant` (or build a
``PromptCache`` with such an accountant) and every recorded call is also reported through the
OpenTelemetry metrics API, to whatever ``MeterProvider`` the application configured:

* ``gen_ai.client.token.usage`` — histogram, unit ``{token}``, with ``gen_ai.token.type`` =
  ``input`` (inclusive of cached tokens, as the GenAI semantic conventions define it) or
  ``output``; attributes ``gen_ai.operation.name``, ``gen_ai.provider.name``,
  ``gen_ai.response.model``. Local hits use no tokens and are not reported here.
* ``promptcache.tokens`` — counter, ``promptcache.token.kind`` = ``uncached``, ``cache_read``,
  ``cache_write.5m`` / ``.1h`` / ``.30m`` / ``.12h``, ``output``, ``reasoning``.
* ``promptcache.requests`` — counter, with ``promptcache.local_hit`` and ``error.type`` for
  HTTP errors.
* ``promptcache.cost``, ``promptcache.avoided_by_local_hits`` — counters in ``USD``;
  ``promptcache.saved_by_provider_cache`` — an up-down counter, since a write premium that
  was never read back is a negative saving. Calls with an unknown price add nothing to them.

Only the API package is needed (``opentelemetry-api``); with no SDK configured every call is a
no-op.
"""

from __future__ import annotations

from typing import Any

from promptcache._accounting._ledger import Record, from_pico
from promptcache._errors import MissingDependencyError
from promptcache._version import __version__

__all__ = ["OtelMetrics"]

# genai-prices provider ids -> GenAI semantic-convention `gen_ai.provider.name` values.
_PROVIDER = {"x-ai": "x_ai", "google": "gcp.gemini", "azure": "azure.ai.openai"}


class OtelMetrics:
    """Reports ledger records as OpenTelemetry metrics.

    Args:
        meter_provider: the provider to get the ``promptcache`` meter from (default: the global
            one, ``opentelemetry.metrics.get_meter_provider()``).

    """

    def __init__(self, meter_provider: Any = None) -> None:
        try:
            from opentelemetry import metrics
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise MissingDependencyError(
                "OpenTelemetry metrics need the otel extra: pip install 'promptcache[otel]'"
            ) from exc
        provider = meter_provider if meter_provider is not None else metrics.get_meter_provider()
        meter = provider.get_meter("promptcache", __version__)
        self._token_usage = meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Measures number of input and output tokens used",
        )
        self._tokens = meter.create_counter(
            "promptcache.tokens", unit="{token}", description="Tokens billed, by kind"
        )
        self._requests = meter.create_counter(
            "promptcache.requests", unit="{request}", description="Calls through wrapped clients"
        )
        self._cost = meter.create_counter("promptcache.cost", unit="USD", description="Paid")
        self._saved = meter.create_up_down_counter(
            "promptcache.saved_by_provider_cache",
            unit="USD",
            description="Saved by provider caching, net of write premiums",
        )
        self._avoided = meter.create_counter(
            "promptcache.avoided_by_local_hits", unit="USD", description="Cost of replaced calls"
        )

    def record(self, r: Record) -> None:
        """Report one ledger record."""
        attrs: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": _PROVIDER.get(r.provider, r.provider),
            "gen_ai.response.model": r.model,
        }
        req = dict(attrs, **{"promptcache.local_hit": bool(r.hit)})
        if r.error:
            req["error.type"] = "http_error"
        self._requests.add(1, req)
        if r.hit:
            avoided = from_pico(r.avoided)
            if avoided is not None:
                self._avoided.add(float(avoided), attrs)
            return
        if r.usage_known and not r.error:
            self._token_usage.record(r.input, dict(attrs, **{"gen_ai.token.type": "input"}))
            self._token_usage.record(r.output, dict(attrs, **{"gen_ai.token.type": "output"}))
            writes = r.w5m + r.w1h + r.w30m + r.w12h
            for kind, n in (
                ("uncached", r.input - r.read - writes),
                ("cache_read", r.read),
                ("cache_write.5m", r.w5m),
                ("cache_write.1h", r.w1h),
                ("cache_write.30m", r.w30m),
                ("cache_write.12h", r.w12h),
                ("output", r.output),
                ("reasoning", r.reasoning),
            ):
                if n:
                    self._tokens.add(n, dict(attrs, **{"promptcache.token.kind": kind}))
        cost, without = from_pico(r.cost), from_pico(r.without)
        if cost is not None and without is not None:
            self._cost.add(float(cost), attrs)
            self._saved.add(float(without - cost), attrs)
