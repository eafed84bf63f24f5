"""OpenTelemetry metrics, against a recording MeterProvider built on the API's no-op classes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from opentelemetry.metrics import (
    Counter,
    Histogram,
    Meter,
    NoOpMeter,
    NoOpMeterProvider,
    UpDownCounter,
)

from promptcache._accounting import LedgerAccountant
from promptcache._accounting._otel import OtelMetrics
from tests.accounting.test_ledger import BY_NAME, info

Points = list[tuple[str, float, dict[str, Any]]]


class _Instrument(Counter, UpDownCounter, Histogram):
    def __init__(self, name: str, points: Points) -> None:
        self.name, self.points = name, points

    def add(self, amount: float, attributes: Any = None, context: Any = None) -> None:
        self.points.append((self.name, amount, dict(attributes or {})))

    def record(self, amount: float, attributes: Any = None, context: Any = None) -> None:
        self.add(amount, attributes)


class _Meter(NoOpMeter):
    def __init__(self, points: Points) -> None:
        super().__init__("test")
        self.points = points

    def create_counter(self, name: str, unit: str = "", description: str = "") -> Counter:
        return _Instrument(name, self.points)

    def create_up_down_counter(
        self, name: str, unit: str = "", description: str = ""
    ) -> UpDownCounter:
        return _Instrument(name, self.points)

    def create_histogram(
        self, name: str, unit: str = "", description: str = "", **kw: Any
    ) -> Histogram:
        return _Instrument(name, self.points)


class _Provider(NoOpMeterProvider):
    def __init__(self) -> None:
        self.points: Points = []

    def get_meter(self, name: str, *args: Any, **kwargs: Any) -> Meter:
        return _Meter(self.points)


def test_metrics_follow_the_ledger(tmp_path: Path) -> None:
    provider = _Provider()
    acc = LedgerAccountant(tmp_path, metrics=OtelMetrics(provider))
    chat = BY_NAME["openai-chat-json"]
    meta = acc.record_upstream(info(chat), chat.body, status=200, complete=True)
    acc.record_local_hit(info(chat), meta)
    acc.close()

    def total(name: str, **match: Any) -> float:
        return sum(
            v for n, v, a in provider.points
            if n == name and all(a.get(k) == x for k, x in match.items())
        )  # fmt: skip

    usage = "gen_ai.client.token.usage"
    assert total(usage, **{"gen_ai.token.type": "input"}) == 12000
    assert total(usage, **{"gen_ai.token.type": "output"}) == 500
    assert total("promptcache.tokens", **{"promptcache.token.kind": "cache_read"}) == 8000
    assert total("promptcache.tokens", **{"promptcache.token.kind": "cache_write.30m"}) == 3000
    assert total("promptcache.tokens", **{"promptcache.token.kind": "uncached"}) == 1000
    assert total("promptcache.requests") == 2
    assert total("promptcache.requests", **{"promptcache.local_hit": True}) == 1
    assert abs(total("promptcache.cost") - 0.0153) < 1e-12
    assert abs(total("promptcache.saved_by_provider_cache") - 0.0137) < 1e-12
    assert abs(total("promptcache.avoided_by_local_hits") - 0.0153) < 1e-12
    attrs = next(a for n, _, a in provider.points if n == usage)
    assert attrs["gen_ai.provider.name"] == "openai"
    assert attrs["gen_ai.response.model"] == "gpt-6.1-sol"


def test_default_global_provider_is_a_no_op(tmp_path: Path) -> None:
    acc = LedgerAccountant(tmp_path, metrics=OtelMetrics())
    chat = BY_NAME["openai-chat-json"]
    acc.record_upstream(info(chat), chat.body, status=200, complete=True)
    assert acc.ledger.summary().requests == 1
    acc.close()
