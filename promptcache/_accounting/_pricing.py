"""Prices: what a call cost, what it would have cost without provider caching, and the difference.

Rates come from `genai-prices <https://github.com/pydantic/genai-prices>`_ (per model, dated,
with long-context tiers and price variants), or from a user's :class:`ModelPrice` override for
private or unlisted models. genai-prices pulls in pydantic, so it is imported on the first
lookup, never at ``import promptcache``. Rates are looked up once per model and cached; the
arithmetic is ours, in :class:`~decimal.Decimal`, so it is exact and fast on the request path
(tests check it against ``genai_prices.calc_price`` wherever genai-prices has a key).

How each bucket is priced (``rate(x)`` is the per-MTok rate, in the tier selected by the
request's *inclusive* input tokens, as genai-prices does):

* uncached input at ``input_mtok``; cache reads at ``cache_read_mtok`` (input rate if absent);
* ``5m`` writes at ``cache_write_mtok``; ``1h`` writes at ``cache_write_1h_mtok`` (falling back
  to ``cache_write_mtok`` as genai-prices does); a model with no write rate (older OpenAI
  models, DeepSeek, xAI) bills writes as ordinary input;
* ``30m`` writes (OpenAI GPT-5.6+): genai-prices has no key; OpenAI documents writes at 1.25×
  input, which is genai-prices' ``cache_write_mtok`` for those models, so that is used.
* ``12h`` writes (OpenAI Responses): **UNVERIFIED** — no published price found. We assume the
  same ``cache_write_mtok`` as 30m (OpenAI documents one write multiplier). Override per model
  with ``ModelPrice(cache_write_12h_mtok=...)`` if your invoice says otherwise.
* output (reasoning included) at ``output_mtok``; ``requests_kcount`` fees when listed.

*Cost without provider caching* prices the same call with every input token at the input rate
(same tier: the inclusive input does not change). *Saved by provider caching* is the difference
— net of write premiums, so a call that wrote a prefix nobody read shows a negative saving.

Unknown price: cost ``None`` and one :class:`~promptcache.PriceWarning` per model, never ``0``.
"""

from __future__ import annotations

import os
import threading
import warnings
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from promptcache._accounting._usage import Usage
from promptcache._api import Api
from promptcache._errors import ConfigError, PriceWarning

__all__ = [
    "Cost",
    "ModelPrice",
    "PriceBook",
    "infer_provider",
    "price_data_version",
    "provider_from_model",
]

_MTOK = Decimal(1_000_000)
_ZERO = Decimal(0)

Rate = Decimal | tuple[Decimal, tuple[tuple[int, Decimal], ...]]
"""A flat rate, or ``(base, ((start, rate), ...))`` for long-context tiers."""


def _dec(value: Decimal | float | str | None) -> Decimal | None:
    if value is None:
        return None
    # str() first so that 0.1 stays 0.1 instead of its binary expansion.
    d = value if isinstance(value, Decimal) else Decimal(str(value))
    if not d.is_finite() or d < 0:
        raise ConfigError(f"prices must be finite and non-negative, got {value!r}")
    return d


@dataclass(frozen=True, slots=True, init=False)
class ModelPrice:
    """Prices for one model in USD per million tokens: a user override of genai-prices.

    Use it for private, fine-tuned or unlisted models, or to pin a negotiated rate. Values may
    be ``Decimal``, ``str``, ``int`` or ``float`` (converted through ``str``). Unset cache rates
    fall back as genai-prices does: reads and writes to the input rate, 1h/30m/12h writes to
    ``cache_write_mtok``.

    >>> from promptcache import ModelPrice
    >>> ModelPrice(input_mtok="3", output_mtok=15, cache_read_mtok="0.3").cache_read_mtok
    Decimal('0.3')
    """

    input_mtok: Decimal
    output_mtok: Decimal
    cache_read_mtok: Decimal | None
    cache_write_mtok: Decimal | None
    cache_write_1h_mtok: Decimal | None
    cache_write_30m_mtok: Decimal | None
    cache_write_12h_mtok: Decimal | None

    def __init__(
        self,
        input_mtok: Decimal | float | str,
        output_mtok: Decimal | float | str,
        *,
        cache_read_mtok: Decimal | float | str | None = None,
        cache_write_mtok: Decimal | float | str | None = None,
        cache_write_1h_mtok: Decimal | float | str | None = None,
        cache_write_30m_mtok: Decimal | float | str | None = None,
        cache_write_12h_mtok: Decimal | float | str | None = None,
    ) -> None:
        for name, value in (
            ("input_mtok", input_mtok),
            ("output_mtok", output_mtok),
            ("cache_read_mtok", cache_read_mtok),
            ("cache_write_mtok", cache_write_mtok),
            ("cache_write_1h_mtok", cache_write_1h_mtok),
            ("cache_write_30m_mtok", cache_write_30m_mtok),
            ("cache_write_12h_mtok", cache_write_12h_mtok),
        ):
            object.__setattr__(self, name, _dec(value))


@dataclass(frozen=True, slots=True)
class _Rates:
    """Resolved per-MTok rates for one model at one time, ready for arithmetic."""

    input: Rate
    output: Rate
    cache_read: Rate | None = None
    write_5m: Rate | None = None
    write_1h: Rate | None = None
    write_30m: Rate | None = None
    write_12h: Rate | None = None
    reasoning: Rate | None = None
    requests_kcount: Decimal | None = None
    source: str = "genai-prices"

    @classmethod
    def from_override(cls, p: ModelPrice) -> _Rates:
        w = p.cache_write_mtok
        return cls(
            input=p.input_mtok,
            output=p.output_mtok,
            cache_read=p.cache_read_mtok,
            write_5m=w,
            write_1h=p.cache_write_1h_mtok,
            write_30m=p.cache_write_30m_mtok,
            write_12h=p.cache_write_12h_mtok,
            source="override",
        )


def _pick(rate: Rate | None, total_input: int) -> Decimal | None:
    if rate is None or isinstance(rate, Decimal):
        return rate
    base, tiers = rate
    # genai-prices semantics: the highest tier whose start the whole request's input exceeds
    # sets the rate for every token of that kind (not marginal brackets).
    for start, price in reversed(tiers):
        if total_input > start:
            return price
    return base


@dataclass(frozen=True, slots=True)
class Cost:
    """The price of one call, in USD.

    ``paid`` is what the provider billed; ``without_provider_cache`` what the same call would
    have cost had every input token been billed at the input rate. Both ``None`` when the
    model's price is unknown. ``source`` says where the rates came from.
    """

    paid: Decimal | None
    without_provider_cache: Decimal | None
    source: str | None = None

    @property
    def saved_by_provider_cache(self) -> Decimal | None:
        """Net saving from provider caching; negative when write premiums exceeded the reads."""
        if self.paid is None or self.without_provider_cache is None:
            return None
        return self.without_provider_cache - self.paid


UNKNOWN = Cost(None, None, None)


def compute(rates: _Rates, usage: Usage) -> Cost:
    """Price ``usage`` with ``rates`` (pure Decimal arithmetic)."""
    total = usage.input_tokens
    inp = _pick(rates.input, total)
    out = _pick(rates.output, total)
    assert inp is not None and out is not None
    read = _pick(rates.cache_read, total)
    w5 = _pick(rates.write_5m, total)
    # Fallbacks mirror genai-prices' leaf decomposition: a TTL without its own rate is billed
    # as a generic write, and a model without a write rate bills writes as plain input.
    w_generic = w5 if w5 is not None else inp
    by_ttl = usage.cache_write_tokens_by_ttl
    ttl_rate = {"5m": w_generic}
    for ttl, rate in (("1h", rates.write_1h), ("30m", rates.write_30m), ("12h", rates.write_12h)):
        picked = _pick(rate, total)
        ttl_rate[ttl] = picked if picked is not None else w_generic
    paid = usage.uncached_input_tokens * inp + usage.cache_read_tokens * (
        read if read is not None else inp
    )
    for ttl, n in by_ttl.items():
        paid += n * ttl_rate.get(ttl, w_generic)
    r_rate = _pick(rates.reasoning, total)
    if r_rate is not None:
        output_cost = (usage.output_tokens - usage.reasoning_tokens) * out
        output_cost += usage.reasoning_tokens * r_rate
    else:
        output_cost = usage.output_tokens * out
    fee = rates.requests_kcount / 1000 if rates.requests_kcount is not None else _ZERO
    paid = paid / _MTOK + output_cost / _MTOK + fee
    without = (total * inp + output_cost) / _MTOK + fee
    return Cost(paid, without, rates.source)


# ------------------------------------------------------------------ provider inference

_HOSTS: tuple[tuple[str, str], ...] = (
    ("api.openai.com", "openai"),
    ("openai.azure.com", "openai"),
    ("cognitiveservices.azure.com", "openai"),
    ("api.anthropic.com", "anthropic"),
    ("api.deepseek.com", "deepseek"),
    ("api.x.ai", "x-ai"),
    ("generativelanguage.googleapis.com", "google"),
    ("aiplatform.googleapis.com", "google"),
    # Bedrock (bedrock-runtime, bedrock-mantle) and Claude Platform on AWS bill as AWS.
    ("amazonaws.com", "aws"),
    ("api.aws", "aws"),
    ("openrouter.ai", "openrouter"),
    ("api.groq.com", "groq"),
    ("api.together.xyz", "together"),
    ("api.mistral.ai", "mistral"),
    ("api.fireworks.ai", "fireworks"),
)
_MODEL_PREFIXES: tuple[tuple[str, str], ...] = (
    ("claude", "anthropic"),
    ("deepseek", "deepseek"),
    ("grok", "x-ai"),
    ("gemini", "google"),
    ("gpt", "openai"),
    ("chatgpt", "openai"),
    ("o1", "openai"),
    ("o3", "openai"),
    ("o4", "openai"),
    ("codex", "openai"),
)


def infer_provider(api: Api, base_url: str, model: str | None) -> str:
    """Return the genai-prices provider id to price a call with.

    The host decides when it is a known provider. Anywhere else — the emulator on loopback, a
    proxy, a gateway — the model name decides (so the demo prices like the real provider), and
    failing that the wire dialect.
    """
    host = (urlsplit(base_url).hostname or "").lower()
    for suffix, provider in _HOSTS:
        if host == suffix or host.endswith("." + suffix):
            return provider
    return provider_from_model(api, model)


def provider_from_model(api: Api, model: str | None) -> str:
    """Guess the provider from a model name, else the wire dialect (``openai``/``anthropic``)."""
    name = (model or "").lower().rsplit("/", 1)[-1]
    for prefix, provider in _MODEL_PREFIXES:
        if name.startswith(prefix):
            return provider
    return api.provider


# ------------------------------------------------------------------ the price book


def price_data_version() -> str:
    """Which price data genai-prices uses now, e.g. ``"genai-prices 0.2.3 (bundled data)"``.

    genai-prices ships its rates inside each release, so its version names the data; a snapshot
    installed at run time (``genai_prices.UpdatePrices``) is named by when it was fetched instead.
    The CLI and the demo print this beside dollar figures so a reader can tell which rates
    produced them; ``ModelPrice`` overrides are the caller's own and are not part of it.
    """
    from genai_prices import __version__
    from genai_prices.data_snapshot import get_snapshot

    snapshot = get_snapshot()
    if not snapshot.from_auto_update:
        return f"genai-prices {__version__} (bundled data)"
    fetched = snapshot.timestamp.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"genai-prices {__version__} (data updated {fetched})"


def _convert(value: Any) -> Rate | None:
    if value is None:
        return None
    if isinstance(value, Decimal):
        return value
    base = getattr(value, "base", None)
    tiers = getattr(value, "tiers", None)
    if isinstance(base, Decimal) and tiers is not None:
        return (base, tuple((int(t.start), t.price) for t in tiers))
    return None


def _rates_from_genai(mp: Any) -> _Rates | None:
    get = mp.__dict__.get
    inp, out = _convert(get("input_mtok")), _convert(get("output_mtok"))
    if inp is None or out is None:
        return None
    req = get("requests_kcount")
    return _Rates(
        input=inp,
        output=out,
        cache_read=_convert(get("cache_read_mtok")),
        write_5m=_convert(get("cache_write_mtok")),
        write_1h=_convert(get("cache_write_1h_mtok")),
        # No 30m/12h keys in genai-prices: left None so compute() uses cache_write_mtok.
        reasoning=_convert(get("output_reasoning_mtok")),
        requests_kcount=req if isinstance(req, Decimal) else None,
    )


def _daily(info: Any) -> bool:
    """Whether ``info``'s prices depend on the date only (not on the time of day)."""
    from genai_prices.types import StartDateConstraint

    conds = [c.constraint for c in info.prices] if isinstance(info.prices, list) else []
    conds += [v.constraint for v in info.price_variants or ()]
    return all(c is None or isinstance(c, StartDateConstraint) for c in conds)


IntRate = int | tuple[int, tuple[tuple[int, int], ...]]


def _places(d: Decimal) -> int:
    exp = d.as_tuple().exponent
    return -exp if isinstance(exp, int) and exp < 0 else 0


def _scaled(rate: Rate | None, scale: int) -> IntRate | None:
    if rate is None:
        return None
    if isinstance(rate, Decimal):
        return int(rate * scale)
    base, tiers = rate
    return (int(base * scale), tuple((start, int(p * scale)) for start, p in tiers))


def _ipick(rate: IntRate | None, total_input: int) -> int | None:
    if rate is None or isinstance(rate, int):
        return rate
    base, tiers = rate
    for start, price in reversed(tiers):  # as _pick
        if total_input > start:
            return price
    return base


@dataclass(frozen=True, slots=True)
class _IntRates:
    """:class:`_Rates` as integers: per-MTok rates times ``10**exp``, exact for these rates."""

    exp: int
    input: IntRate
    output: IntRate
    cache_read: IntRate | None
    write_5m: IntRate | None
    write_1h: IntRate | None
    write_30m: IntRate | None
    write_12h: IntRate | None
    reasoning: IntRate | None
    fee: int  # requests_kcount / 1000 USD in picodollars times 10**exp

    @classmethod
    def of(cls, r: _Rates) -> _IntRates:
        rates = (r.input, r.output, r.cache_read, r.write_5m, r.write_1h, r.write_30m,
                 r.write_12h, r.reasoning)  # fmt: skip
        decs = [
            d
            for rate in rates
            if rate is not None
            for d in ((rate,) if isinstance(rate, Decimal) else (rate[0], *(p for _, p in rate[1])))
        ]
        # The smallest power of ten that makes every rate (and the fee) an integer.
        exp = max([0, *(_places(d) for d in decs)])
        req = r.requests_kcount
        if req is not None:
            exp = max(exp, _places(req) - 9)
        scale = 10**exp
        s = [_scaled(rate, scale) for rate in rates]
        fee = int(req * 10 ** (9 + exp)) if req is not None else 0
        inp, out = s[0], s[1]
        assert inp is not None and out is not None
        return cls(exp, inp, out, s[2], s[3], s[4], s[5], s[6], s[7], fee)

    def price(self, counts: tuple[int, int, int, int, int, int, int, int]) -> tuple[int, int]:
        """``(paid, without_provider_cache)`` picodollars; the same arithmetic as compute()."""
        total, read_t, w5m_t, w1h_t, w30m_t, w12h_t, out_t, reasoning_t = counts
        inp = _ipick(self.input, total)
        out = _ipick(self.output, total)
        assert inp is not None and out is not None
        read = _ipick(self.cache_read, total)
        w5 = _ipick(self.write_5m, total)
        w_generic = w5 if w5 is not None else inp
        w1h = _ipick(self.write_1h, total)
        w30m = _ipick(self.write_30m, total)
        w12h = _ipick(self.write_12h, total)
        uncached = total - read_t - w5m_t - w1h_t - w30m_t - w12h_t
        paid = (
            uncached * inp
            + read_t * (read if read is not None else inp)
            + w5m_t * w_generic
            + w1h_t * (w1h if w1h is not None else w_generic)
            + w30m_t * (w30m if w30m is not None else w_generic)
            + w12h_t * (w12h if w12h is not None else w_generic)
        )
        r_rate = _ipick(self.reasoning, total)
        if r_rate is not None:
            output_cost = (out_t - reasoning_t) * out + reasoning_t * r_rate
        else:
            output_cost = out_t * out
        # USD = per-MTok sum / 10**6 + fee, so picodollars = sum * 10**6 + fee (all times
        # 10**exp); rounded half-even like to_pico().
        return (
            _round((paid + output_cost) * 1_000_000 + self.fee, self.exp),
            _round((total * inp + output_cost) * 1_000_000 + self.fee, self.exp),
        )


def _round(value: int, exp: int) -> int:
    """``value / 10**exp`` rounded half-even."""
    if not exp:
        return value
    div: int = 10**exp
    q, r = divmod(value, div)
    if 2 * r > div or (2 * r == div and q & 1):
        q += 1
    return q


class PriceBook:
    """Looks up rates (overrides first, then genai-prices) and prices calls; thread-safe.

    Model lookups are cached per ``(provider, model)``; genai-prices still resolves the dated
    price (and price variants such as ``service_tier="flex"``) for each call's timestamp, since
    prices change over time and some vary by time of day.
    """

    def __init__(self, overrides: Mapping[str, ModelPrice] | None = None) -> None:
        self._overrides = {k.lower(): _Rates.from_override(v) for k, v in (overrides or {}).items()}
        for k, v in (overrides or {}).items():
            if not isinstance(v, ModelPrice):
                raise ConfigError(f"prices[{k!r}] must be a promptcache.ModelPrice")
        self._models: dict[tuple[str, str], Any] = {}
        self._warned: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        _live.add(self)
        # (provider, models, context, fallback, UTC day) -> integer rates, None when unknown.
        self._int_rates: dict[tuple[Any, ...], _IntRates | None] = {}

    def _model_info(self, provider: str, model: str) -> Any:
        key = (provider, model)
        try:
            return self._models[key]
        except KeyError:
            pass
        from genai_prices.data_snapshot import get_snapshot

        try:
            _, info = get_snapshot().find_provider_model(model, None, provider, None)
        except LookupError:
            info = None
        with self._lock:
            self._models[key] = info
        return info

    def rates(
        self,
        provider: str,
        models: tuple[str | None, ...],
        when: float,
        context: tuple[tuple[str, str], ...] = (),
        fallback: str | None = None,
    ) -> _Rates | None:
        """Rates for the first of ``models`` with a known price, or ``None``.

        ``fallback`` is a second provider to look the model up under (from the model name).
        """
        return self._resolve(provider, models, when, context, fallback)[0]

    def _resolve(
        self,
        provider: str,
        models: tuple[str | None, ...],
        when: float,
        context: tuple[tuple[str, str], ...],
        fallback: str | None,
    ) -> tuple[_Rates | None, bool]:
        """:meth:`rates`, and whether the answer holds for the whole UTC day of ``when``."""
        names = [m for m in models if m]
        for m in names:
            if (o := self._overrides.get(m.lower())) is not None:
                return o, True
        daily = True
        for m in names:
            info = self._model_info(provider, m)
            if info is None and fallback is not None and fallback != provider:
                # e.g. a gateway whose host we map to one provider serving another's model
                info = self._model_info(fallback, m)
            if info is None:
                continue
            daily = daily and _daily(info)
            ts = datetime.fromtimestamp(when, UTC)
            mp = info.get_prices(ts, dict(context) if context else None)
            rates = _rates_from_genai(mp)
            if rates is not None:
                return rates, daily
        return None, daily

    def pico(
        self,
        counts: tuple[int, int, int, int, int, int, int, int],
        *,
        provider: str,
        models: tuple[str | None, ...],
        when: float,
        context: tuple[tuple[str, str], ...] = (),
        fallback: str | None = None,
    ) -> tuple[int, int] | None:
        """Price like :meth:`price`, in integer picodollars, rounded half-even as the ledger does.

        ``counts`` are ``(input, cache_read, 5m, 1h, 30m, 12h, output, reasoning)`` tokens.
        Returns ``(paid, without_provider_cache)``, or ``None`` (and a warning, once) when no
        price is known. This is the request path: rates are resolved once per model, price
        context and UTC day (per call for prices that change with the time of day) and the
        arithmetic is on integers, so it costs a dict lookup and a few multiplications.
        """
        key = (provider, models, context, fallback, when // 86400)
        try:
            ir = self._int_rates[key]
        except KeyError:
            rates, daily = self._resolve(provider, models, when, context, fallback)
            ir = None if rates is None else _IntRates.of(rates)
            if daily:
                if len(self._int_rates) >= 4096:
                    self._int_rates.clear()  # a new day: yesterday's keys are dead weight
                self._int_rates[key] = ir
        if ir is None:
            self._warn_unknown(provider, models)
            return None
        return ir.price(counts)

    def _warn_unknown(self, provider: str, models: tuple[str | None, ...]) -> None:
        key = (provider, next((m for m in models if m), "") or "")
        if key not in self._warned:
            with self._lock:
                first = key not in self._warned
                self._warned.add(key)
            if first:
                warnings.warn(
                    f"no price known for model {key[1]!r} (provider {provider!r}); its cost "
                    "is recorded as unknown. Pass prices={model: promptcache.ModelPrice(...)}"
                    " to set one.",
                    PriceWarning,
                    stacklevel=4,
                )

    def price(
        self,
        usage: Usage | None,
        *,
        provider: str,
        models: tuple[str | None, ...],
        when: float,
        context: tuple[tuple[str, str], ...] = (),
        fallback: str | None = None,
    ) -> Cost:
        """Price one call's usage; :data:`UNKNOWN` (and a warning, once) when no price is known.

        ``usage`` ``None`` (not reported) is also an unknown cost — we cannot know what was
        billed — but no price warning is raised for it.
        """
        rates = self.rates(provider, models, when, context, fallback)
        if rates is None:
            self._warn_unknown(provider, models)
            return UNKNOWN
        if usage is None:
            return Cost(None, None, rates.source)
        return compute(rates, usage)


_live: weakref.WeakSet[PriceBook] = weakref.WeakSet()


def _after_fork() -> None:
    # A forked child: a parent thread may have held a lock, and no thread will release it here.
    # Rates looked up and models warned about stay known.
    for obj in list(_live):
        obj._lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)
