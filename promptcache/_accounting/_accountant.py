"""The accountant the transport calls: decode usage, price it, append it to the ledger.

:class:`LedgerAccountant` implements :class:`promptcache._hooks.Accountant`. Both methods run
on the request path. ``record_local_hit`` does no decoding and no pricing — the meta stored
with the cached response already carries the replaced call's cost — so it is a tuple built and
appended to the ledger's journal (one ``os.write``: a few µs, and the record survives a kill of
the process from then on). ``record_upstream`` decodes the body and prices it with cached rates
(microseconds), then appends.

The meta returned by ``record_upstream`` (stored beside a cached response, and passed to the
planner's ``observe``) is versioned JSON::

    {"v": 1, "api": "openai.chat", "provider": "openai", "model": "gpt-6.1-sol",
     "usage": {"input_tokens": …, "cache_read_tokens": …, "cache_write_tokens": …,
               "cache_write_tokens_by_ttl": {"30m": …}, "output_tokens": …,
               "reasoning_tokens": …} | null,
     "cost": "0.0153" | null, "cost_without_provider_cache": "0.029" | null}
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any

from promptcache._accounting._ledger import Ledger, Record, to_pico
from promptcache._accounting._pricing import (
    ModelPrice,
    PriceBook,
    infer_provider,
    provider_from_model,
)
from promptcache._accounting._usage import decode
from promptcache._api import RequestInfo
from promptcache._hooks import UsageMeta

if TYPE_CHECKING:
    from promptcache._accounting._fleet import FleetLedger
    from promptcache._accounting._otel import OtelMetrics

__all__ = ["META_VERSION", "LedgerAccountant"]

META_VERSION = 1


@functools.lru_cache(maxsize=4096)
def _pico_of(text: str) -> int | None:
    # Cached: the local-hit path sees the same few cost strings over and over.
    try:
        return to_pico(Decimal(text))
    except InvalidOperation:
        return None


def _usd(pico: int) -> str:
    """Picodollars as a plain decimal USD string (``"0.0153"``), exact, without Decimal."""
    sign = "-" if pico < 0 else ""
    whole, frac = divmod(abs(pico), 10**12)
    return f"{sign}{whole}.{frac:012d}".rstrip("0") if frac else f"{sign}{whole}"


# Pure functions of a handful of values per client: memoised off the request path's hot loop.
_infer_provider = functools.lru_cache(maxsize=1024)(infer_provider)
_provider_from_model = functools.lru_cache(maxsize=1024)(provider_from_model)


def _meta_pico(meta: Mapping[str, Any], key: str) -> int | None:
    v = meta.get(key)
    return _pico_of(v) if isinstance(v, str) else None


class LedgerAccountant:
    """Records every call into the :class:`~promptcache._accounting.Ledger` of ``directory``.

    Args:
        directory: the PromptCache directory (the ledger is shared by every process using it).
        prices: per-model overrides (:class:`~promptcache.ModelPrice`), checked before
            genai-prices; keys are model ids as the provider returns them.
        clock: time source for calls whose :class:`RequestInfo` has no start time.

    """

    def __init__(
        self,
        directory: str | Path,
        *,
        prices: Mapping[str, ModelPrice] | None = None,
        clock: Callable[[], float] = time.time,
        rollup_after_days: float | None = 30,
        retention_days: float | None = None,
        metrics: OtelMetrics | None = None,
    ) -> None:
        self._clock = clock
        self._metrics = metrics
        self._book = PriceBook(prices)
        #: The fleet ledger (a Redis store): every record is also summed there.
        self.fleet: FleetLedger | None = None
        self.ledger = Ledger(
            directory,
            clock=clock,
            rollup_after_days=rollup_after_days,
            retention_days=retention_days,
        )

    def record_upstream(
        self, info: RequestInfo, body: bytes, *, status: int, complete: bool
    ) -> UsageMeta | None:
        """Decode, price and record a call that reached the provider; return its meta."""
        ts = info.started or self._clock()
        attr = info.attribution
        api = info.api.value
        if status >= 400:
            provider = _infer_provider(info.api, info.base_url, info.model)
            # Failed requests are not billed: known zero tokens and a known zero cost.
            self._append(
                Record(ts, api, provider, info.model or "", attr.function, attr.tags,
                       info.tenant, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, None, None)
            )  # fmt: skip
            return None
        d = decode(info.api, body, stream=info.stream)
        model = d.model or info.model or ""
        provider = _infer_provider(info.api, info.base_url, model)
        u = d.usage
        if u is None:
            # Nothing reported (a Chat stream without include_usage, a cut stream): the bill
            # is unknown, not zero. No price warning: the price is not what is missing.
            cost = without = None
            self._append(
                Record(ts, api, provider, model, attr.function, attr.tags, info.tenant,
                       0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, None, None, None, None)
            )  # fmt: skip
        else:
            ttl = u.cache_write_tokens_by_ttl
            counts = (
                u.input_tokens,
                u.cache_read_tokens,
                ttl.get("5m", 0),
                ttl.get("1h", 0),
                ttl.get("30m", 0),
                ttl.get("12h", 0),
                u.output_tokens,
                u.reasoning_tokens,
            )
            priced = self._book.pico(
                counts,
                provider=provider,
                models=(d.model, info.model),
                when=ts,
                context=d.price_context,
                fallback=_provider_from_model(info.api, model),
            )
            cost, without = priced if priced is not None else (None, None)
            self._append(
                Record(ts, api, provider, model, attr.function, attr.tags, info.tenant,
                       0, 0, 1, *counts, cost, without, None, None)
            )  # fmt: skip
        meta = {
            "v": META_VERSION,
            "api": api,
            "provider": provider,
            "model": model,
            "usage": None if u is None else u.to_json(),
            "cost": None if cost is None else _usd(cost),
            "cost_without_provider_cache": None if without is None else _usd(without),
        }
        if d.response_id is not None:  # the planner keys what it moved by it (_plan/_openai)
            meta["response_id"] = d.response_id
        return meta

    def record_local_hit(self, info: RequestInfo, meta: UsageMeta | None) -> None:
        """Record a call served locally, with the cost of the call it replaced (from ``meta``)."""
        attr = info.attribution
        ts = info.started or self._clock()
        if meta is not None and meta.get("v") == META_VERSION:
            model = str(meta.get("model") or info.model or "")
            provider = str(meta.get("provider") or "")
            avoided = _meta_pico(meta, "cost")
            avoided_without = _meta_pico(meta, "cost_without_provider_cache")
        else:
            model = info.model or ""
            provider = ""
            avoided = avoided_without = None
        if not provider:
            provider = _infer_provider(info.api, info.base_url, model)
        # A hit sends nothing and pays nothing: tokens 0, cost a known 0.
        self._append(
            Record(ts, info.api.value, provider, model, attr.function, attr.tags, info.tenant,
                   1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, avoided, avoided_without)
        )  # fmt: skip

    def _append(self, record: Record) -> None:
        self.ledger.append(record)
        if self.fleet is not None:  # summed in memory; a thread sends it to Redis
            self.fleet.add(record)
        if self._metrics is not None:
            self._metrics.record(record)

    def close(self) -> None:
        """Fold the ledger and release its files (never raises: see ``Ledger.close``)."""
        if self.fleet is not None:
            self.fleet.close()
        self.ledger.close()
