"""The ledger: per-call records, summaries, filters, group-by, persistence, rollup."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from promptcache import ModelPrice, PriceWarning
from promptcache._accounting import LedgerAccountant
from promptcache._accounting._attribution import Attribution
from promptcache._accounting._ledger import Ledger, Summary
from promptcache._api import Api, RequestInfo
from tests.accounting.payloads import CASES, Case, sse

D = Decimal
NOON = datetime(2026, 11, 28, 12, 0, tzinfo=UTC).timestamp()
BY_NAME = {c.name: c for c in CASES}


def info(case: Case, *, tags: tuple[str, ...] = (), function: str | None = None,
         started: float = NOON) -> RequestInfo:  # fmt: skip
    return RequestInfo(
        api=case.api,
        base_url=case.base_url,
        model="requested-alias",
        tenant="t-fingerprint",
        stream=case.stream,
        attribution=Attribution(tags, function),
        started=started,
    )


def test_upstream_hit_error_and_unknown(tmp_path: Path) -> None:
    acc = LedgerAccountant(tmp_path)
    chat = BY_NAME["openai-chat-json"]
    meta = acc.record_upstream(info(chat), chat.body, status=200, complete=True)
    assert meta is not None
    assert meta["model"] == "gpt-6.1-sol" and meta["provider"] == "openai"
    assert meta["cost"] == "0.0153" and meta["cost_without_provider_cache"] == "0.029"
    json.dumps(meta)  # JSON-able: the transport stores it with the cached response
    acc.record_local_hit(info(chat), meta)
    acc.record_local_hit(info(chat), meta)
    assert acc.record_upstream(info(chat), b'{"error": {}}', status=429, complete=True) is None
    s = acc.ledger.summary()
    assert (s.requests, s.local_hits, s.errors) == (4, 2, 1)
    assert s.input_tokens == 12000 and s.cache_read_tokens == 8000
    assert s.cache_write_tokens == 3000 and s.cache_write_tokens_by_ttl == {"30m": 3000}
    assert s.uncached_input_tokens == 1000 and s.output_tokens == 500 and s.reasoning_tokens == 200
    assert s.cost == D("0.0153")
    assert s.cost_without_provider_cache == D("0.029")
    assert s.saved_by_provider_cache == D("0.0137")
    assert s.avoided_by_local_hits == D("0.0306")
    assert s.cost_without_cache == D("0.029") * 3
    assert s.saved == D("0.087") - D("0.0153")
    assert s.read_share == 8000 / 12000
    # a stream without include_usage: usage unknown, so the total cost becomes unknown
    nousage = BY_NAME["openai-chat-sse-no-usage"]
    meta2 = acc.record_upstream(info(nousage), nousage.body, status=200, complete=True)
    assert meta2 is not None and meta2["usage"] is None and meta2["cost"] is None
    s = acc.ledger.summary()
    assert s.unknown_usage_requests == 1 and s.unknown_cost_requests == 1
    assert s.cost is None and s.cost_without_cache is None and s.saved_by_provider_cache is None
    assert s.cost_known == D("0.0153")  # what is known is still shown, never as the total
    assert s.to_json()["cost"] is None and s.to_json()["cost_known"] == "0.0153"
    # a local hit whose stored call had no usage: avoided cost unknown
    acc.record_local_hit(info(nousage), meta2)
    assert acc.ledger.summary().avoided_by_local_hits is None
    acc.close()


def test_every_shape_through_the_accountant(tmp_path: Path) -> None:
    acc = LedgerAccountant(tmp_path)
    expected_input = 0
    for case in CASES:
        acc.record_upstream(info(case), case.body, status=200, complete=True)
        if case.expect:
            expected_input += case.expect["input_tokens"]
    s = acc.ledger.summary()
    assert s.requests == len(CASES) and s.input_tokens == expected_input
    by_model = acc.ledger.group_by("model")
    assert by_model["claude-opus-5-5"].cost == 2 * D("0.0332")  # JSON + SSE
    assert by_model["gpt-5.6-sol"].cost_without_provider_cache == 2 * D("0.24")
    assert by_model["deepseek-v4-flash"].cost == D("0.0005892")
    assert acc.ledger.group_by("provider").keys() == {
        "openai", "anthropic", "deepseek", "x-ai", "google"
    }  # fmt: skip
    acc.close()


def test_unknown_model_and_override(tmp_path: Path) -> None:
    body = json.dumps(
        {"model": "acme-private-1", "usage": {"prompt_tokens": 1000, "completion_tokens": 10}}
    ).encode()
    case = Case("x", Api.OPENAI_CHAT, False, body, None, None, base_url="https://llm.acme.test/v1")
    acc = LedgerAccountant(tmp_path / "a")
    with pytest.warns(PriceWarning, match="acme-private-1"):
        meta = acc.record_upstream(info(case), body, status=200, complete=True)
    assert meta is not None and meta["cost"] is None
    assert acc.ledger.summary().cost is None
    acc.close()
    acc2 = LedgerAccountant(
        tmp_path / "b", prices={"acme-private-1": ModelPrice(input_mtok="0.5", output_mtok="1")}
    )
    acc2.record_upstream(info(case), body, status=200, complete=True)
    assert acc2.ledger.summary().cost == D("0.00051")
    acc2.close()


def test_filters_and_group_by(tmp_path: Path) -> None:
    acc = LedgerAccountant(tmp_path)
    chat, ant = BY_NAME["openai-chat-json"], BY_NAME["anthropic-json"]
    day1 = datetime(2026, 11, 27, 9, tzinfo=UTC).timestamp()
    acc.record_upstream(info(chat, tags=("search",), function="app.find", started=day1),
                        chat.body, status=200, complete=True)  # fmt: skip
    acc.record_upstream(info(ant, tags=("search", "beta"), function="app.chat"),
                        ant.body, status=200, complete=True)  # fmt: skip
    acc.record_upstream(info(ant), ant.body, status=200, complete=True)
    lg = acc.ledger
    assert lg.summary().requests == 3
    assert lg.summary(tag="search").requests == 2
    assert lg.summary(tag="beta").cost == D("0.0332")
    assert lg.summary(function="app.find").cost == D("0.0153")
    assert lg.summary(model="claude-opus-5-5").requests == 2
    assert lg.summary(since=datetime(2026, 11, 28, tzinfo=UTC)).requests == 2
    assert lg.summary(until=datetime(2026, 11, 28, tzinfo=UTC)).requests == 1
    assert lg.summary(since=NOON + 1).requests == 0
    tags = lg.group_by("tag")
    assert {k: v.requests for k, v in tags.items()} == {"(none)": 1, "beta": 1, "search": 2}
    funcs = lg.group_by("function")
    assert {k: v.requests for k, v in funcs.items()} == {
        "(none)": 1, "app.chat": 1, "app.find": 1
    }  # fmt: skip
    days = lg.group_by("day")
    assert list(days) == ["2026-11-27", "2026-11-28"]
    assert days["2026-11-28"].cost == 2 * D("0.0332")
    assert lg.group_by("model", tag="search")["gpt-6.1-sol"].requests == 1
    acc.close()


def test_persisted_and_shared_by_a_new_instance(tmp_path: Path) -> None:
    chat = BY_NAME["openai-chat-json"]
    a = LedgerAccountant(tmp_path)
    a.record_upstream(info(chat), chat.body, status=200, complete=True)
    a.ledger.flush()
    b = LedgerAccountant(tmp_path)  # e.g. a new PromptCache, same directory
    b.record_upstream(info(chat), chat.body, status=200, complete=True)
    assert b.ledger.summary().cost == 2 * D("0.0153")
    assert a.ledger.summary().requests == 2
    a.close()
    b.close()
    assert Ledger(tmp_path).summary().requests == 2


def test_nothing_secret_is_stored(tmp_path: Path) -> None:
    secret = "SECRET-ANSWER-TEXT-7f3a"
    body = BY_NAME["openai-chat-json"].body.replace(b'"hi"', json.dumps(secret).encode())
    acc = LedgerAccountant(tmp_path)
    acc.record_upstream(info(BY_NAME["openai-chat-json"]), body, status=200, complete=True)
    acc.close()
    blob = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    assert secret.encode() not in blob and b"t-fingerprint" in blob


def test_rollup_keeps_totals_and_bounds_rows(tmp_path: Path) -> None:
    now = [NOON]
    acc = LedgerAccountant(tmp_path, clock=lambda: now[0], rollup_after_days=7)
    chat = BY_NAME["openai-chat-json"]
    acc.record_upstream(info(chat), chat.body, status=200, complete=True)
    acc.ledger.flush()  # first flush also runs maintenance; the next one is due in an hour
    old = NOON - 30 * 86400
    for i in range(50):
        acc.record_upstream(info(chat, tags=("bulk",), started=old + i * 60), chat.body,
                            status=200, complete=True)  # fmt: skip
    acc.record_local_hit(info(chat, started=old), {"v": 1, "model": "gpt-6.1-sol",
                         "provider": "openai", "cost": "0.0153",
                         "cost_without_provider_cache": "0.029"})  # fmt: skip
    before = acc.ledger.summary()
    assert acc.ledger.records() == 52
    now[0] += 7200  # maintenance runs at most hourly
    acc.ledger.flush()
    assert acc.ledger.records() == 3  # one day row per attribution, plus today's call
    after = acc.ledger.summary()
    assert after == before
    assert after.cost == 51 * D("0.0153") and after.local_hits == 1
    assert acc.ledger.summary(tag="bulk").requests == 50
    acc.close()


def test_retention_drops_old_rows(tmp_path: Path) -> None:
    now = [NOON]
    acc = LedgerAccountant(tmp_path, clock=lambda: now[0], retention_days=90)
    chat = BY_NAME["openai-chat-json"]
    acc.record_upstream(info(chat, started=NOON - 100 * 86400), chat.body, status=200,
                        complete=True)  # fmt: skip
    acc.record_upstream(info(chat), chat.body, status=200, complete=True)
    now[0] += 7200
    acc.ledger.flush()
    assert acc.ledger.summary().requests == 1
    acc.close()


_WORKER = textwrap.dedent(
    """
    import sys
    from promptcache._accounting import LedgerAccountant
    from promptcache._api import Api, RequestInfo
    d, n, body = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode()
    acc = LedgerAccountant(d)
    i = RequestInfo(Api.OPENAI_CHAT, "https://api.openai.com/v1", "gpt-6.1-sol", "t", False)
    for k in range(n):
        meta = acc.record_upstream(i, body, status=200, complete=True)
        acc.record_local_hit(i, meta)
    # no explicit flush: atexit must write what is buffered
    """
)


def test_many_processes_lose_nothing(tmp_path: Path) -> None:
    body = BY_NAME["openai-chat-json"].body.decode()
    procs = [
        subprocess.Popen([sys.executable, "-c", _WORKER, str(tmp_path), "200", body])
        for _ in range(4)
    ]
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0, 0]
    s = Ledger(tmp_path).summary()
    assert s.requests == 4 * 200 * 2 and s.local_hits == 800
    assert s.cost == 800 * D("0.0153")
    assert s.avoided_by_local_hits == 800 * D("0.0153")
    assert s.input_tokens == 800 * 12000


def test_summary_defaults_are_zero_not_none(tmp_path: Path) -> None:
    s = Ledger(tmp_path).summary()
    assert s == Summary(cost=D(0), cost_known=D(0), cost_without_provider_cache=D(0),
                        saved_by_provider_cache=D(0), avoided_by_local_hits=D(0),
                        cost_without_cache=D(0))  # fmt: skip
    assert s.requests == 0 and s.read_share is None


def test_cut_anthropic_stream_is_billed(tmp_path: Path) -> None:
    from tests.accounting.payloads import ANT_SSE_EVENTS

    acc = LedgerAccountant(tmp_path)
    case = BY_NAME["anthropic-sse"]
    raw = sse(ANT_SSE_EVENTS[:3])
    acc.record_upstream(info(case), raw, status=200, complete=False)
    s = acc.ledger.summary()
    assert s.input_tokens == 23050 and s.output_tokens == 1
    assert s.cost == (50 * 4 + 20000 * D("0.2") + 1000 * 5 + 2000 * 8 + 1 * 20) / D(10**6)
    acc.close()


def test_threads_appending_during_flushes_lose_nothing(tmp_path: Path) -> None:
    import threading

    acc = LedgerAccountant(tmp_path)
    chat = BY_NAME["openai-chat-json"]
    meta = acc.record_upstream(info(chat), chat.body, status=200, complete=True)
    stop = threading.Event()

    def flusher() -> None:
        while not stop.is_set():
            acc.ledger.flush()

    def worker() -> None:
        for _ in range(2000):
            acc.record_local_hit(info(chat), meta)

    f = threading.Thread(target=flusher)
    f.start()
    workers = [threading.Thread(target=worker) for _ in range(6)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    stop.set()
    f.join()
    s = acc.ledger.summary()
    assert s.requests == 1 + 12000 and s.local_hits == 12000
    assert s.avoided_by_local_hits == 12000 * D("0.0153")
    acc.close()
